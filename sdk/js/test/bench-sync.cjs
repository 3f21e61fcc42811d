// The browser's sync, measured: a replica of KEYS keys (registers of 100 bytes) in Chromium,
// synced over HTTP with a real node that holds nothing; then synced again unchanged, and again
// with 1% of its keys changed. Prints each sync's time and the bytes the browser sent (every
// HTTP body, and WebSocket frame if any, it sent while the sync ran).
//
//   node sdk/js/test/bench-sync.cjs HAZE_BINARY [KEYS]   (NODE_PATH: where playwright-core is)
//   scripts/bench-sdk.sh [KEYS]                          (builds, then runs this)
const fs = require('node:fs');
const path = require('node:path');
const { data, launch, nodeAndPage, run, stop } = require('./harness.cjs');

const [haze, keysArg] = process.argv.slice(2);
const KEYS = Number(keysArg || 10000);

async function main() {
  const { nodeUrl, pageUrl, serve } = await nodeAndPage(haze);
  let node = await serve();
  const browser = await launch();
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  const traffic = { sent: 0 };
  page.on('websocket', (ws) => ws.on('framesent', (f) => { traffic.sent += Buffer.byteLength(f.payload); }));
  page.on('request', (r) => { traffic.sent += Buffer.byteLength(r.postData() || ''); });
  await page.goto(`${pageUrl}/style.css`); // any page of the origin: the test imports the SDK
  await page.evaluate(async (url) => {
    const { default: Haze } = await import('/sdk/index.js');
    // No socket and no timers: only the syncs measured here run (over HTTP).
    window.db = await Haze.open({ url, name: 'bench', live: false, debounce: 3600000, pollInterval: 3600000 });
  }, nodeUrl);

  const fill = Date.now();
  await page.evaluate(async (n) => {
    const value = 'v'.repeat(100);
    for (let i = 0; i < n; i++) await window.db.register(`k:${String(i).padStart(6, '0')}`).set(value);
  }, KEYS);
  console.log(`${KEYS} keys written in the browser (each saved in IndexedDB) in ${Date.now() - fill} ms`);
  // The node starts again with nothing, so that the first sync measured is a full one.
  await stop(node);
  fs.rmSync(path.join(data, 'node'), { recursive: true, force: true });
  node = await serve();

  const measure = async (what) => {
    traffic.sent = 0;
    const started = Date.now();
    const report = await page.evaluate(() => window.db.sync());
    const ms = Date.now() - started;
    console.log(`${what}: ${ms} ms, sent ${traffic.sent} bytes `
      + `(checked ${report.checked}, sent ${report.sent}, updated ${report.updated})`);
    return { ms, sent: traffic.sent };
  };
  const full = await measure('full sync (the node has nothing)');
  const same = await measure('unchanged');
  await page.evaluate(async (n) => {
    for (let i = 0; i < n; i += 100) await window.db.register(`k:${String(i).padStart(6, '0')}`).set('changed');
  }, KEYS);
  const changed = await measure(`${KEYS / 100} keys (1%) changed`);
  console.log(`changed / full bytes sent: ${(100 * changed.sent / full.sent).toFixed(2)}%; `
    + `unchanged sync sent ${same.sent} bytes`);
  await browser.close();
}

run(main);
