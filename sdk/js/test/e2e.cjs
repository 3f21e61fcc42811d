// The SDK in Chromium against a real node: two browser contexts (two devices, each with its
// own IndexedDB) edit the example's shopping list offline, one reloads while the node is down,
// and both converge once it is back. Run by scripts/test-sdk.sh, which starts nothing itself:
// this file starts the node and a static server and stops them.
//
//   node sdk/js/test/e2e.cjs HAZE_BINARY SCREENSHOT_DIR   (NODE_PATH: where playwright-core is)
const path = require('node:path');
const fs = require('node:fs');
const { assert, launch, list, nodeAndPage, openList, run, stop } = require('./harness.cjs');

const [haze, shots] = process.argv.slice(2);
const { items, add, check, status } = list;
const syncNow = list.sync;

async function main() {
  const { nodeUrl, pageUrl, serve } = await nodeAndPage(haze);
  let node = await serve();
  const browser = await launch();
  const url = `${pageUrl}/#node=${encodeURIComponent(nodeUrl)}`;
  const open = (name) => openList(browser, name, url);

  const a = await open('a');
  const b = await open('b');
  const second = await a.context.newPage();
  await second.goto(url);
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
  node = await serve();
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

  // IndexedDB refuses a write: the edit fails as `storage`, changes nothing that stays, and the
  // replica reopens from what is durable with a fresh actor id.
  const actor = await b.page.evaluate(() => window.db.actor);
  const failed = await b.page.evaluate(async () => {
    const transaction = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
      if (mode === 'readwrite') throw new DOMException('planted', 'QuotaExceededError');
      return transaction.call(this, stores, mode, ...rest);
    };
    try {
      await window.db.counter('visits').incr();
      return 'resolved';
    } catch (e) {
      return e.code;
    } finally {
      IDBDatabase.prototype.transaction = transaction;
    }
  });
  assert(failed === 'storage', `an edit IndexedDB refused fails as storage (${failed})`);
  const after = await b.page.evaluate(() => ({ actor: window.db.actor, visits: window.db.counter('visits').value() }));
  assert(after.actor !== actor && after.visits === 3, `b reopened with a fresh actor, the edit undone (${JSON.stringify(after)})`);
  await b.page.waitForFunction(() => document.querySelector('#visits').textContent === '3');

  // Live updates, where the node serves /v1/ws: an edit on a reaches b with no sync asked.
  const live = await a.page.waitForFunction(() => window.db.status.live, null, { timeout: 5000 }).then(() => true, () => false);
  if (live) {
    await b.page.waitForFunction(() => window.db.status.live);
    await add(a, 'apples');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#items li')].some((li) => li.dataset.name === 'apples'), null, { timeout: 10000 });
    assert((await items(b)).includes('apples'), 'b shows what a added, pushed over the WebSocket');
    // A pushed update may start a sync on b: its status passes through 'syncing…' first.
    const shown = await b.page
      .waitForFunction(() => document.querySelector('#status').textContent === 'online · live', null, { timeout: 10000 })
      .then(() => true, () => false);
    assert(shown, `b shows live (${await status(b)})`);
  } else {
    console.log('skipped: live updates (the node serves no /v1/ws)');
  }

  fs.mkdirSync(shots, { recursive: true });
  await a.page.screenshot({ path: path.join(shots, 'web-list-a.png') });
  await b.page.screenshot({ path: path.join(shots, 'web-list-b.png') });
  console.log(`screenshots in ${shots}`);
  await browser.close();
}

run(main);
