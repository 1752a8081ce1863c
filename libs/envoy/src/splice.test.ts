import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceEncoder, TypeUrl, markDerived, splicePlaceholder, templateOf } from './index.js';

/** A listener with `chains` HTTP filter chains whose HCMs carry the canonical tracing tags (as a sidecar's 0.0.0.0_80). */
function listener(revision: string, service: string, chains = 2): Record<string, unknown> {
  const hcm = {
    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    statPrefix: 'outbound_0.0.0.0_80',
    rds: { routeConfigName: '80', configSource: { ads: {}, resourceApiVersion: 'V3' } },
    tracing: {
      clientSampling: { value: 100 },
      customTags: [
        { tag: 'istio.canonical_revision', literal: { value: revision } },
        { tag: 'istio.canonical_service', literal: { value: service } },
        { tag: 'istio.mesh_id', literal: { value: 'cluster.local' } },
      ],
    },
    httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
  };
  return {
    name: '0.0.0.0_80',
    address: { socketAddress: { address: '0.0.0.0', portValue: 80 } },
    filterChains: Array.from({ length: chains }, (_, i) => ({
      filterChainMatch: { destinationPort: 80, prefixRanges: [{ addressPrefix: `10.0.0.${i}`, prefixLen: 32 }] },
      filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }],
    })),
    defaultFilterChain: { filters: [{ name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 'PassthroughCluster', cluster: 'PassthroughCluster' } }] },
    trafficDirection: 'OUTBOUND',
  };
}

const template = (chains: number) => listener(splicePlaceholder(0), splicePlaceholder(1), chains);
/** A workload's copy, marked as made from the template (what withCanonicalTags does). */
function derived(t: object, revision: string, service: string, chains: number): Record<string, unknown> {
  const json = listener(revision, service, chains);
  markDerived(json, t, [revision, service]);
  return json;
}
/** What encoding the copy whole gives (a fresh encoder, an unmarked copy of the JSON). */
const wholeResource = (json: unknown) => new ResourceEncoder().encode(TypeUrl.Listener, '0.0.0.0_80', structuredClone(json));
const whole = (json: unknown) => Buffer.from(wholeResource(json).any);

test('a copy of a template with other string values is rendered from the template bytes, equal to encoding it whole', () => {
  // Two chains: encoded as one message; six: composed from the chains' bytes. Each is spliced in its own order.
  for (const chains of [2, 6]) {
    const enc = new ResourceEncoder();
    const t = template(chains);
    // Short, long (the length prefixes of every enclosing message grow a byte), empty (proto3 leaves the field out), non-ASCII.
    const values: Array<[string, string]> = [['v1', 'reviews'], ['latest', 'r'.repeat(300)], ['', 'ratings'], ['v2', 'évaluations-服务']];
    for (const [rev, svc] of values) {
      const json = derived(t, rev, svc, chains);
      const res = enc.encode(TypeUrl.Listener, '0.0.0.0_80', json);
      const ref = wholeResource(json);
      assert.deepEqual(Buffer.from(res.any), Buffer.from(ref.any), `${chains} chains, ${JSON.stringify([rev, svc])}`);
      assert.equal(res.version, ref.version);
      // A spliced resource renders its bytes when read: every read gives the same bytes.
      assert.deepEqual(Buffer.from(res.value), Buffer.from(ref.value));
      assert.deepEqual(Buffer.from(res.any), Buffer.from(ref.any));
    }
    // The first copy is checked against a whole encoding; the rest are spliced.
    assert.equal(enc.spliced, values.length - 1, `${chains} chains: copies spliced`);
  }
});

test('a template whose placeholder is not a whole string field, or a copy that is not the template with its values, is encoded whole', () => {
  const enc = new ResourceEncoder();
  // The placeholder inside a longer string: no plan.
  const partial = listener(`rev-${splicePlaceholder(0)}`, splicePlaceholder(1));
  const a = listener('rev-v1', 'reviews');
  markDerived(a, partial, ['v1', 'reviews']);
  assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', a).any), whole(a));
  // A copy that differs from its template elsewhere: the check of the first copy refuses the plan, for good.
  const t = template(2);
  const liar = { ...listener('v1', 'reviews'), trafficDirection: 'INBOUND' };
  markDerived(liar, t, ['v1', 'reviews']);
  assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', liar).any), whole(liar));
  const next = derived(t, 'v2', 'ratings', 2);
  assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', next).any), whole(next));
  assert.equal(enc.spliced, 0);
});

test('templates equal in content (the classes of other namespaces) share one plan: only the first copy of all is encoded whole', () => {
  const enc = new ResourceEncoder();
  const a = template(2);
  const b = template(2); // another class's template: another object, the same content
  const first = derived(a, 'v1', 'reviews', 2);
  const second = derived(b, 'v1', 'ratings', 2);
  assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', first).any), whole(first));
  assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', second).any), whole(second));
  assert.equal(enc.spliced, 1, "the second template's copy is spliced with the plan the first one checked");
});

/** A workload's listener whose chains are each marked as a copy of templateOf(chain, its values) (what markWorkloadChains does). */
function withMarkedChains(revision: string, service: string, chains: number): Record<string, unknown> {
  const json = listener(revision, service, chains);
  for (const c of json.filterChains as object[]) markDerived(c, templateOf(c, [revision, service]), [revision, service]);
  return json;
}

test('templateOf puts placeholders where the values are, and putting the values back gives the JSON again', () => {
  const json = { a: 'reviews', b: ['v1', 'x', { c: 'reviews', d: 3, e: true, f: null }], g: '' };
  const t = templateOf(json, ['v1', 'reviews', '']);
  assert.deepEqual(t, { a: splicePlaceholder(1), b: [splicePlaceholder(0), 'x', { c: splicePlaceholder(1), d: 3, e: true, f: null }], g: '' }, 'every equal string, not the empty one');
  assert.deepEqual(json.b[0], 'v1', 'the JSON itself is left as it was');
});

test("a composed listener's chains marked as copies are rendered from their templates' bytes, equal to encoding them whole", () => {
  const enc = new ResourceEncoder();
  const workloads: Array<[string, string]> = [['v1', 'reviews'], ['v2', 'r'.repeat(300)], ['latest', 'évaluations-服务']];
  for (const [rev, svc] of workloads) {
    const json = withMarkedChains(rev, svc, 6);
    const res = enc.encode(TypeUrl.Listener, '0.0.0.0_80', json);
    assert.deepEqual(Buffer.from(res.any), whole(json), svc);
    assert.equal(res.version, wholeResource(json).version);
  }
  // Each chain's template is checked by the first workload's copy; the other workloads' chains are spliced.
  assert.equal(enc.partsSpliced, 6 * (workloads.length - 1));
  assert.equal(enc.spliced, 0, 'the listeners themselves are composed, not spliced');
});

test('a chain whose template does not encode (a value where an enum name is) is encoded whole, and the listener still encodes', () => {
  const enc = new ResourceEncoder();
  // resourceApiVersion 'V3' is an enum: as a placeholder it is no enum value, so the template has no encoding.
  for (const svc of ['V3', 'V3']) {
    const json = withMarkedChains('v1', svc, 6);
    assert.deepEqual(Buffer.from(enc.encode(TypeUrl.Listener, '0.0.0.0_80', json).any), whole(json));
  }
  assert.equal(enc.partsSpliced, 0);
});
