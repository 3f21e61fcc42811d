// @haze/sdk: a Haze replica in the browser. Edits apply at once, offline or not, and are
// acknowledged once IndexedDB holds them; sync (digests first) runs by itself whenever the
// node can be reached, and a WebSocket brings other devices' writes as they commit.

import init, { Replica, Snapshot } from './dist/haze_device.js';
import { HazeError, call, fromThrown } from './src/errors.js';
import { handles } from './src/handles.js';
import { fetchJson, getState, httpSend } from './src/http.js';
import * as idb from './src/idb.js';
import { LiveSocket } from './src/socket.js';
import { runSync } from './src/sync.js';

export { HazeError };

let wasm;
const loadWasm = () => (wasm ||= init());

// Failures worth retrying by themselves: the node is away or busy, not refusing.
const TRANSIENT = new Set(['unreachable', 'unavailable', 'overloaded']);

export class Haze {
  /**
   * Opens (or creates) the replica kept in IndexedDB database `name`, syncing with the node
   * at `url` (its HTTP base URL) with `token` (none: the node requires none).
   */
  static async open({ url, token, name = 'haze', live = true, pollInterval = 30000, debounce = 300 } = {}) {
    if (typeof url !== 'string') throw new HazeError('invalid', 'open needs the node url');
    await loadWasm();
    const release = await idb.exclusive(name);
    let db;
    try {
      db = new Haze(url.replace(/\/+$/, ''), token || '', name, await idb.openDatabase(name));
      db.release = release;
      db.debounce = debounce;
      await db.load(idb.witnessed(name));
    } catch (e) {
      if (db) db.idb.close();
      release();
      throw e;
    }
    db.start(live, pollInterval);
    return db;
  }

  constructor(url, token, name, database) {
    this.url = url;
    this.token = token;
    this.name = name;
    this.idb = database;
    this.wanted = new Set(); // keys the app asked for: fetched if the replica lacks them
    this.prefixSubs = new Map(); // prefix → {callbacks, last: Map(key → view text)}
    this.subs = new Map(); // key -> {callbacks, last view text}
    this.statusSubs = new Set();
    this.status = { state: 'idle', live: false, error: null, lastSync: null, report: null };
    this.backoff = 1000;
    Object.assign(this, handles(this));
  }

  // Opens the replica from IndexedDB. `witnessed` above the saved count forces a fresh actor.
  async load(witnessed) {
    const saved = await idb.load(this.idb);
    const snapshot = new Snapshot();
    try {
      for (const [key, bytes] of saved.states) call(() => snapshot.put(key, bytes));
      if (saved.meta !== undefined) call(() => snapshot.setMeta(saved.meta));
    } catch (e) {
      snapshot.free();
      throw e;
    }
    const random = crypto.getRandomValues(new Uint8Array(8));
    this.replica = call(() => Replica.open(snapshot, witnessed, random));
    await this.persist();
  }

  start(live, pollInterval) {
    this.onOnline = () => {
      if (this.socket) this.socket.wake();
      this.background();
    };
    this.onOffline = () => this.setStatus({ state: 'offline' });
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    if (live && typeof WebSocket !== 'undefined') {
      this.socket = new LiveSocket(this.url, this.token, () => this.subscribedKeys(), () => this.prefixSubs.keys(), {
        onUpdate: (key, state) => this.pushed(key, state),
        onReady: () => {
          this.setStatus({ live: true });
          this.background();
        },
        onDown: () => this.setStatus({ live: false }),
      });
    }
    // Without the socket nothing tells this replica of other devices' writes: poll.
    this.poll = setInterval(() => {
      if (!this.socket || !this.socket.ready) this.background();
    }, pollInterval);
    this.background();
  }

  subscribedKeys() {
    return new Set([...this.replica.keys(), ...this.wanted]);
  }

  check() {
    if (this.closed) throw new HazeError('closed', 'the database is closed');
    if (this.recovering) throw new HazeError('storage', 'IndexedDB failed: reopening');
  }

  /** The read view of `key` (a counter's number, a set's members, ...), or undefined. */
  view(key) {
    this.check();
    const v = this.replica.view(key);
    return v === undefined ? undefined : JSON.parse(v);
  }

  /** The keys the replica holds. */
  keys() {
    this.check();
    return this.replica.keys();
  }

