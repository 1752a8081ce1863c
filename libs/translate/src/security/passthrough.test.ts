import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext } from '@sextant/model';
import { buildListeners } from '../generator/index.js';
import { plaintextInbound } from '../listener/inbound.js';
import { parseObjects } from '../translate.js';

type Json = Record<string, any>;

const pa = (name: string, ns: string, spec: Json) => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: ns }, spec });

function inbound(extra: Json[], opts: { plaintext?: boolean } = {}) {
  const raw = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: 'x' }] }, status: { podIP: '10.1.0.5', phase: 'Running' } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
    },
    ...extra,
  ];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const proxy = push.resolveProxy(parseProxy('sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local', { LABELS: { app: 'web' } }));
  const ls = buildListeners(push, proxy, opts.plaintext ? { inboundTls: plaintextInbound } : {});
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  const vi = ls.find((l) => l.name === 'virtualInbound')!;
  return (vi.filterChains as Json[]).filter((c) => c.name === 'virtualInbound' || c.name === 'virtualInbound-catchall-http');
}
const shape = (chains: Json[]) =>
  chains.map((c) => [c.name, c.filterChainMatch?.destinationPort ?? 0, c.filterChainMatch?.transportProtocol ?? '', (c.filterChainMatch?.applicationProtocols ?? []).join(','), c.transportSocket ? 'mtls' : '']);

test('passthrough chains follow PeerAuthentication: PERMISSIVE by default', () => {
  assert.deepEqual(shape(inbound([])), [
    ['virtualInbound-catchall-http', 0, 'tls', 'istio-http/1.0,istio-http/1.1,istio-h2', 'mtls'],
    ['virtualInbound-catchall-http', 0, 'raw_buffer', 'http/1.1,h2c', ''],
    ['virtualInbound', 0, 'tls', 'istio-peer-exchange,istio', 'mtls'],
    ['virtualInbound', 0, 'raw_buffer', '', ''],
    ['virtualInbound', 0, 'tls', '', ''],
  ]);
});

test('STRICT: mTLS only (plaintext matches no chain); DISABLE: plaintext only', () => {
  assert.deepEqual(shape(inbound([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } })])), [
    ['virtualInbound-catchall-http', 0, 'tls', 'istio-http/1.0,istio-http/1.1,istio-h2', 'mtls'],
    ['virtualInbound', 0, 'tls', '', 'mtls'],
  ]);
  assert.deepEqual(shape(inbound([pa('default', 'shop', { mtls: { mode: 'DISABLE' } })])), [
    ['virtualInbound-catchall-http', 0, 'raw_buffer', 'http/1.1,h2c', ''],
    ['virtualInbound', 0, 'raw_buffer', '', ''],
  ]);
});

test('port-level modes of undeclared ports get their own chains; declared ports keep theirs', () => {
  const chains = inbound([
    pa('default', 'shop', { mtls: { mode: 'STRICT' } }),
    pa('web', 'shop', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { '9999': { mode: 'DISABLE' }, '8080': { mode: 'PERMISSIVE' } } }),
  ]);
  assert.deepEqual(shape(chains), [
    ['virtualInbound-catchall-http', 0, 'tls', 'istio-http/1.0,istio-http/1.1,istio-h2', 'mtls'],
    ['virtualInbound', 0, 'tls', '', 'mtls'],
    ['virtualInbound-catchall-http', 9999, 'raw_buffer', 'http/1.1,h2c', ''],
    ['virtualInbound', 9999, 'raw_buffer', '', ''],
  ]);
});

test('with inbound TLS off (plaintextInbound) the catch-alls stay plaintext', () => {
  assert.deepEqual(shape(inbound([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } })], { plaintext: true })), [
    ['virtualInbound-catchall-http', 0, '', 'http/1.1,h2c', ''],
    ['virtualInbound', 0, '', '', ''],
  ]);
});
