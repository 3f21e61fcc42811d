// IndexedDB: one database per replica, `states` (key -> the value's binary encoding) and
// `meta` (the replica's metadata JSON). The save count is also kept in localStorage: a
// database with fewer saves than that is an older copy (restored, or rolled back), and the
// replica then takes a fresh actor id rather than reuse dots others may have seen.

import { HazeError } from './errors.js';

const STATES = 'states';
const META = 'meta';

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(new HazeError('storage', `IndexedDB: ${r.error}`));
  });
}

export async function openDatabase(name) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore(STATES);
    open.result.createObjectStore(META);
  };
  return request(open);
}

// Everything saved: {meta (JSON or undefined), states: [[key, Uint8Array]]}.
export async function load(db) {
  const tx = db.transaction([STATES, META], 'readonly');
  const states = tx.objectStore(STATES);
  const [keys, values, meta] = await Promise.all([
    request(states.getAllKeys()),
    request(states.getAll()),
    request(tx.objectStore(META).get(META)),
  ]);
  return { meta, states: keys.map((k, i) => [k, values[i]]) };
}

// Writes what the replica's saves changed in one transaction; resolves once it is durable.
export function write(db, changes) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction([STATES, META], 'readwrite', { durability: 'strict' });
    const states = tx.objectStore(STATES);
    for (let i = 0; i < changes.length; i++) states.put(changes.state(i), changes.key(i));
    if (changes.meta !== undefined) tx.objectStore(META).put(changes.meta, META);
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(new HazeError('storage', `IndexedDB: ${tx.error}`));
  });
}

// The save count witnessed apart from IndexedDB (0 where localStorage is unavailable).
export function witnessed(name) {
  try {
    return Number(localStorage.getItem(`haze-saves:${name}`)) || 0;
  } catch {
    return 0;
  }
}

export function witness(name, saves) {
  try {
    if (saves > witnessed(name)) localStorage.setItem(`haze-saves:${name}`, String(saves));
  } catch { /* no localStorage: only a rolled-back database goes unnoticed */ }
}

// Holds the database for this page alone until release() is called: two tabs editing one
// replica would share its actor id (handing out the same dots) and overwrite each other's
// saves. Where Web Locks are missing, nothing is held.
export function exclusive(name) {
  if (!globalThis.navigator || !navigator.locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(`haze:${name}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          reject(new HazeError('locked', `another tab has the Haze database ${name} open`));
          return undefined;
        }
        return new Promise((release) => resolve(release));
      })
      .catch(reject);
  });
}
