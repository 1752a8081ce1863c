import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ObjectKey } from '@sextant/api';
import { EndpointIndex } from './endpoint-index.js';
import { PushContext } from './push-context.js';
import type { ConfigObjectLike } from './types.js';

const opts = { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1' };
const R = 'default/r.default.svc.cluster.local';
const S = 'default/s.default.svc.cluster.local';

function service(name: string, ns = 'default', extra: Record<string, unknown> = {}): ConfigObjectLike {
  return { kind: 'Service', group: '', version: 'v1', metadata: { name, namespace: ns }, body: { spec: { clusterIP: '10.96.0.1', selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra } } };
}
type Ep = { ip: string; pod?: string; node?: string; ready?: boolean };
function slice(name: string, svc: string, eps: Ep[], ns = 'default'): ConfigObjectLike {
  return {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    body: {
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod } } : {}), ...(e.node ? { nodeName: e.node } : {}) })),
    },
  };
}
function pod(name: string, ip: string, labels: Record<string, string>, opts: { sa?: string; node?: string; ns?: string; phase?: string } = {}): ConfigObjectLike {
  return {
    kind: 'Pod',
    group: '',
    version: 'v1',
    metadata: { name, namespace: opts.ns ?? 'default', labels },
    body: { spec: { serviceAccountName: opts.sa ?? 'sa', nodeName: opts.node }, status: { podIP: ip, phase: opts.phase ?? 'Running' } },
  };
}
function node(name: string, zone: string): ConfigObjectLike {
  return { kind: 'Node', group: '', version: 'v1', metadata: { name, labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': zone } }, body: {} };
}
function workloadEntry(name: string, address: string, labels: Record<string, string>, ns = 'default'): ConfigObjectLike {
  return { kind: 'WorkloadEntry', group: 'networking.istio.io', version: 'v1', metadata: { name, namespace: ns }, body: { spec: { address, labels } } };
}
function serviceEntry(name: string, spec: Record<string, unknown>, ns = 'default'): ConfigObjectLike {
  return { kind: 'ServiceEntry', group: 'networking.istio.io', version: 'v1', metadata: { name, namespace: ns }, body: { spec } };
}
const key = (o: ConfigObjectLike): ObjectKey => ({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
const put = (...os: ConfigObjectLike[]) => os.map((o) => ({ key: key(o), object: o }));
const del = (...os: ConfigObjectLike[]) => os.map((o) => ({ key: key(o), object: undefined }));

/**
 * A mesh with the index fed like the daemon feeds it, and the objects it
 * holds, so every step can be checked against a PushContext built from scratch.
 */
function mesh(config: ConfigObjectLike[], endpoints: ConfigObjectLike[] = []) {
  const index = new EndpointIndex({ trustDomain: 'cluster.local' });
  const objects = new Map<string, ConfigObjectLike>();
  const id = (o: ConfigObjectLike) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
  for (const o of [...config, ...endpoints]) objects.set(id(o), o);
  index.apply(put(...endpoints));
  const push = PushContext.build(config, { ...opts, endpointIndex: index });
  return {
    index,
    push,
    put(...os: ConfigObjectLike[]) {
      for (const o of os) objects.set(id(o), o);
      return index.apply(put(...os));
    },
    del(...os: ConfigObjectLike[]) {
      for (const o of os) objects.delete(id(o));
      return index.apply(del(...os));
    },
    /** The index's endpoints and instances equal a fresh build's. */
    checkAgainstFreshBuild() {
      const fresh = PushContext.build([...objects.values()], opts);
      for (const s of fresh.allServices()) {
        for (const p of s.ports) assert.deepEqual(push.endpoints(s, p), fresh.endpoints(s, p), `endpoints of ${s.hostname}:${p.port}`);
      }
      for (const o of objects.values()) {
        if (o.kind !== 'Pod') continue;
        const ip = (o.body as { status: { podIP: string } }).status.podIP;
        const proxy = { nodeId: '', type: 'sidecar' as const, ipAddresses: [ip], id: '', dnsDomain: '', namespace: 'default', labels: {}, metadata: { raw: {} }, generator: '', interceptionMode: 'REDIRECT' as const, istioVersion: '', serviceAccount: '', workloadName: '', clusterId: '', network: '' };
        const inst = (c: PushContext) => c.serviceInstancesForProxy(proxy).map((i) => `${i.service.hostname}:${i.servicePort.port}:${i.endpoint.endpointPort}:${JSON.stringify(i.endpoint.labels)}`);
        assert.deepEqual(inst(push), inst(fresh), `instances at ${ip}`);
        assert.deepEqual(push.resolveProxy(proxy), fresh.resolveProxy(proxy), `proxy at ${ip}`);
      }
    },
  };
}
const services = (u: { services: Map<string, string> }) => Object.fromEntries([...u.services].sort());
const addresses = (m: ReturnType<typeof mesh>, host = R) => {
  const s = m.push.allServices().find((x) => `${x.namespace}/${x.hostname}` === host)!;
  return m.push.endpoints(s, s.ports[0]!).map((e) => e.address);
};

test('EndpointSlice add, update and delete change only the service the slice belongs to', () => {
  const p1 = pod('p1', '10.0.0.1', { app: 'r' });
  const p2 = pod('p2', '10.0.0.2', { app: 'r' });
  const m = mesh([service('r'), service('s')], [p1, p2, slice('s-1', 's', [{ ip: '10.1.0.1' }])]);
  // The first endpoints bring the service's first identity: CDS (subjectAltNames) changes too.
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }]))), { [R]: 'full' });
  assert.deepEqual(addresses(m), ['10.0.0.1']);
  m.checkAgainstFreshBuild();
  // Another endpoint with the same identity: EDS only.
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.2', pod: 'p2' }]))), { [R]: 'incremental' });
  assert.deepEqual(addresses(m), ['10.0.0.1', '10.0.0.2']);
  m.checkAgainstFreshBuild();
  // Readiness flips are endpoint changes too.
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.2', pod: 'p2', ready: false }]))), { [R]: 'incremental' });
  assert.equal(m.push.endpoints(m.push.allServices()[0]!, m.push.allServices()[0]!.ports[0]!)[1]!.healthStatus, 'UNHEALTHY');
  // The same slice again changes nothing.
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.2', pod: 'p2', ready: false }]))), {});
  // Deleting the last slice removes the identity again.
  assert.deepEqual(services(m.del(slice('r-1', 'r', []))), { [R]: 'full' });
  assert.deepEqual(addresses(m), []);
  assert.deepEqual(addresses(m, S), ['10.1.0.1']);
  m.checkAgainstFreshBuild();
});

