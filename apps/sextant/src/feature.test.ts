// Feature tier: the daemon's push path in process (store, push controller,
// PushContext, class cache, DiscoveryServer on 127.0.0.1:0) with the daemon's
// own mesh adapter, fed through the ConfigSource interface. Each step waits on
// the push version it caused, never on time.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import type { ProxyView } from '@sextant/model';
import { startFeature, type Feature, type ProxyStream } from '@sextant/testing/feature';
import { endpointSlice, istio, pod, service } from '@sextant/testing/push';
import { MeshTranslator, endpointScopes, meshScope } from './mesh.js';

type Json = Record<string, any>;

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const RATINGS = 'outbound|9080||ratings.other.svc.cluster.local';
const SIDECAR = { id: 'sidecar~10.0.0.9~app.default~default.svc.cluster.local', metadata: { NAMESPACE: 'default' } };

const base = () => [
  service('reviews', 'default', '10.96.0.10', [['http', 9080]]),
  endpointSlice('reviews', 'default', [['http', 9080]], [{ ip: '10.0.1.1', pod: 'reviews-v1' }, { ip: '10.0.1.2', pod: 'reviews-v2' }]),
  pod('reviews-v1', 'default', '10.0.1.1', { app: 'reviews', version: 'v1' }),
  pod('reviews-v2', 'default', '10.0.1.2', { app: 'reviews', version: 'v2' }),
  service('ratings', 'other', '10.96.0.11', [['http', 9080]]),
  pod('app', 'default', '10.0.0.9', { app: 'app' }),
  istio('DestinationRule', 'default', 'reviews', { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
];

const toV2 = istio('VirtualService', 'default', 'reviews', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }] });

/** The cluster(s) the 9080 route configuration sends reviews traffic to. */
function reviewsTargets(routes: Array<{ name: string; json: unknown }>): string[] {
  const rc = routes.find((r) => r.name === '9080')?.json as Json | undefined;
  assert.ok(rc, 'route configuration 9080 received');
  const vh = (rc.virtualHosts as Json[]).find((v) => v.name === 'reviews.default.svc.cluster.local:9080');
  assert.ok(vh, 'reviews virtual host present');
  return (vh.routes as Json[]).map((r) => r.route?.cluster ?? (r.route?.weightedClusters?.clusters as Json[] | undefined)?.map((c) => c.name).join('+'));
}

function addresses(endpoints: Array<{ name: string; json: unknown }>, cluster: string): string[] {
  const cla = endpoints.find((e) => e.name === cluster)?.json as Json | undefined;
  assert.ok(cla, `ClusterLoadAssignment ${cluster} received`);
  return ((cla.endpoints ?? []) as Json[]).flatMap((l) => (l.lbEndpoints as Json[]).map((e) => e.endpoint.address.socketAddress.address)).sort();
}

describe('feature: a sidecar follows config changes through the real push path', () => {
  let f: Feature<ProxyView>;
  let proxy: ProxyStream;

  before(async () => {
    f = await startFeature<ProxyView>({ translator: new MeshTranslator(), scope: meshScope, endpointScopes, objects: base() });
    proxy = f.connect(SIDECAR);
  });
  after(async () => {
    await f.stop();
  });

  it('applying a VirtualService changes the RDS the sidecar receives; deleting it takes the route away again', async () => {
    proxy.watch(TypeUrl.RouteConfiguration, ['9080']);
    assert.deepEqual(reviewsTargets(await proxy.until(TypeUrl.RouteConfiguration, f.version)), [REVIEWS]);

    const applied = await f.apply(toV2);
    assert.ok(applied.push, 'the VirtualService change was pushed');
    assert.ok(applied.push.types?.has(TypeUrl.RouteConfiguration), 'as an RDS push');
    assert.deepEqual(reviewsTargets(await proxy.until(TypeUrl.RouteConfiguration, applied.version)), ['outbound|9080|v2|reviews.default.svc.cluster.local']);

    const deleted = await f.delete(toV2);
    assert.ok(deleted.push, 'the delete was pushed');
    assert.deepEqual(reviewsTargets(await proxy.until(TypeUrl.RouteConfiguration, deleted.version)), [REVIEWS]);
  });

  it('an EndpointSlice change reaches the sidecar as EDS, and only as EDS', async () => {
    proxy.watch(TypeUrl.ClusterLoadAssignment, [REVIEWS]);
    assert.deepEqual(addresses(await proxy.until(TypeUrl.ClusterLoadAssignment, f.version), REVIEWS), ['10.0.1.1', '10.0.1.2']);

    const moved = await f.apply(
      pod('reviews-v3', 'default', '10.0.1.3', { app: 'reviews', version: 'v3' }),
      endpointSlice('reviews', 'default', [['http', 9080]], [{ ip: '10.0.1.1', pod: 'reviews-v1' }, { ip: '10.0.1.3', pod: 'reviews-v3' }]),
    );
    assert.ok(moved.push, 'the endpoint change was pushed');
    assert.equal(moved.push.full, false, 'endpoints only: no config push');
    assert.ok(moved.push.edsUpdates?.has(REVIEWS), `the push names ${REVIEWS}`);
    assert.deepEqual(addresses(await proxy.until(TypeUrl.ClusterLoadAssignment, moved.version), REVIEWS), ['10.0.1.1', '10.0.1.3']);
  });
});

