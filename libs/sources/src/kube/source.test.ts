import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { recordingLogger, silentLogger } from '@sextant/api';
import type { ConfigBatch, ConfigEvent } from '../types.js';
import type { KubeKind } from './kinds.js';
import { createKubeSource, envelopeValidate, type KubeSource, type ValidateFn } from './source.js';
import { TestApiServer } from '@sextant/testing/kube-apiserver';

const CM = '/api/v1/configmaps';
const cmKind: KubeKind = { kind: 'ConfigMap', group: '', versions: ['v1'], plural: 'configmaps', namespaced: true, crd: false };
const fast = { backoffInitialMs: 20, backoffMaxMs: 200, stallTimeoutMs: 400 };

function cm(name: string, data: Record<string, string>, namespace = 'default') {
  return { metadata: { name, namespace }, data };
}

/** Collects batches; waitFor resolves when the predicate holds over every event seen, or rejects at the deadline. */
function collector(src: KubeSource) {
  const events: ConfigEvent[] = [];
  const batches: ConfigBatch[] = [];
  let check: (() => void) | undefined;
  src.onBatch((b) => {
    batches.push(b);
    events.push(...b.events);
    check?.();
  });
  return {
    events,
    batches,
    waitFor(pred: (evs: ConfigEvent[]) => boolean, what: string, ms = 5_000): Promise<void> {
      if (pred(events)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          check = undefined;
          reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(events.map((e) => [e.type, e.object.metadata.name]))}`));
        }, ms);
        check = () => {
          if (pred(events)) {
            clearTimeout(t);
            check = undefined;
            resolve();
          }
        };
      });
    },
  };
}

/** Resolves once the API server has `n` watches open (the informer's watch is established after start() resolves). */
function watchesOpen(api: TestApiServer, n = 1): Promise<void> {
  if (api.openWatches() >= n) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out waiting for a watch to open')), 5_000);
    const on = () => {
      if (api.openWatches() >= n) {
        clearTimeout(t);
        api.events.off('watch', on);
        resolve();
      }
    };
    api.events.on('watch', on);
  });
}

const has = (type: string, name: string) => (evs: ConfigEvent[]) => evs.some((e) => e.type === type && e.object.metadata.name === name);

describe('kubernetes source (supervisor against a test API server)', () => {
  let api: TestApiServer;
  before(async () => {
    api = new TestApiServer();
    await api.listen();
  });
  after(async () => api.close());

  test('syncs, then streams add/update/delete as batches', async () => {
    api.upsert(CM, cm('a', { k: '1' }));
    api.upsert(CM, cm('b', { k: '1' }));
    const src = createKubeSource({ client: api.client(), log: silentLogger, kinds: [cmKind], timing: fast });
    const c = collector(src);
    await src.start();
    assert.equal(src.hasSynced(), true);
    assert.equal(c.batches.length, 1, 'the initial state is one batch');
    assert.deepEqual(c.events.map((e) => `${e.type}:${e.object.metadata.name}`).sort(), ['add:a', 'add:b']);
    const a = c.events.find((e) => e.object.metadata.name === 'a')!.object;
    assert.equal(a.kind, 'ConfigMap');
    assert.equal(a.version, 'v1');
    assert.deepEqual(a.body, { data: { k: '1' } });

    api.upsert(CM, cm('a', { k: '2' }));
    api.upsert(CM, cm('c', { k: '1' }));
    api.remove(CM, 'default', 'b');
    await c.waitFor((evs) => has('update', 'a')(evs) && has('add', 'c')(evs) && has('delete', 'b')(evs), 'update a, add c, delete b');
    const upd = c.events.find((e) => e.type === 'update')!;
    assert.ok(upd.type === 'update');
    assert.deepEqual(upd.object.body, { data: { k: '2' } });
    assert.deepEqual(upd.old.body, { data: { k: '1' } });
    await src.stop();
    api.remove(CM, 'default', 'a');
    api.remove(CM, 'default', 'c');
  });

  test('a dropped watch resumes from its resourceVersion: no relist, no spurious deletes', async () => {
    api.upsert(CM, cm('keep', { k: '1' }));
    const src = createKubeSource({ client: api.client(), log: silentLogger, kinds: [cmKind], timing: fast });
    const c = collector(src);
    const listsBefore = api.counts.lists;
    await src.start();
    await watchesOpen(api);
    api.dropWatches();
    api.upsert(CM, cm('during-drop', { k: '1' }));
    await c.waitFor(has('add', 'during-drop'), 'the object written while disconnected');
    assert.equal(api.counts.lists - listsBefore, 1, 'resumed without a relist');
    assert.ok(!c.events.some((e) => e.type === 'delete'), 'no deletes');
    assert.ok(src.stats().restartsTotal >= 1, 'the supervisor counted the restart');
    await src.stop();
    api.remove(CM, 'default', 'keep');
    api.remove(CM, 'default', 'during-drop');
  });

  test('410 Gone relists and emits only the real differences', async () => {
    for (const n of ['x1', 'x2', 'x3']) api.upsert(CM, cm(n, { k: '1' }));
    const src = createKubeSource({ client: api.client(), log: silentLogger, kinds: [cmKind], timing: fast });
    const c = collector(src);
    await src.start();
    const initial = c.events.length;
    await watchesOpen(api);
    api.compact();
    api.dropWatches();
    api.upsert(CM, cm('x2', { k: '2' }));
    api.remove(CM, 'default', 'x3');
    api.upsert(CM, cm('x4', { k: '1' }));
    await c.waitFor((evs) => has('update', 'x2')(evs) && has('delete', 'x3')(evs) && has('add', 'x4')(evs), 'the relist diff');
    const after = c.events.slice(initial).map((e) => `${e.type}:${e.object.metadata.name}`).sort();
    assert.deepEqual(after, ['add:x4', 'delete:x3', 'update:x2']);
    const st = src.informers()[0]!;
    assert.equal(st.relistsOnGone, 1);
    assert.equal(st.lists, 2);
    // The source's state equals a fresh list.
    const fresh = ['x1', 'x2', 'x4'];
    assert.deepEqual(src.snapshot().map((o) => o.metadata.name).sort(), fresh);
    await src.stop();
    for (const n of fresh) api.remove(CM, 'default', n);
  });

  test('the watchdog restarts a silently stalled watch', async () => {
    const src = createKubeSource({ client: api.client(), log: silentLogger, kinds: [cmKind], timing: fast });
    const c = collector(src);
    await src.start();
    await watchesOpen(api);
    const watchesBefore = api.counts.watches;
    api.stallNext = 1;
    api.dropWatches();
    api.upsert(CM, cm('after-stall', { k: '1' }));
    await c.waitFor(has('add', 'after-stall'), 'the event held back by the stalled watch');
    assert.ok(src.informers()[0]!.stalls >= 1, 'a stall was detected');
    assert.ok(api.counts.watches >= watchesBefore + 2, 'the stalled watch was replaced by a new one');
    await src.stop();
    api.remove(CM, 'default', 'after-stall');
  });

  test('failing lists are retried with backoff until the informer syncs', async () => {
    api.upsert(CM, cm('eventually', { k: '1' }));
    api.failLists = 3;
    const entries: import('@sextant/api').LogEntry[] = [];
    const src = createKubeSource({ client: api.client(), log: recordingLogger(entries), kinds: [cmKind], timing: fast });
    const c = collector(src);
    await src.start();
    assert.ok(has('add', 'eventually')(c.events));
    assert.equal(src.informers()[0]!.restarts, 3);
    assert.ok(entries.some((e) => e.level === 'warn' && String(e.err).includes('injected list failure')));
    await src.stop();
    api.remove(CM, 'default', 'eventually');
  });

  test('an invalid object is rejected with kind/ns/name/field/reason and its last valid version keeps serving', async () => {
    const validate: ValidateFn = (raw) => {
      const r = envelopeValidate(raw);
      const data = (raw as { data?: Record<string, string> }).data ?? {};
      if (r.ok && data.port !== undefined && !/^\d+$/.test(data.port)) {
        return { ok: false, issues: [{ kind: r.object.kind, namespace: r.object.metadata.namespace, name: r.object.metadata.name, field: 'data.port', reason: 'must be a number' }] };
      }
      return r;
    };
    api.upsert(CM, cm('v', { port: '80' }));
    api.upsert(CM, cm('bad-from-start', { port: 'x' }));
    const entries: import('@sextant/api').LogEntry[] = [];
    const src = createKubeSource({ client: api.client(), log: recordingLogger(entries), kinds: [cmKind], validate, timing: fast });
    const c = collector(src);
    await src.start();
    assert.ok(has('add', 'v')(c.events));
    assert.ok(!has('add', 'bad-from-start')(c.events), 'never served');
    api.upsert(CM, cm('v', { port: 'eighty' }));
    api.upsert(CM, cm('marker', { port: '1' }));
    await c.waitFor(has('add', 'marker'), 'the marker after the bad update');
    assert.ok(!has('update', 'v')(c.events), 'the bad update produced no event');
    assert.deepEqual(src.snapshot().find((o) => o.metadata.name === 'v')?.body, { data: { port: '80' } }, 'the last valid version keeps serving');
    const rej = src.rejected();
    assert.deepEqual(rej.map((r) => `${r.kind}/${r.namespace}/${r.name} ${r.field}: ${r.reason}`).sort(), [
      'ConfigMap/default/bad-from-start data.port: must be a number',
      'ConfigMap/default/v data.port: must be a number',
    ]);
    assert.ok(entries.some((e) => e.level === 'warn' && e.kind === 'ConfigMap' && e.name === 'v' && e.field === 'data.port' && e.reason === 'must be a number'));
    assert.equal(src.stats().rejectedTotal, 2);
    api.upsert(CM, cm('v', { port: '81' }));
    await c.waitFor(has('update', 'v'), 'the fixed version');
    const upd = c.events.find((e) => e.type === 'update' && e.object.metadata.name === 'v')!;
    assert.ok(upd.type === 'update');
    assert.deepEqual(upd.old.body, { data: { port: '80' } });
    assert.equal(src.rejected().length, 1);
    // Deleted: no longer reported as rejected.
    api.remove(CM, 'default', 'bad-from-start');
    api.upsert(CM, cm('marker-2', { port: '2' }));
    await c.waitFor(has('add', 'marker-2'), 'the marker after the delete');
    assert.deepEqual(src.rejected(), []);
    await src.stop();
    for (const n of ['v', 'marker', 'marker-2']) api.remove(CM, 'default', n);
  });

  test('a CRD kind starts when its CRD is established, at the preferred served version, and stops when it is deleted', async () => {
    const widget: KubeKind = { kind: 'Widget', group: 'example.io', versions: ['v1', 'v1beta1'], plural: 'widgets', namespaced: true, crd: true };
    const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    const src = createKubeSource({ client: api.client(), log: silentLogger, kinds: [cmKind, widget], validate: envelopeValidate, timing: fast });
    const c = collector(src);
    await src.start();
    assert.deepEqual(src.informers().map((i) => i.name).sort(), ['ConfigMap/v1', 'CustomResourceDefinition.apiextensions.k8s.io/v1']);
    api.upsert('/apis/example.io/v1beta1/widgets', { apiVersion: 'example.io/v1beta1', kind: 'Widget', metadata: { name: 'w1', namespace: 'default' }, spec: { size: 1 } });
    const crd = {
      metadata: { name: 'widgets.example.io' },
      spec: { versions: [{ name: 'v1alpha1', served: true }, { name: 'v1beta1', served: true }, { name: 'v1', served: false }] },
      status: { conditions: [{ type: 'Established', status: 'True' }] },
    };
    api.upsert(CRDS, crd);
    await c.waitFor(has('add', 'w1'), 'the widget once its CRD appears');
    assert.ok(src.informers().some((i) => i.name === 'Widget.example.io/v1beta1'));
    const w = c.events.find((e) => e.object.metadata.name === 'w1')!.object;
    assert.equal(w.version, 'v1beta1');
    api.remove(CRDS, undefined, 'widgets.example.io');
    await c.waitFor(has('delete', 'w1'), 'the widget deleted with its CRD');
    assert.ok(!src.informers().some((i) => i.name.startsWith('Widget')));
    await src.stop();
  });
});
