import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configKeysOf, proxyDependsOn, type ConfigKey } from './proxy-dependencies.js';
import { parseProxy } from './proxy.js';
import { PushContext } from './push-context.js';
import type { ConfigObjectLike } from './types.js';

const opts = { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1' };

function service(name: string, ns: string, annotations?: Record<string, string>): ConfigObjectLike {
  return { kind: 'Service', group: '', version: 'v1', metadata: { name, namespace: ns, annotations }, body: { spec: { clusterIP: '10.96.0.1', selector: { app: name }, ports: [{ name: 'http', port: 80 }] } } };
}
function istio(kind: string, name: string, ns: string, spec: Record<string, unknown>): ConfigObjectLike {
  return { kind, group: 'networking.istio.io', version: 'v1', metadata: { name, namespace: ns }, body: { spec } };
}
const slice = (svc: string, ns: string, ip: string): ConfigObjectLike => ({
  kind: 'EndpointSlice',
  group: 'discovery.k8s.io',
  version: 'v1',
  metadata: { name: `${svc}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
  body: { addressType: 'IPv4', ports: [{ name: 'http', port: 80 }], endpoints: [{ addresses: [ip] }] },
});

const mesh = [
  service('a', 'ns1'),
  service('b', 'ns2'),
  service('c', 'ns2', { 'networking.istio.io/exportTo': '.' }),
  service('e', 'ns4'),
  slice('e', 'ns4', '10.0.0.4'),
  istio('ServiceEntry', 'ext', 'ns1', { hosts: ['ext.example.com', 'ext2.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }),
  istio('Sidecar', 'default', 'ns1', { egress: [{ hosts: ['./*', 'istio-system/*'] }] }),
  istio('Sidecar', 'default', 'ns4', { egress: [{ hosts: ['istio-system/*'] }] }),
  istio('VirtualService', 'vs-a', 'ns1', { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }] }] }),
  istio('VirtualService', 'vs-b', 'ns2', { hosts: ['b.ns2.svc.cluster.local'], http: [{ route: [{ destination: { host: 'b' } }] }] }),
  istio('VirtualService', 'vs-gw', 'ns2', { hosts: ['b.ns2.svc.cluster.local'], gateways: ['gw'], http: [{ route: [{ destination: { host: 'b' } }] }] }),
  istio('DestinationRule', 'dr-a', 'ns1', { host: 'a' }),
  istio('DestinationRule', 'dr-b', 'ns2', { host: 'b.ns2.svc.cluster.local' }),
  istio('DestinationRule', 'dr-ext', 'ns2', { host: '*.example.com' }),
  istio('DestinationRule', 'dr-none', 'ns2', { host: '*.nowhere.org' }),
  istio('Gateway', 'gw', 'ns2', { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] }),
];
const push = PushContext.build(mesh, opts);
const proxies = {
  p1: push.resolveProxy(parseProxy('sidecar~10.0.0.1~p1.ns1~ns1.svc.cluster.local')),
  p2: push.resolveProxy(parseProxy('sidecar~10.0.0.2~p2.ns2~ns2.svc.cluster.local')),
  p3: push.resolveProxy(parseProxy('sidecar~10.0.0.3~p3.ns3~ns3.svc.cluster.local')),
  p4: push.resolveProxy(parseProxy('sidecar~10.0.0.4~p4.ns4~ns4.svc.cluster.local')),
  gw: push.resolveProxy(parseProxy('router~10.0.0.9~gw.ns2~ns2.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } })),
};
type Who = keyof typeof proxies;
const key = (kind: string, namespace: string, name: string): ConfigKey => ({ kind, namespace, name });

const table: Array<[string, ConfigKey[], Who[]]> = [
  ['nothing named: everything changed', [], ['p1', 'p2', 'p3', 'p4', 'gw']],
  ['a VirtualService exported everywhere', [key('VirtualService', 'ns1', 'vs-a')], ['p1', 'p2', 'p3', 'gw']],
  ["a VirtualService in a namespace a Sidecar's egress leaves out", [key('VirtualService', 'ns2', 'vs-b')], ['p2', 'p3', 'gw']],
  ['a VirtualService bound only to a gateway', [key('VirtualService', 'ns2', 'vs-gw')], ['gw']],
  ['a VirtualService no proxy sees (deleted, and not in the previous context)', [key('VirtualService', 'ns9', 'gone')], ['gw']],
  ['a DestinationRule for a visible service', [key('DestinationRule', 'ns2', 'dr-b')], ['p2', 'p3', 'gw']],
  ['a wildcard DestinationRule covering a ServiceEntry host', [key('DestinationRule', 'ns2', 'dr-ext')], ['p1', 'p2', 'p3', 'gw']],
  ['a DestinationRule for no visible host', [key('DestinationRule', 'ns2', 'dr-none')], ['gw']],
  ['a service private to its namespace', [key('ServiceEntry', 'ns2', 'c.ns2.svc.cluster.local')], ['p2', 'gw']],
  ["a service the proxy serves although its Sidecar hides it (inbound)", [key('ServiceEntry', 'ns4', 'e.ns4.svc.cluster.local')], ['p2', 'p3', 'p4', 'gw']],
  ['a ServiceEntry host', [key('ServiceEntry', 'ns1', 'ext.example.com')], ['p1', 'p2', 'p3', 'gw']],
  ['the Sidecar in effect: sidecars only', [key('Sidecar', 'ns1', 'default')], ['p1']],
  ['a Gateway: routers only', [key('Gateway', 'ns2', 'gw')], ['gw']],
  ['an EnvoyFilter in the root namespace', [key('EnvoyFilter', 'istio-system', 'f')], ['p1', 'p2', 'p3', 'p4', 'gw']],
  ['an EnvoyFilter in one namespace', [key('EnvoyFilter', 'ns2', 'f')], ['p2', 'gw']],
  ['a PeerAuthentication: its namespace, and the clients of its services (auto mTLS)', [key('PeerAuthentication', 'ns1', 'pa')], ['p1', 'p2', 'p3', 'gw']],
  ['a PeerAuthentication where no visible service lives', [key('PeerAuthentication', 'ns2', 'pa')], ['p2', 'p3', 'gw']],
  ['an AuthorizationPolicy in one namespace', [key('AuthorizationPolicy', 'ns3', 'ap')], ['p3', 'gw']],
  ['a kind no scope tracks', [key('WorkloadGroup', 'ns1', 'wg')], ['p1', 'p2', 'p3', 'p4', 'gw']],
  ['several keys: any one is enough', [key('Gateway', 'ns2', 'gw'), key('Sidecar', 'ns1', 'default')], ['p1', 'gw']],
];

for (const [what, changed, expected] of table) {
  test(`proxy dependencies: ${what}`, () => {
    const got = (Object.keys(proxies) as Who[]).filter((w) => proxyDependsOn(push, proxies[w], changed));
    assert.deepEqual(got, expected);
  });
}

test('proxy dependencies: what a proxy saw before the change counts (a removed VirtualService, a Sidecar no longer selecting it)', () => {
  const previous = PushContext.build([...mesh, istio('VirtualService', 'old', 'ns3', { hosts: ['a.ns1.svc.cluster.local'] })], opts);
  const old = [key('VirtualService', 'ns3', 'old')];
  assert.equal(proxyDependsOn(push, proxies.p3, old), false);
  assert.equal(proxyDependsOn(push, proxies.p3, old, previous), true);
  assert.equal(proxyDependsOn(push, proxies.p2, old, previous), true, 'seen from ns2 too');
  assert.equal(proxyDependsOn(push, proxies.p1, old, previous), false, "outside p1's Sidecar egress");
  const withoutSidecar = PushContext.build(mesh.filter((o) => !(o.kind === 'Sidecar' && o.metadata.namespace === 'ns1')), opts);
  const hidden = [key('VirtualService', 'ns2', 'vs-b')];
  assert.equal(proxyDependsOn(push, proxies.p1, hidden), false);
  assert.equal(proxyDependsOn(withoutSidecar, proxies.p1, hidden), true, 'without the Sidecar p1 sees ns2');
  assert.equal(proxyDependsOn(push, proxies.p1, hidden, withoutSidecar), true);
});

test('configKeysOf: Services and ServiceEntries become one key per hostname, in either context; other kinds pass through', () => {
  const next = PushContext.build(mesh.filter((o) => o.kind !== 'ServiceEntry'), opts);
  const keys = configKeysOf(
    [
      { kind: 'Service', namespace: 'ns1', name: 'a' },
      { kind: 'ServiceEntry', namespace: 'ns1', name: 'ext' },
      { kind: 'VirtualService', namespace: 'ns1', name: 'vs-a' },
    ],
    [next, push],
    ['ns4/e.ns4.svc.cluster.local'],
  );
  assert.deepEqual(keys, [
    key('ServiceEntry', 'ns1', 'a.ns1.svc.cluster.local'),
    key('ServiceEntry', 'ns1', 'ext.example.com'),
    key('ServiceEntry', 'ns1', 'ext2.example.com'),
    key('VirtualService', 'ns1', 'vs-a'),
    key('ServiceEntry', 'ns4', 'e.ns4.svc.cluster.local'),
  ]);
});
