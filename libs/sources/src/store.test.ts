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

test('a change copies only its namespace: snapshots before it keep every namespace as it was, lists are per namespace and sorted, emptied namespaces go', () => {
  const store = new ConfigStore();
  store.apply({ source: 'k8s', events: [{ type: 'add', object: svc('b', 'ns1') }, { type: 'add', object: svc('a', 'ns1') }, { type: 'add', object: svc('z', 'ns2') }, { type: 'add', object: svc('y', 'ns0') }] });
  const before = store.snapshot();
  const ns2Before = before.list('Service', 'ns2');
  store.apply({ source: 'k8s', events: [{ type: 'update', object: svc('a', 'ns1', 8080), old: svc('a', 'ns1') }, { type: 'add', object: svc('c', 'ns1') }] });
  const after = store.snapshot();
  // The earlier view: unchanged in the namespace the change touched, and in the others.
  assert.deepEqual(before.list('Service', 'ns1').map((o) => `${o.metadata.name}:${(o.body as { spec: { ports: { port: number }[] } }).spec.ports[0]!.port}`), ['a:80', 'b:80']);
  assert.equal(before.size(), 4);
  // The new one: the namespace's objects sorted by name, every namespace in order, others the same objects.
  assert.deepEqual(after.list('Service', 'ns1').map((o) => o.metadata.name), ['a', 'b', 'c']);
  assert.deepEqual(after.list('Service').map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['ns0/y', 'ns1/a', 'ns1/b', 'ns1/c', 'ns2/z']);
  assert.equal(after.get('Service', 'ns2', 'z'), before.get('Service', 'ns2', 'z'));
  assert.deepEqual(after.list('Service', 'ns2'), ns2Before);
  assert.deepEqual(after.list('Service', 'nowhere'), []);
  assert.equal(after.size(), 5);
  // A namespace emptied is gone from the lists, and a kind emptied from kinds().
  store.apply({ source: 'k8s', events: [{ type: 'delete', object: svc('z', 'ns2') }] });
  assert.deepEqual(store.list('Service', 'ns2'), []);
  assert.equal(store.get('Service', 'ns2', 'z'), undefined);
  assert.deepEqual(store.kinds(), ['Service']);
  store.apply({ source: 'k8s', events: ['a', 'b', 'c'].map((n) => ({ type: 'delete' as const, object: svc(n, 'ns1') })).concat([{ type: 'delete', object: svc('y', 'ns0') }]) });
  assert.deepEqual(store.kinds(), []);
  assert.equal(store.size(), 0);
  assert.equal(before.size(), 4);
});

test('namespace "" is no namespace, as in object keys: the later of the two in a batch is the one object', () => {
  const store = new ConfigStore();
  const scoped: ConfigObject = { kind: 'Thing', group: 'x', version: 'v1', metadata: { name: 'n' }, body: { a: 1 } };
  const blank: ConfigObject = { kind: 'Thing', group: 'x', version: 'v1', metadata: { name: 'n', namespace: '' }, body: { a: 2 } };
  store.apply({ source: 'k8s', events: [{ type: 'add', object: scoped }, { type: 'add', object: blank }] });
  assert.equal(store.get('Thing', undefined, 'n'), blank);
  assert.equal(store.get('Thing', '', 'n'), blank);
  assert.deepEqual(store.list('Thing'), [blank]);
  assert.equal(store.size(), 1);
});
