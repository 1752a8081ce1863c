/**
 * What istiod sets on gateway listeners, the istio.alpn filter (gated on the
 * proxy's extensions) and DNS clusters (gateway.go, listener.go,
 * listener_builder.go, cluster_builder.go of the pinned istiod).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeToJson, encodeJson } from '@sextant/envoy';
import { parseProxy, type ProxyView } from '@sextant/model';
import { endpointSlice, istio, pushContext, service } from '@sextant/testing/push';
import { buildClusters, buildEndpoints, generateForProxy } from '../generator/index.js';
import { ISTIO_TYPE } from '../telemetry/index.js';

type Json = Record<string, any>;

const HCM = 'envoy.filters.network.http_connection_manager';
const web = service('web', 'default', '10.96.0.40', [['http', 8000]]);
const gw = istio('Gateway', 'istio-system', 'ingress', {
  selector: { istio: 'ingressgateway' },
  servers: [
    { port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] },
    { port: { number: 8443, name: 'https', protocol: 'HTTPS' }, hosts: ['web.example.com'], tls: { mode: 'SIMPLE', credentialNames: ['web-rsa', 'web-ec'] } },
    { port: { number: 9443, name: 'tls', protocol: 'TLS' }, hosts: ['db.example.com'], tls: { mode: 'MUTUAL', credentialName: 'db-cert', subjectAltNames: ['client.example.com'] } },
  ],
});
const vs = istio('VirtualService', 'default', 'web', {
  hosts: ['web.example.com', 'db.example.com'],
  gateways: ['istio-system/ingress'],
  http: [{ route: [{ destination: { host: 'web' } }] }],
  tcp: [{ match: [{ port: 9443 }], route: [{ destination: { host: 'web', port: { number: 8000 } } }] }],
});
const dnsEntry = istio('ServiceEntry', 'default', 'payments', {
  hosts: ['api.payments.example.com'],
  location: 'MESH_EXTERNAL',
  resolution: 'DNS',
  ports: [
    { number: 443, name: 'tls', protocol: 'TLS' },
    { number: 80, name: 'http', protocol: 'HTTP' },
  ],
});
const dnsRule = istio('DestinationRule', 'default', 'payments', {
  host: 'api.payments.example.com',
  trafficPolicy: { portLevelSettings: [{ port: { number: 443 }, tls: { mode: 'SIMPLE', sni: 'api.payments.example.com' } }] },
  subsets: [{ name: 'plain', trafficPolicy: { portLevelSettings: [{ port: { number: 443 }, tls: { mode: 'DISABLE' } }] } }],
});

const node = (type: 'router' | 'sidecar', metadata: Json, extensions?: Array<{ name: string; typeUrls?: string[] }>): ProxyView =>
  parseProxy(type === 'router' ? 'router~10.0.0.20~istio-ingressgateway-abc.istio-system~istio-system.svc.cluster.local' : 'sidecar~10.0.0.9~app.default~default.svc.cluster.local', metadata, extensions ? { extensions } : {});
const routerMeta = { LABELS: { istio: 'ingressgateway' }, NAMESPACE: 'istio-system' };

const hcmOf = (chain: Json): Json => chain.filters.find((f: Json) => f.name === HCM).typedConfig;
const listener = (ls: Json[], name: string): Json => {
  const l = ls.find((x) => x.name === name);
  assert.ok(l, `listener ${name} in ${ls.map((x) => x.name).join(', ')}`);
  return l;
};

test('gateway HCMs: Server istio-envoy, empty HTTP/1 options, mesh path normalisation; HTTP10 and proxyHeaders change them', () => {
  const push = pushContext([web, gw, vs], { meshConfig: { pathNormalization: { normalization: 'MERGE_SLASHES' } } });
  const ls = generateForProxy(push, push.resolveProxy(node('router', routerMeta)), 'lds') as Json[];
  for (const name of ['0.0.0.0_8080', '0.0.0.0_8443']) {
    const h = hcmOf(listener(ls, name).filterChains[0]);
    assert.equal(h.serverName, 'istio-envoy', name);
    assert.deepEqual(h.httpProtocolOptions, {}, name);
    assert.equal(h.mergeSlashes, true, `${name}: meshConfig pathNormalization applies to gateways`);
    assert.equal(h.serverHeaderTransformation, undefined);
  }
  const http10 = generateForProxy(push, push.resolveProxy(node('router', { ...routerMeta, HTTP10: '1' })), 'lds') as Json[];
  assert.deepEqual(hcmOf(listener(http10, '0.0.0.0_8080').filterChains[0]).httpProtocolOptions, { acceptHttp10: true });
  const renamed = generateForProxy(push, push.resolveProxy(node('router', { ...routerMeta, PROXY_CONFIG: { proxyHeaders: { server: { value: 'edge' }, requestId: { disabled: true }, xForwardedPort: { enabled: true } } } })), 'lds') as Json[];
  const r = hcmOf(listener(renamed, '0.0.0.0_8080').filterChains[0]);
  assert.equal(r.serverName, 'edge');
  assert.equal(r.generateRequestId, false);
  assert.equal(r.appendXForwardedPort, true);
  const off = generateForProxy(push, push.resolveProxy(node('router', { ...routerMeta, PROXY_CONFIG: JSON.stringify({ proxyHeaders: { server: { disabled: true } } }) })), 'lds') as Json[];
  const o = hcmOf(listener(off, '0.0.0.0_8080').filterChains[0]);
  assert.equal(o.serverName, undefined);
  assert.equal(o.serverHeaderTransformation, 'PASS_THROUGH');
});

test('gateway listeners: one accept per socket event, 15 s handshake bound on every chain, 512-byte TLS inspector, credential SDS as istiod', () => {
  const push = pushContext([web, gw, vs]);
  const ls = generateForProxy(push, push.resolveProxy(node('router', routerMeta)), 'lds') as Json[];
  for (const l of ls) {
    assert.equal(l.maxConnectionsToAcceptPerSocketEvent, 1, l.name);
    for (const c of l.filterChains) assert.equal(c.transportSocketConnectTimeout, '15s', l.name);
    encodeJson('envoy.config.listener.v3.Listener', l);
  }
  assert.equal(listener(ls, '0.0.0.0_8080').listenerFilters, undefined, 'plaintext HTTP needs no TLS inspector');
  const https = listener(ls, '0.0.0.0_8443');
  assert.deepEqual(https.listenerFilters, [{ name: 'envoy.filters.listener.tls_inspector', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', initialReadBufferSize: 512 } }]);
  const ctx = https.filterChains[0].transportSocket.typedConfig;
  // Both certificates of credentialNames; ADS without an initial fetch timeout of 0 (istiod's SDSAdsConfig).
  assert.deepEqual(ctx.commonTlsContext.tlsCertificateSdsSecretConfigs, [
    { name: 'kubernetes://web-rsa', sdsConfig: { ads: {}, resourceApiVersion: 'V3' } },
    { name: 'kubernetes://web-ec', sdsConfig: { ads: {}, resourceApiVersion: 'V3' } },
  ]);
  const tls = listener(ls, '0.0.0.0_9443').filterChains[0].transportSocket.typedConfig;
  assert.deepEqual(tls.commonTlsContext.alpnProtocols, ['h2', 'http/1.1'], 'istiod offers HTTP ALPN on terminated TLS servers too');
  assert.deepEqual(tls.commonTlsContext.combinedValidationContext, {
    defaultValidationContext: { matchSubjectAltNames: [{ exact: 'client.example.com' }] },
    validationContextSdsSecretConfig: { name: 'kubernetes://db-cert-cacert', sdsConfig: { ads: {}, resourceApiVersion: 'V3' } },
  });
  assert.equal(tls.requireClientCertificate, true);
});

test('istio.alpn: on outbound and gateway HCMs of proxies that list it in node.extensions, never on stock Envoy or inbound', () => {
  const push = pushContext([web, gw, vs]);
  const istioProxy = [{ name: 'istio.alpn', typeUrls: [ISTIO_TYPE.alpn] }, { name: 'envoy.filters.http.router' }];
  const stock = [{ name: 'envoy.filters.http.router', typeUrls: ['envoy.extensions.filters.http.router.v3.Router'] }];
  const filtersOf = (ls: Json[], name: string) => hcmOf(listener(ls, name).filterChains.find((c: Json) => c.filters.some((f: Json) => f.name === HCM))).httpFilters.map((f: Json) => f.name);

  const gwIstio = generateForProxy(push, push.resolveProxy(node('router', routerMeta, istioProxy)), 'lds') as Json[];
  const names = filtersOf(gwIstio, '0.0.0.0_8080');
  assert.ok(names.includes('istio.alpn'), names.join());
  assert.ok(names.indexOf('istio.alpn') < names.indexOf('envoy.filters.http.fault'), 'before fault, as istiod orders it');
  const alpn = hcmOf(listener(gwIstio, '0.0.0.0_8080').filterChains[0]).httpFilters.find((f: Json) => f.name === 'istio.alpn');
  // Encodes with Istio's FilterConfig and reads back the same.
  const back = decodeToJson(alpn.typedConfig['@type'], encodeJson(alpn.typedConfig['@type'], { ...alpn.typedConfig, '@type': undefined })) as Json;
  assert.deepEqual(back.alpnOverride, [
    { alpnOverride: ['istio-http/1.0', 'istio', 'http/1.0'] },
    { upstreamProtocol: 'HTTP11', alpnOverride: ['istio-http/1.1', 'istio', 'http/1.1'] },
    { upstreamProtocol: 'HTTP2', alpnOverride: ['istio-h2', 'istio', 'h2'] },
  ]);

  const gwStock = generateForProxy(push, push.resolveProxy(node('router', routerMeta, stock)), 'lds') as Json[];
  assert.ok(!filtersOf(gwStock, '0.0.0.0_8080').includes('istio.alpn'), 'stock Envoy would reject the listener');

  const sc = generateForProxy(push, push.resolveProxy(node('sidecar', { ISTIO_VERSION: '1.29.0' }, istioProxy)), 'lds') as Json[];
  const outbound = sc.filter((l) => l.trafficDirection !== 'INBOUND' && l.name !== 'virtualInbound');
  assert.ok(outbound.some((l) => l.filterChains.some((c: Json) => c.filters.some((f: Json) => f.name === HCM && f.typedConfig.httpFilters.some((h: Json) => h.name === 'istio.alpn')))), 'outbound HCMs get it');
  for (const l of sc.filter((x) => x.name === 'virtualInbound'))
    for (const c of l.filterChains) for (const f of c.filters) if (f.name === HCM) assert.ok(!f.typedConfig.httpFilters.some((h: Json) => h.name === 'istio.alpn'), 'inbound HCMs never do');
});

test('DNS clusters: c-ares udp_max_queries, jitter, refresh rate from the mesh, ServiceEntry endpoints named after the entry, alpn_override with SIMPLE TLS', () => {
  const push = pushContext([dnsEntry, dnsRule], { meshConfig: { dnsRefreshRate: '30s' } });
  const cs = buildClusters(push, push.resolveProxy(node('sidecar', {}))) as Json[];
  const tlsCluster = cs.find((c) => c.name === 'outbound|443||api.payments.example.com')!;
  const httpCluster = cs.find((c) => c.name === 'outbound|80||api.payments.example.com')!;
  for (const c of [tlsCluster, httpCluster]) {
    assert.equal(c.type, 'STRICT_DNS');
    assert.deepEqual(c.typedDnsResolverConfig, { name: 'envoy.network.dns_resolver.cares', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig', udpMaxQueries: 100 } });
    assert.equal(c.dnsJitter, '0.100s');
    assert.equal(c.dnsRefreshRate, '30s');
    const ep = c.loadAssignment.endpoints[0].lbEndpoints[0];
    assert.equal(ep.healthStatus, undefined, 'ServiceEntry endpoints carry no health status');
    assert.deepEqual(ep.metadata, { filterMetadata: { istio: { workload: 'payments;default;payments;;Kubernetes' } } });
    // The field survives encoding (the bundled Cluster proto is patched with dns_jitter).
    const back = decodeToJson('envoy.config.cluster.v3.Cluster', encodeJson('envoy.config.cluster.v3.Cluster', c)) as Json;
    assert.equal(back.dnsJitter, '0.100s');
    assert.equal(back.typedDnsResolverConfig.typedConfig.udpMaxQueries, 100);
  }
  assert.equal(tlsCluster.metadata.filterMetadata.istio.alpn_override, 'false', 'SIMPLE TLS: the istio.alpn filter keeps the cluster ALPN');
  assert.equal(httpCluster.metadata.filterMetadata.istio.alpn_override, undefined, 'no TLS on port 80');
  const plain = cs.find((c) => c.name === 'outbound|443|plain|api.payments.example.com')!.metadata.filterMetadata.istio;
  assert.equal(plain.alpn_override, undefined, 'the subset turns TLS off');
  assert.equal(plain.external, undefined, 'istiod marks only the default cluster external');
  assert.equal(tlsCluster.metadata.filterMetadata.istio.external, true);
});

test('DNS ServiceEntry inline endpoints are named <entry>-<index> in the load assignment, as istiod names them', () => {
  const se = istio('ServiceEntry', 'default', 'edges', { hosts: ['api.edge.example.net'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], endpoints: [{ address: 'edge-1.example.net' }, { address: 'edge-2.example.net', labels: { 'service.istio.io/workload-name': 'edge-two' } }] });
  const push = pushContext([se]);
  const c = (buildClusters(push, push.resolveProxy(node('sidecar', {}))) as Json[]).find((x) => x.name === 'outbound|443||api.edge.example.net')!;
  const names = c.loadAssignment.endpoints.flatMap((g: Json) => g.lbEndpoints.map((e: Json) => [e.endpoint.address.socketAddress.address, e.metadata.filterMetadata.istio.workload]));
  assert.deepEqual(names, [['edge-1.example.net', 'edges-0;default;edges-0;;Kubernetes'], ['edge-2.example.net', 'edge-two;default;edge-two;;Kubernetes']]);
});

test('EDS: WorkloadEntry and ServiceEntry endpoints carry no health status (istiod gives them none); Kubernetes endpoints say HEALTHY', () => {
  const vms = istio('ServiceEntry', 'default', 'vms', { hosts: ['vms.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.240.0.11' }] });
  const push = pushContext([web, endpointSlice('web', 'default', [['http', 8000]], [{ ip: '10.1.0.5' }]), vms]);
  const [k8s, se] = buildEndpoints(push, push.resolveProxy(node('sidecar', {})), ['outbound|8000||web.default.svc.cluster.local', 'outbound|8080||vms.internal']) as Json[];
  assert.equal(k8s!.endpoints[0].lbEndpoints[0].healthStatus, 'HEALTHY');
  assert.equal(se!.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress.address, '10.240.0.11');
  assert.equal(se!.endpoints[0].lbEndpoints[0].healthStatus, undefined);
});
