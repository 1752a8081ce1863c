import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { objectKey, silentLogger, validateAll, type ConfigObject, type ObjectKey } from '@sextant/api';
import { TypeUrl, decodeToJson, encodeJson as encode } from '@sextant/envoy';
import { EndpointIndex, PushContext, isEndpointKind, type ProxyView } from '@sextant/model';
import { edsNamesOf, generatorFor, routeNamesOf, translateConfig } from '@sextant/translate';
import { ClassGenerators, pushRequest, type PushRequest, type WatchedResource, type XdsProxy } from '@sextant/xds';
import { MeshTranslator, ProxyAddresses, endpointScopes, meshScope, proxyClassKey } from './mesh.js';

const bookinfo = (f: string) => fileURLToPath(new URL(`../../../examples/bookinfo/${f}`, import.meta.url));

type Doc = Record<string, any>;

/**
 * Bookinfo, a second productpage pod (two proxies of one class: same
 * Deployment, other IP), and a namespace `other` whose Sidecar imports only
 * its own namespace, so nothing in `default` concerns its proxies.
 */
function docs(): Doc[] {
  const all = ['kubernetes.yaml', 'istio.yaml'].flatMap((f) => parseAllDocuments(readFileSync(bookinfo(f), 'utf8')).map((d) => d.toJS() as Doc));
  const pod = all.find((d) => d?.kind === 'Pod' && d.metadata.name === 'productpage-v1-5586c4d4ff-h8lqw')!;
  all.push({ ...pod, metadata: { ...pod.metadata, name: 'productpage-v1-5586c4d4ff-zz9zz' }, status: { ...pod.status, podIP: '10.244.1.99', podIPs: [{ ip: '10.244.1.99' }] } });
  const slice = all.find((d) => d?.kind === 'EndpointSlice' && d.metadata.name === 'productpage-abcde')!;
  slice.endpoints.push({ ...slice.endpoints[0], addresses: ['10.244.1.99'], targetRef: { kind: 'Pod', name: 'productpage-v1-5586c4d4ff-zz9zz', namespace: 'default' } });
  all.push({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'other' }, spec: { egress: [{ hosts: ['./*'] }] } });
  return all.filter(Boolean);
}

function validated(all: Doc[]): ConfigObject[] {
  const { objects, issues } = validateAll(all);
  assert.deepEqual(issues, []);
  return objects;
}

const build = (objs: ConfigObject[], version: string) => PushContext.build(objs, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version });
const node = (ip: string, pod: string, ns = 'default') => `sidecar~${ip}~${pod}.${ns}~${ns}.svc.cluster.local`;
const proxy = (id: string, n: number): XdsProxy => ({ connectionId: `c${n}`, id, node: {} as XdsProxy['node'], metadata: {}, peer: 'test', delta: false });
const watch = (typeUrl: string, names: string[] = []): WatchedResource => ({ typeUrl, wildcard: names.length === 0, names: new Set(names) });
const req: PushRequest = { full: true, version: 'v1', reason: ['test'] };

const productpage = proxy(node('10.244.1.10', 'productpage-v1-5586c4d4ff-h8lqw'), 1);
const productpage2 = proxy(node('10.244.1.99', 'productpage-v1-5586c4d4ff-zz9zz'), 2);
const reviews = proxy(node('10.244.1.13', 'reviews-v1-5b5d6494f4-m4n5b'), 3);
const details = proxy(node('10.244.1.11', 'details-v1-7d4d9d5fcb-qz7kd'), 6);
const other = proxy(node('10.244.2.5', 'web-1', 'other'), 4);
const gateway = proxy('router~10.244.0.20~istio-ingressgateway-6b8c5d9f7-x2v4n.istio-system~istio-system.svc.cluster.local', 5);

/** A change, as the daemon runs it: new context, the mesh's scope, the controller's request, the cache advancing. */
function change(gens: ClassGenerators<PushContext, ProxyView>, previous: PushContext, objs: ConfigObject[], changed: ObjectKey[], version: string) {
  const next = build(objs, version);
  const r = pushRequest(version, changed, meshScope(previous, next, changed, gens), Date.now());
  if (r) gens.advance(r);
  return { next, req: r };
}

type Gen = ReturnType<ClassGenerators<PushContext, ProxyView>['generators']>;
const TYPES = [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment];

