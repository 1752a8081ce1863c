import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson } from '@sextant/envoy';
import { buildClusters } from '../generator/index.js';
import { endpointSlice, istio, pod, proxyIn, pushContext, service } from '@sextant/testing/push';

type Json = Record<string, any>;
const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const MAX = 4294967295;

const shop = service('shop', 'default', '10.96.0.40', [['http', 8080], ['http-admin', 9090]]);
const shopPod = pod('shop-0', 'default', '10.0.0.9', { app: 'shop', 'security.istio.io/tlsMode': 'istio' });
const shopEps = endpointSlice('shop', 'default', [['http', 8080], ['http-admin', 9090]], [{ ip: '10.0.0.9', pod: 'shop-0' }]);
const rule = istio('DestinationRule', 'default', 'shop', {
  host: 'shop',
  trafficPolicy: {
    connectionPool: { tcp: { maxConnections: 7, connectTimeout: '1s' } },
    outlierDetection: { consecutive5xxErrors: 3 },
    loadBalancer: { simple: 'RANDOM' },
    tls: { mode: 'ISTIO_MUTUAL' },
    portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { simple: 'ROUND_ROBIN' } }],
  },
  subsets: [
    { name: 'a', labels: { app: 'shop' }, trafficPolicy: { connectionPool: { tcp: { maxConnections: 9 } } } },
    { name: 'b', labels: { app: 'shop' }, trafficPolicy: { portLevelSettings: [{ port: { number: 8080 }, outlierDetection: { consecutive5xxErrors: 1 } }] } },
  ],
});

test('portLevelSettings replace the destination-level policy for that port (istiod): unset fields take defaults, TLS falls back to auto mTLS', () => {
  const push = pushContext([shop, shopPod, shopEps, rule]);
  const cs = new Map((buildClusters(push, proxyIn(push, { ip: '10.0.0.1', pod: 'client' })) as Json[]).map((c) => [c.name, c]));
  const p8080 = cs.get('outbound|8080||shop.default.svc.cluster.local')!;
  const p9090 = cs.get('outbound|9090||shop.default.svc.cluster.local')!;
  assert.equal(p8080.circuitBreakers.thresholds[0].maxConnections, 7);
  assert.equal(p8080.connectTimeout, '1s');
  assert.equal(p8080.lbPolicy, 'RANDOM');
  assert.equal(p8080.outlierDetection.consecutive5xx, 3);
  assert.ok(p8080.transportSocket, 'explicit ISTIO_MUTUAL: one transport socket');
  assert.equal(p9090.circuitBreakers.thresholds[0].maxConnections, MAX);
  assert.equal(p9090.connectTimeout, '10s');
  assert.equal(p9090.lbPolicy, 'ROUND_ROBIN');
  assert.equal(p9090.outlierDetection, undefined);
  assert.equal(p9090.transportSocket, undefined);
  assert.deepEqual(p9090.transportSocketMatches.map((m: Json) => m.name), ['tlsMode-istio', 'tlsMode-disabled'], 'auto mTLS on the port-level port');
  // Subset a overrides the pool only; subset b's port-level entry on 8080 replaces everything there.
  const a8080 = cs.get('outbound|8080|a|shop.default.svc.cluster.local')!;
  assert.equal(a8080.circuitBreakers.thresholds[0].maxConnections, 9);
  assert.equal(a8080.outlierDetection.consecutive5xx, 3);
  const b8080 = cs.get('outbound|8080|b|shop.default.svc.cluster.local')!;
  assert.equal(b8080.outlierDetection.consecutive5xx, 1);
  assert.equal(b8080.circuitBreakers.thresholds[0].maxConnections, MAX);
  assert.equal(b8080.lbPolicy, 'LEAST_REQUEST');
  assert.ok(b8080.transportSocketMatches, 'auto mTLS: the subset port-level entry has no tls');
  const b9090 = cs.get('outbound|9090|b|shop.default.svc.cluster.local')!;
  assert.equal(b9090.lbPolicy, 'ROUND_ROBIN');
  assert.equal(b9090.circuitBreakers.thresholds[0].maxConnections, MAX);
  for (const c of cs.values()) assert.doesNotThrow(() => encodeJson(CLUSTER, c), c.name);
});