test('several slices per service: each adds its endpoints, deleting one keeps the others', () => {
  const m = mesh([service('r'), service('s')], [pod('p1', '10.0.0.1', { app: 'r' }), pod('p2', '10.0.0.2', { app: 'r' }), pod('p3', '10.0.0.3', { app: 'r' })]);
  m.put(slice('r-a', 'r', [{ ip: '10.0.0.1', pod: 'p1' }]));
  assert.deepEqual(services(m.put(slice('r-b', 'r', [{ ip: '10.0.0.2', pod: 'p2' }, { ip: '10.0.0.3', pod: 'p3' }]))), { [R]: 'incremental' });
  assert.deepEqual(addresses(m).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  m.checkAgainstFreshBuild();
  assert.deepEqual(services(m.del(slice('r-a', 'r', []))), { [R]: 'incremental' });
  assert.deepEqual(addresses(m).sort(), ['10.0.0.2', '10.0.0.3']);
  // A slice relabelled to another service moves its endpoints: both services change.
  const moved = slice('r-b', 's', [{ ip: '10.0.0.2', pod: 'p2' }, { ip: '10.0.0.3', pod: 'p3' }]);
  assert.deepEqual(services(m.put(moved)), { [R]: 'full', [S]: 'full' });
  assert.deepEqual(addresses(m), []);
  assert.deepEqual(addresses(m, S).sort(), ['10.0.0.2', '10.0.0.3']);
  m.checkAgainstFreshBuild();
  // A slice for a Service that does not exist (yet) is held and served once the Service appears.
  assert.deepEqual(services(m.put(slice('t-1', 't', [{ ip: '10.0.0.7' }]))), {});
  const next = PushContext.build([service('r'), service('s'), service('t')], { ...opts, version: 'v2', endpointIndex: m.index });
  assert.deepEqual(services(next.endpointUpdate), { 'default/t.default.svc.cluster.local': 'full' });
  const t = next.serviceByHostname('t.default.svc.cluster.local')!;
  assert.deepEqual(next.endpoints(t, t.ports[0]!).map((e) => e.address), ['10.0.0.7']);
});

test('a Pod label or IP change recomputes only the services that read that pod, and names the proxy address', () => {
  const p1 = pod('p1', '10.0.0.1', { app: 'r', version: 'v1' });
  const m = mesh(
    [service('r'), service('s')],
    [p1, pod('p9', '10.1.0.9', { app: 's' }), slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.3' }]), slice('s-1', 's', [{ ip: '10.1.0.9', pod: 'p9' }])],
  );
  // Labels (subsets select on them) and the proxy's own view change.
  const relabelled = m.put(pod('p1', '10.0.0.1', { app: 'r', version: 'v2' }));
  assert.deepEqual(services(relabelled), { [R]: 'incremental' });
  assert.deepEqual([...relabelled.proxyAddresses], ['10.0.0.1']);
  const r = m.push.allServices()[0]!;
  assert.deepEqual(m.push.endpoints(r, r.ports[0]!, { version: 'v2' }).map((e) => e.address), ['10.0.0.1']);
  m.checkAgainstFreshBuild();
  // A status-only update (phase) reads as nothing.
  const status = m.put(pod('p1', '10.0.0.1', { app: 'r', version: 'v2' }, { phase: 'Succeeded' }));
  assert.deepEqual(services(status), {});
  assert.equal(status.proxyAddresses.size, 0);
  // A pod taking an address a slice names without a targetRef gives that endpoint its labels and identity.
  assert.deepEqual(services(m.put(pod('p3', '10.0.0.3', { app: 'r', version: 'v3' }, { sa: 'sa3' }))), { [R]: 'full' });
  assert.deepEqual(m.push.endpoints(r, r.ports[0]!, { version: 'v3' }).map((e) => e.address), ['10.0.0.3']);
  m.checkAgainstFreshBuild();
  // ... and moving it away takes them back.
  const movedAway = m.put(pod('p3', '10.0.0.33', { app: 'r', version: 'v3' }, { sa: 'sa3' }));
  assert.deepEqual(services(movedAway), { [R]: 'full' });
  assert.deepEqual([...movedAway.proxyAddresses].sort(), ['10.0.0.3', '10.0.0.33']);
  m.checkAgainstFreshBuild();
  // A new identity for a pod a slice names: subjectAltNames change, full push.
  assert.deepEqual(services(m.put(pod('p1', '10.0.0.1', { app: 'r', version: 'v2' }, { sa: 'other' }))), { [R]: 'full' });
  m.checkAgainstFreshBuild();
  // A pod no service reads changes no service, but its proxy still hears of it.
  const lone = m.put(pod('lone', '10.9.9.9', { app: 'x' }));
  assert.deepEqual(services(lone), {});
  assert.deepEqual([...lone.proxyAddresses], ['10.9.9.9']);
  assert.deepEqual(services(m.del(pod('p1', '', {}))), { [R]: 'full' });
  m.checkAgainstFreshBuild();
});

test('Node labels move the locality of the endpoints on that node only', () => {
  const m = mesh(
    [service('r'), service('s')],
    [node('n1', 'z1'), node('n2', 'z2'), pod('p1', '10.0.0.1', { app: 'r' }, { node: 'n1' }), pod('p9', '10.1.0.9', { app: 's' }, { node: 'n2' }), slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }]), slice('s-1', 's', [{ ip: '10.1.0.9', pod: 'p9' }])],
  );
  assert.deepEqual(services(m.put(node('n1', 'z9'))), { [R]: 'incremental' });
  const r = m.push.allServices()[0]!;
  assert.equal(m.push.endpoints(r, r.ports[0]!)[0]!.locality.zone, 'z9');
  m.checkAgainstFreshBuild();
  assert.deepEqual(services(m.put(node('n1', 'z9'))), {});
});