/** What the generators give a proxy for every type, checked against a fresh offline translation of the same objects. */
function assertSameAsFresh(g: Gen, objs: ConfigObject[], p: XdsProxy, label: string): void {
  const want = translateConfig({ objects: objs, nodeId: p.id });
  const same = (typeUrl: string, got: ReadonlyMap<string, { value: Uint8Array }>, expected: Array<{ name?: string; clusterName?: string }>) => {
    assert.deepEqual([...got.keys()].sort(), expected.map((r) => r.name ?? r.clusterName).sort(), `${label}: ${typeUrl} names`);
    for (const r of expected) {
      const n = (r.name ?? r.clusterName)!;
      assert.deepEqual(decodeToJson(typeUrl, got.get(n)!.value), decodeToJson(typeUrl, encode(typeUrl, r)), `${label}: ${typeUrl} ${n}`);
    }
  };
  same(TypeUrl.Cluster, g[TypeUrl.Cluster]!.generate(p, watch(TypeUrl.Cluster), req), want.cds!);
  same(TypeUrl.Listener, g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req), want.lds!);
  const routeNames = routeNamesOf(want.lds!);
  if (routeNames.length) same(TypeUrl.RouteConfiguration, g[TypeUrl.RouteConfiguration]!.generate(p, watch(TypeUrl.RouteConfiguration, routeNames), req), want.rds!);
  const edsNames = edsNamesOf(want.cds!);
  if (edsNames.length) same(TypeUrl.ClusterLoadAssignment, g[TypeUrl.ClusterLoadAssignment]!.generate(p, watch(TypeUrl.ClusterLoadAssignment, edsNames), req), want.eds!);
}

function edit(all: Doc[], kind: string, name: string, f: (d: Doc) => Doc | undefined): { docs: Doc[]; key: ObjectKey } {
  let key: ObjectKey | undefined;
  const out: Doc[] = [];
  for (const d of all) {
    if (d.kind === kind && d.metadata.name === name) {
      key = { kind, namespace: d.metadata.namespace ?? 'default', name };
      const e = f(structuredClone(d));
      if (e) out.push(e);
    } else out.push(d);
  }
  if (!key) {
    const added = f({})!;
    out.push(added);
    key = { kind, namespace: added.metadata.namespace ?? 'default', name };
  }
  return { docs: out, key };
}

test('proxies of one class share encoded clusters, listeners and routes, and each gets exactly what translation gives it', () => {
  const objs = validated(docs());
  const push = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => push, silentLogger);
  const g = gens.generators(TYPES);
  for (const p of [productpage, productpage2, reviews, other, gateway]) assertSameAsFresh(g, objs, p, p.id);

  const cdsA = g[TypeUrl.Cluster]!.generate(productpage, watch(TypeUrl.Cluster), req);
  const cdsB = g[TypeUrl.Cluster]!.generate(productpage2, watch(TypeUrl.Cluster), req);
  assert.equal(cdsA, cdsB, 'one cluster set (the same Map) for the class, inbound clusters included');
  assert.equal(g[TypeUrl.Listener]!.generate(productpage, watch(TypeUrl.Listener), req), g[TypeUrl.Listener]!.generate(productpage2, watch(TypeUrl.Listener), req), 'listeners are shared per class too');
  const rdsA = g[TypeUrl.RouteConfiguration]!.generate(productpage, watch(TypeUrl.RouteConfiguration, ['9080']), req);
  const rdsB = g[TypeUrl.RouteConfiguration]!.generate(productpage2, watch(TypeUrl.RouteConfiguration, ['9080']), req);
  assert.equal(rdsA, rdsB, 'one route set (the same Map) for the class, so the server frames it once');
  assert.notEqual(g[TypeUrl.Cluster]!.generate(reviews, watch(TypeUrl.Cluster), req), cdsA, 'another workload is another class');
});