test('inbound clusters: the rule for the service (no selector) shapes them per port as istiod does; a client-selecting rule does not', () => {
  const client = istio('DestinationRule', 'default', 'shop-for-clients', { host: 'shop', workloadSelector: { matchLabels: { app: 'shop' } }, trafficPolicy: { connectionPool: { tcp: { maxConnections: 3 } } } });
  const push = pushContext([shop, shopPod, shopEps, client]);
  const server = proxyIn(push, { ip: '10.0.0.9', pod: 'shop-0' });
  const inbound = (ps: ReturnType<typeof pushContext>) => new Map((buildClusters(ps, server) as Json[]).filter((c) => c.name.startsWith('inbound|')).map((c) => [c.name, c]));
  assert.equal(inbound(push).get('inbound|8080||')!.circuitBreakers.thresholds[0].maxConnections, MAX, 'a workloadSelector rule is for outbound only');
  // The selector rule still shapes the server's own outbound cluster to shop.
  const out = (buildClusters(push, server) as Json[]).find((c) => c.name === 'outbound|8080||shop.default.svc.cluster.local')!;
  assert.equal(out.circuitBreakers.thresholds[0].maxConnections, 3);
  const push2 = pushContext([shop, shopPod, shopEps, rule]);
  const in2 = inbound(push2);
  assert.equal(in2.get('inbound|8080||')!.circuitBreakers.thresholds[0].maxConnections, 7);
  assert.equal(in2.get('inbound|9090||')!.circuitBreakers.thresholds[0].maxConnections, MAX, 'the port-level entry replaces the pool on 9090');
});

