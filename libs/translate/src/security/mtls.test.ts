import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext, type MeshConfig } from '@sextant/model';
import { buildClusters, buildListeners } from '../generator/index.js';
import { ALPN, isAgentless, mtlsInbound } from './mtls.js';
import { composePeerAuthentication, mtlsModeForPort } from './peer-auth.js';
import { parseObjects } from '../translate.js';
import { TYPE, unpackAny } from '../typed.js';

type Json = Record<string, any>;

const svc = (name: string, ns: string, ports: Json[], selector: Json = { app: name }) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns },
  spec: { clusterIP: '10.96.0.' + (name.length + ns.length), selector, ports },
});
const pod = (name: string, ns: string, ip: string, labels: Json, sa = 'default') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { serviceAccountName: sa, containers: [{ name: 'app', image: 'x' }] },
  status: { podIP: ip, podIPs: [{ ip }], phase: 'Running' },
});
const slice = (svcName: string, ns: string, ip: string, podName: string, ports: Json[]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svcName}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svcName } },
  addressType: 'IPv4',
  ports,
  endpoints: [{ addresses: [ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: podName, namespace: ns } }],
});
const pa = (name: string, ns: string, spec: Json, creationTimestamp?: string) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'PeerAuthentication',
  metadata: { name, namespace: ns, ...(creationTimestamp ? { creationTimestamp } : {}) },
  spec,
});

function build(extra: Json[], meshConfig?: Json) {
  const raw = [
    svc('web', 'shop', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'tcp-db', port: 5432, targetPort: 5432 }]),
    pod('web-0', 'shop', '10.1.0.5', { app: 'web', 'security.istio.io/tlsMode': 'istio' }, 'web'),
    slice('web', 'shop', '10.1.0.5', 'web-0', [{ name: 'http', port: 8080 }, { name: 'tcp-db', port: 5432 }]),
    ...extra,
  ];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't', meshConfig: meshConfig as MeshConfig | undefined });
  return push;
}
const WEB = 'sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local';
const webProxy = (push: ReturnType<typeof build>, metadata: Json = {}) => push.resolveProxy(parseProxy(WEB, { LABELS: { app: 'web' }, ...metadata }));

test('PeerAuthentication: default PERMISSIVE; mesh < namespace < workload < port; UNSET inherits', () => {
  let push = build([]);
  assert.equal(composePeerAuthentication(push, 'shop', { app: 'web' }).mode, 'PERMISSIVE');
  push = build([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } })]);
  assert.equal(composePeerAuthentication(push, 'shop', { app: 'web' }).mode, 'STRICT');
  push = build([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } }), pa('ns', 'shop', { mtls: { mode: 'UNSET' } })]);
  assert.equal(composePeerAuthentication(push, 'shop', { app: 'web' }).mode, 'STRICT', 'UNSET namespace policy inherits the mesh');
  push = build([
    pa('default', 'istio-system', { mtls: { mode: 'STRICT' } }),
    pa('ns', 'shop', { mtls: { mode: 'DISABLE' } }),
    pa('web', 'shop', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { '5432': { mode: 'STRICT' }, '8080': { mode: 'UNSET' } } }),
  ]);
  const eff = composePeerAuthentication(push, 'shop', { app: 'web' });
  assert.equal(eff.mode, 'DISABLE', 'workload policy without mtls inherits the namespace');
  assert.equal(eff.perPort.get(5432), 'STRICT');
  assert.equal(eff.perPort.get(8080), 'DISABLE', 'UNSET port inherits the workload mode');
  assert.deepEqual(eff.from, { mesh: 'istio-system/default', namespace: 'shop/ns', workload: 'shop/web' });
  // Another workload in the namespace is not selected.
  assert.equal(composePeerAuthentication(push, 'shop', { app: 'other' }).perPort.size, 0);
  // A selector policy in the root namespace is not a workload policy.
  push = build([pa('sel', 'istio-system', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'DISABLE' } })]);
  assert.equal(composePeerAuthentication(push, 'shop', { app: 'web' }).mode, 'PERMISSIVE');
});

test('PeerAuthentication: within one scope the oldest wins, then namespace/name', () => {
  let push = build([pa('b', 'shop', { mtls: { mode: 'STRICT' } }, '2024-01-01T00:00:00Z'), pa('a', 'shop', { mtls: { mode: 'DISABLE' } }, '2024-06-01T00:00:00Z')]);
  assert.equal(composePeerAuthentication(push, 'shop', {}).mode, 'STRICT');
  push = build([pa('b', 'shop', { mtls: { mode: 'STRICT' } }), pa('a', 'shop', { mtls: { mode: 'DISABLE' } })]);
  assert.equal(composePeerAuthentication(push, 'shop', {}).mode, 'DISABLE');
});