test('listeners but 15006 are built once per proxy class; the ones with tracing tags once per canonical service; 15006 (virtualInbound) once per workload', () => {
  const objs = validated(docs());
  const push = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => push, silentLogger);
  const g = gens.generators(TYPES);
  assert.equal(proxyClassKey(gens.view(productpage, push), push), proxyClassKey(gens.view(reviews, push), push), 'productpage and reviews pods are one class (same namespace, same selected labels)');
  // Listeners also carry istiod's per-workload tracing tags (canonical service and revision literals):
  // the class's listeners are built once, those with the tags again per canonical service.
  const a = g[TypeUrl.Listener]!.generate(productpage, watch(TypeUrl.Listener), req);
  const b = g[TypeUrl.Listener]!.generate(productpage2, watch(TypeUrl.Listener), req);
  for (const [n, r] of a) assert.equal(b.get(n), r, `${n}: one encoded listener for one workload`);
  const c = g[TypeUrl.Listener]!.generate(reviews, watch(TypeUrl.Listener), req);
  const tagged = [...a.keys()].filter((n) => n !== 'virtualInbound' && c.get(n) !== a.get(n));
  assert.ok(tagged.length > 0 && tagged.length < a.size - 1, `some listeners (${tagged.join(', ')}) carry the canonical tags, not all`);
  const canonicalServices = (x: ReadonlyMap<string, { value: Uint8Array }>, n: string) => [...JSON.stringify(decodeToJson(TypeUrl.Listener, x.get(n)!.value)).matchAll(/"istio\.canonical_service","literal":\{"value":"([^"]*)"/g)].map((m) => m[1]);
  for (const n of tagged) {
    assert.ok(canonicalServices(a, n).length > 0 && canonicalServices(a, n).every((v) => v === 'productpage'), `${n}: productpage's tags`);
    assert.ok(canonicalServices(c, n).length > 0 && canonicalServices(c, n).every((v) => v === 'reviews'), `${n}: reviews' tags`);
  }
  assert.deepEqual(gens.builds, { [TypeUrl.Listener]: a.size - 1 - tagged.length + 2 * tagged.length + 2 }, 'the class: its listeners without tags once; each canonical service: its tagged listeners; each workload: 15006');
  // The first canonical service's tagged listeners are encoded whole (and checked against the template); the next one's are spliced.
  assert.equal(gens.encoder.spliced, tagged.length, "reviews' tagged listeners rendered from the class's encoded templates");
  // 15006's chains with the workload's tags and route decorators: productpage's are encoded whole, reviews' rendered from their templates.
  assert.ok(gens.encoder.partsSpliced > 0, "reviews' 15006 chains rendered from productpage's chains' templates");
  assert.notEqual(canonicalServices(c, 'virtualInbound').length, 0);
  assert.ok(canonicalServices(c, 'virtualInbound').every((v) => v === 'reviews'), "reviews' 15006: reviews' tags");
  // details' inbound cluster differs from productpage's only in its metadata (neither has a DestinationRule):
  // rendered from the template productpage's was checked against.
  const spliced = gens.encoder.spliced;
  g[TypeUrl.Cluster]!.generate(productpage, watch(TypeUrl.Cluster), req);
  assert.equal(gens.encoder.spliced, spliced, "productpage's inbound cluster: encoded whole");
  const inbound = g[TypeUrl.Cluster]!.generate(details, watch(TypeUrl.Cluster), req).get('inbound|9080||')!;
  assert.equal(gens.encoder.spliced, spliced + 1, "details' inbound cluster: rendered");
  assert.equal((decodeToJson(TypeUrl.Cluster, inbound.value) as Doc).metadata.filterMetadata.istio.services[0].host, 'details.default.svc.cluster.local');
  for (const p of [productpage, productpage2, reviews, details]) assertSameAsFresh(g, objs, p, p.id);
});

