// Compiled by `npx tsc --noEmit -p .` only: uses the declared API as the README shows it.
import Haze, { HazeError, type Status } from './index.js';

async function example(): Promise<void> {
  const db = await Haze.open({ url: 'http://127.0.0.1:7780', token: 'T', name: 'list' });
  const visits: number = await db.counter('visits').incr();
  await db.set('list').add('milk', 2);
  await db.map('todo:1').set('done', true);
  await db.map('todo:1').map('meta').set('by', 'ana');
  const done = db.map('todo:1').get('done');
  await db.register('title').set('Groceries');
  await db.flag('archived').enable();
  const off = db.subscribe('list', (view) => console.log(view, done, visits));
  const offTodos = db.subscribePrefix('todo:', (key: string, view) => console.log(key, view));
  offTodos();
  db.onStatus((s: Status) => console.log(s.state, s.live));
  try {
    const report = await db.sync();
    console.log(report.sent);
  } catch (e) {
    if (e instanceof HazeError && e.code === 'forbidden') console.log(e.status);
  }
  off();
  await db.close();
}
void example;
