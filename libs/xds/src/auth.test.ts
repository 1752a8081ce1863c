import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { recordingLogger } from '@sextant/api';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { edsCluster, startHarness, type Harness } from '@sextant/testing/xds-harness';
import type { XdsProxy } from './types.js';

/**
 * The secure port's two hooks: `authenticate` resolves the caller (here from a
 * test header standing in for a JWT or client certificate) and `authorizeNode`
 * refuses a node that is not that caller.
 */
describe('authenticated streams', () => {
  let h: Harness;
  const log = recordingLogger();
  const nodeNamespace = (p: XdsProxy) => p.id.split('~')[2]?.split('.')[1];
  before(async () => {
    h = await startHarness({
      log,
      authenticate: async (call) => {
        const who = call.metadata.get('x-test-identity')[0];
        if (who === undefined) return undefined;
        if (who === 'forged') throw new Error('token signature does not verify');
        const [namespace, serviceAccount] = String(who).split('/');
        return { namespace: namespace!, serviceAccount: serviceAccount! };
      },
      authorizeNode: (p) =>
        p.identity && nodeNamespace(p) !== p.identity.namespace ? `node ${p.id} is not in the caller's namespace ${p.identity.namespace}` : undefined,
    });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
  });
  after(() => h.stop());

  const open = (identity: string | undefined, id: string) => {
    const metadata = new grpc.Metadata();
    if (identity) metadata.set('x-test-identity', identity);
    return new SotwClient(h.address, { node: { id }, metadata });
  };

  test('a node that matches its authenticated identity is served', async () => {
    const c = open('shop/cart', 'sidecar~10.0.0.1~cart-1.shop~shop.svc.cluster.local');
    c.request(TypeUrl.Cluster);
    assert.deepEqual(resourceNames(await c.next()), ['c1']);
    c.close();
  });

  test('a node claiming another namespace is refused with PERMISSION_DENIED, and others keep being served', async () => {
    const bad = open('shop/cart', 'sidecar~10.0.0.2~payments-1.payments~payments.svc.cluster.local');
    bad.request(TypeUrl.Cluster);
    const s = await bad.status();
    bad.close();
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
    assert.match(s.details, /not in the caller's namespace shop/);
    assert.ok(log.entries.some((e) => e.level === 'warn' && String(e.msg).includes('does not match the authenticated identity')));
    const good = open('payments/pay', 'sidecar~10.0.0.3~payments-2.payments~payments.svc.cluster.local');
    good.request(TypeUrl.Cluster);
    assert.deepEqual(resourceNames(await good.next()), ['c1']);
    good.close();
  });

  test('a caller whose credential does not verify is refused with UNAUTHENTICATED', async () => {
    const c = open('forged', 'sidecar~10.0.0.4~x-1.shop~shop.svc.cluster.local');
    c.request(TypeUrl.Cluster);
    const s = await c.status();
    c.close();
    assert.equal(s.code, grpc.status.UNAUTHENTICATED);
    assert.match(s.details, /signature does not verify/);
  });

  test('an unauthenticated stream (plaintext port) is not judged by authorizeNode', async () => {
    const c = open(undefined, 'sidecar~10.0.0.5~x-1.other~other.svc.cluster.local');
    c.request(TypeUrl.Cluster);
    assert.deepEqual(resourceNames(await c.next()), ['c1']);
    c.close();
  });
});