test('a VirtualService edit rebuilds only the route configurations of its ports, once per class, and reaches only the proxies that can see it', () => {
  const base = docs();
  let objs = validated(base);
  let ctx = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  const g = gens.generators(TYPES);
  // A route name on another port: no bookinfo host has port 8000, so the edit cannot change it.
  const routeWatch = watch(TypeUrl.RouteConfiguration, ['9080', '8000']);
  const proxies = [productpage, productpage2, reviews, other];
  const before = new Map(proxies.map((p) => [p, { cds: g[TypeUrl.Cluster]!.generate(p, watch(TypeUrl.Cluster), req), lds: g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req), rds: g[TypeUrl.RouteConfiguration]!.generate(p, routeWatch, req) }]));

  const e = edit(base, 'VirtualService', 'reviews', (d) => {
    d.spec.http[0].route[0].destination.subset = 'v3';
    return d;
  });
  objs = validated(e.docs);
  const { next, req: pushed } = change(gens, ctx, objs, [e.key], 'v2');
  ctx = next;
  assert.ok(pushed?.full);
  assert.deepEqual([...pushed.types!], [TypeUrl.RouteConfiguration], 'an http-only VirtualService concerns routes only');
  assert.deepEqual(proxies.map((p) => pushed.affects!(p)), [true, true, true, false], 'the proxy whose Sidecar does not import default is not pushed');

  for (const p of [productpage, productpage2, reviews]) {
    const was = before.get(p)!;
    assert.equal(g[TypeUrl.Cluster]!.generate(p, watch(TypeUrl.Cluster), req), was.cds, 'clusters carried over');
    assert.equal(g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req), was.lds, 'listeners carried over');
    const rds = g[TypeUrl.RouteConfiguration]!.generate(p, routeWatch, req);
    assert.notEqual(rds.get('9080')!.version, was.rds.get('9080')!.version, 'the edited route configuration changed');
    assert.equal(rds.get('8000'), was.rds.get('8000'), 'the other port kept its route configuration');
  }
  // One route configuration, built once: the three proxies are one class for routes (same namespace, and no
  // config selects by the labels that differ), though two for clusters and listeners (their own inbound ports).
  assert.deepEqual(gens.builds, { [TypeUrl.RouteConfiguration]: 1 });
  assert.notEqual(before.get(productpage)!.cds, before.get(reviews)!.cds);
  for (const p of proxies) assertSameAsFresh(g, objs, p, `after the edit: ${p.id}`);
});

test('a DestinationRule edit rebuilds only the clusters of its host, once per proxy class (plus the proxies\' own small inbound layer), and reaches only the proxies that can see the host', () => {
  const base = docs();
  let objs = validated(base);
  let ctx = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  const g = gens.generators(TYPES);
  const proxies = [productpage, productpage2, reviews, other];
  const cds = (p: XdsProxy) => g[TypeUrl.Cluster]!.generate(p, watch(TypeUrl.Cluster), req);
  const before = new Map(proxies.map((p) => [p, cds(p)]));
  const host = 'reviews.default.svc.cluster.local';

  let docsNow = base;
  for (const [i, subset] of ['v4', 'v5'].entries()) {
    const e = edit(docsNow, 'DestinationRule', 'reviews', (r) => (r.spec.subsets.push({ name: subset, labels: { version: 'v1' } }), r));
    docsNow = e.docs;
    objs = validated(docsNow);
    const { next, req: pushed } = change(gens, ctx, objs, [e.key], `v${i + 2}`);
    ctx = next;
    assert.ok(pushed?.full);
    assert.deepEqual(new Set(pushed.types), new Set([TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]), 'no rule of the host sets a consistent hash: routes are not rebuilt');
    assert.deepEqual(proxies.map((p) => pushed.affects!(p)), [true, true, true, false], 'the proxy whose Sidecar does not import default is not pushed');
    const pushedTo = [productpage, productpage2, reviews];
    const after = pushedTo.map(cds);
    const views = pushedTo.map((p) => gens.view(p, ctx));
    // What the class cache had to build: the host's outbound clusters once per outbound class, and each inbound class's own layer.
    const hostClusters = [...after[0]!.keys()].filter((n) => n.startsWith('outbound|') && n.endsWith(`|${host}`));
    assert.ok(hostClusters.includes(`outbound|9080|${subset}|${host}`), 'the new subset cluster is there');
    const outboundClasses = new Set(views.map((v) => proxyClassKey(v, ctx))).size;
    const inbound = new Map(views.map((v) => [`${proxyClassKey(v, ctx)}|${[...new Set(ctx.serviceInstancesForProxy(v).map((si) => si.service.hostname))].sort().join(',')}`, generatorFor(v).proxyClusters(ctx, v).length]));
    const inboundBuilt = [...inbound.values()].reduce((a, b) => a + b, 0);
    assert.deepEqual(gens.builds, { [TypeUrl.Cluster]: outboundClasses * hostClusters.length + inboundBuilt }, `edit ${i + 1}: only ${host}'s clusters rebuilt`);
    for (const [k, p] of pushedTo.entries()) {
      const was = before.get(p)!;
      for (const [n, r] of after[k]!) if (!n.endsWith(`|${host}`) && n.startsWith('outbound|')) assert.equal(r, was.get(n), `${n} carried over (the same encoded resource)`);
    }
  }
  assert.equal(cds(productpage), cds(productpage2), 'one cluster set for two proxies of one class and workload');
  for (const p of [...proxies, gateway]) assertSameAsFresh(g, objs, p, `after two DestinationRule edits: ${p.id}`);
});

