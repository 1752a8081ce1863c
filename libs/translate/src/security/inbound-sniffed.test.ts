/**
 * The inbound chains of a declared port without a protocol (sniffed), as
 * istiod builds them (getFilterChainMatchOptions with protocol AUTO): an HTTP
 * chain next to the TCP one per PeerAuthentication option, security policy on
 * both, and the inspectors each port needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext } from '@sextant/model';
import { buildListeners } from '../generator/index.js';
import { plaintextInbound } from '../listener/inbound.js';
import { parseObjects } from '../translate.js';
import { TYPE, unpackAny } from '../typed.js';

type Json = Record<string, any>;

const HCM = 'envoy.filters.network.http_connection_manager';
const objects = (extra: Json[]) => [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    // `metrics` names no protocol: sniffed. `http` is HTTP, `tcp-db` TCP, `grpc-api` gRPC.
    spec: { clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'metrics', port: 9090 }, { name: 'tcp-db', port: 5432 }, { name: 'grpc-api', port: 8443 }] },
  },
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web', 'security.istio.io/tlsMode': 'istio' } },
    spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'x' }] },
    status: { podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }], phase: 'Running' },
  },
  {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }, { name: 'tcp-db', port: 5432 }, { name: 'grpc-api', port: 8443 }],
    endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
  },
  ...extra,
];
const pa = (name: string, spec: Json) => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: 'shop' }, spec });
const ap = (name: string, spec: Json) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec });

function virtualInbound(extra: Json[], opts: { plaintext?: boolean; metadata?: Json } = {}): Json {
  const { objects: objs, issues } = parseObjects(objects(extra));
  assert.deepEqual(issues, []);
  const push = PushContext.build(objs, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const proxy = push.resolveProxy(parseProxy('sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local', { LABELS: { app: 'web' }, ...(opts.metadata ?? {}) }));
  const ls = buildListeners(push, proxy, opts.plaintext ? { inboundTls: plaintextInbound } : {}) as Json[];
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  return ls.find((l) => l.name === 'virtualInbound')!;
}
const portChains = (vi: Json, port: number): Json[] => vi.filterChains.filter((c: Json) => c.filterChainMatch?.destinationPort === port);
/** `http|tcp tls|raw_buffer alpn,alpn +tls` per chain: what matches it and what it does. */
const shape = (c: Json) => `${c.filters.some((f: Json) => f.name === HCM) ? 'http' : 'tcp'} ${c.filterChainMatch.transportProtocol ?? '-'} ${(c.filterChainMatch.applicationProtocols ?? []).join(',') || '-'}${c.transportSocket ? ' +tls' : ''}`;
const hcmOf = (c: Json) => unpackAny(c.filters.find((f: Json) => f.name === HCM).typedConfig, TYPE.hcm) as Json;

test('a sniffed port under PERMISSIVE gets HTTP chains (mTLS on Istio HTTP ALPNs, plaintext on the HTTP inspector ALPNs) next to the TCP ones, all named 0.0.0.0_<port>', () => {
  const vi = virtualInbound([]);
  const chains = portChains(vi, 9090);
  assert.deepEqual(chains.map(shape), [
    'http tls istio-http/1.0,istio-http/1.1,istio-h2 +tls',
    'http raw_buffer http/1.1,h2c',
    'tcp tls istio-peer-exchange,istio +tls',
    'tcp raw_buffer -',
    'tcp tls -',
  ]);
  assert.deepEqual([...new Set(chains.map((c) => c.name))], ['0.0.0.0_9090']);
  // The HTTP chains route to the port's inbound cluster like a declared HTTP port's; the mTLS one offers HTTP ALPNs.
  const hcm = hcmOf(chains[1]!);
  assert.equal(hcm.statPrefix, 'inbound_0.0.0.0_9090');
  assert.equal(hcm.routeConfig.virtualHosts[0].routes[0].route.cluster, 'inbound|9090||');
  assert.equal(hcm.http2ProtocolOptions, undefined, 'a sniffed port has no HTTP/2 options');
  assert.deepEqual((unpackAny(chains[0]!.transportSocket.typedConfig, TYPE.downstreamTls) as Json).commonTlsContext.alpnProtocols, ['h2', 'http/1.1']);
  assert.deepEqual((unpackAny(chains[2]!.transportSocket.typedConfig, TYPE.downstreamTls) as Json).commonTlsContext.alpnProtocols, ['istio-peer-exchange', 'h2', 'http/1.1']);
  // Declared ports keep one protocol: HTTP on 8080, TCP on 5432.
  assert.ok(portChains(vi, 8080).every((c) => shape(c).startsWith('http ')));
  assert.ok(portChains(vi, 5432).every((c) => shape(c).startsWith('tcp ')));
});

