import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger, type ObjectKey } from '@sextant/api';
import { PushPipeline } from './pipeline.js';

interface Ctx {
  version: string;
  n: number;
}

function harness(debounceAfterMs: number, debounceMaxMs: number) {
  let builds = 0;
  const pushes: Array<{ ctx: Ctx; changed: ObjectKey[] }> = [];
  let onPush: (() => void) | undefined;
  const pipeline = new PushPipeline<Ctx, string>({
    build: (version) => {
      builds++;
      if (builds === 3) throw new Error('boom');
      return { version, n: builds };
    },
    scope: () => 'full',
    push: (ctx, _scope, changed) => {
      pushes.push({ ctx, changed });
      onPush?.();
    },
    debounceAfterMs,
    debounceMaxMs,
    log: silentLogger,
  });
  const nextPush = () => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no push within 5s')), 5000);
    onPush = () => (clearTimeout(t), resolve());
  });
  return { pipeline, pushes, nextPush, builds: () => builds };
}

const key = (name: string): ObjectKey => ({ kind: 'VirtualService', namespace: 'default', name });

test('a burst of changes becomes one rebuild and one push', async () => {
  const h = harness(20, 5000);
  h.pipeline.initialize();
  assert.equal(h.pushes.length, 1);
  const pushed = h.nextPush();
  for (const n of ['a', 'b', 'c', 'd']) h.pipeline.changed([key(n)]);
  await pushed;
  assert.equal(h.pushes.length, 2);
  assert.deepEqual(h.pushes[1]!.changed.map((k) => k.name), ['a', 'b', 'c', 'd']);
  assert.equal(h.builds(), 2);
  h.pipeline.stop();
});

test('a build that throws keeps the previous context serving', async () => {
  const h = harness(5, 5000);
  h.pipeline.initialize();
  let pushed = h.nextPush();
  h.pipeline.changed([key('a')]);
  await pushed;
  const good = h.pipeline.context;
  h.pipeline.changed([key('b')]); // third build throws
  h.pipeline.flush();
  assert.equal(h.pipeline.context, good);
  pushed = h.nextPush();
  h.pipeline.changed([key('c')]);
  await pushed;
  assert.notEqual(h.pipeline.context, good);
  h.pipeline.stop();
});

test('changes that keep coming are still pushed by the max debounce', async () => {
  const h = harness(50, 120);
  h.pipeline.initialize();
  const pushed = h.nextPush();
  let i = 0;
  const started = Date.now();
  const churn = setInterval(() => h.pipeline.changed([key(`k${i++}`)]), 10);
  await pushed;
  clearInterval(churn);
  assert.ok(Date.now() - started < 1000, 'pushed despite continuous churn');
  h.pipeline.stop();
});

test('changes recorded while the sources sync are part of the first build, not of the first push after it', async () => {
  const h = harness(20, 5000);
  for (let i = 0; i < 100; i++) h.pipeline.changed([key(`initial-${i}`)]);
  assert.equal(h.pushes.length, 0, 'nothing is pushed before initialize');
  h.pipeline.initialize();
  assert.equal(h.pushes.length, 1);
  const pushed = h.nextPush();
  h.pipeline.changed([key('edited')]);
  await pushed;
  assert.deepEqual(h.pushes[1]!.changed.map((k) => k.name), ['edited']);
  h.pipeline.stop();
});
