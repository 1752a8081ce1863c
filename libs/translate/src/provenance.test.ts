import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext } from '@sextant/model';
import { readYamlDocs } from '@sextant/testing';
import { configRefFromPath, resourceProvenance } from './provenance.js';
import { parseObjects, translateConfig } from './translate.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';
const GATEWAY = 'router~10.244.0.20~istio-ingressgateway-6b8c5d9f7-x2v4n.istio-system~istio-system.svc.cluster.local';

function setup(nodeId: string) {
  const { objects } = parseObjects([...readYamlDocs(join(repo, 'examples/bookinfo/kubernetes.yaml')), ...readYamlDocs(join(repo, 'examples/bookinfo/istio.yaml'))]);
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const proxy = push.resolveProxy(parseProxy(nodeId, {}));
  return { objects, push, proxy };
}
const keys = (refs: Array<{ kind: string; namespace: string; name: string }>) => refs.map((r) => `${r.kind}/${r.namespace}/${r.name}`);

test("istiod's config paths name the object", () => {
  assert.deepEqual(configRefFromPath('/apis/networking.istio.io/v1/namespaces/shop/virtual-service/cart'), { kind: 'VirtualService', namespace: 'shop', name: 'cart' });
  assert.deepEqual(configRefFromPath('/apis/networking.istio.io/v1/namespaces/shop/destination-rule/cart'), { kind: 'DestinationRule', namespace: 'shop', name: 'cart' });
  assert.equal(configRefFromPath('/apis/x/v1/namespaces/shop/unknown-kind/cart'), undefined);
  assert.equal(configRefFromPath('not a path'), undefined);
});

test('a cluster and its endpoints come from the Service and the DestinationRule that shaped them', () => {
  const { objects, push, proxy } = setup(PRODUCTPAGE);
  const out = translateConfig({ objects, nodeId: PRODUCTPAGE, types: ['cds', 'rds'] });
  const name = 'outbound|9080|v2|reviews.default.svc.cluster.local';
  const cluster = out.cds!.find((c) => c.name === name);
  assert.deepEqual(keys(resourceProvenance(push, proxy, TypeUrl.Cluster, name, cluster)), ['DestinationRule/default/reviews', 'Service/default/reviews']);
  assert.deepEqual(keys(resourceProvenance(push, proxy, TypeUrl.ClusterLoadAssignment, name, { clusterName: name })), ['DestinationRule/default/reviews', 'Service/default/reviews']);
});

test('a route configuration is narrowed to the virtual host Envoy names, or to what changed since the accepted version', () => {
  const { objects, push, proxy } = setup(PRODUCTPAGE);
  const rc = translateConfig({ objects, nodeId: PRODUCTPAGE, types: ['rds'] }).rds!.find((r) => r.name === '9080')!;
  const all = keys(resourceProvenance(push, proxy, TypeUrl.RouteConfiguration, '9080', rc));
  assert.ok(all.includes('VirtualService/default/reviews') && all.includes('VirtualService/default/ratings'), all.join());
  const i = rc.virtualHosts!.findIndex((v) => v.name === 'reviews.default.svc.cluster.local:9080');
  const detail = `...: Proto constraint validation failed (RouteConfigurationValidationError.VirtualHosts[${i}]: embedded message failed validation | caused by VirtualHostValidationError.Routes[0]: ...)`;
  assert.deepEqual(keys(resourceProvenance(push, proxy, TypeUrl.RouteConfiguration, '9080', rc, detail)), ['VirtualService/default/reviews']);
  // No path in the message: the virtual host that differs from the accepted version.
  const accepted = structuredClone(rc);
  const ratings = accepted.virtualHosts!.find((v) => v.name === 'ratings.default.svc.cluster.local:9080')!;
  ratings.routes![0]!.route!.timeout = '9s';
  assert.deepEqual(keys(resourceProvenance(push, proxy, TypeUrl.RouteConfiguration, '9080', rc, 'truncated…', accepted)), ['VirtualService/default/ratings']);
});

test("a gateway's listeners come from its Gateways", () => {
  const { push, proxy } = setup(GATEWAY);
  assert.deepEqual(keys(resourceProvenance(push, proxy, TypeUrl.Listener, '0.0.0.0_8080', {})), ['Gateway/default/bookinfo-gateway']);
});
