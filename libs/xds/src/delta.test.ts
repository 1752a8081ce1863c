import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { DeltaClient, decodeDeltaResources } from '@sextant/testing/xds-client';
import { ExtensionConfigType, StaticGenerator, edsCluster, extensionConfig, loadAssignment, startHarness, type Harness } from '@sextant/testing/xds-harness';

let probeSeq = 0;
/** Requests on a stream are handled in order: if the next response answers a fresh subscription, nothing came before it. */
async function probe(c: DeltaClient): Promise<void> {
  const name = `p${++probeSeq}`;
  c.request(ExtensionConfigType, { subscribe: [name] });
  const r = await c.next();
  assert.equal(r.typeUrl, ExtensionConfigType, `expected only the probe response, got ${r.typeUrl} ${r.resources.map((x) => x.name)} removed ${r.removedResources}`);
  assert.deepEqual(r.resources.map((x) => x.name), [name]);
  c.ack(r);
}

const names = (r: { resources: { name: string }[] }) => r.resources.map((x) => x.name).sort();

describe('Delta ADS protocol', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    h.clusters.replace([edsCluster('c1'), edsCluster('c2')]);
    h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
    h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
    h.extensions.replace(Array.from({ length: 200 }, (_, i) => extensionConfig(`p${i + 1}`)));
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('initial wildcard CDS: every cluster with its content-hash version; ACK gets nothing', async () => {
    const c = new DeltaClient(h.address, { node: { id: 'delta-1' } });
    try {
      c.request(TypeUrl.Cluster);
      const r = await c.next();
      assert.equal(r.typeUrl, TypeUrl.Cluster);
      assert.ok(r.nonce);
      assert.equal(r.systemVersionInfo, 'v1');
      assert.deepEqual(names(r), ['c1', 'c2']);
      const byName = new Map(r.resources.map((x) => [x.name, x.version]));
      assert.equal(byName.get('c1'), h.clusters.resources.get('c1')!.version);
      assert.deepEqual(r.removedResources, []);
      assert.equal((decodeDeltaResources(r)[0]!.json as Record<string, unknown>)['type'], 'EDS');
      c.ack(r);
      await probe(c);
    } finally {
      c.close();
    }
  });

  test('only changed resources are sent, and removals go in removed_resources', async () => {
    const c = new DeltaClient(h.address, { node: { id: 'delta-2' } });
    try {
      c.request(TypeUrl.Cluster);
      c.ack(await c.next());
      h.clusters.set(edsCluster('c2', { connectTimeout: '3s' }));
      h.clusters.set(edsCluster('c3'));
      h.pushAll('change c2, add c3');
      const r = await c.next();
      assert.deepEqual(names(r), ['c2', 'c3']);
      assert.deepEqual(r.removedResources, []);
      c.ack(r);
      h.clusters.delete('c3');
      h.pushAll('remove c3');
      const r2 = await c.next();
      assert.deepEqual(r2.resources, []);
      assert.deepEqual(r2.removedResources, ['c3']);
      c.ack(r2);
      // Nothing changed: a push sends nothing.
      h.pushAll('no-op');
      await probe(c);
    } finally {
      c.close();
    }
  });

  test('explicit subscribe and unsubscribe for EDS', async () => {
    const c = new DeltaClient(h.address, { node: { id: 'delta-3' } });
    try {
      c.request(TypeUrl.ClusterLoadAssignment, { subscribe: ['c1'] });
      const r1 = await c.next();
      assert.deepEqual(names(r1), ['c1']);
      c.ack(r1, { subscribe: ['c2'] }); // ACK and a new name in one request
      const r2 = await c.next();
      assert.deepEqual(names(r2), ['c2'], 'only the newly subscribed resource is sent');
      c.ack(r2, { unsubscribe: ['c1'] });
      await probe(c); // unsubscribe needs no response
      h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 90 }]));
      h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 90 }]));
      const r3 = await c.next();
      assert.deepEqual(names(r3), ['c2'], 'a change to an unsubscribed cluster is not sent');
      c.ack(r3);
      h.endpoints.delete('c2');
      const r4 = await c.next();
      assert.deepEqual(r4.removedResources, ['c2']);
      h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
      const r5 = await c.next();
      assert.deepEqual(names(r5), ['c2']);
    } finally {
      c.close();
    }
  });

  test('reconnect with initial_resource_versions: only what differs is sent', async () => {
    const current = h.clusters.resources;
    const c = new DeltaClient(h.address, { node: { id: 'delta-4' } });
    try {
      c.request(TypeUrl.Cluster, {
        initialResourceVersions: { c1: current.get('c1')!.version, c2: 'stale-version', gone: 'whatever' },
      });
      const r = await c.next();
      assert.deepEqual(names(r), ['c2']);
      assert.deepEqual(r.removedResources, ['gone']);
      c.ack(r);
      await probe(c);
    } finally {
      c.close();
    }
  });

  test('reconnect already up to date gets an empty first response for a wildcard type, then only changes', async () => {
    const current = h.clusters.resources;
    const c = new DeltaClient(h.address, { node: { id: 'delta-5' } });
    try {
      c.request(TypeUrl.Cluster, { initialResourceVersions: Object.fromEntries([...current].map(([n, r]) => [n, r.version])) });
      const r = await c.next();
      assert.deepEqual(r.resources, []);
      assert.deepEqual(r.removedResources, []);
      c.ack(r);
      await probe(c);
    } finally {
      c.close();
    }
  });

  test('NACK is recorded and the rejected resource is not re-sent; a stale nonce is ignored', async () => {
    const c = new DeltaClient(h.address, { node: { id: 'delta-6' } });
    try {
      c.request(TypeUrl.Cluster);
      const r1 = await c.next();
      c.ack(r1);
      h.clusters.set(edsCluster('bad'));
      h.pushAll('add bad');
      const r2 = await c.next();
      assert.deepEqual(names(r2), ['bad']);
      c.nack(r2, 'cluster bad: rejected');
      await probe(c);
      const st = h.server.connections().find((x) => x.proxyId === 'delta-6')!.types.find((t) => t.typeUrl === TypeUrl.Cluster)!;
      assert.equal(st.lastNack?.message, 'cluster bad: rejected');
      assert.equal(st.nacks, 1);
      h.pushAll('unrelated');
      await probe(c);
      // A stale nonce (r1's) does not count as an ACK or a NACK.
      const stale = h.server.metrics().staleNonces;
      c.nack(r1, 'late');
      await probe(c);
      assert.equal(h.server.metrics().staleNonces, stale + 1);
      assert.equal(h.server.connections().find((x) => x.proxyId === 'delta-6')!.types.find((t) => t.typeUrl === TypeUrl.Cluster)!.nacks, 1);
      h.clusters.delete('bad');
      h.pushAll('remove bad');
      const r3 = await c.next();
      assert.deepEqual(r3.removedResources, ['bad']);
    } finally {
      c.close();
    }
  });
});

