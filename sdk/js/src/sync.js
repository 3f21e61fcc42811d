// Drives the core's sync state machine over a transport: every message of a step is sent at
// once, and each answer is handed back as it arrives, until the core reports the sync done.

import { HazeError, call } from './errors.js';

// send(message) resolves with the answer's JSON text; after(): persist and notify, called
// after every step (merged states are saved by the core as they come).
export async function runSync(replica, send, after) {
  let step = JSON.parse(call(() => replica.syncStart(Date.now())));
  const inFlight = new Map();
  for (;;) {
    await after();
    if (step.done) return step.done;
    for (const m of step.send) {
      const answered = send(m).then((answer) => [m.id, answer]);
      answered.catch(() => {}); // handled by the race, or dropped with the sync
      inFlight.set(m.id, answered);
    }
    if (!inFlight.size) throw new HazeError('protocol', 'the sync waits for no answer');
    const [id, answer] = await Promise.race(inFlight.values());
    inFlight.delete(id);
    step = JSON.parse(call(() => replica.syncReceive(id, answer)));
  }
}