function inboundChains(ls: Json[], port: number): Json[] {
  const vi = ls.find((l) => l.name === 'virtualInbound')!;
  return (vi.filterChains as Json[]).filter((c) => c.filterChainMatch?.destinationPort === port);
}

test('virtualInbound: PERMISSIVE (default) has an mTLS chain on Istio ALPNs and a plaintext chain per HTTP port; TCP adds TLS passthrough', () => {
  const push = build([]);
  const ls = buildListeners(push, webProxy(push)) as Json[];
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  const http = inboundChains(ls, 8080);
  assert.equal(http.length, 2);
  const [m, p] = http as [Json, Json];
  assert.deepEqual(m.filterChainMatch, { destinationPort: 8080, applicationProtocols: [...ALPN.allIstioMtls], transportProtocol: 'tls' });
  assert.deepEqual(p.filterChainMatch, { destinationPort: 8080, transportProtocol: 'raw_buffer' });
  assert.equal(p.transportSocket, undefined);
  assert.equal(m.name, '0.0.0.0_8080');
  const ctx = m.transportSocket.typedConfig;
  assert.equal(ctx.requireClientCertificate, true);
  assert.deepEqual(ctx.commonTlsContext.alpnProtocols, ['h2', 'http/1.1']);
  assert.equal(ctx.commonTlsContext.tlsCertificateSdsSecretConfigs[0].name, 'default');
  assert.equal(ctx.commonTlsContext.tlsCertificateSdsSecretConfigs[0].sdsConfig.apiConfigSource.grpcServices[0].envoyGrpc.clusterName, 'sds-grpc');
  assert.equal(ctx.commonTlsContext.combinedValidationContext.validationContextSdsSecretConfig.name, 'ROOTCA');
  assert.deepEqual(ctx.commonTlsContext.combinedValidationContext.defaultValidationContext, { matchSubjectAltNames: [{ prefix: 'spiffe://cluster.local/' }] });
  const tcp = inboundChains(ls, 5432);
  assert.deepEqual(
    tcp.map((c) => [c.filterChainMatch.transportProtocol, c.filterChainMatch.applicationProtocols ?? null, !!c.transportSocket]),
    [
      ['tls', [...ALPN.allIstioMtls], true],
      ['raw_buffer', null, false],
      ['tls', null, false],
    ],
  );
  assert.deepEqual(tcp[0]!.transportSocket.typedConfig.commonTlsContext.alpnProtocols, ['istio-peer-exchange', 'h2', 'http/1.1']);
});

test('virtualInbound: STRICT is TLS only, DISABLE plaintext only, per port', () => {
  const push = build([
    pa('ns', 'shop', { mtls: { mode: 'STRICT' } }),
    pa('web', 'shop', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { '5432': { mode: 'DISABLE' } } }),
  ]);
  const proxy = webProxy(push);
  assert.equal(mtlsModeForPort(push, proxy, 8080), 'STRICT');
  assert.equal(mtlsModeForPort(push, proxy, 5432), 'DISABLE');
  const ls = buildListeners(push, proxy) as Json[];
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  const http = inboundChains(ls, 8080);
  assert.equal(http.length, 1);
  assert.deepEqual(http[0]!.filterChainMatch, { destinationPort: 8080, transportProtocol: 'tls' });
  assert.ok(http[0]!.transportSocket);
  const tcp = inboundChains(ls, 5432);
  assert.equal(tcp.length, 1);
  assert.deepEqual(tcp[0]!.filterChainMatch, { destinationPort: 5432, transportProtocol: 'raw_buffer' });
  assert.equal(tcp[0]!.transportSocket, undefined);
});

test('trust domain aliases add SAN prefixes; mesh minimum TLS version and ciphers apply', () => {
  const push = build([], { trustDomainAliases: ['old.example'], meshMTLS: { minProtocolVersion: 'TLSV1_3', cipherSuites: ['ECDHE-RSA-AES128-GCM-SHA256'] } });
  const [c] = mtlsInbound(push, webProxy(push), 8080, 'http');
  const common = unpackAny(c!.transportSocket!.typedConfig, TYPE.downstreamTls)!.commonTlsContext!;
  assert.deepEqual(common.combinedValidationContext!.defaultValidationContext!.matchSubjectAltNames, [{ prefix: 'spiffe://cluster.local/' }, { prefix: 'spiffe://old.example/' }]);
  assert.equal(common.tlsParams!.tlsMinimumProtocolVersion, 'TLSv1_3');
  assert.deepEqual(common.tlsParams!.cipherSuites, ['ECDHE-RSA-AES128-GCM-SHA256']);
});

