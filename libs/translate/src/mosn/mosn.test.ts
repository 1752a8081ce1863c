import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readYamlDocs } from '@sextant/testing';
import { parseProxy, PushContext } from '@sextant/model';
import type { ListenerJson } from '@sextant/envoy';
import { parseObjects, translateConfig } from '../translate.js';
import { dataPlaneOf, isMosnProxy } from './detect.js';
import { mosnHeaderMatcher } from './routes.js';
import { clusterTombstones, withListenerTombstones } from './tombstones.js';
import { MOSN_TOMBSTONE_CLUSTER } from './common.js';
import { buildNameTable } from '../nds.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';
type Json = Record<string, any>;

function bookinfo() {
  const raw = [...readYamlDocs(join(repo, 'examples/bookinfo/kubernetes.yaml')), ...readYamlDocs(join(repo, 'examples/bookinfo/istio.yaml'))];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  return objects;
}

test('the MOSN profile is chosen by SEXTANT_DATA_PLANE (also as ISTIO_META_) or MOSN\'s own ISTIO_VERSION "unknow", sidecars only', () => {
  const p = (meta: Record<string, unknown>, id = PRODUCTPAGE) => parseProxy(id, meta);
  assert.equal(dataPlaneOf(p({})), 'envoy');
  assert.equal(dataPlaneOf(p({ ISTIO_VERSION: '1.24.0' })), 'envoy');
  assert.equal(isMosnProxy(p({ SEXTANT_DATA_PLANE: 'mosn' })), true);
  assert.equal(isMosnProxy(p({ ISTIO_META_SEXTANT_DATA_PLANE: 'MOSN' })), true);
  assert.equal(isMosnProxy(p({ ISTIO_VERSION: 'unknow' })), true);
  assert.equal(isMosnProxy(p({ ISTIO_VERSION: 'unknow', SEXTANT_DATA_PLANE: 'envoy' })), false, 'the explicit key wins');
  assert.equal(isMosnProxy(p({ SEXTANT_DATA_PLANE: 'mosn' }, 'router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local')), false);
});

test('an Envoy proxy and a MOSN proxy of the same pod get different forms of the same config', () => {
  const objects = bookinfo();
  const envoy = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: { NAMESPACE: 'default' } });
  const mosn = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: { NAMESPACE: 'default', SEXTANT_DATA_PLANE: 'mosn' } });
  const l = (out: typeof envoy) => out.lds!.find((x) => x.name === '0.0.0.0_9080') as Json;
  assert.equal(l(envoy).bindToPort, false);
  assert.equal(l(envoy).deprecatedV1, undefined);
  assert.deepEqual(l(mosn).deprecatedV1, { bindToPort: false });
  const jason = (out: typeof envoy) => {
    const vh = (out.rds!.find((r) => r.name === '9080')!.virtualHosts as Json[]).find((v) => v.name === 'reviews.default.svc.cluster.local:9080')!;
    return { vh, route: (vh.routes as Json[]).find((r) => r.match.headers)! };
  };
  assert.deepEqual(jason(envoy).route.match.headers, [{ name: 'end-user', stringMatch: { exact: 'jason' } }]);
  assert.deepEqual(jason(mosn).route.match.headers, [{ name: 'end-user', exactMatch: 'jason' }]);
  assert.ok(!(jason(envoy).vh.domains as string[]).includes('reviews:9080'));
  assert.ok((jason(mosn).vh.domains as string[]).includes('reviews:9080'));
  assert.ok((jason(mosn).vh.domains as string[]).includes('reviews.default.svc.cluster.local:9080'));
  const names = mosn.cds!.map((c) => c.name);
  assert.ok(names.includes('InboundPassthroughClusterIpv4') && names.includes(MOSN_TOMBSTONE_CLUSTER));
  assert.ok(!envoy.cds!.some((c) => c.name === 'InboundPassthroughClusterIpv4'));
  // Auto mTLS: Envoy matches per endpoint, MOSN gets one socket per cluster.
  const v2 = (out: typeof envoy) => out.cds!.find((c) => c.name === 'outbound|9080|v2|reviews.default.svc.cluster.local') as Json;
  assert.equal(v2(envoy).transportSocketMatches.length, 2);
  assert.equal(v2(mosn).transportSocketMatches, undefined);
  assert.equal(v2(mosn).transportSocket.name, 'envoy.transport_sockets.tls');
  assert.equal(JSON.stringify(mosn.cds).includes('sds-grpc'), false, 'SDS goes over the Unix socket');
});