  /** The actor id this replica edits with (16 hex digits). */
  get actor() {
    return this.replica.actor;
  }

  // Applies edits (the core's edit JSON) to `key`; resolves with the new view once durable.
  async edit(key, edits) {
    this.check();
    const isNew = this.replica.view(key) === undefined;
    let view = this.replica.view(key);
    try {
      for (const e of edits) view = call(() => this.replica.apply(key, JSON.stringify(e), Date.now()));
    } catch (e) {
      // A refused edit changed nothing, but those before it in `edits` did: keep them.
      await this.persist();
      this.notify();
      throw e;
    }
    this.notify();
    if (isNew && this.socket) this.socket.subscribe([key]).catch(() => {});
    await this.persist();
    this.scheduleSync(this.debounce);
    return view === undefined ? undefined : JSON.parse(view);
  }

  // Writes what the replica's saves changed to IndexedDB; resolves once it is durable.
  persist() {
    const changes = this.replica.takeChanges();
    if (changes.meta === undefined && changes.length === 0) {
      changes.free();
      return Promise.resolve();
    }
    const saves = changes.saves;
    let written;
    try {
      written = idb.write(this.idb, changes);
    } catch (e) {
      written = Promise.reject(new HazeError('storage', `IndexedDB: ${e.message}`));
    } finally {
      changes.free();
    }
    return written.then(() => idb.witness(this.name, saves), (e) => this.recover(e));
  }

  // IndexedDB refused a write: the replica in memory is ahead of what is durable. Reopen from
  // what is durable with a fresh actor id (the lost edits' dots may have reached the node), and
  // report the failure to the edit that asked.
  async recover(error) {
    if (!this.recovering) {
      this.recovering = true;
      const ahead = JSON.parse(this.replica.meta()).saves + 1;
      idb.witness(this.name, ahead);
      const old = this.replica;
      try {
        await this.load(ahead);
        old.free();
      } finally {
        this.recovering = false;
      }
      this.notify();
    }
    throw error instanceof HazeError ? error : new HazeError('storage', `IndexedDB: ${error && error.message}`);
  }

  /** Calls `cb(view)` whenever `key`'s read view changes, locally or from the node. */
  subscribe(key, cb) {
    this.check();
    this.want(key);
    let sub = this.subs.get(key);
    if (!sub) this.subs.set(key, (sub = { callbacks: new Set(), last: this.replica.view(key) }));
    sub.callbacks.add(cb);
    return () => sub.callbacks.delete(cb);
  }

  /**
   * Calls `cb(key, view)` whenever a key under `prefix` changes, locally or from the node: the
   * node pushes every write to such keys, including keys this replica did not hold (they join
   * it). A key the replica holds is reported once now.
   */
  subscribePrefix(prefix, cb) {
    this.check();
    let sub = this.prefixSubs.get(prefix);
    if (sub) {
      sub.callbacks.add(cb);
      for (const [key, text] of sub.last) if (text !== undefined) report(cb, key, JSON.parse(text));
    } else {
      this.prefixSubs.set(prefix, (sub = { callbacks: new Set([cb]), last: new Map() }));
      if (this.socket) this.socket.subscribe([], [prefix]).catch(() => {});
      this.notify(); // reports the keys the replica holds under it
    }
    return () => sub.callbacks.delete(cb);
  }

  want(key) {
    if (this.wanted.has(key)) return;
    this.wanted.add(key);
    if (this.socket) this.socket.subscribe([key]).catch(() => {});
    if (this.replica && this.replica.view(key) === undefined && !this.closed) this.scheduleSync(0);
  }

  notify() {
    if (this.prefixSubs.size) {
      const keys = this.replica.keys();
      for (const [prefix, sub] of this.prefixSubs) {
        for (const key of keys) {
          if (!key.startsWith(prefix)) continue;
          const text = this.replica.view(key);
          if (text === sub.last.get(key)) continue;
          sub.last.set(key, text);
          const view = text === undefined ? undefined : JSON.parse(text);
          for (const cb of sub.callbacks) report(cb, key, view);
        }
      }
    }
    for (const [key, sub] of this.subs) {
      const text = this.replica.view(key);
      if (text === sub.last) continue;
      sub.last = text;
      const view = text === undefined ? undefined : JSON.parse(text);
      for (const cb of sub.callbacks) {
        try {
          cb(view);
        } catch (e) {
          console.error('a Haze subscriber threw', e);
        }
      }
    }
  }

