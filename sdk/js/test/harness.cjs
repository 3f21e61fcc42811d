// What the SDK's browser tests share: free ports, a node and a static server of the example
// as child processes (stopped at the end, logs kept on failure), Chromium, and the example's
// page as a test reads it.
const { chromium } = require('playwright-core');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

const root = path.resolve(__dirname, '../../..');
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'haze-sdk-test-'));
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

// A node (plain HTTP, no tokens) and the example on a static server of another origin, which
// the node allows (CORS). serve() (re)starts the node on the same ports and data.
async function nodeAndPage(haze) {
  const [nodePort, binPort, pagePort] = [await freePort(), await freePort(), await freePort()];
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const pageUrl = `http://127.0.0.1:${pagePort}`;
  const serve = async () => {
    const node = start(haze, ['serve', '--data', path.join(data, 'node'), '--http', `127.0.0.1:${nodePort}`,
      '--listen', `127.0.0.1:${binPort}`, '--cors-origin', pageUrl], 'node.log');
    await waitFor(`${nodeUrl}/health`);
    return node;
  };
  start('python3', ['-m', 'http.server', String(pagePort), '--bind', '127.0.0.1', '--directory',
    path.join(root, 'examples/web-list')], 'page.log');
  await waitFor(`${pageUrl}/index.html`);
  return { nodeUrl, pageUrl, serve };
}

function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

// The example in a fresh context (a device of its own: its own IndexedDB), once it has synced.
async function openList(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 520, height: 560 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && !/WebSocket|ERR_INTERNET|Failed to load resource/.test(m.text())
    && console.log(`[${name}] ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.db && window.db.status.state === 'synced');
  return { context, page, name };
}

const list = {
  items: (d) => d.page.$$eval('#items li', (lis) => lis.map((li) => (li.className === 'done' ? '✓' : '') + li.dataset.name)),
  add: async (d, name) => {
    await d.page.fill('#name', name);
    await d.page.click('#add button');
    await d.page.waitForFunction((n) => [...document.querySelectorAll('#items li')].some((li) => li.dataset.name === n), name);
  },
  has: (d, name, timeout = 10000) => d.page.waitForFunction(
    (n) => [...document.querySelectorAll('#items li')].some((li) => li.dataset.name === n), name, { timeout }),
  check: (d, name) => d.page.click(`#items li[data-name="${name}"] input`),
  sync: (d) => d.page.evaluate(() => window.db.sync().then((r) => r, (e) => ({ error: e.code }))),
  status: (d) => d.page.textContent('#status'),
};

// Runs `main`, then stops every child; on failure keeps their logs and exits 1.
function run(main) {
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
}

module.exports = { assert, data, freePort, launch, list, nodeAndPage, openList, root, run, start, stop, waitFor };
