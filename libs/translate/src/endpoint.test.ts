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
