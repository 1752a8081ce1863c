import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl, decodeToJson, encodeJson } from '@sextant/envoy';
import { DebugType, XdsStatusError, debugGenerators, debugScope, peerHost } from './debug-types.js';
import { SotwClient, decodeResources } from '@sextant/testing/xds-client';
import { edsCluster, startHarness, waitFor, type Harness } from '@sextant/testing/xds-harness';
import type { XdsProxy } from './types.js';

const nodeIds = (r: Parameters<typeof decodeResources>[0]) => decodeResources(r).map((x) => (x.json as { node: { id: string } }).node.id);
const CLUSTERS_DUMP = 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump';

describe('debug types over xDS (istio.io/debug/syncz, istio.io/debug/config_dump)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      // Stands in for the secure port's token check: x-test-identity: <namespace>/<sa>.
      authenticate: async (call) => {
        const who = call.metadata.get('x-test-identity')[0];
        if (who === undefined) return undefined;
        const [namespace, serviceAccount] = String(who).split('/');
        return { namespace: namespace!, serviceAccount: serviceAccount! };
      },
      extraGenerators: debugGenerators({
        connections: () => h.server.connections(),
        streamState: (id) => h.server.streamState(id),
        // The daemon passes the admin ConfigDump builder; a ClustersConfigDump of what was sent is enough here.
        configDump: (st) => [
          {
            typeUrl: CLUSTERS_DUMP,
            value: encodeJson(CLUSTERS_DUMP, {
              dynamicActiveClusters: (st.types.find((t) => t.typeUrl === TypeUrl.Cluster)?.resources ?? []).map((r) => ({
                cluster: { '@type': TypeUrl.Cluster, ...(decodeToJson(TypeUrl.Cluster, r.value) as object) },
              })),
            }),
          },
        ],
        systemNamespace: () => 'istio-system',
        // The daemon passes the admin debug endpoints; an echo shows what reaches them.
        debugPath: (path, query, namespace) => Buffer.from(JSON.stringify({ path, proxyID: query.get('proxyID'), namespace: namespace ?? null })),
      }),
    });
    h.clusters.replace([edsCluster('c1')]);
    h.pushAll('seed');
  });
  after(() => h.stop());

  const proxy = (identity: string, id: string, ns: string) => {
    const metadata = new grpc.Metadata();
    metadata.set('x-test-identity', identity);
    return new SotwClient(h.address, { node: { id, metadata: { NAMESPACE: ns, CLUSTER_ID: 'Kubernetes', ISTIO_VERSION: '1.31-dev' } }, metadata });
  };
  // istioctl's node: adsc's default ID, metadata from the token's namespace.
  const istioctl = (identity: string) => proxy(identity, `sidecar~~test-1.default~default.svc.cluster.local`, identity.split('/')[0]!);

  test('syncz lists connected proxies as ClientConfig (SYNCED after an ACK, STALE before), not istioctl\'s own stream', async () => {
    const a = proxy('shop/cart', 'sidecar~10.0.0.1~cart-1.shop~shop.svc.cluster.local', 'shop');
    const b = proxy('pay/pay', 'sidecar~10.0.0.2~pay-1.pay~pay.svc.cluster.local', 'pay');
    const ctl = istioctl('istio-system/default');
    try {
      a.request(TypeUrl.Cluster);
      a.ack(await a.next());
      b.request(TypeUrl.Cluster);
      await b.next(); // not ACKed
      await waitFor(() => h.server.connections().some((c) => c.proxyId.includes('cart-1') && c.types[0]?.nonceAcked), 'the ACK');
      ctl.request(DebugType.Syncz);
      const r = await ctl.next();
      assert.equal(r.typeUrl, DebugType.Syncz);
      const configs = decodeResources(r).map((x) => x.json as { node: { id: string; metadata: Record<string, string> }; genericXdsConfigs: Array<{ typeUrl: string; configStatus: string; lastUpdated?: string }> });
      const byId = new Map(configs.map((c) => [c.node.id, c]));
      assert.deepEqual([...byId.keys()].sort(), ['sidecar~10.0.0.1~cart-1.shop~shop.svc.cluster.local', 'sidecar~10.0.0.2~pay-1.pay~pay.svc.cluster.local']);
      const cart = byId.get('sidecar~10.0.0.1~cart-1.shop~shop.svc.cluster.local')!;
      assert.deepEqual(cart.node.metadata, { CLUSTER_ID: 'Kubernetes', NAMESPACE: 'shop', ISTIO_VERSION: '1.31-dev' });
      assert.deepEqual(cart.genericXdsConfigs.map((g) => [g.typeUrl, g.configStatus]), [[TypeUrl.Cluster, 'SYNCED']]);
      assert.ok(cart.genericXdsConfigs[0]!.lastUpdated);
      assert.equal(byId.get('sidecar~10.0.0.2~pay-1.pay~pay.svc.cluster.local')!.genericXdsConfigs[0]!.configStatus, 'STALE');

      // A caller from another namespace sees only its own namespace's proxies.
      const other = istioctl('shop/default');
      try {
        other.request(DebugType.Syncz);
        assert.deepEqual(nodeIds(await other.next()), ['sidecar~10.0.0.1~cart-1.shop~shop.svc.cluster.local']);
      } finally {
        other.close();
      }
    } finally {
      a.close();
      b.close();
      ctl.close();
    }
  });

  test('a NACKed type shows as ERROR with the NACK\'s message', async () => {
    const a = proxy('shop/cart', 'sidecar~10.0.0.3~cart-2.shop~shop.svc.cluster.local', 'shop');
    const ctl = istioctl('istio-system/default');
    try {
      a.request(TypeUrl.Cluster);
      a.nack(await a.next(), 'bad cluster');
      await waitFor(() => h.server.connections().some((c) => c.proxyId.includes('cart-2') && c.types[0]?.lastNack), 'the NACK');
      ctl.request(DebugType.Syncz);
      const cfg = decodeResources(await ctl.next()).find((x) => (x.json as { node: { id: string } }).node.id.includes('cart-2'))!.json as { genericXdsConfigs: Array<{ configStatus: string; errorState?: { details: string } }> };
      assert.equal(cfg.genericXdsConfigs[0]!.configStatus, 'ERROR');
      assert.equal(cfg.genericXdsConfigs[0]!.errorState?.details, 'bad cluster');
    } finally {
      a.close();
      ctl.close();
    }
  });

  test('config_dump answers for <pod>.<namespace>; only in the caller\'s namespace unless the caller is in the system namespace', async () => {
    const a = proxy('shop/cart', 'sidecar~10.0.0.4~cart-3.shop~shop.svc.cluster.local', 'shop');
    try {
      a.request(TypeUrl.Cluster);
      a.ack(await a.next());
      for (const [who, expected] of [['istio-system/default', [CLUSTERS_DUMP]], ['shop/default', [CLUSTERS_DUMP]], ['pay/default', []]] as const) {
        const ctl = istioctl(who);
        try {
          ctl.request(DebugType.ConfigDump, { resourceNames: ['cart-3.shop'] });
          const r = await ctl.next();
          assert.deepEqual(r.resources.map((x) => x.typeUrl), expected, who);
          if (expected.length) {
            const dump = decodeResources(r)[0]!.json as { dynamicActiveClusters: Array<{ cluster: { name: string } }> };
            assert.deepEqual(dump.dynamicActiveClusters.map((c) => c.cluster.name), ['c1']);
          }
        } finally {
          ctl.close();
        }
      }
    } finally {
      a.close();
    }
  });

  test('a caller neither authenticated nor on loopback is refused with UNAUTHENTICATED; the refusal ends the stream', async () => {
    const remote: XdsProxy = { connectionId: 'x', id: 'sidecar~~test-1.default~default.svc.cluster.local', node: {} as XdsProxy['node'], metadata: {}, peer: '10.1.2.3:5555', delta: false };
    assert.equal(debugScope(remote, 'istio-system'), undefined);
    assert.equal(debugScope({ ...remote, peer: '127.0.0.1:5555' }, 'istio-system'), '');
    assert.equal(debugScope({ ...remote, peer: '[::1]:5555' }, 'istio-system'), '');
    assert.equal(debugScope({ ...remote, peer: '127.0.0.3:5555' }, 'istio-system'), undefined);
    assert.equal(debugScope({ ...remote, identity: { namespace: 'shop', serviceAccount: 'x' } }, 'istio-system'), 'shop');
    assert.equal(peerHost('ipv4:127.0.0.1:80'), '127.0.0.1');
    const gens = debugGenerators({ connections: () => [], streamState: () => undefined, configDump: () => [], systemNamespace: () => 'istio-system' });
    assert.throws(() => gens[DebugType.Syncz]!.generate(remote, { typeUrl: DebugType.Syncz, wildcard: false, names: new Set() }, { full: true, version: 'v', reason: [] }), (e: unknown) => e instanceof XdsStatusError && e.grpcCode === grpc.status.UNAUTHENTICATED);

    // Through the server: a generator's XdsStatusError ends that stream with its status.
    const refusing = await startHarness({
      extraGenerators: {
        [DebugType.Syncz]: {
          answersQuery: true,
          generate: () => {
            throw new XdsStatusError(grpc.status.UNAUTHENTICATED, 'authentication required');
          },
        },
      },
    });
    try {
      const c = new SotwClient(refusing.address, { node: { id: 'sidecar~~test-1.default~default.svc.cluster.local' } });
      c.request(DebugType.Syncz);
      const s = await c.status();
      c.close();
      assert.equal(s.code, grpc.status.UNAUTHENTICATED);
      assert.match(s.details, /authentication required/);
    } finally {
      await refusing.stop();
    }
  });

  test('istio.io/debug (x internal-debug): the resource name is a debug path, answered as raw bytes; other namespaces get config_dump only', async () => {
    const ctl = istioctl('istio-system/default');
    try {
      ctl.request(DebugType.Debug, { resourceNames: ['config_dump?proxyID=cart-1.shop'] });
      const r = await ctl.next();
      assert.equal(r.typeUrl, DebugType.Debug);
      assert.equal(r.resources[0]!.typeUrl, DebugType.Debug);
      assert.deepEqual(JSON.parse(Buffer.from(r.resources[0]!.value).toString()), { path: 'config_dump', proxyID: 'cart-1.shop', namespace: null });
    } finally {
      ctl.close();
    }
    const app = istioctl('shop/default');
    try {
      app.request(DebugType.Debug, { resourceNames: ['config_dump?proxyID=cart-1.shop'] });
      assert.deepEqual(JSON.parse(Buffer.from((await app.next()).resources[0]!.value).toString()), { path: 'config_dump', proxyID: 'cart-1.shop', namespace: 'shop' });
    } finally {
      app.close();
    }
    const denied = istioctl('shop/default');
    denied.request(DebugType.Debug, { resourceNames: ['syncz'] });
    const s = await denied.status();
    denied.close();
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
  });
});