test('WorkloadEntries join the Services and ServiceEntries that select them, in their namespace only', () => {
  const se = serviceEntry('vm', { hosts: ['vm.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', workloadSelector: { labels: { app: 'vm' } } });
  const VM = 'default/vm.example.com';
  const m = mesh([service('r'), service('s'), se], [pod('p1', '10.0.0.1', { app: 'r' }), slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }])]);
  // An entry without a service account adds no identity: EDS only.
  assert.deepEqual(services(m.put(workloadEntry('we-r', '10.5.0.1', { app: 'r' }))), { [R]: 'incremental' });
  assert.deepEqual(addresses(m).sort(), ['10.0.0.1', '10.5.0.1']);
  m.checkAgainstFreshBuild();
  assert.deepEqual(services(m.put(workloadEntry('we-vm', '10.5.0.2', { app: 'vm' }))), { [VM]: 'incremental' });
  assert.deepEqual(addresses(m, VM), ['10.5.0.2']);
  // Relabelled from one selector to the other: both change.
  assert.deepEqual(services(m.put(workloadEntry('we-r', '10.5.0.1', { app: 'vm' }))), { [R]: 'incremental', [VM]: 'incremental' });
  m.checkAgainstFreshBuild();
  // Another namespace's entry is nobody's here.
  assert.deepEqual(services(m.put(workloadEntry('we-other', '10.5.0.3', { app: 'r' }, 'other'))), {});
  // Pods a ServiceEntry selects (this one brings an identity).
  assert.deepEqual(services(m.put(pod('vm-pod', '10.0.0.8', { app: 'vm' }))), { [VM]: 'full' });
  m.checkAgainstFreshBuild();
  assert.deepEqual(services(m.del(workloadEntry('we-vm', '', {}), workloadEntry('we-r', '', {}))), { [VM]: 'incremental' });
  m.checkAgainstFreshBuild();
});

