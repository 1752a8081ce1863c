import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReconcileQueue } from './reconcile-queue.js';

test('keys are reconciled once each while active; a failing key is retried after a backoff', async () => {
  const seen: string[] = [];
  const failures: Array<[string, number]> = [];
  let failFirst = true;
  const q = new ReconcileQueue({
    reconcile: async (key) => {
      seen.push(key);
      if (key === 'b' && failFirst) {
        failFirst = false;
        throw new Error('conflict');
      }
    },
    onFailure: (key, _err, retryInMs) => failures.push([key, retryInMs]),
    retryBaseMs: 5,
  });
  q.add('a', 'b', 'a'); // not active yet: nothing runs
  assert.deepEqual(seen, []);
  q.start();
  await q.idle();
  assert.deepEqual(seen, ['a', 'b', 'b']);
  assert.equal(failures.length, 1);
  assert.equal(failures[0]![0], 'b');
  assert.ok(failures[0]![1] >= 2 && failures[0]![1] <= 5, `backoff ${failures[0]![1]} ms within [base/2, base]`);
  await q.stop();
});

test('retryImmediately skips the backoff; stop drops pending retries and idle() resolves', async () => {
  let calls = 0;
  const q = new ReconcileQueue({
    reconcile: async () => {
      calls++;
      throw new Error('still failing');
    },
    onFailure: () => {},
    retryBaseMs: 60_000,
    retryImmediately: () => calls < 3,
  });
  try {
    q.start();
    q.add('x');
    // Two immediate retries (0 ms timers: on a loaded machine they can take longer than many event-loop turns),
    // then a 30-60 s backoff that stop() cancels.
    const deadline = Date.now() + 5_000;
    while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls, 3, 'two immediate retries, then the backoff');
  } finally {
    // Also when an assertion fails: a queue left running retries forever and keeps the test process alive.
    await q.stop();
  }
  await q.idle();
  assert.equal(q.running, false);
});
