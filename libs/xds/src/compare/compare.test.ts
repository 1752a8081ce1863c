import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JsonValue } from '@sextant/envoy';
import { classify, diffSnapshots, formatReport, generalize, parseExpectedDifferences, podNode, type XdsSnapshot } from './index.js';

function snap(parts: Partial<Record<'lds' | 'rds' | 'cds' | 'eds', Record<string, unknown>>>): XdsSnapshot {
  const m = (o: Record<string, unknown> = {}) => new Map(Object.entries(o) as [string, JsonValue][]);
  return { lds: m(parts.lds), rds: m(parts.rds), cds: m(parts.cds), eds: m(parts.eds) };
}

test('named list elements are matched by name, set-like lists by content, ordered lists by position', () => {
  const a = snap({
    rds: { '80': { name: '80', virtualHosts: [{ name: 'a:80', domains: ['a', 'a.ns'], routes: [{ match: { prefix: '/x' } }, { match: { prefix: '/' } }] }] } },
    cds: { c: { name: 'c', type: 'EDS' } },
  });
  const b = snap({
    rds: { '80': { name: '80', virtualHosts: [{ name: 'b:80', domains: ['b'] }, { name: 'a:80', domains: ['a.ns', 'a'], routes: [{ match: { prefix: '/' } }, { match: { prefix: '/x' } }] }] } },
    cds: { c: { name: 'c', type: 'EDS' }, d: { name: 'd' } },
  });
  const d = diffSnapshots(a, b);
  assert.deepEqual(
    d.map((x) => [x.path, x.kind]),
    [
      ['cds/d', 'extra-in-sextant'],
      ['rds/80/virtualHosts[a:80]/routes[0]/match/prefix', 'changed'],
      ['rds/80/virtualHosts[a:80]/routes[1]/match/prefix', 'changed'],
      ['rds/80/virtualHosts[b:80]', 'extra-in-sextant'],
    ],
  );
  assert.equal(generalize('rds/80/virtualHosts[a:80]/routes[0]/match/prefix'), 'rds/*/virtualHosts[*]/routes[*]/match/prefix');
  assert.equal(generalize('lds/x/filters[envoy.filters.network.http_connection_manager]/a'), 'lds/*/filters[envoy.filters.network.http_connection_manager]/a');
});

test('expected differences: subtree patterns, ** and kinds; unlisted and stale entries are reported', () => {
  const expected = parseExpectedDifferences(`
- id: stats
  feature: telemetry
  paths: ["lds/**/httpFilters[istio.stats]"]
  kind: missing-in-sextant
  reason: not generated yet
  traffic: none, metrics only
  issue: 12
- id: gone
  feature: traffic
  paths: ["cds/*/circuitBreakers"]
  reason: fixed already
  traffic: none
`);
  const results = [
    {
      proxy: 'p1',
      nodeId: 'sidecar~1.1.1.1~a.ns~ns.svc.cluster.local',
      differences: [
        { path: 'lds/0.0.0.0_80/filterChains[x]/filters[envoy.filters.network.http_connection_manager]/typedConfig/httpFilters[istio.stats]', kind: 'missing-in-sextant' as const, istiod: {} },
        { path: 'lds/0.0.0.0_80/filterChains[x]/filters[envoy.filters.network.http_connection_manager]/typedConfig/httpFilters[istio.stats]/typedConfig', kind: 'changed' as const, istiod: 1, sextant: 2 },
      ],
    },
  ];
  const r = classify(results, expected);
  assert.equal(r.expectedCount, 1);
  assert.equal(r.unexpectedCount, 1, 'the kind filter leaves the changed one unexplained');
  assert.deepEqual(r.stale.map((e) => e.id), ['gone']);
  const text = formatReport(r);
  assert.match(text, /expected {3}telemetry\/stats \(issue 12\): 1/);
  assert.match(text, /UNEXPECTED lds\/\*\/filterChains\[\*\]\/filters\[envoy.filters.network.http_connection_manager\]\/typedConfig\/httpFilters\[istio.stats\]\/typedConfig \[changed\]: 1/);
  assert.match(text, /STALE traffic\/gone/);
  assert.throws(() => parseExpectedDifferences('- {id: a, feature: f, paths: [x], reason: r}'), /entry 1 \(a\): traffic/);
  assert.throws(() => parseExpectedDifferences('- {id: a, feature: f, paths: [x], reason: r, traffic: t, colour: red}'), /unknown field colour/);
});

test('podNode derives the node pilot-agent sends for a Deployment pod', () => {
  const node = podNode(
    {
      metadata: {
        name: 'reviews-v1-7d4b9c-x2x2x',
        namespace: 'shop',
        labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '7d4b9c' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d4b9c', controller: true }],
      },
      spec: { nodeName: 'node-0', serviceAccountName: 'reviews', containers: [{ name: 'reviews', ports: [{ containerPort: 9080 }] }] },
      status: { podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }] },
    },
    { istioVersion: '1.28.0' },
  );
  assert.equal(node.id, 'sidecar~10.0.0.5~reviews-v1-7d4b9c-x2x2x.shop~shop.svc.cluster.local');
  const m = node.metadata!;
  assert.equal(m['WORKLOAD_NAME'], 'reviews-v1');
  assert.equal(m['OWNER'], 'kubernetes://apis/apps/v1/namespaces/shop/deployments/reviews-v1');
  assert.deepEqual(m['LABELS'], { app: 'reviews', version: 'v1' });
  assert.equal(m['SERVICE_ACCOUNT'], 'reviews');
  assert.equal(m['ISTIO_VERSION'], '1.28.0');
  assert.equal(m['APP_CONTAINERS'], 'reviews');
});
