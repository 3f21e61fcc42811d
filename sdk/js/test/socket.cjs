// The SDK's WebSocket against a stand-in for /v1/ws (ws-proxy.cjs, in front of a real node):
// auth first with the page's token, subscriptions to the keys held, sync over the socket,
// pushed updates reaching the page, and a session closed as lagging (4000) coming back by
// itself: reconnect, auth, subscribe again, sync by digests.
//
//   node sdk/js/test/socket.cjs HAZE_BINARY   (NODE_PATH: where playwright-core is)
const { assert, launch, list, nodeAndPage, openList, run } = require('./harness.cjs');
const { startProxy } = require('./ws-proxy.cjs');

const [haze] = process.argv.slice(2);
const TOKEN = 'haze_test_token';

async function main() {
  const { nodeUrl, pageUrl, serve } = await nodeAndPage(haze);
  await serve();
  const proxy = await startProxy(nodeUrl, TOKEN);
  const browser = await launch();
  const d = await openList(browser, 'a', `${pageUrl}/#node=${encodeURIComponent(proxy.url)}&token=${TOKEN}`);
  await d.page.waitForFunction(() => window.db.status.live);
  await list.add(d, 'milk');
  const report = await list.sync(d);
  assert(!report.error && report.checked === 3, `a sync of 3 keys over the socket (${JSON.stringify(report)})`);

  const types = proxy.seen.map((m) => m.type);
  assert(types[0] === 'auth' && proxy.seen[0].token === TOKEN, 'the first message is auth with the token');
  const subscribed = proxy.seen.filter((m) => m.type === 'subscribe').flatMap((m) => m.keys);
  assert(['items', 'visits'].every((k) => subscribed.includes(k)), `subscribed to ${subscribed.join(', ')}`);
  assert(subscribed.some((k) => k.startsWith('item:')), 'a key created by an edit is subscribed to');
  assert(types.includes('digests') && types.includes('merge'), 'sync went over the socket');

  // Another device's write, pushed: the page shows it with no sync asked.
  const other = await fetch(`${nodeUrl}/v1/keys/visits/counter`, { method: 'POST', body: JSON.stringify({ add: 10 }) });
  proxy.push('visits', (await other.json()).state);
  await d.page.waitForFunction(() => document.querySelector('#visits').textContent === '11', null, { timeout: 5000 });
  assert(true, 'a pushed update reaches the page');

  // The node drops the session as lagging; the page comes back by itself.
  const before = proxy.seen.length;
  proxy.lag();
  await d.page.waitForFunction(() => !window.db.status.live, null, { timeout: 5000 });
  await d.page.waitForFunction(() => window.db.status.live, null, { timeout: 10000 });
  const after = proxy.seen.slice(before).map((m) => m.type);
  assert(after[0] === 'auth' && after[1] === 'subscribe', `reconnected: ${after.join(', ')}`);
  await d.page.waitForFunction(() => window.db.status.state === 'synced');
  assert(proxy.seen.slice(before).some((m) => m.type === 'digests'), 'then synced by digests');
  assert(proxy.sessions() === 1, 'one session');
  await browser.close();
  proxy.close();
}

run(main);
