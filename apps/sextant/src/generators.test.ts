import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { silentLogger, validateAll } from '@sextant/api';
import { TypeUrl, decodeToJson, encodeJson as encode } from '@sextant/envoy';
import { PushContext } from '@sextant/model';
import { translateConfig } from '@sextant/translate';
import type { XdsProxy } from '@sextant/xds';
import { TranslationGenerators } from './generators.js';

const bookinfo = (f: string) => fileURLToPath(new URL(`../../../examples/bookinfo/${f}`, import.meta.url));

/** Bookinfo plus a second productpage pod: two proxies of one class (same Deployment, other IP). */
function objects() {
  const docs = ['kubernetes.yaml', 'istio.yaml'].flatMap((f) => parseAllDocuments(readFileSync(bookinfo(f), 'utf8')).map((d) => d.toJS()));
  const pod = docs.find((d) => d?.kind === 'Pod' && d.metadata.name === 'productpage-v1-5586c4d4ff-h8lqw');
  docs.push({ ...pod, metadata: { ...pod.metadata, name: 'productpage-v1-5586c4d4ff-zz9zz' }, status: { ...pod.status, podIP: '10.244.1.99', podIPs: [{ ip: '10.244.1.99' }] } });
  const { objects, issues } = validateAll(docs);
  assert.deepEqual(issues, []);
  return objects;
}

const node = (ip: string, pod: string) => `sidecar~${ip}~${pod}.default~default.svc.cluster.local`;
const proxy = (id: string, n: number): XdsProxy => ({ connectionId: `c${n}`, id, node: {} as XdsProxy['node'], metadata: {}, peer: 'test', delta: false });
const watch = (typeUrl: string, names: string[] = []) => ({ typeUrl, wildcard: names.length === 0, names: new Set(names) });
const req = { full: true, version: 'v1', reason: ['test'] };

test('proxies of one class share encoded outbound clusters and routes, and each gets exactly what translation gives it', () => {
  const objs = objects();
  const push = PushContext.build(objs, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1' });
  const gens = new TranslationGenerators(() => push, silentLogger).generators();
  const a = proxy(node('10.244.1.10', 'productpage-v1-5586c4d4ff-h8lqw'), 1);
  const b = proxy(node('10.244.1.99', 'productpage-v1-5586c4d4ff-zz9zz'), 2);

  for (const p of [a, b]) {
    const expected = translateConfig({ objects: objs, nodeId: p.id, types: ['cds', 'rds', 'lds'] });
    const cds = gens[TypeUrl.Cluster]!.generate(p, watch(TypeUrl.Cluster), req);
    assert.deepEqual([...cds.keys()].sort(), expected.cds!.map((c) => c.name).sort());
    for (const c of expected.cds!) assert.deepEqual(decodeToJson(TypeUrl.Cluster, cds.get(c.name!)!.value), decodeToJson(TypeUrl.Cluster, encode(TypeUrl.Cluster, c)), c.name);
    const routeNames = ['9080'];
    const rds = gens[TypeUrl.RouteConfiguration]!.generate(p, watch(TypeUrl.RouteConfiguration, routeNames), req);
    const want = expected.rds!.filter((r) => routeNames.includes(r.name!));
    assert.deepEqual([...rds.keys()], want.map((r) => r.name));
    assert.deepEqual(decodeToJson(TypeUrl.RouteConfiguration, rds.get('9080')!.value), decodeToJson(TypeUrl.RouteConfiguration, encode(TypeUrl.RouteConfiguration, want[0])));
  }

  const cdsA = gens[TypeUrl.Cluster]!.generate(a, watch(TypeUrl.Cluster), req);
  const cdsB = gens[TypeUrl.Cluster]!.generate(b, watch(TypeUrl.Cluster), req);
  const outbound = 'outbound|9080|v2|reviews.default.svc.cluster.local';
  assert.equal(cdsA.get(outbound), cdsB.get(outbound), 'one encoded outbound cluster for the class');
  const rdsA = gens[TypeUrl.RouteConfiguration]!.generate(a, watch(TypeUrl.RouteConfiguration, ['9080']), req);
  const rdsB = gens[TypeUrl.RouteConfiguration]!.generate(b, watch(TypeUrl.RouteConfiguration, ['9080']), req);
  assert.equal(rdsA, rdsB, 'one route set (the same Map) for the class, so the server frames it once');
});

test('an endpoint-only push rebuilds only the clusters it names; the others carry over', () => {
  const objs = objects();
  const v1 = PushContext.build(objs, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v1' });
  // v2: the ratings pod moved to another IP.
  const moved = objs.map((o) => {
    if (o.kind !== 'EndpointSlice' || o.metadata.name !== 'ratings-abcde') return o;
    const body = structuredClone(o.body) as { endpoints: Array<{ addresses: string[] }> };
    body.endpoints[0]!.addresses = ['10.244.9.9'];
    return { ...o, body };
  });
  const v2 = PushContext.build(moved, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 'v2' });
  const ratings = 'outbound|9080||ratings.default.svc.cluster.local';
  const reviews = 'outbound|9080|v1|reviews.default.svc.cluster.local';
  const p = proxy(node('10.244.1.10', 'productpage-v1-5586c4d4ff-h8lqw'), 1);
  const eds = (gen: TranslationGenerators) => gen.generators()[TypeUrl.ClusterLoadAssignment]!.generate(p, watch(TypeUrl.ClusterLoadAssignment, [ratings, reviews]), req);
  const address = (m: ReturnType<typeof eds>) => JSON.stringify(decodeToJson(TypeUrl.ClusterLoadAssignment, m.get(ratings)!.value)).match(/"address":"([\d.]+)"/)![1];

  let ctx = v1;
  const honest = new TranslationGenerators(() => ctx, silentLogger);
  assert.equal(address(eds(honest)), '10.244.1.12');
  ctx = v2;
  honest.endpointsOnly('v2', 'v1', new Set([ratings]));
  assert.equal(address(eds(honest)), '10.244.9.9', 'the named cluster is rebuilt');

  // Carry-over is real: told (wrongly) that nothing changed, the old endpoints stay.
  ctx = v1;
  const misled = new TranslationGenerators(() => ctx, silentLogger);
  eds(misled);
  ctx = v2;
  misled.endpointsOnly('v2', 'v1', new Set());
  assert.equal(address(eds(misled)), '10.244.1.12');
});
