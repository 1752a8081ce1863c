import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recordingLogger, silentLogger, type LogEntry, type Logger, type ObjectKey } from '@sextant/api';
import type { PushRequest } from '../types.js';
import { PushController, type PushScope } from './controller.js';

interface Ctx {
  version: string;
  n: number;
}

function harness(debounceAfterMs: number, debounceMaxMs: number, scope: (changed: readonly ObjectKey[]) => PushScope = () => ({ full: true }), failAt = 3, log: Logger = silentLogger) {
  let builds = 0;
  const pushes: Array<{ ctx: Ctx; req: PushRequest; changed: string[] }> = [];
  let onPush: (() => void) | undefined;
  const pipeline = new PushController<Ctx>({
    build: (version) => {
      builds++;
      if (builds === failAt) throw new Error('boom');
      return { version, n: builds };
    },
    scope: (_prev, _next, changed) => scope(changed),
    push: (req, ctx) => {
      pushes.push({ ctx, req, changed: [...(req.configsUpdated ?? [])] });
      onPush?.();
    },
    debounceAfterMs,
    debounceMaxMs,
    log,
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
  assert.deepEqual(h.pushes[1]!.changed, ['a', 'b', 'c', 'd'].map((n) => `VirtualService/default/${n}`));
  assert.equal(h.pushes[1]!.req.full, true);
  assert.deepEqual(h.pushes[1]!.req.reason, ['VirtualService']);
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

test('changes that keep coming are still pushed by the max debounce, and the log says so', async () => {
  const entries: LogEntry[] = [];
  const h = harness(50, 120, undefined, undefined, recordingLogger(entries));
  h.pipeline.initialize();
  const pushed = h.nextPush();
  let i = 0;
  const started = Date.now();
  const churn = setInterval(() => h.pipeline.changed([key(`k${i++}`)]), 10);
  await pushed;
  clearInterval(churn);
  assert.ok(Date.now() - started < 1000, 'pushed despite continuous churn');
  const capped = entries.find((e) => e.msg === 'push debounce reached its maximum: changes kept coming');
  assert.ok(capped, 'logged');
  assert.deepEqual(capped.kinds, ['VirtualService']);
  assert.ok((capped.configs as number) >= 5);
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
  assert.deepEqual(h.pushes[1]!.changed, ['VirtualService/default/edited']);
  assert.deepEqual(h.pushes[1]!.req.reason, ['VirtualService'], 'pushed as what it is, not as a change to everything');
  assert.equal(h.pushes[0]!.req.configsUpdated, undefined, 'the first push concerns everything');
  h.pipeline.stop();
});

test('the push request names what the scope says: types, resources and proxies for a config change; clusters for endpoints', async () => {
  const routes = (n: string) => n === '80';
  const h = harness(5, 5000, (changed) =>
    changed[0]!.kind === 'EndpointSlice'
      ? { full: false, edsClusters: new Set(changed[0]!.name === 'none' ? [] : ['outbound|80||a.default.svc.cluster.local']) }
      : { full: true, types: new Set(['rds']), resources: new Map([['rds', routes]]), affects: () => false },
    0,
  );
  h.pipeline.initialize();
  let pushed = h.nextPush();
  h.pipeline.changed([key('a')]);
  await pushed;
  const vs = h.pushes[1]!.req;
  assert.deepEqual([...vs.types!], ['rds']);
  assert.equal(vs.resources!.get('rds'), routes);
  assert.ok(vs.affects);
  assert.ok(vs.start! > 0 && vs.start! <= Date.now());

  pushed = h.nextPush();
  h.pipeline.changed([{ kind: 'EndpointSlice', namespace: 'default', name: 'a-1' }]);
  await pushed;
  const eds = h.pushes[2]!.req;
  assert.equal(eds.full, false);
  assert.deepEqual([...eds.edsUpdates!], ['outbound|80||a.default.svc.cluster.local']);
  assert.equal(eds.types, undefined);

  // An endpoint change that moved no cluster is no push at all, but the context still advances.
  h.pipeline.changed([{ kind: 'EndpointSlice', namespace: 'default', name: 'none' }]);
  h.pipeline.flush();
  assert.equal(h.pushes.length, 3);
  assert.equal(h.pipeline.context!.n, 4);
  h.pipeline.stop();
});

test('endpoint changes push what endpointScopes says at the current context, with no build; a config change in the same batch carries them', async () => {
  let builds = 0;
  const pushes: Array<{ ctx: Ctx; req: PushRequest }> = [];
  const seen: Array<[string[], string[]]> = [];
  let onPush: (() => void) | undefined;
  const c = new PushController<Ctx>({
    build: (version) => ({ version, n: ++builds }),
    scope: () => ({ full: true }),
    endpointScopes: (_ctx, services, proxies) => {
      seen.push([[...services], [...proxies]]);
      const out: PushScope[] = [{ full: false, edsClusters: new Set([...services].map((s) => `outbound|80||${s}`)) }];
      if (proxies.size) out.push({ full: true, affects: () => true });
      return out;
    },
    push: (req, ctx) => {
      pushes.push({ ctx, req });
      onPush?.();
    },
    debounceAfterMs: 5,
    debounceMaxMs: 5000,
    log: silentLogger,
  });
  const next = () => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no push within 5s')), 5000);
    onPush = () => (clearTimeout(t), resolve());
  });
  c.endpointsChanged(['ignored-before-initialize']);
  const first = c.initialize();
  assert.equal(builds, 1);
  let pushed = next();
  c.endpointsChanged(['a'], []);
  c.endpointsChanged(['b'], ['10.0.0.1']);
  await pushed;
  assert.equal(builds, 1, 'no context built for endpoint changes');
  assert.equal(c.context, first);
  assert.deepEqual(seen, [[['a', 'b'], ['10.0.0.1']]]);
  const [eds, proxy] = pushes.slice(1);
  assert.equal(eds!.req.full, false);
  assert.deepEqual([...eds!.req.edsUpdates!], ['outbound|80||a', 'outbound|80||b']);
  assert.deepEqual(eds!.req.reason, ['endpoints']);
  assert.ok(eds!.req.version.startsWith(`${first.version}/eds`));
  assert.equal(proxy!.req.full, true);
  assert.equal(proxy!.req.version, first.version);
  // Nothing recorded: nothing pushed.
  c.endpointsChanged([], []);
  c.flush();
  assert.equal(pushes.length, 3);
  // Endpoints and config in one batch: one rebuild, one full push.
  pushed = next();
  c.endpointsChanged(['a']);
  c.changed([key('x')]);
  await pushed;
  assert.equal(builds, 2);
  assert.equal(pushes.length, 4);
  assert.equal(pushes[3]!.req.full, true);
  assert.equal(seen.length, 1);
  c.stop();
});

test('endpoint changes batched with a narrow config change are still pushed (the rebuild does not see them)', async () => {
  const pushes: PushRequest[] = [];
  let failBuild = false;
  const c = new PushController<Ctx>({
    build: (version) => {
      if (failBuild) throw new Error('boom');
      return { version, n: 0 };
    },
    // A VirtualService edit: routes only.
    scope: () => ({ full: true, types: new Set(['rds']) }),
    endpointScopes: (_ctx, services) => [{ full: false, edsClusters: new Set([...services].map((s) => `outbound|80||${s}`)) }],
    push: (req) => pushes.push(req),
    debounceAfterMs: 60_000,
    debounceMaxMs: 60_000,
    log: silentLogger,
  });
  c.initialize();
  c.endpointsChanged(['a']);
  c.changed([key('x')]);
  c.flush();
  assert.deepEqual(
    pushes.slice(1).map((r) => [r.full, [...(r.types ?? [])], [...(r.edsUpdates ?? [])]]),
    [
      [true, ['rds'], []],
      [false, [], ['outbound|80||a']],
    ],
  );
  // A build that fails keeps the old context, and the endpoint changes still go out.
  failBuild = true;
  c.endpointsChanged(['b']);
  c.changed([key('y')]);
  c.flush();
  assert.deepEqual(pushes.slice(3).map((r) => [r.full, [...(r.edsUpdates ?? [])]]), [[false, ['outbound|80||b']]]);
  c.stop();
});

test('an endpoint change after a quiet period is pushed on the next turn; those close behind it wait for the debounce; edsDebounce "true" always waits', async () => {
  const run = (edsDebounce: 'leading' | 'true' | undefined) => {
    const pushes: PushRequest[] = [];
    const c = new PushController<Ctx>({
      build: (version) => ({ version, n: 0 }),
      scope: () => ({ full: true }),
      // A service named "none" has no cluster (a change that pushes nothing).
      endpointScopes: (_ctx, services) => [{ full: false, edsClusters: new Set([...services].filter((s) => s !== 'none').map((s) => `outbound|80||${s}`)) }],
      push: (req) => pushes.push(req),
      // Long enough that only the leading edge (or an explicit flush) can push within the test.
      debounceAfterMs: 60_000,
      debounceMaxMs: 60_000,
      ...(edsDebounce ? { edsDebounce } : {}),
      log: silentLogger,
    });
    c.initialize();
    return { c, eds: () => pushes.slice(1).map((r) => [...(r.edsUpdates ?? [])]), pushes };
  };
  const turn = () => new Promise<void>((r) => setImmediate(r));

  const lead = run(undefined);
  lead.c.endpointsChanged(['a']);
  lead.c.endpointsChanged(['b']); // same turn: goes with it
  assert.deepEqual(lead.eds(), [], 'pushed on the next turn, not synchronously');
  await turn();
  assert.deepEqual(lead.eds(), [['outbound|80||a', 'outbound|80||b']]);
  // Right behind that push: debounced.
  lead.c.endpointsChanged(['c']);
  await turn();
  await turn();
  assert.deepEqual(lead.eds(), [['outbound|80||a', 'outbound|80||b']]);
  lead.c.flush();
  assert.deepEqual(lead.eds(), [['outbound|80||a', 'outbound|80||b'], ['outbound|80||c']]);
  lead.c.stop();

  // A change that pushed nothing does not hold back the next one.
  const quiet = run('leading');
  quiet.c.endpointsChanged(['none']);
  await turn();
  assert.deepEqual(quiet.eds(), []);
  quiet.c.endpointsChanged(['a']);
  await turn();
  assert.deepEqual(quiet.eds(), [['outbound|80||a']]);
  quiet.c.stop();

  // A config change before the leading push: one batch, after the config's debounce.
  const mixed = run('leading');
  mixed.c.endpointsChanged(['a']);
  mixed.c.changed([key('x')]);
  await turn();
  assert.equal(mixed.pushes.length, 1, 'the config change keeps its quiet period');
  mixed.c.flush();
  assert.deepEqual(mixed.pushes.slice(1).map((r) => r.full), [true]);
  mixed.c.stop();

  const istio = run('true');
  istio.c.endpointsChanged(['a']);
  await turn();
  await turn();
  assert.deepEqual(istio.eds(), [], 'debounced like config');
  istio.c.flush();
  assert.deepEqual(istio.eds(), [['outbound|80||a']]);
  istio.c.stop();
});