test('after each kind of change, what the caches give equals a fresh translation (nothing stale is carried over)', () => {
  const edits: Array<[string, (docs: Doc[]) => { docs: Doc[]; key: ObjectKey }]> = [
    ['VirtualService http edit', (d) => edit(d, 'VirtualService', 'reviews', (v) => ((v.spec.http[0].route[0].destination.subset = 'v3'), v))],
    ['VirtualService deleted', (d) => edit(d, 'VirtualService', 'ratings', () => undefined)],
    ['VirtualService with a tcp rule added', (d) => edit(d, 'VirtualService', 'details-tcp', () => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'details-tcp', namespace: 'default' }, spec: { hosts: ['details'], tcp: [{ route: [{ destination: { host: 'details', subset: 'v1' } }] }] } }))],
    ['VirtualService bound to the gateway edited', (d) => edit(d, 'VirtualService', 'bookinfo', (v) => ((v.spec.http[0].route[0].destination.port = { number: 9080 }), (v.spec.hosts = ['bookinfo.example.com']), v))],
    ['DestinationRule subset added', (d) => edit(d, 'DestinationRule', 'reviews', (r) => (r.spec.subsets.push({ name: 'v4', labels: { version: 'v1' } }), r))],
    ['DestinationRule traffic policy', (d) => edit(d, 'DestinationRule', 'ratings', (r) => ((r.spec.trafficPolicy = { connectionPool: { tcp: { maxConnections: 7 } } }), r))],
    ['DestinationRule deleted', (d) => edit(d, 'DestinationRule', 'productpage', () => undefined)],
    ['DestinationRule consistent hash added', (d) => edit(d, 'DestinationRule', 'reviews', (r) => ((r.spec.trafficPolicy = { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } }), r))],
    ['DestinationRule consistent hash on a subset', (d) => edit(d, 'DestinationRule', 'reviews', (r) => ((r.spec.subsets[0].trafficPolicy = { portLevelSettings: [{ port: { number: 9080 }, loadBalancer: { consistentHash: { useSourceIp: true } } }] }), r))],
    ['Sidecar added in default', (d) => edit(d, 'Sidecar', 'default', () => ({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'default' }, spec: { egress: [{ hosts: ['./reviews.default.svc.cluster.local'] }] } }))],
    ['ServiceEntry added', (d) => edit(d, 'ServiceEntry', 'ext', () => ({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['ext.example.com'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' } }))],
    ['PeerAuthentication STRICT', (d) => edit(d, 'PeerAuthentication', 'default', () => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } }))],
  ];
  for (const [label, f] of edits) {
    const base = docs();
    let ctx = build(validated(base), 'v1');
    const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
    const g = gens.generators(TYPES);
    const proxies = [productpage, productpage2, reviews, other, gateway];
    for (const p of proxies) assertSameAsFresh(g, validated(base), p, `${label}, before`);
    const e = f(base);
    const objs = validated(e.docs);
    ctx = change(gens, ctx, objs, [e.key], 'v2').next;
    for (const p of proxies) assertSameAsFresh(g, objs, p, `${label}: ${p.id}`);
  }
});

test('a DestinationRule without a hash that takes the place of a hashed one rebuilds the routes (they lose the hash)', () => {
  // A root-namespace rule hashes reviews; the namespace's own rule for reviews, added, takes its place for default's proxies.
  const meshRule = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews-mesh', namespace: 'istio-system' }, spec: { host: 'reviews.default.svc.cluster.local', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } };
  const base = [...edit(docs(), 'DestinationRule', 'reviews', () => undefined).docs, meshRule];
  let ctx = build(validated(base), 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  const g = gens.generators(TYPES);
  for (const p of [productpage, reviews]) assertSameAsFresh(g, validated(base), p, `before: ${p.id}`);
  const e = edit(base, 'DestinationRule', 'reviews', () => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }, { name: 'v3', labels: { version: 'v3' } }] } }));
  const objs = validated(e.docs);
  const { next, req: pushed } = change(gens, ctx, objs, [e.key], 'v2');
  ctx = next;
  assert.ok(pushed?.types?.has(TypeUrl.RouteConfiguration), 'another rule of the host sets a hash: routes are rebuilt');
  for (const p of [productpage, reviews]) assertSameAsFresh(g, objs, p, `after: ${p.id}`);
});