test('endpoints of a headless service live in per-pod listeners, CDS and the name table: a headless push from the endpoint path; a new identity still a full push', () => {
  const m = mesh([service('r', 'default', { clusterIP: 'None' })], [pod('p1', '10.0.0.1', { app: 'r' }), pod('p2', '10.0.0.2', { app: 'r' }), pod('p3', '10.0.0.3', { app: 'r' }, { sa: 'other' }), slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }])]);
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.2', pod: 'p2' }]))), { [R]: 'headless' });
  m.checkAgainstFreshBuild();
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }]))), { [R]: 'headless' });
  // The config path keeps a change that needs it (a new service account shows in CDS): headless never downgrades full.
  assert.deepEqual(services(m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.3', pod: 'p3' }]))), { [R]: 'full' });
  m.checkAgainstFreshBuild();
});

test('the PushContext reads the index live: an endpoint event needs no rebuild', () => {
  const m = mesh([service('r')], [pod('p1', '10.0.0.1', { app: 'r' })]);
  const before = m.index.epoch;
  m.put(slice('r-1', 'r', [{ ip: '10.0.0.1', pod: 'p1' }]));
  assert.equal(m.index.epoch, before + 1);
  const r = m.push.allServices()[0]!;
  assert.deepEqual(m.push.endpoints(r, r.ports[0]!).map((e) => e.address), ['10.0.0.1']);
  const proxy = m.push.resolveProxy({ nodeId: '', type: 'sidecar', ipAddresses: ['10.0.0.1'], id: '', dnsDomain: '', namespace: 'default', labels: {}, metadata: { raw: {} }, generator: '', interceptionMode: 'REDIRECT', istioVersion: '', serviceAccount: '', workloadName: '', clusterId: '', network: '' });
  assert.deepEqual(m.push.serviceInstancesForProxy(proxy).map((i) => i.service.hostname), ['r.default.svc.cluster.local']);
  // A service removed by a rebuild is gone from the index (full), with its instances.
  const next = PushContext.build([], { ...opts, version: 'v2', endpointIndex: m.index });
  assert.deepEqual(services(next.endpointUpdate), { [R]: 'full' });
  assert.deepEqual(next.serviceInstancesForProxy(proxy), []);
});
