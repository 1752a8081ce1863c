import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeJson, TypeUrl, type ClusterJson, type ClusterLoadAssignmentJson } from '@sextant/envoy';
import { expectGolden, listGoldenCases, loadGoldenCase, readYamlDocs } from '@sextant/testing';
import { parseProxy, ProxyParseError, PushContext } from '@sextant/model';
import { buildEndpoints } from './generator/index.js';
import { ALL_TYPES, parseObjects, translateConfig } from './translate.js';
import type { XdsShortType } from './generator/index.js';
import { TYPE, unpackAny } from './typed.js';

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, '..', 'testdata');
const repo = join(here, '..', '..', '..');
const TYPE_URL: Record<XdsShortType, string> = { lds: TypeUrl.Listener, rds: TypeUrl.RouteConfiguration, cds: TypeUrl.Cluster, eds: TypeUrl.ClusterLoadAssignment };

// Golden corpus: every testdata/<case>.yaml, through the server's assembly path, for every
// xDS type (or the types its header names).
for (const name of listGoldenCases(testdata)) {
  test(`golden: ${name}`, () => {
    const c = loadGoldenCase(testdata, name);
    const { objects, issues } = parseObjects(c.objects);
    assert.deepEqual(issues, [], `${name}: the case's objects must be valid`);
    const types = c.header.types ?? ALL_TYPES;
    const out = translateConfig({ objects, nodeId: c.header.nodeId, metadata: c.header.metadata ?? {}, types });
    for (const t of types) {
      const resources = out[t] ?? [];
      // Every resource must encode as its Envoy type (the server sends exactly these).
      for (const r of resources) encodeJson(TYPE_URL[t], r);
      expectGolden(testdata, name, t, resources);
    }
    expectGolden(testdata, name, 'issues', out.issues);
  });
}

function bookinfo() {
  const raw = [...readYamlDocs(join(repo, 'examples/bookinfo/kubernetes.yaml')), ...readYamlDocs(join(repo, 'examples/bookinfo/istio.yaml'))];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  return objects;
}
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

/** Where a request would go: the endpoints Envoy would pick from for a cluster. */
function endpointsOf(eds: ClusterLoadAssignmentJson[], cluster: string): string[] {
  const cla = eds.find((c) => c.clusterName === cluster);
  assert.ok(cla, `no ClusterLoadAssignment for ${cluster}`);
  return (cla.endpoints ?? []).flatMap((l) => (l.lbEndpoints ?? []).map((e) => `${e.endpoint?.address?.socketAddress?.address}:${e.endpoint?.address?.socketAddress?.portValue}`));
}