/** A context over an endpoint index the test applies endpoint events to in place, as the daemon's endpoint path does. */
function inPlaceContext(objs: ConfigObject[]): { index: EndpointIndex; ctx: PushContext } {
  const isEndpoint = (o: ConfigObject) => isEndpointKind(o.kind);
  const index = new EndpointIndex({ trustDomain: 'cluster.local' });
  index.apply(objs.filter(isEndpoint).map((o) => ({ key: objectKey(o), object: o })));
  return { index, ctx: PushContext.build(objs.filter((o) => !isEndpoint(o)), { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1', endpointIndex: index }) };
}

test('an endpoint change, applied in place, rebuilds only the clusters it names; the others carry over', () => {
  const objs = validated(docs());
  const { index, ctx } = inPlaceContext(objs);
  // The ratings pod moved to another IP.
  const old = objs.find((o) => o.kind === 'EndpointSlice' && o.metadata.name === 'ratings-abcde')!;
  const body = structuredClone(old.body) as { endpoints: Array<{ addresses: string[] }> };
  body.endpoints[0]!.addresses = ['10.244.9.9'];
  const moved = { ...old, body } as ConfigObject;
  const ratings = 'outbound|9080||ratings.default.svc.cluster.local';
  const reviewsV1 = 'outbound|9080|v1|reviews.default.svc.cluster.local';
  const eds = (gens: ClassGenerators<PushContext, ProxyView>) => gens.generators(TYPES)[TypeUrl.ClusterLoadAssignment]!.generate(productpage, watch(TypeUrl.ClusterLoadAssignment, [ratings, reviewsV1]), req);
  const address = (m: ReturnType<typeof eds>) => JSON.stringify(decodeToJson(TypeUrl.ClusterLoadAssignment, m.get(ratings)!.value)).match(/"address":"([\d.]+)"/)![1];

  const honest = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  assert.equal(address(eds(honest)), '10.244.1.12');
  const update = index.apply([{ key: objectKey(moved), object: moved }]);
  assert.deepEqual([...update.services], [['default/ratings.default.svc.cluster.local', 'incremental']]);
  const [scope, ...rest] = endpointScopes(ctx, new Set(update.services.keys()), new Set(), honest);
  assert.equal(rest.length, 0);
  assert.equal(scope!.full, false);
  assert.deepEqual(new Set(scope!.edsClusters), new Set([ratings, 'outbound|9080|v1|ratings.default.svc.cluster.local']));
  honest.advance(pushRequest('v1/eds1', [], scope!, Date.now())!);
  assert.equal(address(eds(honest)), '10.244.9.9', 'the named cluster is rebuilt');
  assert.deepEqual(honest.builds, { [TypeUrl.ClusterLoadAssignment]: 1 });

  // Carry-over is real: told (wrongly) that nothing changed, the old endpoints stay.
  const back = index.apply([{ key: objectKey(old), object: old }]);
  assert.equal(back.services.size, 1);
  const misled = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  eds(misled);
  index.apply([{ key: objectKey(moved), object: moved }]);
  misled.advance({ full: false, version: 'v1/eds2', reason: ['test'], edsUpdates: new Set() });
  assert.equal(address(eds(misled)), '10.244.1.12');
});

test('a new pod\'s address, at which no connected proxy runs yet, pushes nothing from the endpoint path; a connected proxy at a changed address is pushed', () => {
  const objs = validated(docs());
  const { index, ctx } = inPlaceContext(objs);
  const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  // A scaled Deployment's new pod, given its address (kwok and the kubelet set it in a later update than the create).
  const created = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-v1-new', namespace: 'default', labels: { app: 'reviews', version: 'v1' } }, spec: { serviceAccountName: 'bookinfo-reviews', containers: [{ name: 'reviews', image: 'x' }] }, status: { phase: 'Pending' } };
  const [pending] = validated([created]);
  assert.equal(index.apply([{ key: objectKey(pending!), object: pending }]).proxyAddresses.size, 0);
  const [running] = validated([{ ...created, status: { phase: 'Running', podIP: '10.244.7.7', podIPs: [{ ip: '10.244.7.7' }] } }]);
  const update = index.apply([{ key: objectKey(running!), object: running }]);
  assert.deepEqual([...update.proxyAddresses], ['10.244.7.7']);

  // Its sidecar is not connected: no scope, so the class caches every other proxy shares are kept.
  const connected = new ProxyAddresses(new MeshTranslator());
  connected.add(productpage);
  connected.add(other);
  const at = (ip: string) => connected.has(ip);
  assert.deepEqual(endpointScopes(ctx, new Set(), update.proxyAddresses, gens, at), []);
  // Connected, it is pushed its own configuration again, and no other proxy is.
  const newcomer = proxy(node('10.244.7.7', 'reviews-v1-new'), 20);
  connected.add(newcomer);
  const [scope, ...rest] = endpointScopes(ctx, new Set(), update.proxyAddresses, gens, at);
  assert.equal(rest.length, 0);
  assert.equal(scope!.full, true);
  assert.equal(scope!.affects!(newcomer), true);
  assert.equal(scope!.affects!(productpage), false);
  // Its stream gone (a second one at the same address still open), then both gone: pushed, then not.
  const again = proxy(node('10.244.7.7', 'reviews-v1-new'), 21);
  connected.add(again);
  connected.delete(newcomer);
  assert.equal(endpointScopes(ctx, new Set(), update.proxyAddresses, gens, at).length, 1);
  connected.delete(again);
  assert.deepEqual(endpointScopes(ctx, new Set(), update.proxyAddresses, gens, at), []);
});

test('the connected proxies\' addresses: the node ID\'s and INSTANCE_IPS, counted per stream; a node that cannot be parsed adds none', () => {
  const a = new ProxyAddresses(new MeshTranslator());
  const two = proxy(node('10.244.9.1', 'dual-1'), 30);
  const withExtra = { ...two, metadata: { ...two.metadata, INSTANCE_IPS: '10.244.9.1,fd00::9:1' } };
  a.add(withExtra);
  assert.equal(a.has('10.244.9.1'), true);
  assert.equal(a.has('fd00::9:1'), true);
  a.delete(withExtra);
  assert.equal(a.has('10.244.9.1'), false);
  assert.equal(a.has('fd00::9:1'), false);
  const broken = { ...two, id: 'not-a-node-id' };
  a.add(broken);
  a.delete(broken);
  assert.equal(a.has('not-a-node-id'), false);
});

test('EnvoyFilters that select by proxy metadata or targetRefs split the class: each proxy gets its own patches', () => {
  const lua = (name: string) => ({ name, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua', default_source_code: { inline_string: 'function envoy_on_response(h) end' } } });
  const all = [
    ...docs(),
    {
      apiVersion: 'networking.istio.io/v1alpha3',
      kind: 'EnvoyFilter',
      metadata: { name: 'gold', namespace: 'default' },
      spec: { configPatches: [{ applyTo: 'HTTP_FILTER', match: { context: 'SIDECAR_OUTBOUND', proxy: { metadata: { TIER: 'gold' } } }, patch: { operation: 'INSERT_FIRST', value: lua('gold.lua') } }] },
    },
  ];
  const objs = validated(all);
  const push = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => push, silentLogger);
  const g = gens.generators(TYPES);
  const plain = productpage;
  const gold: XdsProxy = { ...productpage2, metadata: { TIER: 'gold' } };
  const hasGold = (p: XdsProxy) => {
    const lds = g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req);
    return [...lds.values()].some((r) => JSON.stringify(decodeToJson(TypeUrl.Listener, r.value)).includes('gold.lua'));
  };
  // Plain first, so a shared class entry would hand the gold proxy the unpatched listeners.
  assert.equal(hasGold(plain), false);
  assert.equal(hasGold(gold), true);
  assert.equal(hasGold(plain), false);
  assert.notEqual(g[TypeUrl.Listener]!.generate(plain, watch(TypeUrl.Listener), req), g[TypeUrl.Listener]!.generate(gold, watch(TypeUrl.Listener), req));
});

test('a headless Service: each pod an outbound listener; its endpoint change pushes listeners, clusters and name tables from the endpoint path to the proxies that see it; its own pods do not share listeners', () => {
  const pod = (name: string, ip: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'db' } }, spec: { serviceAccountName: 'db', containers: [{ name: 'db', image: 'x' }] }, status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } });
  const slice = (ips: string[]) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'db-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'db' } },
    addressType: 'IPv4',
    ports: [{ name: 'tcp-pg', port: 5432 }],
    endpoints: ips.map((ip, i) => ({ addresses: [ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: `db-${i}`, namespace: 'default' } })),
  });
  const all = [
    ...docs(),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'default' }, spec: { clusterIP: 'None', selector: { app: 'db' }, ports: [{ name: 'tcp-pg', port: 5432 }] } },
    pod('db-0', '10.244.1.50'),
    pod('db-1', '10.244.1.51'),
    slice(['10.244.1.50']),
  ];
  const objs = validated(all);
  const { index, ctx } = inPlaceContext(objs);
  const gens = new ClassGenerators(new MeshTranslator(), () => ctx, silentLogger);
  const g = gens.generators(TYPES);
  const listeners = (p: XdsProxy) => [...g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req).keys()].filter((n) => n.endsWith('_5432')).sort();
  const db0 = proxy(node('10.244.1.50', 'db-0'), 10);
  const db1 = proxy(node('10.244.1.51', 'db-1'), 11);
  assert.deepEqual(listeners(productpage), ['10.244.1.50_5432']);
  assert.deepEqual(listeners(other), []);

  const update = index.apply(validated([slice(['10.244.1.50', '10.244.1.51'])]).map((o) => ({ key: objectKey(o), object: o })));
  assert.deepEqual([...update.services], [['default/db.default.svc.cluster.local', 'headless']]);
  const scopes = endpointScopes(ctx, new Set(update.services.keys()), update.proxyAddresses, gens);
  const headless = scopes.find((s) => s.full && s.types?.has(TypeUrl.Listener) && s.affects?.(productpage));
  assert.ok(headless, 'a listener push to the proxies that see the service');
  assert.deepEqual([...headless.types!].sort(), [TypeUrl.Cluster, TypeUrl.Listener, 'type.googleapis.com/istio.networking.nds.v1.NameTable'].sort());
  assert.equal(headless.affects!(other), false, 'a proxy whose Sidecar hides the service is not pushed');
  for (const s of scopes) gens.advance(pushRequest(s.full ? 'v1' : 'v1/eds1', [], s, Date.now())!);
  assert.deepEqual(listeners(productpage), ['10.244.1.50_5432', '10.244.1.51_5432']);
  // Two pods of the Service (one class otherwise): each without a listener for its own address.
  assert.deepEqual(listeners(db0), ['10.244.1.51_5432']);
  assert.deepEqual(listeners(db1), ['10.244.1.50_5432']);
});

test('a proxy whose ProxyConfig (PROXY_CONFIG) sets its own tracing is its own class: it gets its sampling, the others keep theirs', () => {
  const objs = validated(docs());
  const push = build(objs, 'v1');
  const gens = new ClassGenerators(new MeshTranslator(), () => push, silentLogger);
  const g = gens.generators(TYPES);
  const sampled: XdsProxy = { ...productpage2, metadata: { PROXY_CONFIG: { tracing: { sampling: 42 } } } };
  const samplings = (p: XdsProxy) => {
    const lds = g[TypeUrl.Listener]!.generate(p, watch(TypeUrl.Listener), req);
    return new Set([...lds.values()].flatMap((r) => [...JSON.stringify(decodeToJson(TypeUrl.Listener, r.value)).matchAll(/"randomSampling":\{"value":([0-9.]+)\}/g)].map((m) => Number(m[1]))));
  };
  // The default proxy first, so a shared class entry would hand the other one its listeners.
  const plain = samplings(productpage);
  assert.ok(plain.size > 0 && !plain.has(42), `default sampling: ${[...plain]}`);
  assert.deepEqual([...samplings(sampled)], [42], "the pod's own ProxyConfig sampling");
  assert.deepEqual(samplings(productpage), plain);
});