describe('Delta ADS: a generator marked neverRemoveDelta (ECDS, as istiod)', () => {
  test('a subscribed resource that goes away is not sent in removed_resources', async () => {
    const ecds = Object.assign(new StaticGenerator([extensionConfig('e1'), extensionConfig('e2')]), { neverRemoveDelta: true });
    const h = await startHarness({ extraGenerators: { [ExtensionConfigType]: ecds } });
    const c = new DeltaClient(h.address, { node: { id: 'delta-never-remove' } });
    try {
      h.pushAll('seed');
      c.request(ExtensionConfigType, { subscribe: ['e1', 'e2'] });
      const r = await c.next();
      assert.deepEqual(names(r), ['e1', 'e2']);
      c.ack(r);
      ecds.delete('e2');
      h.pushAll('remove e2');
      // Requests are answered in order: the next response is the CDS answer, no removal of e2 before it.
      c.request(TypeUrl.Cluster);
      const next = await c.next();
      assert.equal(next.typeUrl, TypeUrl.Cluster, `got ${next.typeUrl} removed [${next.removedResources}]`);
      c.ack(next);
      // A new name is still answered, with nothing removed.
      ecds.set(extensionConfig('e3'));
      h.pushAll('e3');
      c.request(ExtensionConfigType, { subscribe: ['e3'] });
      const r3 = await c.next();
      assert.deepEqual([names(r3), r3.removedResources], [['e3'], []]);
    } finally {
      c.close();
      await h.stop();
    }
  });
});