test('bookinfo: reviews subsets reach exactly their version pods', () => {
  const out = translateConfig({ objects: bookinfo(), nodeId: PRODUCTPAGE, types: ['cds', 'eds'] });
  const eds = out.eds!;
  assert.deepEqual(endpointsOf(eds, 'outbound|9080|v1|reviews.default.svc.cluster.local'), ['10.244.1.13:9080']);
  assert.deepEqual(endpointsOf(eds, 'outbound|9080|v2|reviews.default.svc.cluster.local'), ['10.244.1.14:9080']);
  assert.deepEqual(endpointsOf(eds, 'outbound|9080|v3|reviews.default.svc.cluster.local'), ['10.244.1.15:9080']);
  assert.deepEqual(endpointsOf(eds, 'outbound|9080||reviews.default.svc.cluster.local'), ['10.244.1.13:9080', '10.244.1.14:9080', '10.244.1.15:9080']);
  const names = out.cds!.map((c) => c.name);
  for (const n of ['inbound|9080||', 'BlackHoleCluster', 'PassthroughCluster', 'InboundPassthroughCluster']) assert.ok(names.includes(n), n);
  const v2 = out.cds!.find((c) => c.name === 'outbound|9080|v2|reviews.default.svc.cluster.local')!;
  assert.equal(v2.type, 'EDS');
  assert.equal(v2.edsClusterConfig?.serviceName, v2.name);
  assert.equal(v2.lbPolicy, 'LEAST_REQUEST');
  // auto mTLS: endpoints labelled tlsMode=istio get ISTIO_MUTUAL with SNI and the workload identity.
  const tls = unpackAny(v2.transportSocketMatches?.[0]?.transportSocket?.typedConfig, TYPE.upstreamTls)!;
  assert.equal(tls.sni, 'outbound_.9080_.v2_.reviews.default.svc.cluster.local');
  assert.deepEqual(tls.commonTlsContext?.combinedValidationContext?.defaultValidationContext?.matchSubjectAltNames, [{ exact: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' }]);
  const ep = out.eds!.find((c) => c.clusterName === 'outbound|9080|v2|reviews.default.svc.cluster.local')!.endpoints![0]!;
  assert.deepEqual(ep.locality, { region: 'us-east1', zone: 'us-east1-b' });
  assert.deepEqual(ep.lbEndpoints![0]!.metadata!.filterMetadata!['envoy.transport_socket_match'], { tlsMode: 'istio' });
});

test('bookinfo gateway gets outbound clusters and BlackHoleCluster, no inbound or passthrough', () => {
  const out = translateConfig({ objects: bookinfo(), nodeId: 'router~10.244.0.20~istio-ingressgateway-6b8c5d9f7-x2v4n.istio-system~istio-system.svc.cluster.local', types: ['cds'] });
  const names = out.cds!.map((c: ClusterJson) => c.name!);
  assert.ok(names.includes('outbound|9080||productpage.default.svc.cluster.local'));
  assert.ok(names.includes('BlackHoleCluster'));
  assert.ok(!names.some((n) => n.startsWith('inbound|') || n === 'PassthroughCluster'));
});

test('bad references are reported with kind/namespace/name/field and the rest is still translated', () => {
  const raw = [
    ...readYamlDocs(join(repo, 'examples/bookinfo/kubernetes.yaml')),
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'ghost', namespace: 'default' }, spec: { host: 'ghost' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v9' }, weight: 50 }, { destination: { host: 'nowhere' }, weight: 50 }] }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'a', namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' }, spec: { hosts: ['x.example.com'], resolution: 'DNS', ports: [{ number: 80, name: 'http' }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'b', namespace: 'default', creationTimestamp: '2024-02-01T00:00:00Z' }, spec: { hosts: ['x.example.com'], resolution: 'DNS', ports: [{ number: 81, name: 'http' }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'broken', namespace: 'default' }, spec: { host: 'reviews', trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } } },
  ];
  const { objects, issues: schemaIssues } = parseObjects(raw);
  assert.equal(schemaIssues.length, 1);
  assert.equal(schemaIssues[0]!.name, 'broken');
  assert.equal(schemaIssues[0]!.field, 'spec.trafficPolicy.loadBalancer.simple');
  const out = translateConfig({ objects, nodeId: PRODUCTPAGE, types: ['cds', 'eds'] });
  const find = (name: string, field: string) => out.issues.find((i) => i.name === name && i.field === field);
  assert.match(find('reviews', 'spec.http[0].route[0].destination.subset')?.reason ?? '', /subset "v9" is not defined for host reviews\.default\.svc\.cluster\.local \(DestinationRule defines: v1\)/);
  assert.match(find('reviews', 'spec.http[0].route[1].destination.host')?.reason ?? '', /nowhere\.default\.svc\.cluster\.local matches no Service/);
  assert.match(find('ghost', 'spec.host')?.reason ?? '', /matches no Service or ServiceEntry/);
  assert.match(find('b', 'spec.hosts[0]')?.reason ?? '', /already declared by ServiceEntry default\/a/);
  // The valid config is still served: the older ServiceEntry wins, reviews v1 still works.
  assert.ok(out.cds!.some((c) => c.name === 'outbound|80||x.example.com'));
  assert.ok(!out.cds!.some((c) => c.name === 'outbound|81||x.example.com'));
  assert.deepEqual(endpointsOf(out.eds!, 'outbound|9080|v1|reviews.default.svc.cluster.local'), ['10.244.1.13:9080']);
});

test('a malformed node ID is a clear error', () => {
  assert.throws(() => translateConfig({ objects: [], nodeId: 'sidecar~not-an-ip~x.default~default.svc.cluster.local' }), (e: Error) => e instanceof ProxyParseError && /is not an IP address/.test(e.message));
  assert.throws(() => translateConfig({ objects: [], nodeId: 'gateway-ish' }), /expected 4 parts/);
});

test('EDS for unknown names, unknown subsets and DNS clusters answers empty assignments', () => {
  const push = PushContext.build(bookinfo(), { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const proxy = push.resolveProxy(parseProxy(PRODUCTPAGE, {}));
  const eds = buildEndpoints(push, proxy, ['outbound|9080|v9|reviews.default.svc.cluster.local', 'outbound|1|| nope', 'BlackHoleCluster', 'outbound|9080|v1|ratings.default.svc.cluster.local']);
  assert.deepEqual(eds.map((c) => [c.clusterName, (c.endpoints ?? []).length]), [
    ['outbound|9080|v9|reviews.default.svc.cluster.local', 0],
    ['outbound|1|| nope', 0],
    ['BlackHoleCluster', 0],
    ['outbound|9080|v1|ratings.default.svc.cluster.local', 1],
  ]);
});

test('Sidecar ingress on virtualInbound as istiod: chain <podIP>_<port> with the Sidecar as config metadata, Mongo proxy on MONGO ports, inbound cluster with default circuit breakers and the Service metadata', () => {
  const raw = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'mongo', namespace: 'data' }, spec: { clusterIP: '10.96.7.7', selector: { app: 'mongo' }, ports: [{ name: 'mongo', port: 27017 }] } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'mongo-0', namespace: 'data', labels: { app: 'mongo' } }, spec: { containers: [{ name: 'm', image: 'm' }] }, status: { phase: 'Running', podIP: '10.1.7.7', podIPs: [{ ip: '10.1.7.7' }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'mongo-1', namespace: 'data', labels: { 'kubernetes.io/service-name': 'mongo' } },
      addressType: 'IPv4',
      ports: [{ name: 'mongo', port: 27017 }],
      endpoints: [{ addresses: ['10.1.7.7'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'mongo-0', namespace: 'data' } }],
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'mongo', namespace: 'data' },
      spec: {
        workloadSelector: { labels: { app: 'mongo' } },
        ingress: [
          { port: { number: 27017, protocol: 'MONGO', name: 'mongo' }, defaultEndpoint: '127.0.0.1:27017' },
          // 0.0.0.0 means the pod's own address; no defaultEndpoint, the original destination.
          { port: { number: 8080, protocol: 'HTTP', name: 'http' }, defaultEndpoint: '0.0.0.0:8081' },
          { port: { number: 9000, protocol: 'TCP', name: 'tcp' } },
        ],
      },
    },
  ];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  const out = translateConfig({ objects, nodeId: 'sidecar~10.1.7.7~mongo-0.data~data.svc.cluster.local', metadata: { LABELS: { app: 'mongo' } }, types: ['lds', 'cds'] });
  const vi = out.lds!.find((l) => l.name === 'virtualInbound')!;
  const chains = (vi.filterChains ?? []).filter((c) => c.filterChainMatch?.destinationPort === 27017);
  assert.ok(chains.length > 0);
  for (const c of chains) {
    assert.equal(c.name, '10.1.7.7_27017');
    assert.deepEqual(c.metadata, { filterMetadata: { istio: { config: '/apis/networking.istio.io/v1/namespaces/data/sidecar/mongo' } } });
    const names = (c.filters ?? []).map((f) => f.name);
    assert.deepEqual(names.slice(-2), ['envoy.filters.network.mongo_proxy', 'envoy.filters.network.tcp_proxy']);
    assert.deepEqual(unpackAny((c.filters ?? []).find((f) => f.name === 'envoy.filters.network.mongo_proxy')!.typedConfig, TYPE.mongoProxy), { '@type': TYPE.mongoProxy, statPrefix: 'inbound|27017||' });
  }
  assert.ok((vi.filterChains ?? []).filter((c) => c.filterChainMatch?.destinationPort === 8080).every((c) => c.name === '10.1.7.7_8080'));
  const cds = new Map(out.cds!.map((c) => [c.name, c]));
  const mongo = cds.get('inbound|27017||')!;
  assert.equal(mongo.type, 'STATIC');
  assert.deepEqual(mongo.loadAssignment?.endpoints?.[0]?.lbEndpoints?.[0]?.endpoint?.address, { socketAddress: { address: '127.0.0.1', portValue: 27017 } });
  assert.equal(mongo.upstreamBindConfig, undefined, 'to the loopback: no 127.0.0.6 source bind');
  const max = 4294967295;
  assert.deepEqual(mongo.circuitBreakers?.thresholds?.[0], { maxConnections: max, maxPendingRequests: max, maxRequests: max, maxRetries: max, trackRemaining: true });
  assert.deepEqual((mongo.metadata?.filterMetadata?.['istio'] as { services: unknown }).services, [{ host: 'mongo.data.svc.cluster.local', name: 'mongo', namespace: 'data' }]);
  // 0.0.0.0:8081 is the pod address; the source is bound to 127.0.0.6 so iptables does not capture it again.
  const http = cds.get('inbound|8080||')!;
  assert.deepEqual(http.loadAssignment?.endpoints?.[0]?.lbEndpoints?.[0]?.endpoint?.address, { socketAddress: { address: '10.1.7.7', portValue: 8081 } });
  assert.equal(http.upstreamBindConfig?.sourceAddress?.address, '127.0.0.6');
  // No instance on 8080: no Service metadata (istiod's stand-in Service is mesh-external).
  assert.equal(http.metadata, undefined);
  const tcp = cds.get('inbound|9000||')!;
  assert.equal(tcp.type, 'ORIGINAL_DST');
  assert.equal(tcp.cleanupInterval, '9223372035s');
  for (const c of out.cds!) encodeJson(TypeUrl.Cluster, c);
  for (const l of out.lds!) encodeJson(TypeUrl.Listener, l);
});
