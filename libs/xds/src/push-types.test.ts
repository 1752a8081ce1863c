// A full push that names its types (PushRequest.types) regenerates and sends
// only those: a VirtualService edit reaches streams as RDS alone, not as a
// regeneration of every type.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { DeltaClient, SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { ExtensionConfigType, edsCluster, extensionConfig, routeTo, startHarness, type Harness } from '@sextant/testing/xds-harness';
import { StaticGenerator } from '@sextant/testing/xds-harness';
import type { ResourceGenerator } from './types.js';

const node = (id: string) => ({ id, metadata: {} });

/** Counts generate() calls of a generator. */
function counted(inner: ResourceGenerator): ResourceGenerator & { calls: number } {
  const g = { calls: 0, generate: (...a: Parameters<ResourceGenerator['generate']>) => (g.calls++, inner.generate(...a)) };
  return g;
}

describe('full pushes regenerate only the types they name', () => {
  let h: Harness;
  const clusters = new StaticGenerator([edsCluster('c1')]);
  const cds = counted(clusters);
  let v = 0;
  before(async () => {
    h = await startHarness({ extraGenerators: { [TypeUrl.Cluster]: cds } });
    h.routes.replace([routeTo('r1', 'c1')]);
    h.extensions.replace(Array.from({ length: 20 }, (_, i) => extensionConfig(`p${i + 1}`)));
    h.pushAll('seed');
  });
  after(() => h.stop());

  test('SotW: an RDS-only push sends RDS and never calls the CDS generator; an untyped push sends CDS again', async () => {
    const c = new SotwClient(h.address, { node: node('sotw-types') });
    try {
      c.request(TypeUrl.Cluster);
      const r1 = await c.next();
      c.ack(r1);
      c.request(TypeUrl.RouteConfiguration, { resourceNames: ['r1'] });
      const r2 = await c.next();
      assert.equal(r2.typeUrl, TypeUrl.RouteConfiguration);
      c.ack(r2, ['r1']);
      // Both change; the push says only routes can have.
      clusters.set(edsCluster('c2'));
      h.routes.replace([routeTo('r1', 'c2')]);
      const callsBefore = cds.calls;
      h.server.push({ full: true, version: `typed-${++v}`, reason: ['VirtualService'], types: new Set([TypeUrl.RouteConfiguration]) });
      const r3 = await c.next();
      assert.equal(r3.typeUrl, TypeUrl.RouteConfiguration, 'CDS goes first in push order: a typed push must skip it');
      assert.equal(cds.calls, callsBefore, 'the CDS generator was not called');
      c.ack(r3, ['r1']);
      // Nothing else was queued: the next response is the answer to a fresh subscription.
      c.request(ExtensionConfigType, { resourceNames: ['p1'] });
      const probe = await c.next();
      assert.equal(probe.typeUrl, ExtensionConfigType, `expected only the probe response, got ${probe.typeUrl}`);
      c.ack(probe, ['p1']);
      h.server.push({ full: true, version: `all-${++v}`, reason: ['test'] });
      const r4 = await c.next();
      assert.equal(r4.typeUrl, TypeUrl.Cluster);
      assert.deepEqual(resourceNames(r4), ['c1', 'c2']);
      c.ack(r4);
    } finally {
      c.close();
    }
  });

  test('Delta: an RDS-only push sends RDS alone; a CDS-only push then sends CDS', async () => {
    const c = new DeltaClient(h.address, { node: node('delta-types') });
    try {
      c.request(TypeUrl.Cluster, { subscribe: ['*'] });
      const r1 = await c.next();
      c.ack(r1);
      c.request(TypeUrl.RouteConfiguration, { subscribe: ['r1'] });
      const r2 = await c.next();
      c.ack(r2);
      clusters.set(edsCluster('c3'));
      h.routes.replace([routeTo('r1', 'c3')]);
      const callsBefore = cds.calls;
      h.server.push({ full: true, version: `typed-${++v}`, reason: ['VirtualService'], types: new Set([TypeUrl.RouteConfiguration]) });
      const r3 = await c.next();
      assert.equal(r3.typeUrl, TypeUrl.RouteConfiguration);
      assert.equal(cds.calls, callsBefore);
      c.ack(r3);
      h.server.push({ full: true, version: `typed-${++v}`, reason: ['DestinationRule'], types: new Set([TypeUrl.Cluster]) });
      const r4 = await c.next();
      assert.equal(r4.typeUrl, TypeUrl.Cluster);
      assert.ok(r4.resources.some((r) => r.name === 'c3'));
      c.ack(r4);
    } finally {
      c.close();
    }
  });
});
