import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyString } from '@sextant/api';
import { ConfigStore, type StoreChange } from './store.js';
import type { ConfigObject } from './types.js';

const vs = (name: string, ns = 'default', hosts = ['a']): ConfigObject => ({
  kind: 'VirtualService',
  group: 'networking.istio.io',
  version: 'v1',
  metadata: { name, namespace: ns },
  body: { spec: { hosts } },
});
const svc = (name: string, ns = 'default', port = 80): ConfigObject => ({
  kind: 'Service',
  group: '',
  version: 'v1',
  metadata: { name, namespace: ns },
  body: { spec: { ports: [{ port }] } },
});

test('applies adds, updates and deletes with one revision per batch and sorted changed keys', () => {
  const store = new ConfigStore();
  const changes: StoreChange[] = [];
  store.onChange((c) => changes.push(c));
  const c1 = store.apply({ source: 'folder', events: [{ type: 'add', object: vs('b') }, { type: 'add', object: svc('a') }, { type: 'add', object: vs('a', 'x') }] });
  assert.equal(store.revision, 1);
  assert.deepEqual(c1?.changed.map(keyString), ['Service/default/a', 'VirtualService/default/b', 'VirtualService/x/a']);
  assert.deepEqual([...c1!.kinds].sort(), ['Service', 'VirtualService']);
  assert.deepEqual(store.list('VirtualService').map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['default/b', 'x/a']);
  assert.deepEqual(store.list('VirtualService', 'x').map((o) => o.metadata.name), ['a']);
  assert.deepEqual(store.get('Service', 'default', 'a'), svc('a'));
  assert.equal(store.get('Service', 'default', 'zz'), undefined);
  assert.deepEqual(store.kinds(), ['Service', 'VirtualService']);
  assert.equal(store.size(), 3);

  const c2 = store.apply({ source: 'folder', events: [{ type: 'update', object: vs('b', 'default', ['c']), old: vs('b') }, { type: 'delete', object: svc('a') }] });
  assert.equal(c2?.revision, 2);
  assert.deepEqual(c2?.changed.map(keyString), ['Service/default/a', 'VirtualService/default/b']);
  assert.equal(store.get('Service', 'default', 'a'), undefined);
  assert.deepEqual((store.get('VirtualService', 'default', 'b')?.body as any).spec.hosts, ['c']);
  assert.deepEqual(store.kinds(), ['VirtualService']);
  assert.deepEqual(changes.map((c) => c.revision), [1, 2]);
});

test('a batch that changes nothing keeps the revision and notifies nobody', () => {
  const store = new ConfigStore();
  let calls = 0;
  store.onChange(() => calls++);
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('a') }] });
  assert.equal(store.apply({ source: 'folder', events: [{ type: 'update', object: vs('a'), old: vs('a') }] }), undefined);
  assert.equal(store.apply({ source: 'folder', events: [{ type: 'delete', object: vs('missing') }] }), undefined);
  assert.equal(store.apply({ source: 'folder', events: [] }), undefined);
  assert.equal(store.revision, 1);
  assert.equal(calls, 1);
});

test('a batch is atomic: add then delete of the same key in one batch is no change', () => {
  const store = new ConfigStore();
  const c = store.apply({ source: 'k8s', events: [{ type: 'add', object: vs('a') }, { type: 'delete', object: vs('a') }] });
  assert.equal(c, undefined);
  assert.equal(store.size(), 0);
});

test('snapshots are immutable views of one revision', () => {
  const store = new ConfigStore();
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('a') }] });
  const snap = store.snapshot();
  const listed = snap.list('VirtualService');
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('b') }, { type: 'delete', object: vs('a') }] });
  assert.equal(snap.revision, 1);
  assert.deepEqual(snap.list('VirtualService').map((o) => o.metadata.name), ['a']);
  assert.equal(listed.length, 1);
  assert.deepEqual(store.list('VirtualService').map((o) => o.metadata.name), ['b']);
  assert.equal(store.snapshot().revision, 2);
});

test('two sources with the same key: the higher-priority source is visible, the other shows when it goes', () => {
  const store = new ConfigStore({ sourcePriority: ['kubernetes', 'folder'] });
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('a', 'default', ['from-folder']) }] });
  const c = store.apply({ source: 'kubernetes', events: [{ type: 'add', object: vs('a', 'default', ['from-k8s']) }] });
  assert.deepEqual(c?.changed.map(keyString), ['VirtualService/default/a']);
  assert.deepEqual((store.get('VirtualService', 'default', 'a')?.body as any).spec.hosts, ['from-k8s']);
  // A change in the shadowed source is no visible change.
  assert.equal(store.apply({ source: 'folder', events: [{ type: 'update', object: vs('a', 'default', ['folder-2']), old: vs('a') }] }), undefined);
  store.apply({ source: 'kubernetes', events: [{ type: 'delete', object: vs('a') }] });
  assert.deepEqual((store.get('VirtualService', 'default', 'a')?.body as any).spec.hosts, ['folder-2']);
  const gone = store.removeSource('folder');
  assert.deepEqual(gone?.changed.map(keyString), ['VirtualService/default/a']);
  assert.equal(store.size(), 0);
});

test('a throwing listener does not stop the others or the store', () => {
  const store = new ConfigStore();
  const seen: number[] = [];
  store.onChange(() => {
    throw new Error('boom');
  });
  const off = store.onChange((c) => seen.push(c.revision));
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('a') }] });
  off();
  store.apply({ source: 'folder', events: [{ type: 'add', object: vs('b') }] });
  assert.deepEqual(seen, [1]);
  assert.equal(store.revision, 2);
});

test('cluster-scoped objects are keyed without a namespace', () => {
  const store = new ConfigStore();
  const node: ConfigObject = { kind: 'Node', group: '', version: 'v1', metadata: { name: 'n1' }, body: {} };
  const c = store.apply({ source: 'k8s', events: [{ type: 'add', object: node }] });
  assert.deepEqual(c?.changed, [{ kind: 'Node', namespace: undefined, name: 'n1' }]);
  assert.equal(store.get('Node', undefined, 'n1'), node);
});