  // A state the node pushed over the socket.
  pushed(key, state) {
    if (this.closed || this.recovering) return;
    try {
      if (call(() => this.replica.merge(key, state))) {
        this.notify();
        this.persist().catch(() => {});
      }
    } catch (e) {
      this.setStatus({ error: fromThrown(e) });
    }
  }

  /** Calls `cb(status)` on every status change: {state, live, error, lastSync, report}. */
  onStatus(cb) {
    this.statusSubs.add(cb);
    cb(this.status);
    return () => this.statusSubs.delete(cb);
  }

  setStatus(change) {
    this.status = { ...this.status, ...change };
    for (const cb of this.statusSubs) cb(this.status);
  }

  /**
   * Syncs every key now (digests first; full states only where they differ); resolves with
   * the report {checked, sent, updated, failed: [{key, code, message}]}. Calls made while a
   * sync runs share the one that follows it.
   */
  sync() {
    if (!this.queued) {
      const before = this.running || Promise.resolve();
      this.queued = before.catch(() => {}).then(() => {
        this.queued = null;
        this.running = this.syncOnce();
        this.running.catch(() => {}).then(() => (this.running = null));
        return this.running;
      });
    }
    return this.queued;
  }

  async syncOnce() {
    this.check();
    clearTimeout(this.retryTimer);
    if (globalThis.navigator && navigator.onLine === false) {
      this.setStatus({ state: 'offline' });
      throw new HazeError('unreachable', 'the browser is offline');
    }
    this.setStatus({ state: 'syncing' });
    try {
      const socket = this.socket && this.socket.ready ? this.socket : null;
      // Keys the app asked for that the replica has never held: read whole (over the socket,
      // 256 a request, or one HTTP GET each).
      const missing = [...this.wanted].filter((key) => this.replica.view(key) === undefined);
      for (let i = 0; i < missing.length; i += socket ? 256 : 1) {
        const keys = missing.slice(i, i + (socket ? 256 : 1));
        const states = socket
          ? JSON.parse(await socket.request({ type: 'get', keys }, 'values')).items
            .map((it) => (it.state === null ? null : JSON.stringify(it.state)))
          : [await getState(this.url, this.token, keys[0])];
        keys.forEach((key, j) => {
          // Each a state's JSON text, or null where the node has no value.
          if (typeof states[j] === 'string' && !this.closed) call(() => this.replica.merge(key, states[j]));
        });
      }
      const send = socket ? (m) => socket.send(m) : (m) => httpSend(this.url, this.token, m);
      const report = await runSync(this.replica, send, () => {
        this.notify();
        return this.persist();
      });
      this.backoff = 1000;
      this.setStatus({ state: 'synced', error: null, lastSync: new Date(), report });
      return report;
    } catch (e) {
      const error = fromThrown(e);
      if (this.closed) throw error;
      const transient = TRANSIENT.has(error.code) || error.status >= 500;
      this.setStatus({ state: error.code === 'unreachable' ? 'offline' : 'error', error });
      if (transient) {
        this.scheduleSync(this.backoff * (0.5 + Math.random()));
        this.backoff = Math.min(this.backoff * 2, 30000);
      }
      throw error;
    }
  }

  scheduleSync(delay) {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.background(), delay);
  }

  // A sync nobody waits for: its failure is in the status, and retried if transient.
  background() {
    if (!this.closed) this.sync().catch(() => {});
  }

  /** Closes the socket and the database (waiting for a sync in progress). */
  async close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.poll);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    if (this.socket) this.socket.close();
    await (this.running || Promise.resolve()).catch(() => {});
    this.idb.close();
    this.replica.free();
    this.release();
  }
}

// Calls an app's callback: one that throws is logged, and stops nothing.
function report(cb, ...args) {
  try {
    cb(...args);
  } catch (e) {
    console.error('a Haze subscriber threw', e);
  }
}

/** Reads the node's health (`GET /health`): a quick check that `url` and `token` work. */
export async function health(url, token) {
  return JSON.parse(await fetchJson(url.replace(/\/+$/, ''), token, '/health'));
}

export default Haze;