test('header matchers: exact stays exact, the rest become anchored Go regexps; inverted and pseudo-headers have no MOSN form', () => {
  assert.deepEqual(mosnHeaderMatcher({ name: 'x', stringMatch: { exact: 'a.b' } }), { name: 'x', exactMatch: 'a.b' });
  const re = (h: Json) => new RegExp(mosnHeaderMatcher(h)!.safeRegexMatch.regex.replace('(?i)', ''), mosnHeaderMatcher(h)!.safeRegexMatch.regex.startsWith('(?i)') ? 'i' : '');
  const prefix = re({ name: 'x', stringMatch: { prefix: 'a.' } });
  assert.ok(prefix.test('a.b') && !prefix.test('ab') && !prefix.test('xa.b'));
  const regex = re({ name: 'x', stringMatch: { safeRegex: { regex: 'v[12]' } } });
  assert.ok(regex.test('v1') && !regex.test('v12') && !regex.test('xv1'), 'full match, as Envoy');
  const ci = re({ name: 'x', stringMatch: { exact: 'Jason', ignoreCase: true } });
  assert.ok(ci.test('jason') && !ci.test('jasonx'));
  assert.deepEqual(mosnHeaderMatcher({ name: 'x', presentMatch: true }), { name: 'x', safeRegexMatch: { regex: '^' } });
  assert.equal(mosnHeaderMatcher({ name: 'x', stringMatch: { exact: 'a' }, invertMatch: true }), undefined);
  assert.equal(mosnHeaderMatcher({ name: ':method', stringMatch: { exact: 'GET' } }), undefined);
});

test('route features MOSN cannot express are reported per VirtualService field; the other routes still apply', () => {
  const { objects } = parseObjects([
    ...readYamlDocs(join(repo, 'examples/bookinfo/kubernetes.yaml')),
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'details', namespace: 'default' },
      spec: {
        hosts: ['details'],
        http: [
          { match: [{ queryParams: { v: { exact: '2' } } }], route: [{ destination: { host: 'details' } }], name: 'q' },
          { match: [{ withoutHeaders: { x: { exact: 'y' } } }], route: [{ destination: { host: 'details' } }], name: 'w' },
          { route: [{ destination: { host: 'details' }, headers: { request: { add: { a: 'b' } } } }], corsPolicy: { allowOrigins: [{ exact: 'x' }] }, name: 'rest' },
        ],
      },
    },
  ]);
  const out = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: { SEXTANT_DATA_PLANE: 'mosn' }, types: ['lds', 'rds'] });
  const fields = out.issues.filter((i) => i.kind === 'VirtualService' && i.name === 'details').map((i) => `${i.namespace}/${i.field}: ${i.reason}`);
  assert.deepEqual(fields, [
    'default/spec.http[0].match[0].queryParams: not supported by MOSN: the route is left out for this MOSN proxy',
    'default/spec.http[1].match[0].withoutHeaders: not supported by MOSN: the route is left out for this MOSN proxy',
    'default/spec.http[2].route[0].headers: not supported by MOSN: ignored for this MOSN proxy, the rest of the route applies',
    'default/spec.http[2].corsPolicy: not supported by MOSN: ignored for this MOSN proxy, the rest of the route applies',
  ]);
  const vh = (out.rds!.find((r) => r.name === '9080')!.virtualHosts as Json[]).find((v) => v.name === 'details.default.svc.cluster.local:9080')!;
  assert.deepEqual((vh.routes as Json[]).map((r) => r.name), ['rest']);
  assert.equal((vh.routes as Json[])[0]!.typedPerFilterConfig, undefined);
  // An Envoy proxy gets all three routes and no issue.
  const envoy = translateConfig({ objects, nodeId: PRODUCTPAGE, types: ['lds', 'rds'] });
  assert.equal(envoy.issues.filter((i) => i.name === 'details').length, 0);
  const evh = (envoy.rds!.find((r) => r.name === '9080')!.virtualHosts as Json[]).find((v) => v.name === 'details.default.svc.cluster.local:9080')!;
  assert.deepEqual((evh.routes as Json[]).map((r) => r.name), ['q', 'w', 'rest']);
});

