import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeltaDiscoveryRequestSchema, TypeUrl, create, fromBinary, toBinary } from '@sextant/envoy';
import { decodeDeltaRequestDirectly } from './service.js';

const bytesOf = (init: Parameters<typeof create<typeof DeltaDiscoveryRequestSchema>>[1]) => toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, init));

test('ACKs and subscription changes are read directly, as the object protobuf-es gives for the same bytes', () => {
  const cases = [
    { typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: '1f3a' },
    { typeUrl: TypeUrl.RouteConfiguration, resourceNamesSubscribe: ['80', '9080', 'reviews.default.svc.cluster.local:9080'], resourceNamesUnsubscribe: ['8080'], responseNonce: 'x' },
    { typeUrl: TypeUrl.Cluster },
    { resourceNamesSubscribe: ['ü'.repeat(200), ''] },
    {},
  ];
  for (const c of cases) {
    const b = bytesOf(c);
    const direct = decodeDeltaRequestDirectly(b);
    assert.ok(direct, JSON.stringify(c));
    assert.deepEqual(direct, fromBinary(DeltaDiscoveryRequestSchema, b), JSON.stringify(c));
  }
});

test('requests with anything else are left to protobuf-es', () => {
  const others = [
    bytesOf({ typeUrl: TypeUrl.Cluster, node: { id: 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local' } }),
    bytesOf({ typeUrl: TypeUrl.ClusterLoadAssignment, initialResourceVersions: { a: '1' } }),
    bytesOf({ typeUrl: TypeUrl.Cluster, responseNonce: 'n', errorDetail: { code: 3, message: 'rejected' } }),
    bytesOf({ typeUrl: TypeUrl.Cluster, resourceLocatorsSubscribe: [{ name: 'x' }] }),
    Uint8Array.from([0x12, 0x02, 0xc3, 0x28]), // type_url that is not UTF-8
    Uint8Array.from([0x12, 0x05, 0x61]), // truncated
    Uint8Array.from([0x10, 0x01]), // a varint field
  ];
  for (const b of others) assert.equal(decodeDeltaRequestDirectly(b), undefined, Buffer.from(b).toString('hex'));
});
