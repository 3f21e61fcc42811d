// The example on a real cluster, as its README runs it: `haze dev --nodes 3 --web
// examples/web-list` (TLS between the nodes, tokens required, each node serving the page and
// the API on one origin). Two browser contexts on different nodes (the phone and the laptop),
// a Rust device (`haze local`), a wiped cluster, and a token scoped to other keys:
//
// 1. an edit in one context appears in the other, connected to another node, with no sync asked;
// 2. both go offline and edit the same list, counter and map; back online, both show the merge;
// 3. a Rust device edits the same keys; it, and both browsers, converge;
// 4. every node's data directory is wiped: the browsers' next syncs restore their keys;
// 5. a token scoped to another prefix is refused (`forbidden`), and writes nothing.
//
//   node sdk/js/test/cluster.cjs HAZE_BINARY SCREENSHOT_DIR   (NODE_PATH: where playwright-core is)
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { assert, data, launch, list, openList, root, run, start, stop } = require('./harness.cjs');

const [haze, shots] = process.argv.slice(2);
const dir = path.join(data, 'dev');
const home = path.join(data, 'home'); // haze dev writes a client profile under $HOME
fs.mkdirSync(home, { recursive: true });
const env = { ...process.env, HOME: home };

const isFree = (port) => new Promise((resolve) => {
  const s = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

// A base port whose cluster ports (controller, and each node's three) are all free: a restart
// must find the same origins, where the browsers keep their IndexedDB.
async function freeBase() {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + 100 * Math.floor(Math.random() * 400);
    const ports = [base - 100, ...[1, 2, 3].flatMap((n) => [base + n, base + 80 + n, base + 90 + n])];
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error('no free base port');
}

// Starts `haze dev` and waits for its three `web: open` lines.
async function devUp(base, log) {
  const child = start(haze, ['dev', '--nodes', '3', '--data', dir, '--base-port', String(base),
    '--web', path.join(root, 'examples/web-list')], log);
  for (let i = 0; i < 300; i++) {
    const text = fs.existsSync(path.join(data, log)) ? fs.readFileSync(path.join(data, log), 'utf8') : '';
    const urls = [...text.matchAll(/web: open (\S+)/g)].map((m) => m[1]);
    const nodes = [...text.matchAll(/^n\d+ (\S+) http/gm)].map((m) => m[1]);
    const controller = (text.match(/^controller (\S+)/m) || [])[1];
    if (urls.length === 3) return { child, urls, nodes, controller };
    if (child.exitCode !== null) throw new Error(`haze dev exited:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('haze dev printed no addresses within 30 s');
}

function hazeCli(args) {
  return execFileSync(haze, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function readKey(url, token, key) {
  const answer = await fetch(`${new URL(url).origin}/v1/keys/${encodeURIComponent(key)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = await answer.json();
  if (answer.status === 404) return null;
  if (answer.status !== 200) return { status: answer.status, error: body.error };
  return body.value;
}

const live = (d) => d.page.waitForFunction(() => window.db.status.live, null, { timeout: 15000 });
const visits = (d) => d.page.evaluate(() => window.db.counter('visits').value());
const names = async (d) => (await list.items(d)).map((n) => n.replace('✓', '')).sort().join();

async function main() {
  const base = await freeBase();
  let dev = await devUp(base, 'dev.log');
  const token = fs.readFileSync(path.join(dir, 'web-token'), 'utf8').trim();
  assert(dev.urls.every((u) => u.endsWith(`#token=${token}`)), 'haze dev prints each node\'s address with the device token');
  const browser = await launch();
  const a = await openList(browser, 'a', dev.urls[0]);
  const b = await openList(browser, 'b', dev.urls[1]);
  await live(a);
  await live(b);

  // 1. Live across nodes.
  let started = Date.now();
  await list.add(a, 'milk');
  await list.has(b, 'milk');
  assert(true, `b (node 2) shows a's edit (node 1) pushed, no sync asked, ${Date.now() - started} ms after a's edit`);

  // A prefix subscription brings keys the replica never held, written on another node.
  await a.page.evaluate(() => {
    window.notes = [];
    window.db.subscribePrefix('note:', (key, view) => window.notes.push([key, view]));
  });
  await new Promise((r) => setTimeout(r, 300)); // the subscription reaches node 1, its watch the others
  const wrote = await fetch(`${new URL(dev.urls[2]).origin}/v1/keys/note:1/register`, {
    method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ value: 'buy stamps' }),
  });
  assert(wrote.ok, 'a note written on node 3 over HTTP');
  await a.page.waitForFunction(() => window.notes.length > 0, null, { timeout: 10000 });
  const note = await a.page.evaluate(() => [window.notes[0], window.db.register('note:1').get()]);
  assert(JSON.stringify(note) === '[["note:1","buy stamps"],"buy stamps"]',
    `a's subscription to note: heard of note:1, which joined its replica: ${JSON.stringify(note)}`);

  // 2. Offline edits of the same list, counter and map on both.
  const before = await visits(a);
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await list.add(a, 'eggs');
  await a.page.evaluate(() => window.db.counter('visits').incr());
  await list.add(b, 'bread');
  await b.page.evaluate(() => window.db.counter('visits').incr(2));
  await list.check(b, 'milk');
  await a.page.evaluate(() => {
    const id = window.db.set('items').members().find((i) => window.db.map(`item:${i}`).get('name') === 'milk');
    return window.db.map(`item:${id}`).set('name', 'oat milk');
  });
  await a.context.setOffline(false);
  await b.context.setOffline(false);
  for (const d of [a, b, a]) {
    const report = await list.sync(d);
    assert(!report.error && report.failed.length === 0, `${d.name} syncs once online (${JSON.stringify(report)})`);
  }
  await b.page.waitForFunction(() => document.querySelectorAll('#items li').length === 3);
  const [la, lb] = [await list.items(a), await list.items(b)];
  assert(la.join() === lb.join() && la.includes('✓oat milk') && la.includes('eggs') && la.includes('bread'),
    `both show the merged list: ${la.join()} (the rename from a, the check from b)`);
  const [va, vb] = [await visits(a), await visits(b)];
  assert(va === vb && va === before + 3, `both count ${va} visits (${before} + 1 + 2)`);

  // 3. A Rust device (a replica file) edits the same keys and syncs with node 3.
  const replica = path.join(data, 'laptop.haze');
  const remote = ['--addr', dev.nodes[2], '--tls-ca', path.join(dir, 'certs/ca.pem'), '--token', token];
  hazeCli(['local', '--replica', replica, 'map', 'set', 'item:rust', 'name', 'from rust']);
  hazeCli(['local', '--replica', replica, 'map', 'set', 'item:rust', 'at', '9']);
  hazeCli(['local', '--replica', replica, 'set', 'add', 'items', 'rust']);
  hazeCli(['local', '--replica', replica, 'counter', 'incr', 'visits', '10']);
  hazeCli(['local', '--replica', replica, 'sync', ...remote]);
  await list.has(a, 'from rust');
  await list.has(b, 'from rust');
  await a.page.waitForFunction((n) => document.querySelector('#visits').textContent === String(n), va + 10);
  hazeCli(['local', '--replica', replica, 'sync']);
  const rustItems = hazeCli(['local', '--replica', replica, 'set', 'members', 'items']).trim().split('\n');
  const rustVisits = Number(hazeCli(['local', '--replica', replica, 'counter', 'get', 'visits']));
  assert(rustItems.length === 4 && rustVisits === va + 10 && (await visits(b)) === va + 10,
    `the Rust device and both browsers converge: 4 items, ${rustVisits} visits`);

  // 4. Every node's data is lost; the cluster starts again empty, on the same addresses. The
  // pages are closed meanwhile (or their sockets' reconnections would restore it at once);
  // each browser keeps its replica in IndexedDB.
  await a.page.close();
  await b.page.close();
  await stop(dev.child);
  for (const n of [1, 2, 3]) fs.rmSync(path.join(dir, `node${n}`), { recursive: true, force: true });
  dev = await devUp(base, 'dev-again.log');
  // The wiped nodes refill from each other before they answer reads (they have nothing).
  let left;
  for (let i = 0; i < 300; i++) {
    left = await readKey(dev.urls[2], token, 'items');
    if (!(left && left.status === 503)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert(left === null, `the restarted cluster holds nothing (items: ${JSON.stringify(left)})`);
  for (const d of [a, b]) {
    d.page = await d.context.newPage();
    await d.page.goto(dev.urls[d.name === 'a' ? 0 : 1]);
  }
  // Each page syncs as it opens: its digests find nothing, and it sends every state.
  let restored = null;
  for (let i = 0; i < 100 && !(restored && restored.length === 4); i++) {
    await new Promise((r) => setTimeout(r, 100));
    restored = await readKey(dev.urls[2], token, 'items');
  }
  assert(restored && restored.length === 4, `the browsers' syncs restored the list: ${JSON.stringify(restored)}`);
  // Each page counted its own opening too.
  let counted;
  for (let i = 0; i < 50 && counted !== va + 12; i++) {
    counted = await readKey(dev.urls[2], token, 'visits');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert(counted === va + 12, `and the counter: ${counted} (${va + 10} + the two pages' openings)`);

  // 5. A token scoped to another prefix: the page opens (its replica is local) but its sync is
  // refused, and nothing of it reaches the cluster.
  const scoped = hazeCli(['token', 'create', '--controller', dev.controller, '--tls-ca', path.join(dir, 'certs/ca.pem'),
    '--token', fs.readFileSync(path.join(dir, 'controller/admin.token'), 'utf8').trim(),
    '--prefix', 'other:', '--read', '--write']).trim();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(dev.urls[0].replace(/#token=.*/, `#token=${scoped}`));
  await page.waitForFunction(() => window.db);
  const refused = await page.evaluate(() => window.db.sync().then((r) => r, (e) => ({ error: e.code })));
  assert(refused.error === 'forbidden', `a token scoped to other: is refused (${JSON.stringify(refused)})`);
  await page.waitForFunction(() => document.querySelector('#status').textContent !== 'syncing');
  assert((await readKey(dev.urls[2], token, 'visits')) === va + 12, 'its visit was not counted on the cluster');

  fs.mkdirSync(shots, { recursive: true });
  await a.page.screenshot({ path: path.join(shots, 'cluster-a.png') });
  await page.screenshot({ path: path.join(shots, 'cluster-refused.png') });
  console.log(`screenshots in ${shots}`);
  await browser.close();
  await stop(dev.child);
}

run(main);