test('agentless proxies get SDS over ADS on both the inbound chains and ISTIO_MUTUAL / auto-mTLS clusters', () => {
  const push = build([
    svc('api', 'shop', [{ name: 'http', port: 80, targetPort: 9000 }]),
    pod('api-0', 'shop', '10.1.0.6', { app: 'api', 'security.istio.io/tlsMode': 'istio' }, 'api'),
    slice('api', 'shop', '10.1.0.6', 'api-0', [{ name: 'http', port: 9000 }]),
  ]);
  const agentless = webProxy(push, { SEXTANT_AGENTLESS: 'true' });
  assert.ok(isAgentless(agentless));
  assert.ok(!isAgentless(webProxy(push)));
  assert.ok(isAgentless(webProxy(push, { ISTIO_META_SEXTANT_AGENTLESS: 'true' })));
  const [c] = mtlsInbound(push, agentless, 8080, 'http');
  const common = unpackAny(c!.transportSocket!.typedConfig, TYPE.downstreamTls)!.commonTlsContext!;
  assert.deepEqual(common.tlsCertificateSdsSecretConfigs![0], { name: 'default', sdsConfig: { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' } });
  assert.deepEqual(common.combinedValidationContext!.validationContextSdsSecretConfig!.sdsConfig, { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' });
  const clusters = buildClusters(push, agentless) as Json[];
  const api = clusters.find((x) => x.name === 'outbound|80||api.shop.svc.cluster.local')!;
  const m = api.transportSocketMatches[0];
  assert.equal(m.name, 'tlsMode-istio');
  const up = m.transportSocket.typedConfig.commonTlsContext;
  assert.deepEqual(up.tlsCertificateSdsSecretConfigs[0].sdsConfig, { ads: {}, initialFetchTimeout: '0s', resourceApiVersion: 'V3' });
  assert.deepEqual(up.combinedValidationContext.defaultValidationContext.matchSubjectAltNames, [{ exact: 'spiffe://cluster.local/ns/shop/sa/api' }]);
  for (const x of clusters) encodeJson(TypeUrl.Cluster, x);
  // The same cluster for a pilot-agent proxy keeps sds-grpc.
  const classic = (buildClusters(push, webProxy(push)) as Json[]).find((x) => x.name === api.name)!;
  assert.equal(classic.transportSocketMatches[0].transportSocket.typedConfig.commonTlsContext.tlsCertificateSdsSecretConfigs[0].sdsConfig.apiConfigSource.grpcServices[0].envoyGrpc.clusterName, 'sds-grpc');
});

test('Sidecar ingress with captureMode NONE: a bound inbound listener with the port mTLS chains and a STATIC inbound cluster', () => {
  const sidecar = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Sidecar',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      ingress: [{ port: { number: 18080, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.2', captureMode: 'NONE', defaultEndpoint: '127.0.0.1:8080' }],
    },
  };
  const push = build([sidecar, pa('ns', 'shop', { mtls: { mode: 'STRICT' } })]);
  const proxy = webProxy(push);
  const ls = buildListeners(push, proxy) as Json[];
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  const bound = ls.find((l) => l.name === '127.0.0.2_18080')!;
  assert.ok(bound, `listeners: ${ls.map((l) => l.name).join(', ')}`);
  assert.deepEqual(bound.address, { socketAddress: { address: '127.0.0.2', portValue: 18080 } });
  assert.equal(bound.filterChains.length, 1);
  assert.deepEqual(bound.filterChains[0].filterChainMatch, { destinationPort: 18080, transportProtocol: 'tls' });
  assert.equal(bound.listenerFilters[0].name, 'envoy.filters.listener.tls_inspector');
  // The service instance ports are not in virtualInbound any more: the Sidecar ingress replaces them.
  assert.equal(inboundChains(ls, 8080).length, 0);
  const clusters = buildClusters(push, proxy) as Json[];
  for (const x of clusters) encodeJson(TypeUrl.Cluster, x);
  const inbound = clusters.filter((x) => String(x.name).startsWith('inbound|'));
  assert.deepEqual(inbound.map((x) => x.name), ['inbound|18080||']);
  assert.equal(inbound[0]!.type, 'STATIC');
  assert.deepEqual(inbound[0]!.loadAssignment.endpoints[0].lbEndpoints[0].endpoint.address, { socketAddress: { address: '127.0.0.1', portValue: 8080 } });
});

test('interception NONE without Sidecar ingress builds no inbound listeners (the app owns its ports)', () => {
  const push = build([]);
  const ls = buildListeners(push, webProxy(push, { INTERCEPTION_MODE: 'NONE' })) as Json[];
  assert.equal(ls.filter((l) => l.trafficDirection === 'INBOUND').length, 0);
});
