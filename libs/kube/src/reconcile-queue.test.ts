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
  q.start();
  q.add('x');
  // Two immediate retries, then a 30-60 s backoff that stop() cancels.
  for (let i = 0; i < 100 && calls < 3; i++) await new Promise((r) => setImmediate(r));
  assert.equal(calls, 3);
  await q.stop();
  await q.idle();
  assert.equal(q.running, false);
});