describe('feature: a Sidecar resource limits what its proxies see', () => {
  let f: Feature<ProxyView>;
  before(async () => {
    f = await startFeature<ProxyView>({ translator: new MeshTranslator(), scope: meshScope, endpointScopes, objects: base() });
  });
  after(async () => {
    await f.stop();
  });

  it('egress hosts "./*" drop the other namespace’s clusters from CDS; removing the Sidecar brings them back', async () => {
    const proxy = f.connect(SIDECAR);
    proxy.watch(TypeUrl.Cluster);
    const names = async (version: string) => (await proxy.until(TypeUrl.Cluster, version)).map((c) => c.name);
    const before = await names(f.version);
    assert.ok(before.includes(REVIEWS) && before.includes(RATINGS), `both namespaces visible: ${before.join(', ')}`);

    const scoped = istio('Sidecar', 'default', 'default', { egress: [{ hosts: ['./*'] }] });
    const applied = await f.apply(scoped);
    assert.ok(applied.push, 'the Sidecar change was pushed');
    const limited = await names(applied.version);
    assert.ok(limited.includes(REVIEWS), 'own namespace still visible');
    assert.ok(!limited.includes(RATINGS), `other namespace hidden: ${limited.join(', ')}`);

    const removed = await f.delete(scoped);
    assert.ok((await names(removed.version)).includes(RATINGS), 'visible again once the Sidecar is gone');
  });

  it('a Sidecar in another namespace sends this proxy nothing', async () => {
    const proxy = f.connect(SIDECAR);
    proxy.watch(TypeUrl.Cluster);
    await proxy.until(TypeUrl.Cluster, f.version);
    const elsewhere = await f.apply(istio('Sidecar', 'other', 'default', { egress: [{ hosts: ['./*'] }] }));
    assert.ok(elsewhere.push, 'the change was pushed');
    // A change every proxy depends on follows; the sidecar's CDS goes from before straight to it.
    const everyone = await f.apply(service('details', 'default', '10.96.0.12', [['http', 9080]]));
    assert.ok((await proxy.until(TypeUrl.Cluster, everyone.version)).some((c) => c.name === 'outbound|9080||details.default.svc.cluster.local'));
    const versions = proxy.seen.filter((r) => r.typeUrl === TypeUrl.Cluster).map((r) => r.version);
    assert.ok(!versions.includes(elsewhere.version), `CDS versions received: ${versions.join(', ')}; ${elsewhere.version} is another namespace's Sidecar`);
  });

  // meshScope names the proxies through libs/model's proxyDependsOn: a Sidecar reaches its namespace's sidecars.
  it('a Sidecar change is pushed only to the proxies of its namespace (proxy dependencies)', async () => {
    const proxy = f.connect(SIDECAR);
    proxy.watch(TypeUrl.Cluster);
    await proxy.until(TypeUrl.Cluster, f.version);
    const elsewhere = await f.apply(istio('Sidecar', 'other', 'narrow', { workloadSelector: { labels: { app: 'x' } }, egress: [{ hosts: ['./*'] }] }));
    assert.ok(elsewhere.push, 'the change was pushed');
    const conn = f.server.connections().find((c) => c.proxyId === SIDECAR.id);
    const st = conn && f.server.streamState(conn.connectionId);
    assert.ok(st, 'the sidecar is connected');
    assert.equal(elsewhere.push.affects?.(st.proxy), false, 'the push names the proxies that depend on it, and this one does not');
  });
});
