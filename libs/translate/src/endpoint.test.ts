import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson, fromBinary, messageSchema, TypeUrl } from '@sextant/envoy';
import { parseObjects, translateConfig } from './translate.js';

test('EDS: every locality group carries a locality, empty when the pod has none (grpc-js-xds NACKs it unset)', () => {
  const { objects, issues } = parseObjects([
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'default' }, spec: { clusterIP: '10.96.3.10', selector: { app: 'echo' }, ports: [{ name: 'grpc', port: 7070 }] } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'echo-1', namespace: 'default', labels: { app: 'echo' } }, spec: { containers: [{ name: 'a', image: 'x' }] }, status: { podIP: '10.244.0.7' } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'echo-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'echo' } },
      addressType: 'IPv4',
      ports: [{ name: 'grpc', port: 7070 }],
      endpoints: [{ addresses: ['10.244.0.7'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'echo-1', namespace: 'default' } }],
    },
  ]);
  assert.deepEqual(issues, []);
  const out = translateConfig({ objects, nodeId: 'sidecar~10.0.0.1~client.default~default.svc.cluster.local', metadata: { GENERATOR: 'grpc' }, types: ['cds', 'eds'] });
  const cla = out.eds!.find((c) => c.clusterName === 'outbound|7070||echo.default.svc.cluster.local')!;
  assert.ok(cla, JSON.stringify(out.eds?.map((c) => c.clusterName)));
  assert.deepEqual((cla.endpoints as Array<{ locality?: unknown }>).map((e) => e.locality), [{}]);
  // The empty locality survives encoding as a present (empty) message.
  const decoded = fromBinary(messageSchema(TypeUrl.ClusterLoadAssignment), encodeJson(TypeUrl.ClusterLoadAssignment, cla)) as unknown as { endpoints: Array<{ locality?: unknown }> };
  assert.ok(decoded.endpoints[0]!.locality !== undefined, 'locality is set on the wire');
});

test("EDS: endpoint metadata and health as istiod writes them (workload label, tlsMode from the mtlsChecker, no status for ServiceEntry endpoints)", () => {
  type Json = Record<string, any>;
  const slice = (svc: string, ns: string, port: number, pods: Array<[string, string]>): Json => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'tcp', port }],
    endpoints: pods.map(([pod, ip]) => ({ addresses: [ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: pod, namespace: ns } })),
  });
  const podOf = (name: string, ns: string, ip: string, labels: Json): Json => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { 'security.istio.io/tlsMode': 'istio', ...labels } }, spec: { containers: [{ name: 'a', image: 'x' }] }, status: { podIP: ip } });
  const { objects, issues } = parseObjects([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.12', selector: { app: 'db' }, ports: [{ name: 'tcp', port: 5432 }] } },
    podOf('db-0', 'shop', '10.1.0.7', { app: 'db', version: 'v1' }),
    podOf('db-1', 'shop', '10.1.0.8', { app: 'db', 'service.istio.io/canonical-revision': 'latest' }),
    slice('db', 'shop', 5432, [['db-0', '10.1.0.7'], ['db-1', '10.1.0.8']]),
    // The db workloads refuse mTLS on 5432; only a DestinationRule saying ISTIO_MUTUAL overrides that.
    { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'db', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'db' } }, portLevelMtls: { '5432': { mode: 'DISABLE' } } } },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'db', namespace: 'shop' }, spec: { host: 'db.shop.svc.cluster.local', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'forced', labels: { version: 'v1' }, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'cache', namespace: 'shop' }, spec: { hosts: ['cache.shop.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 11211, name: 'tcp', protocol: 'TCP' }], endpoints: [{ address: '10.2.0.1' }, { address: '10.2.0.2', labels: { app: 'memcache', version: 'v3' } }] } },
  ]);
  assert.deepEqual(issues, []);
  const out = translateConfig({ objects, nodeId: 'sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local', metadata: { NAMESPACE: 'shop' }, types: ['cds', 'eds'] });
  const eps = (name: string) => ((out.eds as Json[]).find((c) => c.clusterName === name)?.endpoints as Json[] | undefined)?.flatMap((g) => g.lbEndpoints as Json[]) ?? assert.fail(`no ${name}`);
  const view = (e: Json) => ({ health: e.healthStatus, tls: e.metadata?.filterMetadata?.['envoy.transport_socket_match']?.tlsMode, workload: e.metadata?.filterMetadata?.istio?.workload });
  // Pods: HEALTHY, revision empty when it is `latest`; the PeerAuthentication's DISABLE drops tlsMode.
  assert.deepEqual(eps('outbound|5432||db.shop.svc.cluster.local').map(view), [
    { health: 'HEALTHY', tls: undefined, workload: 'db-0;shop;db;v1;Kubernetes' },
    { health: 'HEALTHY', tls: undefined, workload: 'db-1;shop;db;;Kubernetes' },
  ]);
  // A subset's own traffic policy decides, not the top-level one.
  assert.deepEqual(eps('outbound|5432|v1|db.shop.svc.cluster.local').map((e) => view(e).tls), [undefined]);
  assert.deepEqual(eps('outbound|5432|forced|db.shop.svc.cluster.local').map((e) => view(e).tls), ['istio']);
  // ServiceEntry endpoints: no health status, workload `<ServiceEntry>-<index>`.
  assert.deepEqual(eps('outbound|11211||cache.shop.internal').map(view), [
    { health: undefined, tls: undefined, workload: 'cache-0;shop;cache-0;;Kubernetes' },
    { health: undefined, tls: undefined, workload: 'cache-1;shop;memcache;v3;Kubernetes' },
  ]);
});