test('tombstones: a listener or cluster that disappears is re-sent, on the same address and bind setting, to a host-less cluster', () => {
  const push = PushContext.build([], { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const gone = { name: '10.0.0.1_9080', address: { socketAddress: { address: '10.0.0.1', portValue: 9080 } }, bindToPort: false, deprecatedV1: { bindToPort: false }, trafficDirection: 'OUTBOUND', filterChains: [] } as ListenerJson;
  const kept = { name: '0.0.0.0_80', address: { socketAddress: { address: '0.0.0.0', portValue: 80 } } } as ListenerJson;
  const out = withListenerTombstones([kept], new Map([[gone.name!, gone], [kept.name!, kept]])) as Json[];
  assert.deepEqual(out.map((l) => l.name), ['0.0.0.0_80', '10.0.0.1_9080']);
  const t = out[1]!;
  assert.deepEqual(t.address, gone.address);
  assert.deepEqual(t.deprecatedV1, { bindToPort: false });
  assert.equal(t.filterChains[0].filters[0].typedConfig.cluster, MOSN_TOMBSTONE_CLUSTER);
  const cs = clusterTombstones(push, new Set(['a']), ['a', 'b']) as Json[];
  assert.deepEqual(cs.map((c) => [c.name, c.type, c.loadAssignment.endpoints.length]), [['b', 'STATIC', 0]]);
});

test('PERMISSIVE on a bound inbound listener: MOSN gets the mTLS chain alone and the PeerAuthentication is reported; STRICT and Envoy unchanged', () => {
  const ID = 'sidecar~127.0.0.4~reviews-v1-0.secure~secure.svc.cluster.local';
  const base = (mode: string | undefined, extra: Json[] = []) =>
    parseObjects([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'secure' } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-v1-0', namespace: 'secure', labels: { app: 'reviews' } }, spec: { serviceAccountName: 'reviews', containers: [{ name: 'app', image: 'x' }] }, status: { podIP: '127.0.0.4', phase: 'Running' } },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Sidecar',
        metadata: { name: 'reviews', namespace: 'secure' },
        spec: { workloadSelector: { labels: { app: 'reviews' } }, ingress: [{ port: { number: 18080, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.4', captureMode: 'NONE', defaultEndpoint: '127.0.0.1:8080' }], egress: [{ hosts: ['~/*'] }] },
      },
      ...(mode ? [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'secure' }, spec: { mtls: { mode } } }] : []),
      ...extra,
    ]).objects;
  const run = (objects: ReturnType<typeof base>, mosn = true) => translateConfig({ objects, nodeId: ID, metadata: { NAMESPACE: 'secure', INTERCEPTION_MODE: 'NONE', LABELS: { app: 'reviews' }, ...(mosn ? { SEXTANT_DATA_PLANE: 'mosn' } : {}) }, types: ['lds'] });
  const chains = (out: ReturnType<typeof run>) => ((out.lds!.find((l) => l.name === '127.0.0.4_18080') as Json).filterChains as Json[]).map((c) => !!c.transportSocket);
  const reported = (out: ReturnType<typeof run>) => out.issues.filter((i) => i.kind === 'PeerAuthentication').map((i) => `${i.namespace}/${i.name} ${i.field}: ${i.reason}`);

  const permissive = run(base('PERMISSIVE'));
  assert.deepEqual(chains(permissive), [true], 'the mTLS chain only');
  assert.deepEqual(reported(permissive), [
    'secure/default spec.mtls.mode: PERMISSIVE not supported by MOSN on the bound inbound listener 127.0.0.4_18080 (MOSN serves only one filter chain of a bound listener): this MOSN proxy requires mTLS there and refuses plaintext',
  ]);
  // No PeerAuthentication at all: the mesh default, named as such.
  assert.match(reported(run(base(undefined)))[0] ?? '', /^istio-system\/\(none: mesh default\) spec\.mtls\.mode: PERMISSIVE \(the default\) not supported by MOSN/);
  // A workload port-level setting is named by its field.
  const portLevel = run(base('STRICT', [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'reviews', namespace: 'secure' }, spec: { selector: { matchLabels: { app: 'reviews' } }, portLevelMtls: { '18080': { mode: 'PERMISSIVE' } } } }]));
  assert.deepEqual(reported(portLevel).map((r) => r.split(':')[0]), ['secure/reviews spec.portLevelMtls.18080.mode']);
  // STRICT: nothing to report; Envoy keeps both chains and reports nothing.
  assert.deepEqual(reported(run(base('STRICT'))), []);
  const envoy = run(base('PERMISSIVE'), false);
  assert.deepEqual(chains(envoy), [true, false]);
  assert.deepEqual(reported(envoy), []);
});

test('mirror and mirrors are reported for a MOSN proxy (MOSN never reads request_mirror_policies)', () => {
  const objects = bookinfo();
  objects.push(
    ...parseObjects([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'details', namespace: 'default' },
        spec: { hosts: ['details'], http: [{ route: [{ destination: { host: 'details' } }], mirror: { host: 'ratings' } }, { route: [{ destination: { host: 'details' } }], mirrors: [{ destination: { host: 'ratings' } }] }] },
      },
    ]).objects,
  );
  const out = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: { SEXTANT_DATA_PLANE: 'mosn' }, types: ['lds', 'rds'] });
  assert.deepEqual(
    out.issues.filter((i) => i.name === 'details').map((i) => i.field),
    ['spec.http[0].mirror', 'spec.http[1].mirrors'],
  );
});

test("names for MOSN: with DNS capture and auto-allocation in MOSN's node metadata, its listeners use the VIP the agent's name table gives the ServiceEntry", () => {
  const { objects } = parseObjects([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'db', namespace: 'default' }, spec: { hosts: ['db.example.com'], resolution: 'DNS', location: 'MESH_EXTERNAL', ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }] } },
  ]);
  const meta = { NAMESPACE: 'default', SEXTANT_DATA_PLANE: 'mosn', DNS_CAPTURE: 'true', DNS_AUTO_ALLOCATE: 'true' };
  const out = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: meta, types: ['lds'] });
  const push = PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
  const vip = buildNameTable(push, push.resolveProxy(parseProxy(PRODUCTPAGE, meta)))?.table['db.example.com']?.ips?.[0];
  assert.match(vip ?? '', /^240\.240\.\d+\.\d+$/, 'the name table answers the allocated VIP');
  const l = out.lds!.find((x) => x.name === `${vip}_5432`) as Json | undefined;
  assert.ok(l, `MOSN holds ${vip}_5432: ${out.lds!.map((x) => x.name)}`);
  assert.deepEqual(l.deprecatedV1, { bindToPort: false }, 'unbound, as MOSN needs');
  // Without the flags the service has no address for this proxy: no such listener.
  const plain = translateConfig({ objects, nodeId: PRODUCTPAGE, metadata: { NAMESPACE: 'default', SEXTANT_DATA_PLANE: 'mosn' }, types: ['lds'] });
  assert.ok(!plain.lds!.some((x) => x.name?.startsWith('240.240.')));
});
