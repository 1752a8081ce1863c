/**
 * A proxy's first CDS over Delta when its output is a LayeredMap (the class's
 * outbound clusters, then its own): sent as its own message head followed by
 * the first layer's resources, encoded once and shared by every stream. The
 * client must get one well-formed response with exactly the merge's
 * resources; streams whose first layers hold the same resources must be sent
 * the same shared bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TypeUrl, type EncodedResource } from '@sextant/envoy';
import { DeltaClient } from '@sextant/testing/xds-client';
import { edsCluster, startHarness, type Harness } from '@sextant/testing/xds-harness';
import { LayeredMap } from './cache/layered-map.js';
import { enablePreFramedWrites, isPreFramed } from './frames.js';
import { FrameCache } from './server/shared-frames.js';
import type { XdsProxy } from './types.js';

const outbound = new Map(Array.from({ length: 300 }, (_, i) => edsCluster(`outbound|80||svc-${i}.ns.svc.cluster.local`, { connectTimeout: `${1 + (i % 5)}s` })).map((r) => [r.name, r] as [string, EncodedResource]));
/** The proxy's own layer: its inbound cluster, and a name the first layer has (the first layer's resource wins). */
const own = (id: string) =>
  new Map([edsCluster(`inbound|8080||${id}`), edsCluster('outbound|80||svc-0.ns.svc.cluster.local', { connectTimeout: '99s' })].map((r) => [r.name, r] as [string, EncodedResource]));

describe('layered first responses', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      extraGenerators: {
        [TypeUrl.Cluster]: { generate: (proxy: XdsProxy) => new LayeredMap([outbound, own(proxy.id)], [false, false]) },
      },
    });
  });
  after(() => h.stop());

  test('each Delta client gets every resource of its merge, once, in one response', async () => {
    for (const id of ['p-a', 'p-b']) {
      const c = new DeltaClient(h.address, { node: { id } });
      try {
        c.request(TypeUrl.Cluster);
        const r = await c.next();
        const want = new LayeredMap([outbound, own(id)], [false, false]);
        assert.equal(r.typeUrl, TypeUrl.Cluster);
        assert.ok(r.nonce !== '');
        assert.equal(r.resources.length, want.size);
        assert.deepEqual(
          r.resources.map((x) => x.name),
          [...want.keys()],
        );
        for (const x of r.resources) {
          const w = want.get(x.name)!;
          assert.equal(x.version, w.version, x.name);
          assert.deepEqual(Buffer.from(x.resource!.value), Buffer.from(w.any.subarray(w.any.length - x.resource!.value.length)), x.name);
        }
        assert.equal(r.resources.find((x) => x.name === 'outbound|80||svc-0.ns.svc.cluster.local')!.version, outbound.get('outbound|80||svc-0.ns.svc.cluster.local')!.version, 'the first layer wins');
        c.ack(r);
      } finally {
        c.close();
      }
    }
  });

  test('after a push, each stream is sent only what a changed unit changed, and told what its own unit lost', async () => {
    // Per-proxy own units kept across pushes (as the class cache keeps them), one class unit for all.
    let cls: ReadonlyMap<string, EncodedResource> = outbound;
    const owns = new Map<string, Map<string, EncodedResource>>();
    const ownOf = (id: string) => owns.get(id) ?? owns.set(id, own(id)).get(id)!;
    const h2 = await startHarness({
      extraGenerators: { [TypeUrl.Cluster]: { generate: (proxy: XdsProxy) => new LayeredMap([cls, ownOf(proxy.id)], [false, false]) } },
    });
    const clients = ['q-a', 'q-b'].map((id) => new DeltaClient(h2.address, { node: { id } }));
    try {
      for (const c of clients) {
        c.request(TypeUrl.Cluster);
        const r = await c.next();
        assert.equal(r.resources.length, outbound.size + 1);
        c.ack(r);
      }
      // The class unit rebuilt with one cluster changed; q-b's own unit loses its inbound cluster.
      const changed = edsCluster('outbound|80||svc-7.ns.svc.cluster.local', { connectTimeout: '42s' });
      const next = new Map(outbound);
      next.set(changed.name, changed);
      cls = next;
      const bOwn = new Map(ownOf('q-b'));
      bOwn.delete('inbound|8080||q-b');
      owns.set('q-b', bOwn);
      h2.pushAll('one cluster');
      const ra = await clients[0]!.next();
      assert.deepEqual(ra.resources.map((x) => x.name), [changed.name]);
      assert.equal(ra.resources[0]!.version, changed.version);
      assert.deepEqual(ra.removedResources, []);
      const rb = await clients[1]!.next();
      assert.deepEqual(rb.resources.map((x) => x.name), [changed.name]);
      assert.deepEqual(rb.removedResources, ['inbound|8080||q-b']);
      for (const [c, r] of [[clients[0]!, ra], [clients[1]!, rb]] as const) c.ack(r);
      // A push that kept every unit sends nothing.
      h2.pushAll('nothing changed');
      await assert.rejects(clients[0]!.next(300), 'no response when no unit changed');
    } finally {
      for (const c of clients) c.close();
      await h2.stop();
    }
  });

  test('the first layer is encoded once per unit and shared, also by another unit with the same resources, for as long as the unit lives', () => {
    enablePreFramedWrites();
    const frames = new FrameCache('t', undefined);
    const copy = new Map(outbound);
    const a = frames.deltaLayeredWhole(new LayeredMap([outbound, own('a')], [false, false]), TypeUrl.Cluster, 'n1', 'v1')!;
    const b = frames.deltaLayeredWhole(new LayeredMap([outbound, own('b')], [false, false]), TypeUrl.Cluster, 'n2', 'v1')!;
    const c = frames.deltaLayeredWhole(new LayeredMap([copy, own('c')], [false, false]), TypeUrl.Cluster, 'n3', 'v1')!;
    // The gRPC prefix, the shared first layer, the stream's own fields.
    assert.equal(a.length, 3);
    assert.ok(a.every((p) => isPreFramed(p)));
    assert.equal(a[1], b[1]);
    assert.equal(a[1], c[1], 'a unit with the same resources in the same order shares the bytes');
    assert.notEqual(a[2], b[2], 'each stream has its own fields (nonce, own resources)');
    assert.equal(a[0]!.readUInt32BE(1), a[1]!.length + a[2]!.length, 'the prefix counts every part');
    // With an override layer the merge is not a prefix of layers: no split.
    assert.equal(frames.deltaLayeredWhole(new LayeredMap([outbound, own('d')], [false, true]), TypeUrl.Cluster, 'n4', 'v1'), undefined);
    // Kept as long as the unit: the push queue draining does not drop it.
    frames.release();
    const d = frames.deltaLayeredWhole(new LayeredMap([outbound, own('e')], [false, false]), TypeUrl.Cluster, 'n5', 'v1')!;
    assert.equal(d[1], a[1]);
    // A unit with other resources gets its own.
    const changed = new Map(outbound);
    changed.set('outbound|80||svc-9.ns.svc.cluster.local', edsCluster('outbound|80||svc-9.ns.svc.cluster.local', { connectTimeout: '77s' }));
    const e = frames.deltaLayeredWhole(new LayeredMap([changed, own('e')], [false, false]), TypeUrl.Cluster, 'n6', 'v2')!;
    assert.notEqual(e[1], a[1]);
    assert.notDeepEqual(e[1], a[1]);
  });
});
