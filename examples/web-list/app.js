// A shared shopping list on Haze: the set `items` holds item ids, each item is a map
// `item:ID` with a `name` (last-writer-wins register), an `at` (creation time, for the order)
// and a `done` (enable-wins flag), and the counter `visits` counts page loads on every device.
import Haze from './sdk/index.js';

const $ = (id) => document.getElementById(id);
// An error in words: the node's messages start with their code already.
const said = (e) => (e.message.startsWith(e.code) ? e.message : `${e.code}: ${e.message}`);
// `#token=T` (none if absent); `#node=URL` when the node is not the page's own origin.
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get('token') || undefined;
let db;
try {
  db = await Haze.open({ url: hash.get('node') || location.origin, token, name: 'web-list' });
} catch (e) {
  // `locked`: this list is open in another tab of this browser (one tab per replica).
  $('error').textContent = said(e);
  $('status').textContent = e.code;
  throw e;
}
window.db = db; // for the browser test and the curious

const items = db.set('items');
const watched = new Set();

function render() {
  const rows = items.members().map((id) => {
    const item = db.map(`item:${id}`);
    return { id, name: item.get('name'), at: item.get('at') || 0, done: item.get('done') === true };
  });
  rows.sort((a, b) => a.at - b.at || String(a.id).localeCompare(String(b.id)));
  $('items').replaceChildren(...rows.map(row));
  $('visits').textContent = db.counter('visits').value();
  for (const { id } of rows) watch(id);
}

function row({ id, name, done }) {
  const li = document.createElement('li');
  li.className = done ? 'done' : '';
  const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: done });
  box.onchange = () => act(db.map(`item:${id}`).set('done', box.checked));
  const label = Object.assign(document.createElement('span'), { textContent: name ?? '…' });
  const remove = Object.assign(document.createElement('button'), { textContent: '✕', title: 'Remove' });
  remove.onclick = () => act(items.remove(id));
  li.append(box, label, remove);
  li.dataset.name = name ?? '';
  return li;
}

// Each item's map, once: its changes (local or pushed by the node) re-render.
function watch(id) {
  if (watched.has(id)) return;
  watched.add(id);
  db.subscribe(`item:${id}`, render);
}

// Edits are acknowledged once IndexedDB holds them; a failure shows, the list stays as it is.
async function act(promise) {
  try {
    await promise;
    $('error').textContent = '';
  } catch (e) {
    $('error').textContent = said(e);
  }
  render();
}

$('add').onsubmit = async (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  if (!name) return;
  $('name').value = '';
  const id = crypto.randomUUID().slice(0, 8);
  const item = db.map(`item:${id}`);
  await act(item.set('name', name).then(() => item.set('at', Date.now())).then(() => items.add(id)));
};
$('sync').onclick = () => act(db.sync());

db.onStatus((s) => {
  const state = s.state === 'synced' && s.live ? 'live' : s.state;
  const text = { live: 'online · live', synced: 'online', syncing: 'syncing…', offline: 'offline', error: 'error', idle: 'starting' }[state];
  $('status').textContent = text;
  $('status').className = `pill ${state}`;
  $('status').title = s.error ? said(s.error) : (s.lastSync ? `last sync ${s.lastSync.toLocaleTimeString()}` : '');
  // A refusal (a wrong token, a key it does not allow) needs the user; being offline does not.
  if (s.state === 'error') $('error').textContent = said(s.error);
  else if (s.state === 'synced') $('error').textContent = '';
});
db.subscribe('items', render);
db.subscribe('visits', render);
$('actor').textContent = db.actor;
render();
act(db.counter('visits').incr());
