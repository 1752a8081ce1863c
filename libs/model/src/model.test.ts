import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigObjectLike } from './types.js';
import { splitNodeId } from '@sextant/api';
import { parseProxy, ProxyParseError } from './proxy.js';
import { protocolForKubePort } from './protocol.js';
import { PushContext } from './push-context.js';
import { edsClustersFor, pushScope } from './push-scope.js';
import { EndpointIndex } from './endpoint-index.js';

const opts = { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1' };

function svc(name: string, ns: string, ip: string, ports: Array<{ name: string; port: number }>, annotations?: Record<string, string>): ConfigObjectLike {
  return { kind: 'Service', group: '', version: 'v1', metadata: { name, namespace: ns, annotations }, body: { spec: { clusterIP: ip, selector: { app: name }, ports } } };
}
function slice(svcName: string, ns: string, eps: Array<[string, string]>, port = 80, portName = 'http'): ConfigObjectLike {
  return {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    metadata: { name: `${svcName}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svcName } },
    body: { addressType: 'IPv4', ports: [{ name: portName, port }], endpoints: eps.map(([ip, pod]) => ({ addresses: [ip], targetRef: { kind: 'Pod', name: pod } })) },
  };
}
function pod(name: string, ns: string, ip: string, labels: Record<string, string>, node?: string): ConfigObjectLike {
  return { kind: 'Pod', group: '', version: 'v1', metadata: { name, namespace: ns, labels }, body: { spec: { serviceAccountName: 'sa-' + name, nodeName: node }, status: { podIP: ip } } };
}
function istio(kind: string, name: string, ns: string, spec: Record<string, unknown>): ConfigObjectLike {
  return { kind, group: 'networking.istio.io', version: 'v1', metadata: { name, namespace: ns }, body: { spec } };
}

test('parseProxy reads node ID and ISTIO_META fields', () => {
  const p = parseProxy('sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local', {
    LABELS: { app: 'reviews' },
    INSTANCE_IPS: '10.0.0.1,fd00::1',
    ISTIO_META_CLUSTER_ID: 'c1',
    GENERATOR: 'grpc',
    INTERCEPTION_MODE: 'TPROXY',
    ISTIO_VERSION: '1.24.0',
  });
  assert.equal(p.type, 'sidecar');
  assert.deepEqual(p.ipAddresses, ['10.0.0.1', 'fd00::1']);
  assert.equal(p.namespace, 'default');
  assert.equal(p.id, 'reviews-v1-abc.default');
  assert.equal(p.clusterId, 'c1');
  assert.equal(p.generator, 'grpc');
  assert.equal(p.interceptionMode, 'TPROXY');
  assert.deepEqual(p.labels, { app: 'reviews' });
  const r = parseProxy('router~10.0.0.2~gw.istio-system~istio-system.svc.cluster.local');
  assert.equal(r.type, 'router');
  assert.equal(r.namespace, 'istio-system');
});

test('parseProxy rejects bad node IDs and metadata with the reason', () => {
  assert.throws(() => parseProxy('sidecar~10.0.0.1~x'), (e: Error) => e instanceof ProxyParseError && /expected 4 parts/.test(e.message));
  assert.throws(() => parseProxy('waypoint~10.0.0.1~x.ns~ns.svc.cluster.local'), /unknown proxy type "waypoint"/);
  assert.throws(() => parseProxy('sidecar~999.1.1.1~x.ns~ns.svc.cluster.local'), /not an IP address/);
  assert.throws(() => parseProxy('sidecar~10.0.0.1~x.ns~ns.svc.cluster.local', { LABELS: 'app=x' }), /metadata\.LABELS/);
  assert.throws(() => parseProxy('sidecar~10.0.0.1~x.ns~ns.svc.cluster.local', { INTERCEPTION_MODE: 'MAGIC' }), /INTERCEPTION_MODE/);
});

test('protocol from appProtocol, then port name prefix, else sniffing', () => {
  assert.equal(protocolForKubePort('http-web'), 'HTTP');
  assert.equal(protocolForKubePort('grpc-web'), 'GRPC');
  assert.equal(protocolForKubePort('http2'), 'HTTP2');
  assert.equal(protocolForKubePort('tcp-db'), 'TCP');
  assert.equal(protocolForKubePort('mongo'), 'Mongo');
  assert.equal(protocolForKubePort('web'), 'Unsupported');
  assert.equal(protocolForKubePort('web', 'kubernetes.io/h2c'), 'HTTP2');
  assert.equal(protocolForKubePort('tcp', 'grpc-web'), 'GRPC-Web');
  assert.equal(protocolForKubePort('http', null, 'UDP'), 'UDP');
});

test('endpoints carry pod labels, locality, identity and tlsMode; subsets filter by labels', () => {
  const node: ConfigObjectLike = { kind: 'Node', group: '', version: 'v1', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': 'z1' } }, body: {} };
  const push = PushContext.build(
    [svc('reviews', 'default', '10.96.0.1', [{ name: 'http', port: 9080 }]), slice('reviews', 'default', [['10.0.0.1', 'r1'], ['10.0.0.2', 'r2']], 9080), pod('r1', 'default', '10.0.0.1', { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio' }, 'n1'), pod('r2', 'default', '10.0.0.2', { app: 'reviews', version: 'v2' }), node],
    opts,
  );
  const s = push.serviceByHostname('reviews.default.svc.cluster.local')!;
  assert.equal(s.clusterVIP, '10.96.0.1');
  const all = push.endpoints(s, s.ports[0]!);
  assert.equal(all.length, 2);
  const v1 = push.endpoints(s, s.ports[0]!, { version: 'v1' });
  assert.deepEqual(v1.map((e) => [e.address, e.tlsMode, e.locality.region, e.serviceAccount]), [['10.0.0.1', 'istio', 'r1', 'spiffe://cluster.local/ns/default/sa/sa-r1']]);
  assert.equal(push.endpoints(s, s.ports[0]!, { version: 'v2' })[0]!.tlsMode, 'disabled');
  // The proxy finds its own labels and inbound instances by IP.
  const proxy = push.resolveProxy(parseProxy('sidecar~10.0.0.1~r1.default~default.svc.cluster.local'));
  assert.equal(proxy.labels.version, 'v1');
  assert.deepEqual(proxy.locality, { region: 'r1', zone: 'z1', subzone: '' });
  assert.deepEqual(push.serviceInstancesForProxy(proxy).map((i) => `${i.service.hostname}:${i.endpoint.endpointPort}`), ['reviews.default.svc.cluster.local:9080']);
});

/** a in ns1, b in ns2 exported to its own namespace only, c in ns3; ns1's Sidecar admits ./* and ns2/*. */
const exportAndSidecar = () => [
  svc('a', 'ns1', '10.96.0.1', [{ name: 'http', port: 80 }]),
  svc('b', 'ns2', '10.96.0.2', [{ name: 'http', port: 80 }], { 'networking.istio.io/exportTo': '.' }),
  svc('c', 'ns3', '10.96.0.3', [{ name: 'http', port: 80 }]),
  istio('Sidecar', 'default', 'ns1', { egress: [{ hosts: ['./*', 'ns2/*'] }] }),
];

test('exportTo and Sidecar egress decide what a proxy sees', () => {
  const push = PushContext.build(exportAndSidecar(), opts);
  const p1 = parseProxy('sidecar~10.0.0.9~x.ns1~ns1.svc.cluster.local');
  assert.deepEqual(push.servicesForProxy(p1).map((s) => s.hostname), ['a.ns1.svc.cluster.local']);
  const p4 = parseProxy('sidecar~10.0.0.8~x.ns4~ns4.svc.cluster.local');
  assert.deepEqual(push.servicesForProxy(p4).map((s) => s.hostname), ['a.ns1.svc.cluster.local', 'c.ns3.svc.cluster.local']);
  const p2 = parseProxy('sidecar~10.0.0.7~x.ns2~ns2.svc.cluster.local');
  assert.ok(push.sidecarScope(p2).hasService('b.ns2.svc.cluster.local'));
});

test('sidecar scopes that see the same services share one list (what translation keeps per list is built once per push)', () => {
  const push = PushContext.build(exportAndSidecar(), opts);
  const list = (ns: string) => push.sidecarScope(parseProxy(`sidecar~10.0.0.9~x.${ns}~${ns}.svc.cluster.local`)).services;
  assert.equal(list('ns3'), list('ns4'));
  assert.equal(list('ns4'), list('ns5'));
  assert.deepEqual(list('ns3').map((s) => s.hostname), ['a.ns1.svc.cluster.local', 'c.ns3.svc.cluster.local']);
  // Other contents, other lists: ns2 also sees b, the Sidecar limits ns1 to a.
  assert.deepEqual(list('ns2').map((s) => s.hostname), ['a.ns1.svc.cluster.local', 'b.ns2.svc.cluster.local', 'c.ns3.svc.cluster.local']);
  assert.deepEqual(list('ns1').map((s) => s.hostname), ['a.ns1.svc.cluster.local']);
  assert.notEqual(list('ns1'), list('ns3'));
});

test('services by namespace and by namespace/hostname key: Kubernetes Services and ServiceEntry hosts, in allServices() order', () => {
  const push = PushContext.build(
    [
      svc('z', 'ns1', '10.96.0.3', [{ name: 'http', port: 80 }]),
      svc('a', 'ns1', '10.96.0.1', [{ name: 'http', port: 80 }]),
      svc('a', 'ns2', '10.96.0.2', [{ name: 'http', port: 80 }]),
      istio('ServiceEntry', 'ext', 'ns2', { hosts: ['a.ns1.svc.cluster.local', 'ext.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }),
    ],
    opts,
  );
  assert.deepEqual(push.servicesInNamespace('ns1').map((s) => s.hostname), ['a.ns1.svc.cluster.local', 'z.ns1.svc.cluster.local']);
  // The ServiceEntry's host of ns1's Service is its own service in ns2.
  assert.deepEqual(push.servicesInNamespace('ns2').map((s) => s.hostname), ['a.ns1.svc.cluster.local', 'a.ns2.svc.cluster.local', 'ext.example.com']);
  assert.deepEqual(push.servicesInNamespace('ns9'), []);
  assert.equal(push.serviceByKey('ns1/a.ns1.svc.cluster.local')?.attributes.serviceRegistry, 'Kubernetes');
  assert.equal(push.serviceByKey('ns2/a.ns1.svc.cluster.local')?.attributes.serviceRegistry, 'External');
  assert.equal(push.serviceByKey('ns2/ext.example.com')?.resolution, 'DNSLB'); // Istio's model name for DNS resolution
  assert.equal(push.serviceByKey('ns1/ext.example.com'), undefined);
  assert.equal(push.serviceByKey('ns1/nope.ns1.svc.cluster.local'), undefined);
  for (const s of push.allServices()) assert.equal(push.serviceByKey(`${s.namespace}/${s.hostname}`), s);
});

test('a Sidecar with workloadSelector.labels applies to the pods it selects; ServiceEntry workloadSelector.labels picks pods', () => {
  const objects = [
    svc('a', 'ns1', '10.96.0.1', [{ name: 'http', port: 80 }]),
    svc('b', 'ns1', '10.96.0.2', [{ name: 'http', port: 80 }]),
    pod('ratings-1', 'ns1', '10.0.0.5', { app: 'ratings' }),
    pod('other-1', 'ns1', '10.0.0.6', { app: 'other' }),
    istio('Sidecar', 'ratings', 'ns1', { workloadSelector: { labels: { app: 'ratings' } }, egress: [{ hosts: ['./a.ns1.svc.cluster.local'] }] }),
    istio('ServiceEntry', 'vm', 'ns1', { hosts: ['vm.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', workloadSelector: { labels: { app: 'ratings' } } }),
  ];
  const push = PushContext.build(objects, opts);
  const ratings = push.resolveProxy(parseProxy('sidecar~10.0.0.5~ratings-1.ns1~ns1.svc.cluster.local'));
  assert.equal(push.sidecarScope(ratings).sidecar?.name, 'ratings');
  assert.deepEqual(push.servicesForProxy(ratings).map((s) => s.hostname), ['a.ns1.svc.cluster.local']);
  const other = push.resolveProxy(parseProxy('sidecar~10.0.0.6~other-1.ns1~ns1.svc.cluster.local'));
  assert.equal(push.sidecarScope(other).sidecar, undefined);
  const vm = push.serviceByHostname('vm.example.com', 'ns1')!;
  assert.deepEqual(push.endpoints(vm, vm.ports[0]!).map((e) => e.address), ['10.0.0.5']);
});

test('DestinationRules for one host merge: first trafficPolicy wins, subsets add up, duplicates are reported', () => {
  const push = PushContext.build(
    [
      svc('r', 'default', '10.96.0.1', [{ name: 'http', port: 80 }]),
      { ...istio('DestinationRule', 'one', 'default', { host: 'r', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } }, subsets: [{ name: 'v1', labels: { v: '1' } }] }), metadata: { name: 'one', namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' } },
      { ...istio('DestinationRule', 'two', 'default', { host: 'r', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } }, subsets: [{ name: 'v2', labels: { v: '2' } }, { name: 'v1' }] }), metadata: { name: 'two', namespace: 'default', creationTimestamp: '2024-01-02T00:00:00Z' } },
    ],
    opts,
  );
  const dr = push.destinationRule(parseProxy('sidecar~10.0.0.9~x.default~default.svc.cluster.local'), 'r.default.svc.cluster.local')!;
  assert.equal(dr.spec.trafficPolicy.loadBalancer.simple, 'RANDOM');
  assert.deepEqual(dr.spec.subsets.map((s: { name: string }) => s.name), ['v1', 'v2']);
  assert.ok(push.issues.some((i) => i.name === 'two' && i.field === 'spec.subsets[1].name' && /already defined/.test(i.reason)));
});

test('pushScope: a ServiceEntry change that only moves EDS endpoints is EDS-only for its clusters; config changes are full', () => {
  const se = (addresses: string[]) =>
    istio('ServiceEntry', 'ext', 'default', { hosts: ['ext.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: addresses.map((address) => ({ address, labels: { v: '1' } })) });
  const base = [
    istio('DestinationRule', 'ext', 'default', { host: 'ext.example.com', subsets: [{ name: 'v1', labels: { v: '1' } }] }),
    istio('DestinationRule', 'other', 'default', { host: 'other.example.com', subsets: [{ name: 'zz', labels: { v: '1' } }] }),
  ];
  const index = new EndpointIndex({ trustDomain: 'cluster.local' });
  const before = PushContext.build([...base, se(['10.0.0.1'])], { ...opts, endpointIndex: index });
  const after = PushContext.build([...base, se(['10.0.0.1', '10.0.0.2'])], { ...opts, version: 'v2', endpointIndex: index });
  const s = pushScope(before, after, [{ kind: 'ServiceEntry', namespace: 'default', name: 'ext' }], after.endpointUpdate);
  assert.equal(s.full, false);
  assert.deepEqual([...s.edsClusters!].sort(), ['outbound|80|v1|ext.example.com', 'outbound|80||ext.example.com']);
  assert.equal(s.affects(parseProxy('sidecar~10.0.0.9~x.default~default.svc.cluster.local')), true);
  assert.equal(pushScope(before, after, [{ kind: 'VirtualService', namespace: 'default', name: 'r' }], after.endpointUpdate).full, true);
  const changedPorts = PushContext.build([svc('r', 'default', '10.96.0.1', [{ name: 'http', port: 81 }])], opts);
  assert.equal(pushScope(before, changedPorts, [{ kind: 'ServiceEntry', namespace: 'default', name: 'x' }], changedPorts.endpointUpdate).full, true);
});

test('edsClustersFor: the default cluster of each port and one per subset of every DestinationRule whose host matches', () => {
  const push = PushContext.build(
    [
      svc('r', 'default', '10.96.0.1', [{ name: 'http', port: 80 }, { name: 'grpc', port: 9090 }]),
      istio('ServiceEntry', 'wild', 'default', { hosts: ['*.wild.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'STATIC', endpoints: [{ address: '10.0.0.1' }] }),
      // A short host resolves in the rule's namespace; another namespace's rule counts whatever it exports to.
      istio('DestinationRule', 'r', 'default', { host: 'r', subsets: [{ name: 'v1', labels: { v: '1' } }] }),
      istio('DestinationRule', 'r-other', 'other', { host: 'r.default.svc.cluster.local', exportTo: ['.'], subsets: [{ name: 'v2', labels: { v: '2' } }] }),
      istio('DestinationRule', 'r-selected', 'default', { host: 'r', workloadSelector: { matchLabels: { app: 'x' } }, subsets: [{ name: 'v3', labels: { v: '3' } }] }),
      istio('DestinationRule', 'all-svc', 'default', { host: '*.svc.cluster.local', subsets: [{ name: 'any', labels: { v: 'a' } }] }),
      // Not r's: a short host of another namespace, another service.
      istio('DestinationRule', 'r-short-elsewhere', 'other', { host: 'r', subsets: [{ name: 'no1', labels: { v: 'x' } }] }),
      // The wildcard ServiceEntry host matches an exact rule host under it, and a wider wildcard rule.
      istio('DestinationRule', 'a-wild', 'default', { host: 'a.wild.example.com', subsets: [{ name: 'w1', labels: { v: '1' } }] }),
      istio('DestinationRule', 'wider', 'default', { host: '*.example.com', subsets: [{ name: 'w2', labels: { v: '2' } }] }),
    ],
    opts,
  );
  assert.deepEqual([...edsClustersFor(['default/r.default.svc.cluster.local'], push)].sort(), [
    'outbound|80|any|r.default.svc.cluster.local',
    'outbound|80|v1|r.default.svc.cluster.local',
    'outbound|80|v2|r.default.svc.cluster.local',
    'outbound|80|v3|r.default.svc.cluster.local',
    'outbound|80||r.default.svc.cluster.local',
    'outbound|9090|any|r.default.svc.cluster.local',
    'outbound|9090|v1|r.default.svc.cluster.local',
    'outbound|9090|v2|r.default.svc.cluster.local',
    'outbound|9090|v3|r.default.svc.cluster.local',
    'outbound|9090||r.default.svc.cluster.local',
  ]);
  assert.deepEqual([...edsClustersFor(['default/*.wild.example.com'], push)].sort(), ['outbound|443|w1|*.wild.example.com', 'outbound|443|w2|*.wild.example.com', 'outbound|443||*.wild.example.com']);
  assert.deepEqual([...edsClustersFor(['default/missing.default.svc.cluster.local'], push)], []);
});

test('pushScope: endpoints of a ServiceEntry with resolution NONE are per-pod listeners on sidecars, so moving them is a full push', () => {
  const se = (addresses: string[]) =>
    istio('ServiceEntry', 'db', 'default', { hosts: ['db.example.com'], ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], resolution: 'NONE', endpoints: addresses.map((address) => ({ address })) });
  const index = new EndpointIndex({ trustDomain: 'cluster.local' });
  const before = PushContext.build([se(['10.0.0.1'])], { ...opts, endpointIndex: index });
  const after = PushContext.build([se(['10.0.0.1', '10.0.0.2'])], { ...opts, version: 'v2', endpointIndex: index });
  assert.deepEqual([...after.endpointUpdate.services], [['default/db.example.com', 'headless']]);
  assert.equal(pushScope(before, after, [{ kind: 'ServiceEntry', namespace: 'default', name: 'db' }], after.endpointUpdate).full, true);
});

test('splitNodeId: the four parts and the namespace of pod.namespace, or nothing', () => {
  assert.deepEqual(splitNodeId('sidecar~10.0.0.1~r1.default~default.svc.cluster.local'), { type: 'sidecar', ip: '10.0.0.1', id: 'r1.default', dnsDomain: 'default.svc.cluster.local', idNamespace: 'default' });
  assert.equal(splitNodeId('sidecar~10.0.0.1~r1~default.svc.cluster.local')?.idNamespace, undefined);
  assert.equal(splitNodeId('sidecar~10.0.0.1~r1.default'), undefined);
});