test('a sniffed port follows its PeerAuthentication mode: STRICT is mTLS only, a port-level DISABLE plaintext only', () => {
  const strict = virtualInbound([pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } })]);
  assert.deepEqual(portChains(strict, 9090).map(shape), ['http tls istio-http/1.0,istio-http/1.1,istio-h2 +tls', 'tcp tls - +tls']);
  const disabled = virtualInbound([pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'DISABLE' } } })]);
  assert.deepEqual(portChains(disabled, 9090).map(shape), ['http raw_buffer http/1.1,h2c', 'tcp raw_buffer -']);
  // Inbound TLS off (plaintextInbound): plaintext HTTP by ALPN, the rest TCP.
  assert.deepEqual(portChains(virtualInbound([], { plaintext: true }), 9090).map(shape), ['http - http/1.1,h2c', 'tcp - -']);
  // MOSN serves one chain per port: a sniffed port keeps its TCP chains there.
  assert.ok(portChains(virtualInbound([], { metadata: { SEXTANT_DATA_PLANE: 'mosn' } }), 9090).every((c) => shape(c).startsWith('tcp ')));
});

test('inspectors per port as istiod derives them: STRICT with a plaintext sniffed port turns the TLS inspector off there and the HTTP inspector on only there', () => {
  const vi = virtualInbound([pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'DISABLE' } } })]);
  assert.equal(vi.useOriginalDst, undefined, 'no use_original_dst: the original_dst listener filter restores the destination');
  const byName = Object.fromEntries(vi.listenerFilters.map((f: Json) => [f.name, f]));
  assert.deepEqual(Object.keys(byName), ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector', 'envoy.filters.listener.http_inspector']);
  const range = (p: number) => ({ destinationPortRange: { start: p, end: p + 1 } });
  // TLS everywhere (STRICT) but the DISABLE port and the blackhole chain on 15006.
  assert.deepEqual(byName['envoy.filters.listener.tls_inspector'].filterDisabled, { orMatch: { rules: [range(9090), range(15006)] } });
  // HTTP only where a chain matches plaintext HTTP ALPNs: 9090; off on every other port, the passthrough's 0 included.
  assert.deepEqual(byName['envoy.filters.listener.http_inspector'].filterDisabled, { orMatch: { rules: [0, 5432, 8080, 8443, 15006].map(range) } });
  // STRICT without a plaintext HTTP chain anywhere: no HTTP inspector at all.
  const strict = virtualInbound([pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } })]);
  assert.deepEqual(strict.listenerFilters.map((f: Json) => f.name), ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector']);
});

test('AuthorizationPolicy on a sniffed port: HTTP rules in the HTTP chains, the network RBAC filter on the TCP ones', () => {
  const vi = virtualInbound([ap('deny-admin', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: ['9090'], paths: ['/admin'] } }] }] })]);
  const chains = portChains(vi, 9090);
  for (const c of chains.filter((x) => shape(x).startsWith('http '))) {
    const rbac = hcmOf(c).httpFilters.find((f: Json) => f.name === 'envoy.filters.http.rbac');
    assert.ok(rbac, `HTTP RBAC on ${shape(c)}`);
    const text = JSON.stringify(rbac);
    assert.match(text, /"DENY"/);
    assert.match(text, /\/admin/, 'the path rule is kept on the HTTP chain');
  }
  for (const c of chains.filter((x) => shape(x).startsWith('tcp '))) {
    const names = c.filters.map((f: Json) => f.name);
    assert.deepEqual(names, ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
    // TCP cannot see the path: the DENY rule keeps its port and loses the path (stricter, as istiod).
    const text = JSON.stringify(c.filters[0]);
    assert.doesNotMatch(text, /\/admin/);
    assert.match(text, /"destinationPort":9090/);
  }
});

test('HTTP/2 and gRPC inbound chains carry empty http2_protocol_options as istiod sets them; HTTP/1 ones do not', () => {
  const vi = virtualInbound([]);
  for (const c of portChains(vi, 8443)) assert.deepEqual(hcmOf(c).http2ProtocolOptions, {});
  for (const c of portChains(vi, 8080)) assert.equal(hcmOf(c).http2ProtocolOptions, undefined);
});
