import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TypeUrl, encodeJson, type JsonValue } from '@sextant/envoy';
import { builtinDecoder, classify, diffSnapshots, formatReport, generalize, parseExpectedDifferences, podNode, type XdsSnapshot } from './index.js';

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

test('repeated names are matched by occurrence, so a filter inserted before them shifts nothing', () => {
  const rbac = (action: string) => ({ name: 'envoy.filters.network.rbac', typedConfig: { rules: { action } } });
  const tcp = { name: 'envoy.filters.network.tcp_proxy' };
  const a = snap({ lds: { l: { name: 'l', filterChains: [{ filters: [{ name: 'istio.metadata_exchange' }, rbac('DENY'), rbac('ALLOW'), tcp] }] } } });
  const b = snap({ lds: { l: { name: 'l', filterChains: [{ filters: [rbac('DENY'), rbac('LOG'), tcp] }] } } });
  assert.deepEqual(
    diffSnapshots(a, b).map((x) => [x.path, x.kind]),
    [
      ['lds/l/filterChains[match={}]/filters[istio.metadata_exchange]', 'missing-in-sextant'],
      ['lds/l/filterChains[match={}]/filters[envoy.filters.network.rbac#2]/typedConfig/rules/action', 'changed'],
    ],
  );
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
  const lists = parseExpectedDifferences('- {id: d, feature: f, paths: ["rds/*/virtualHosts[*]/domains"], reason: r, traffic: t}');
  assert.ok(lists.match({ path: 'rds/80/virtualHosts[a:80]/domains[5]', kind: 'changed' }, 'p'), 'a field name covers its list elements');
  assert.ok(!lists.match({ path: 'rds/80/virtualHosts[a:80]/domainsX', kind: 'changed' }, 'p'));
  const exact = parseExpectedDifferences('- {id: c, feature: f, paths: ["lds/*/filterChains[*]$"], reason: r, traffic: t}');
  assert.ok(exact.match({ path: 'lds/l/filterChains[match={}]', kind: 'missing-in-sextant' }, 'p'), '$ matches the path itself');
  assert.ok(!exact.match({ path: 'lds/l/filterChains[match={}]/name', kind: 'changed' }, 'p'), '$ does not cover the subtree');
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

test('decoding keeps what the descriptors do not know comparable: unknown fields by number and hash, unknown Any types by hash', () => {
  const decoder = builtinDecoder();
  const cluster = encodeJson(TypeUrl.Cluster, { name: 'c', type: 'EDS' });
  // Field 999 (varint 7) is not in Envoy's Cluster.
  const withUnknown = new Uint8Array([...cluster, 0xb8, 0x3e, 0x07]);
  const json = decoder.decode(TypeUrl.Cluster, withUnknown) as Record<string, unknown>;
  assert.equal(json['name'], 'c');
  assert.match(String((json['@unknownFields'] as string[])[0]), /^envoy\.config\.cluster\.v3\.Cluster#999:sha256:[0-9a-f]{16}$/);
  assert.equal((decoder.decode(TypeUrl.Cluster, cluster) as Record<string, unknown>)['@unknownFields'], undefined);
  const listener = encodeJson(TypeUrl.Listener, {
    name: 'l',
    filterChains: [{ filters: [{ name: 'x', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 's', cluster: 'c' } }] }],
  });
  // Re-point the Any at a type no registry has (same length, so the encoding stays valid): it decodes as an opaque marker instead of failing.
  const text = Buffer.from(listener).toString('latin1').replace('envoy.extensions.filters', 'example.unknownx.filters');
  const l = decoder.decode(TypeUrl.Listener, new Uint8Array(Buffer.from(text, 'latin1'))) as { filterChains: Array<{ filters: Array<{ typedConfig: { value: string } }> }> };
  assert.match(l.filterChains[0]!.filters[0]!.typedConfig.value, /^opaque type\.googleapis\.com\/example\.unknownx\.filters\.network\.tcp_proxy\.v3\.TcpProxy sha256:[0-9a-f]{16}$/);
});
