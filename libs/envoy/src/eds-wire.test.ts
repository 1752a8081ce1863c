import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromJson, toBinary, type JsonValue } from '@bufbuild/protobuf';
import { TypeUrl, canonicalize, encodeJson, messageSchema, registry } from './index.js';
import { encodeClusterLoadAssignmentJson } from './eds-wire.js';

const schema = messageSchema(TypeUrl.ClusterLoadAssignment);
/** What protobuf-es writes for the canonical JSON: the bytes the direct writer must equal. */
const generic = (json: unknown) => toBinary(schema, fromJson(schema, canonicalize(json) as JsonValue, { registry }));

/** Every ClusterLoadAssignment of the translation goldens (libs/translate/testdata/<case>/eds.json). */
function goldenAssignments(): Array<{ where: string; json: unknown }> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'translate', 'testdata');
  const out: Array<{ where: string; json: unknown }> = [];
  for (const c of readdirSync(dir)) {
    const file = join(dir, c, 'eds.json');
    if (!existsSync(file)) continue;
    for (const json of JSON.parse(readFileSync(file, 'utf8')) as unknown[]) out.push({ where: `${c}/${(json as { clusterName: string }).clusterName}`, json });
  }
  return out;
}

const ep = (address: string, extra: Record<string, unknown> = {}) => ({
  endpoint: { address: { socketAddress: { address, portValue: 9080 } } },
  healthStatus: 'HEALTHY',
  loadBalancingWeight: 1,
  metadata: { filterMetadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' }, istio: { workload: 'reviews-v1;default;reviews;v1;Kubernetes' } } },
  ...extra,
});

/** Forms beyond the goldens': every handled field, defaults, multi-byte lengths and text, every Struct value kind. */
const variants: Array<[string, unknown]> = [
  ['empty', { clusterName: 'outbound|80||a.b.svc.cluster.local', endpoints: [] }],
  ['no endpoints key', { clusterName: 'x' }],
  ['no name', { endpoints: [{ lbEndpoints: [] }] }],
  ['two localities with priority and weights', {
    clusterName: 'outbound|9080|v1|reviews.default.svc.cluster.local',
    endpoints: [
      { locality: { region: 'us-east1', zone: 'us-east1-b', subZone: 'rack-1' }, lbEndpoints: [ep('10.0.0.1'), ep('10.0.0.2', { loadBalancingWeight: 300 })], loadBalancingWeight: 301 },
      { locality: {}, lbEndpoints: [ep('10.0.0.3', { healthStatus: 'DRAINING' })], loadBalancingWeight: 0, priority: 2 },
    ],
  }],
  ['every health status, UDP, a hostname, port 0', {
    clusterName: 'c',
    endpoints: [{ lbEndpoints: ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'].map((h, i) => ({ endpoint: { address: { socketAddress: { protocol: i % 2 ? 'UDP' : 'TCP', address: `10.0.1.${i}`, portValue: i === 0 ? 0 : 15000 + i } }, hostname: i === 3 ? 'pod-3.example' : '' }, healthStatus: h })) }],
  }],
  ['long and non-ASCII text', { clusterName: `outbound|80||${'ü'.repeat(90)}.svc`, endpoints: [{ lbEndpoints: [ep('fd00::1', { metadata: { filterMetadata: { istio: { workload: 'é'.repeat(200) } } } })] }] }],
  ['every Struct value kind, nested', {
    clusterName: 'c',
    endpoints: [{ lbEndpoints: [ep('10.0.0.9', { metadata: { filterMetadata: { '': {}, custom: { n: 1.5, neg: -3, zero: 0, big: 2 ** 40, t: true, f: false, nil: null, s: '', l: [1, 'a', null, [true], { k: 'v' }], o: { deeper: { x: 'y' } }, '10': 'numeric key', b: 'after' } } } })] }],
  }],
];

test('the direct writer gives the bytes protobuf-es gives, for every golden assignment and every handled form', () => {
  const golden = goldenAssignments();
  assert.ok(golden.length >= 10, `golden assignments found: ${golden.length}`);
  for (const { where, json } of [...golden, ...variants.map(([where, json]) => ({ where, json }))]) {
    const direct = encodeClusterLoadAssignmentJson(canonicalize(json));
    assert.ok(direct, `${where}: handled by the direct writer`);
    assert.deepEqual(Buffer.from(direct), Buffer.from(generic(json)), where);
    assert.deepEqual(Buffer.from(encodeJson(TypeUrl.ClusterLoadAssignment, json)), Buffer.from(direct), `${where}: encodeJson takes it`);
  }
});

test('forms the direct writer does not handle take the generic path, with its result or its error', () => {
  const base = { clusterName: 'c', endpoints: [{ lbEndpoints: [ep('10.0.0.1')] }] };
  const others: Array<[string, unknown]> = [
    ['a field it does not write (policy)', { ...base, policy: { overprovisioningFactor: 140 } }],
    ['a health status by number', { clusterName: 'c', endpoints: [{ lbEndpoints: [{ ...ep('10.0.0.1'), healthStatus: 2 }] }] }],
    ['a port as a string', { clusterName: 'c', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: '80' } } } }] }] }],
    ['a null locality', { clusterName: 'c', endpoints: [{ locality: null, lbEndpoints: [] }] }],
    ['typed filter metadata', { clusterName: 'c', endpoints: [{ lbEndpoints: [{ ...ep('10.0.0.1'), metadata: { typedFilterMetadata: {} } }] }] }],
  ];
  for (const [where, json] of others) {
    assert.equal(encodeClusterLoadAssignmentJson(canonicalize(json)), undefined, where);
    assert.deepEqual(Buffer.from(encodeJson(TypeUrl.ClusterLoadAssignment, json)), Buffer.from(generic(json)), where);
  }
  // Bad input still gets the parser's error, naming the type.
  const bad = { clusterName: 'c', endpoints: [{ lbEndpoints: [{ healthStatus: 'SOMETIMES' }] }] };
  assert.equal(encodeClusterLoadAssignmentJson(canonicalize(bad)), undefined);
  assert.throws(() => encodeJson(TypeUrl.ClusterLoadAssignment, bad), /ClusterLoadAssignment/);
  assert.throws(() => encodeJson(TypeUrl.ClusterLoadAssignment, { clusterName: 'c', endpoints: [{ priority: -1 }] }), /ClusterLoadAssignment/);
});