test('WorkloadEntry endpoints carry tlsMode istio when they name a service account (or the label says so), as istiod', async () => {
  const { buildEndpoints } = await import('../generator/index.js');
  const se = istio('ServiceEntry', 'default', 'vm', { hosts: ['vm.example.mesh'], location: 'MESH_INTERNAL', ports: [{ number: 9000, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', workloadSelector: { labels: { app: 'vm' } } });
  const withSa = istio('WorkloadEntry', 'default', 'vm-1', { address: '10.5.0.1', labels: { app: 'vm' }, serviceAccount: 'vm' });
  const labelled = istio('WorkloadEntry', 'default', 'vm-2', { address: '10.5.0.2', labels: { app: 'vm', 'security.istio.io/tlsMode': 'istio' } });
  const plain = istio('WorkloadEntry', 'default', 'vm-3', { address: '10.5.0.3', labels: { app: 'vm' } });
  const optOut = istio('WorkloadEntry', 'default', 'vm-4', { address: '10.5.0.4', labels: { app: 'vm', 'security.istio.io/tlsMode': 'disabled' }, serviceAccount: 'vm' });
  const push = pushContext([se, withSa, labelled, plain, optOut]);
  const [cla] = buildEndpoints(push, proxyIn(push), ['outbound|9000||vm.example.mesh']) as Json[];
  const mode = new Map(cla!.endpoints[0].lbEndpoints.map((e: Json) => [e.endpoint.address.socketAddress.address, e.metadata?.filterMetadata?.['envoy.transport_socket_match']?.tlsMode]));
  assert.deepEqual(Object.fromEntries(mode), { '10.5.0.1': 'istio', '10.5.0.2': 'istio', '10.5.0.3': undefined, '10.5.0.4': undefined });
});

test('proxyless gRPC clusters honour the rule: http2MaxRequests → max_requests, LEAST_REQUEST and consistent hash, subset merge (istiod grpcgen)', () => {
  const dr = istio('DestinationRule', 'default', 'shop', {
    host: 'shop',
    trafficPolicy: { connectionPool: { http: { http2MaxRequests: 12 } }, loadBalancer: { simple: 'LEAST_REQUEST' } },
    subsets: [{ name: 'a', labels: { app: 'shop' }, trafficPolicy: { loadBalancer: { consistentHash: { ringHash: { minimumRingSize: 64 } } } } }],
  });
  const push = pushContext([shop, shopPod, shopEps, dr]);
  const grpc = proxyIn(push, { ip: '10.0.0.1', pod: 'client', metadata: { GENERATOR: 'grpc' } });
  const cs = new Map((buildClusters(push, grpc) as Json[]).map((c) => [c.name, c]));
  const base = cs.get('outbound|8080||shop.default.svc.cluster.local')!;
  assert.deepEqual(base.circuitBreakers, { thresholds: [{ maxRequests: 12 }] });
  assert.equal(base.lbPolicy, 'LEAST_REQUEST');
  const a = cs.get('outbound|8080|a|shop.default.svc.cluster.local')!;
  assert.equal(a.lbPolicy, 'RING_HASH');
  assert.deepEqual(a.ringHashLbConfig, { minimumRingSize: '64' });
  assert.deepEqual(a.circuitBreakers, { thresholds: [{ maxRequests: 12 }] });
  for (const c of cs.values()) assert.doesNotThrow(() => encodeJson(CLUSTER, c), c.name);
});

test('outbound clusters are one object per context for proxies that resolve the same rule (classes share them); a rule that selects a proxy, an agentless proxy and a gateway get their own', () => {
  const team = istio('DestinationRule', 'team', 'shop-team', { host: 'shop.default.svc.cluster.local', workloadSelector: { matchLabels: { app: 'picky' } }, trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } });
  const picky = pod('picky-0', 'team', '10.0.1.7', { app: 'picky' });
  const push = pushContext([shop, shopPod, shopEps, rule, team, picky]);
  const name = 'outbound|8080|a|shop.default.svc.cluster.local';
  const of = (v: ReturnType<typeof proxyIn>) => (buildClusters(push, v) as Json[]).find((c) => c.name === name)!;
  const inDefault = of(proxyIn(push, { ip: '10.0.0.1', pod: 'client', namespace: 'default' }));
  const inOther = of(proxyIn(push, { ip: '10.0.2.1', pod: 'other', namespace: 'other' }));
  assert.equal(inOther, inDefault, 'two namespaces, the same rule: one object');
  const selected = of(proxyIn(push, { ip: '10.0.1.7', pod: 'picky-0', namespace: 'team' }));
  assert.equal(selected, undefined, 'the selecting rule (no subsets) applies to picky: no subset cluster');
  const pickyDefault = (buildClusters(push, proxyIn(push, { ip: '10.0.1.7', pod: 'picky-0', namespace: 'team' })) as Json[]).find((c) => c.name === 'outbound|8080||shop.default.svc.cluster.local')!;
  assert.equal(pickyDefault.lbPolicy, 'LEAST_REQUEST');
  const agentless = of(proxyIn(push, { ip: '10.0.3.1', pod: 'al', namespace: 'other', metadata: { SEXTANT_AGENTLESS: 'true' } }));
  assert.notEqual(agentless, inDefault);
  const gateway = of(proxyIn(push, { ip: '10.0.4.1', pod: 'gw', namespace: 'istio-system', type: 'router' }));
  assert.notEqual(gateway, inDefault);
  // What each got is what a context of its own gives it.
  for (const [v, c] of [
    [proxyIn(push, { ip: '10.0.2.1', pod: 'other', namespace: 'other' }), inOther],
    [proxyIn(push, { ip: '10.0.3.1', pod: 'al', namespace: 'other', metadata: { SEXTANT_AGENTLESS: 'true' } }), agentless],
    [proxyIn(push, { ip: '10.0.4.1', pod: 'gw', namespace: 'istio-system', type: 'router' }), gateway],
  ] as const) {
    const fresh = pushContext([shop, shopPod, shopEps, rule, team, picky]);
    assert.deepEqual(c, (buildClusters(fresh, fresh.resolveProxy(v)) as Json[]).find((x) => x.name === name));
  }
});
