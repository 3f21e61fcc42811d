// The SDK in Chromium against a real node: two browser contexts (two devices, each with its
// own IndexedDB) edit the example's shopping list offline, one reloads while the node is down,
// and both converge once it is back. Run by scripts/test-sdk.sh, which starts nothing itself:
// this file starts the node and a static server and stops them.
//
//   node sdk/js/test/e2e.cjs HAZE_BINARY SCREENSHOT_DIR   (NODE_PATH: where playwright-core is)
const { chromium } = require('playwright-core');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

const [haze, shots] = process.argv.slice(2);
const root = path.resolve(__dirname, '../../..');
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'haze-e2e-'));
const children = [];

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

async function waitFor(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered`);
}

function start(cmd, args, log) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = fs.createWriteStream(path.join(data, log));
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  children.push(child);
  return child;
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

function assert(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function main() {
  const [nodePort, binPort, pagePort] = [await freePort(), await freePort(), await freePort()];
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const pageUrl = `http://127.0.0.1:${pagePort}`;
  const serve = () => start(haze, ['serve', '--data', path.join(data, 'node'), '--http', `127.0.0.1:${nodePort}`,
    '--listen', `127.0.0.1:${binPort}`, '--cors-origin', pageUrl], 'node.log');
  let node = serve();
  start('python3', ['-m', 'http.server', String(pagePort), '--bind', '127.0.0.1', '--directory',
    path.join(root, 'examples/web-list')], 'page.log');
  await waitFor(`${nodeUrl}/health`);
  await waitFor(`${pageUrl}/index.html`);

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const open = async (name) => {
    const context = await browser.newContext({ viewport: { width: 520, height: 560 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && !/WebSocket|ERR_INTERNET|Failed to load resource/.test(m.text())
      && console.log(`[${name}] ${m.text()}`));
    await page.goto(`${pageUrl}/#node=${encodeURIComponent(nodeUrl)}`);
    await page.waitForFunction(() => window.db && window.db.status.state === 'synced');
    return { context, page, name };
  };
  const items = (d) => d.page.$$eval('#items li', (lis) => lis.map((li) => (li.className === 'done' ? '✓' : '') + li.dataset.name));
  const add = async (d, name) => {
    await d.page.fill('#name', name);
    await d.page.click('#add button');
    await d.page.waitForFunction((n) => [...document.querySelectorAll('#items li')].some((li) => li.dataset.name === n), name);
  };
  const check = (d, name) => d.page.click(`#items li[data-name="${name}"] input`);
  const syncNow = (d) => d.page.evaluate(() => window.db.sync().then((r) => r, (e) => ({ error: e.code })));
  const status = (d) => d.page.textContent('#status');

  const a = await open('a');
  const b = await open('b');
  const second = await a.context.newPage();
  await second.goto(`${pageUrl}/#node=${encodeURIComponent(nodeUrl)}`);
  await second.waitForFunction(() => document.querySelector('#error').textContent !== '');
  assert((await second.textContent('#status')) === 'locked', 'a second tab on the same replica is refused (locked)');
  await second.close();
  await add(a, 'milk');
  await syncNow(a);
  await syncNow(b);
  await b.page.waitForFunction(() => document.querySelectorAll('#items li').length === 1);
  assert((await items(b)).join() === 'milk', 'b sees what a added once both synced');

  // Both devices go offline and edit.
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await add(a, 'eggs');
  await add(b, 'bread');
  await check(b, 'milk');
  await b.page.waitForFunction(() => document.querySelector('#items li.done'));
  const offline = await syncNow(a);
  assert(offline.error === 'unreachable', `a sync offline fails as unreachable (${JSON.stringify(offline)})`);
  assert((await status(a)) === 'offline', 'a shows offline');

  // The node goes away; a comes back online and reloads: its offline edit is still there.
  await stop(node);
  await a.context.setOffline(false);
  await b.context.setOffline(false);
  await a.page.reload();
  await a.page.waitForFunction(() => window.db && document.querySelectorAll('#items li').length === 2);
  assert((await items(a)).join() === 'milk,eggs', 'a reload keeps the offline edit');
  await a.page.waitForFunction(() => window.db.status.state === 'offline' || window.db.status.state === 'error');
  assert((await status(a)) === 'offline', 'a shows offline while the node is down');

  // The node is back (same data): a sync by each, then a again, and both hold everything.
  node = serve();
  await waitFor(`${nodeUrl}/health`);
  for (const d of [a, b, a]) {
    const report = await syncNow(d);
    assert(!report.error && report.failed.length === 0, `${d.name} syncs (${JSON.stringify(report)})`);
  }
  await b.page.waitForFunction(() => document.querySelectorAll('#items li').length === 3);
  await a.page.waitForFunction(() => document.querySelectorAll('#items li').length === 3);
  const [la, lb] = [await items(a), await items(b)];
  assert(la.join() === lb.join() && la.length === 3 && la.includes('✓milk'), `both show ${la.join()} (b: ${lb.join()})`);
  const visits = await Promise.all([a, b].map((d) => d.page.textContent('#visits')));
  assert(visits.join() === '3,3', `the visits counter merged: ${visits.join()}`);
  assert((await status(a)).startsWith('online'), 'a shows online');

  // Live updates, where the node serves /v1/ws: an edit on a reaches b with no sync asked.
  const live = await a.page.waitForFunction(() => window.db.status.live, null, { timeout: 5000 }).then(() => true, () => false);
  if (live) {
    await b.page.waitForFunction(() => window.db.status.live);
    await add(a, 'apples');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#items li')].some((li) => li.dataset.name === 'apples'), null, { timeout: 10000 });
    assert((await items(b)).includes('apples'), 'b shows what a added, pushed over the WebSocket');
    assert((await status(b)) === 'online · live', 'b shows live');
  } else {
    console.log('skipped: live updates (the node serves no /v1/ws)');
  }

  fs.mkdirSync(shots, { recursive: true });
  await a.page.screenshot({ path: path.join(shots, 'web-list-a.png') });
  await b.page.screenshot({ path: path.join(shots, 'web-list-b.png') });
  console.log(`screenshots in ${shots}`);
  await browser.close();
}

main().then(
  async () => {
    await Promise.all(children.map(stop));
    fs.rmSync(data, { recursive: true, force: true });
  },
  async (e) => {
    console.error(e);
    await Promise.all(children.map(stop));
    console.error(`logs kept in ${data}`);
    process.exit(1);
  },
);
