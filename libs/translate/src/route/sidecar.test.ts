import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson } from '@sextant/envoy';
import { buildListeners, buildRoutes } from '../generator/index.js';
import { endpointSlice, istio, pod, proxyIn, pushContext, service } from '@sextant/testing/push';
import { walkRequest } from './walk.js';
import { virtualServiceIssues } from './virtual-service.js';

type Json = Record<string, any>;

const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const ROUTE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';

/** Every resource must be accepted by Envoy's own schema (encoding through the generated protos). */
function assertEncodes(listeners: unknown[], routes: unknown[]) {
  for (const l of listeners) assert.doesNotThrow(() => encodeJson(LISTENER, l), `listener ${(l as Json).name}`);
  for (const r of routes) assert.doesNotThrow(() => encodeJson(ROUTE, r), `route ${(r as Json).name}`);
}

const reviews = service('reviews', 'default', '10.96.0.10', [['http', 9080]]);
const ratings = service('ratings', 'default', '10.96.0.11', [['http', 9080]]);
const mysql = service('mysqldb', 'db', '10.96.0.20', [['tcp', 3306]]);
const sniffed = service('legacy', 'default', '10.96.0.30', [['', 7070]]);

const reviewsVS = istio('VirtualService', 'default', 'reviews', {
  hosts: ['reviews'],
  http: [
    { name: 'jason', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
    {
      name: 'split',
      match: [{ uri: { prefix: '/api' } }],
      rewrite: { uri: '/v1/api', authority: 'reviews.internal' },
      timeout: '1.5s',
      retries: { attempts: 3, perTryTimeout: '500ms', retryOn: '5xx,503' },
      fault: { abort: { httpStatus: 418, percentage: { value: 10 } }, delay: { fixedDelay: '2s', percentage: { value: 50 } } },
      mirror: { host: 'ratings' },
      mirrorPercentage: { value: 25 },
      corsPolicy: { allowOrigins: [{ exact: 'https://a.example' }], allowMethods: ['GET', 'POST'], maxAge: '24h' },
      headers: { request: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['x-c'] }, response: { set: { 'x-d': '3' } } },
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 75 },
        { destination: { host: 'reviews', subset: 'v3' }, weight: 25 },
      ],
    },
    { name: 'old', match: [{ uri: { exact: '/old' } }], redirect: { uri: '/new', authority: 'ratings', redirectCode: 302 } },
    { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
  ],
});

test('sidecar listeners carry Istio names and encode as Envoy accepts them', () => {
  // The proxy (10.0.0.9) is an endpoint of reviews: its inbound side serves 9080.
  const push = pushContext([reviews, ratings, mysql, sniffed, pod('app', 'default', '10.0.0.9'), endpointSlice('reviews', 'default', [['http', 9080]], [{ ip: '10.0.0.9', pod: 'app' }])]);
  const p = proxyIn(push);
  const ls = buildListeners(push, p) as Json[];
  const names = ls.map((l) => l.name);
  assert.deepEqual(names, ['0.0.0.0_9080', '10.96.0.20_3306', '10.96.0.30_7070', 'virtualInbound', 'virtualOutbound']);
  const http = ls.find((l) => l.name === '0.0.0.0_9080')!;
  assert.equal(http.bindToPort, false);
  assert.equal(http.filterChains[0].filters[0].typedConfig.rds.routeConfigName, '9080');
  const vo = ls.find((l) => l.name === 'virtualOutbound')!;
  assert.equal(vo.address.socketAddress.portValue, 15001);
  assert.equal(vo.useOriginalDst, true);
  assert.equal(vo.filterChains.find((c: Json) => !c.filterChainMatch).filters[0].typedConfig.cluster, 'PassthroughCluster');
  const vi = ls.find((l) => l.name === 'virtualInbound')!;
  assert.equal(vi.address.socketAddress.portValue, 15006);
  assert.deepEqual(vi.listenerFilters.map((f: Json) => f.name), ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector', 'envoy.filters.listener.http_inspector']);
  assert.ok(vi.filterChains.some((c: Json) => c.filterChainMatch?.destinationPort === 9080 && c.filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].route.cluster === 'inbound|9080||'));
  const tcp = ls.find((l) => l.name === '10.96.0.20_3306')!;
  assert.equal(tcp.filterChains[0].filters[0].typedConfig.cluster, 'outbound|3306||mysqldb.db.svc.cluster.local');
  const sn = ls.find((l) => l.name === '10.96.0.30_7070')!;
  assert.equal(sn.filterChains[0].filters[0].typedConfig.rds.routeConfigName, 'legacy.default.svc.cluster.local:7070');
  const routes = buildRoutes(push, p, ['9080', 'legacy.default.svc.cluster.local:7070']);
  assertEncodes(ls, routes);
});

test('RDS 9080: virtual hosts, short-name domains, VirtualService features as istiod emits them', () => {
  const push = pushContext([reviews, ratings, reviewsVS]);
  const [rc] = buildRoutes(push, proxyIn(push), ['9080']) as Json[];
  assert.equal(rc!.name, '9080');
  assert.deepEqual(rc!.virtualHosts.map((v: Json) => v.name), ['ratings.default.svc.cluster.local:9080', 'reviews.default.svc.cluster.local:9080', 'allow_any']);
  const vh = rc!.virtualHosts[1];
  assert.deepEqual(vh.domains, ['reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local.', 'reviews', 'reviews.default.svc', 'reviews.default', '10.96.0.10']);
  const [jason, split, old, dflt] = vh.routes as Json[];
  assert.deepEqual(jason!.match, { prefix: '/', caseSensitive: true, headers: [{ name: 'end-user', stringMatch: { exact: 'jason' } }] });
  assert.equal(jason!.route.cluster, 'outbound|9080|v2|reviews.default.svc.cluster.local');
  assert.deepEqual(jason!.route.retryPolicy.retryOn, 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes');
  assert.equal(jason!.route.retryPolicy.numRetries, 2);
  assert.equal(jason!.route.timeout, '0s');
  const a = split!.route;
  assert.deepEqual(a.weightedClusters.clusters, [
    { name: 'outbound|9080|v1|reviews.default.svc.cluster.local', weight: 75 },
    { name: 'outbound|9080|v3|reviews.default.svc.cluster.local', weight: 25 },
  ]);
  assert.equal(a.prefixRewrite, '/v1/api');
  assert.equal(a.hostRewriteLiteral, 'reviews.internal');
  assert.equal(a.timeout, '1.5s');
  assert.deepEqual(a.retryPolicy.retriableStatusCodes, [503]);
  assert.equal(a.retryPolicy.retryOn, '5xx,retriable-status-codes');
  assert.equal(a.retryPolicy.perTryTimeout, '0.5s');
  assert.deepEqual(a.requestMirrorPolicies, [{ cluster: 'outbound|9080||ratings.default.svc.cluster.local', runtimeFraction: { defaultValue: { numerator: 250000, denominator: 'MILLION' } }, traceSampled: false, disableShadowHostSuffixAppend: true }]);
  assert.equal(split!.typedPerFilterConfig['envoy.filters.http.fault'].abort.httpStatus, 418);
  assert.equal(split!.typedPerFilterConfig['envoy.filters.http.fault'].delay.fixedDelay, '2s');
  assert.equal(split!.typedPerFilterConfig['envoy.filters.http.cors'].maxAge, '86400');
  assert.deepEqual(split!.requestHeadersToRemove, ['x-c']);
  assert.deepEqual(split!.requestHeadersToAdd.map((h: Json) => [h.header.key, h.appendAction]), [['x-a', 'OVERWRITE_IF_EXISTS_OR_ADD'], ['x-b', 'APPEND_IF_EXISTS_OR_ADD']]);
  assert.deepEqual(old!.redirect, { hostRedirect: 'ratings', pathRedirect: '/new', responseCode: 'FOUND' });
  assert.equal(dflt!.route.cluster, 'outbound|9080|v1|reviews.default.svc.cluster.local');
  const ratingsVh = rc!.virtualHosts[0];
  assert.equal(ratingsVh.routes[0].name, 'default');
  assert.equal(ratingsVh.routes[0].route.cluster, 'outbound|9080||ratings.default.svc.cluster.local');
  assert.equal(rc!.virtualHosts[2].routes[0].route.cluster, 'PassthroughCluster');
  assertEncodes([], [rc]);
});

test('domains from another namespace and REGISTRY_ONLY catch-all', () => {
  const push = pushContext([reviews], { meshConfig: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } } });
  const [rc] = buildRoutes(push, proxyIn(push, { namespace: 'other' }), ['9080']) as Json[];
  assert.deepEqual(rc!.virtualHosts[0].domains, ['reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local.', 'reviews.default', 'reviews.default.svc', '10.96.0.10']);
  assert.deepEqual(rc!.virtualHosts[1], { name: 'block_all', domains: ['*'], routes: [{ name: 'block_all', match: { prefix: '/' }, directResponse: { status: 502 } }], includeRequestAttemptCount: true });
});

test('behaviour: a request walks listener → route config → virtual host → route → cluster', () => {
  const push = pushContext([reviews, ratings, reviewsVS]);
  const p = proxyIn(push);
  const ls = buildListeners(push, p) as Json[];
  const rs = buildRoutes(push, p, ['9080']) as Json[];
  const walk = (host: string, path: string, headers?: Record<string, string>) => walkRequest(ls, rs, { port: 9080, host, path, headers });
  assert.equal(walk('reviews:9080', '/', { 'end-user': 'jason' })!.cluster, 'outbound|9080|v2|reviews.default.svc.cluster.local');
  assert.equal(walk('reviews.default.svc.cluster.local', '/x')!.cluster, 'outbound|9080|v1|reviews.default.svc.cluster.local');
  assert.equal(walk('reviews', '/api/list')!.weightedClusters!.length, 2);
  assert.equal(walk('reviews', '/old')!.redirect!.pathRedirect, '/new');
  assert.equal(walk('ratings.default', '/')!.cluster, 'outbound|9080||ratings.default.svc.cluster.local');
  assert.equal(walk('example.com', '/')!.cluster, 'PassthroughCluster');
});

test('two VirtualServices for one host: the older wins on sidecars and the conflict is reported', () => {
  const a = istio('VirtualService', 'default', 'a', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] }, '2024-01-01T00:00:00Z');
  const b = istio('VirtualService', 'default', 'b', { hosts: ['reviews.default.svc.cluster.local'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }] }, '2024-02-01T00:00:00Z');
  const push = pushContext([reviews, b, a]);
  const [rc] = buildRoutes(push, proxyIn(push), ['9080']) as Json[];
  assert.equal(rc!.virtualHosts[0].routes[0].route.cluster, 'outbound|9080|v1|reviews.default.svc.cluster.local');
  const issues = virtualServiceIssues(push);
  assert.ok(issues.some((i) => i.name === 'b' && i.field === 'spec.hosts[0]' && /also claimed by VirtualService default\/a/.test(i.reason)), JSON.stringify(issues));
});

test('delegate VirtualServices merge into the root, matches combined; missing delegates are reported', () => {
  const root = istio('VirtualService', 'default', 'root', {
    hosts: ['reviews'],
    http: [
      { match: [{ uri: { prefix: '/api' } }], delegate: { name: 'api', namespace: 'team' } },
      { match: [{ uri: { prefix: '/gone' } }], delegate: { name: 'missing' } },
      { route: [{ destination: { host: 'reviews' } }] },
    ],
  });
  const del = istio('VirtualService', 'team', 'api', {
    http: [
      { match: [{ uri: { prefix: '/api/v2' } }], route: [{ destination: { host: 'reviews.default.svc.cluster.local', subset: 'v2' } }] },
      { match: [{ uri: { prefix: '/other' } }], route: [{ destination: { host: 'reviews.default.svc.cluster.local', subset: 'v3' } }] },
      { route: [{ destination: { host: 'reviews.default.svc.cluster.local', subset: 'v1' } }] },
    ],
  });
  const push = pushContext([reviews, root, del]);
  const [rc] = buildRoutes(push, proxyIn(push), ['9080']) as Json[];
  const routes = rc!.virtualHosts[0].routes as Json[];
  assert.deepEqual(
    routes.map((r) => [r.match.prefix, r.route.cluster]),
    [
      ['/api/v2', 'outbound|9080|v2|reviews.default.svc.cluster.local'],
      ['/api', 'outbound|9080|v1|reviews.default.svc.cluster.local'],
      ['/', 'outbound|9080||reviews.default.svc.cluster.local'],
    ],
  );
  const issues = virtualServiceIssues(push);
  assert.ok(issues.some((i) => i.name === 'root' && i.field === 'spec.http[1].delegate' && /default\/missing not found/.test(i.reason)));
});

test('issues: unknown destination, unknown subset, weights not adding to 100', () => {
  const vs = istio('VirtualService', 'default', 'w', {
    hosts: ['reviews'],
    http: [{ route: [{ destination: { host: 'nope' }, weight: 30 }, { destination: { host: 'reviews', subset: 'v9' }, weight: 30 }] }],
  });
  const dr = istio('DestinationRule', 'default', 'reviews', { host: 'reviews', subsets: [{ name: 'v1' }] });
  const issues = virtualServiceIssues(pushContext([reviews, vs, dr]));
  const by = (f: string) => issues.find((i) => i.field === f);
  assert.match(by('spec.http[0].route[0].destination.host')!.reason, /nope\.default\.svc\.cluster\.local is not a known service/);
  assert.match(by('spec.http[0].route[1].destination.subset')!.reason, /subset v9/);
  assert.match(by('spec.http[0].route')!.reason, /add up to 60, not 100/);
});

test('Sidecar egress listener with captureMode NONE binds its address and port', () => {
  const sidecar = istio('Sidecar', 'default', 'default', {
    egress: [{ port: { number: 19080, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./reviews.default.svc.cluster.local'] }],
  });
  const reviewsOn = service('reviews', 'default', '10.96.0.10', [['http', 19080]]);
  const push = pushContext([reviewsOn, ratings, sidecar, reviewsVS]);
  const p = proxyIn(push, { metadata: { INTERCEPTION_MODE: 'NONE' } });
  const ls = buildListeners(push, p) as Json[];
  assert.deepEqual(ls.map((l) => l.name), ['127.0.0.1_19080']);
  assert.equal(ls[0]!.bindToPort, undefined); // bind_to_port defaults to true
  assert.deepEqual(ls[0]!.address, { socketAddress: { address: '127.0.0.1', portValue: 19080 } });
  const rs = buildRoutes(push, p, ['19080']) as Json[];
  assert.deepEqual(rs[0]!.virtualHosts.map((v: Json) => v.name), ['reviews.default.svc.cluster.local:19080', 'allow_any']);
  assert.equal(walkRequest(ls, rs, { port: 19080, address: '127.0.0.1', host: 'reviews', path: '/', headers: { 'end-user': 'jason' } })!.cluster, 'outbound|19080|v2|reviews.default.svc.cluster.local');
  assertEncodes(ls, rs);
});

test('consistentHash: routes carry the hash policy of their destination rule (subset port-level > subset > port-level > rule), retries then keep the host', () => {
  const multi = service('shop', 'default', '10.96.0.40', [['http', 8080], ['http-admin', 9090]]);
  const dr = istio('DestinationRule', 'default', 'shop', {
    host: 'shop',
    trafficPolicy: {
      loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } },
      portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { consistentHash: { httpCookie: { name: 'sess', ttl: '30s', path: '/p', attributes: [{ name: 'SameSite', value: 'Strict' }] } } } }],
    },
    subsets: [
      { name: 'a', labels: { v: 'a' }, trafficPolicy: { loadBalancer: { consistentHash: { httpQueryParameterName: 'q' } } } },
      { name: 'b', labels: { v: 'b' }, trafficPolicy: { portLevelSettings: [{ port: { number: 8080 }, loadBalancer: { consistentHash: { useSourceIp: true } } }] } },
    ],
  });
  const vs = istio('VirtualService', 'default', 'shop', {
    hosts: ['shop'],
    http: [
      { match: [{ uri: { prefix: '/a' } }], route: [{ destination: { host: 'shop', subset: 'a' } }] },
      { match: [{ uri: { prefix: '/b' } }], route: [{ destination: { host: 'shop', subset: 'b', port: { number: 8080 } } }] },
      { match: [{ uri: { prefix: '/admin' } }], route: [{ destination: { host: 'shop', port: { number: 9090 } } }] },
      { match: [{ uri: { prefix: '/split' } }], route: [{ destination: { host: 'shop', subset: 'a' }, weight: 50 }, { destination: { host: 'shop', subset: 'b' }, weight: 50 }] },
      { route: [{ destination: { host: 'shop' } }] },
    ],
  });
  const push = pushContext([multi, dr, vs]);
  const [rc] = buildRoutes(push, proxyIn(push), ['8080']) as Json[];
  const [a, b, admin, split, dflt] = rc!.virtualHosts.find((v: Json) => v.name === 'shop.default.svc.cluster.local:8080').routes as Json[];
  assert.deepEqual(a!.route.hashPolicy, [{ queryParameter: { name: 'q' } }]);
  assert.deepEqual(b!.route.hashPolicy, [{ connectionProperties: { sourceIp: true } }]);
  assert.deepEqual(admin!.route.hashPolicy, [{ cookie: { name: 'sess', ttl: '30s', path: '/p', attributes: [{ name: 'SameSite', value: 'Strict' }] } }]);
  // Subset b has no hash without a named port: the rule's header hash.
  assert.deepEqual(split!.route.hashPolicy, [{ queryParameter: { name: 'q' } }, { header: { headerName: 'x-user' } }]);
  assert.deepEqual(dflt!.route.hashPolicy, [{ header: { headerName: 'x-user' } }]);
  // A single hashed destination: no previous_hosts (a retry stays on the hashed host); a split keeps it.
  assert.equal(a!.route.retryPolicy.retryHostPredicate, undefined);
  assert.equal(split!.route.retryPolicy.retryHostPredicate[0].name, 'envoy.retry_host_predicates.previous_hosts');
  // No VirtualService on 9090's route config for another service: the default route uses the port-level cookie hash.
  const plain = service('cart', 'default', '10.96.0.41', [['http', 9090]]);
  const dr2 = istio('DestinationRule', 'default', 'cart', { host: 'cart', trafficPolicy: { portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { consistentHash: { httpHeaderName: 'x-cart' } } }] } });
  const push2 = pushContext([plain, dr2]);
  const [rc2] = buildRoutes(push2, proxyIn(push2), ['9090']) as Json[];
  const route = rc2!.virtualHosts[0].routes[0].route;
  assert.deepEqual(route.hashPolicy, [{ header: { headerName: 'x-cart' } }]);
  assert.equal(route.retryPolicy.retryHostPredicate[0].name, 'envoy.retry_host_predicates.previous_hosts');
  assertEncodes([], [rc, rc2]);
});

test('retries as istiod converts them: previous_hosts, retryIgnorePreviousHosts, retryRemoteLocalities, status codes', () => {
  const vs = istio('VirtualService', 'default', 'reviews', {
    hosts: ['reviews'],
    http: [
      { match: [{ uri: { prefix: '/a' } }], retries: { attempts: 4, retryOn: 'gateway-error,503,599', retryRemoteLocalities: true }, route: [{ destination: { host: 'reviews' } }] },
      { match: [{ uri: { prefix: '/b' } }], retries: { attempts: 1, retryIgnorePreviousHosts: false }, route: [{ destination: { host: 'reviews' } }] },
      { match: [{ uri: { prefix: '/c' } }], retries: { attempts: 0 }, route: [{ destination: { host: 'reviews' } }] },
    ],
  });
  const push = pushContext([reviews, vs]);
  const [rc] = buildRoutes(push, proxyIn(push), ['9080']) as Json[];
  const [a, b, c] = rc!.virtualHosts.find((v: Json) => v.name === 'reviews.default.svc.cluster.local:9080').routes as Json[];
  assert.deepEqual(a!.route.retryPolicy, {
    retryOn: 'gateway-error,599,retriable-status-codes',
    numRetries: 4,
    hostSelectionRetryMaxAttempts: '5',
    retryHostPredicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
    retriableStatusCodes: [503],
    retryPriority: { name: 'envoy.retry_priorities.previous_priorities', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', updateFrequency: 2 } },
  });
  assert.equal(b!.route.retryPolicy.retryHostPredicate, undefined);
  assert.equal(c!.route.retryPolicy, undefined);
  assertEncodes([], [rc]);
});

test('virtual host domains: the absolute FQDN (trailing dot) after the FQDN, never for IP hosts', () => {
  const ipHost = istio('ServiceEntry', 'default', 'ip', { hosts: ['10.1.2.3'], addresses: ['10.1.2.3'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '10.1.2.3' }] });
  const push = pushContext([reviews, ipHost]);
  const [rc] = buildRoutes(push, proxyIn(push), ['9080']) as Json[];
  const byName = (n: string) => rc!.virtualHosts.find((v: Json) => v.name === n);
  assert.deepEqual(byName('reviews.default.svc.cluster.local:9080').domains.slice(0, 2), ['reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local.']);
  assert.deepEqual(byName('10.1.2.3:9080').domains, ['10.1.2.3']);
  // The absolute form routes a request whose Host ends with a dot.
  const ls = buildListeners(push, proxyIn(push)) as Json[];
  assert.equal(walkRequest(ls, [rc!], { port: 9080, host: 'reviews.default.svc.cluster.local.', path: '/' })!.cluster, 'outbound|9080||reviews.default.svc.cluster.local');
});

test('a service default virtual host is one object for every proxy namespace that sees it alike, in this push and the next', () => {
  // ratings (no VirtualService) as seen from two other namespaces: equal content, so the same object (the encoder keys it by identity).
  const objects = [reviews, ratings, mysql, istio('VirtualService', 'default', 'reviews', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] })];
  const push = pushContext(objects);
  const vh = (p: typeof push, ns: string, name: string) => ((buildRoutes(p, proxyIn(p, { namespace: ns }), ['9080']) as Json[])[0]!.virtualHosts as Json[]).find((v) => v.name === name)!;
  const a = vh(push, 'ns-a', 'ratings.default.svc.cluster.local:9080');
  assert.equal(vh(push, 'ns-b', 'ratings.default.svc.cluster.local:9080'), a);
  assert.equal(vh(pushContext(objects, { version: 'v2' }), 'ns-b', 'ratings.default.svc.cluster.local:9080'), a, 'a later push with the same inputs reuses it');
  // From its own namespace the short names are domains too: another object, other content.
  const own = vh(push, 'default', 'ratings.default.svc.cluster.local:9080');
  assert.notEqual(own, a);
  assert.ok((own.domains as string[]).includes('ratings'));
  assert.ok(!(a.domains as string[]).includes('ratings'));
  // A consistent hash from a DestinationRule is part of the content.
  const hashed = pushContext([...objects, istio('DestinationRule', 'default', 'ratings', { host: 'ratings', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } })]);
  const h = vh(hashed, 'ns-a', 'ratings.default.svc.cluster.local:9080');
  assert.notEqual(h, a);
  assert.deepEqual(h.routes[0].route.hashPolicy, [{ header: { headerName: 'x-user' } }]);
  assert.equal(a.routes[0].route.hashPolicy, undefined);
  // The VirtualService's host is built per route configuration (its routes read the proxy).
  assert.ok(vh(push, 'ns-a', 'reviews.default.svc.cluster.local:9080'));
});

test("a VirtualService's virtual host is one object for every proxy namespace that renders it alike, in this push and the next; what its routes read decides", () => {
  const vs = istio('VirtualService', 'default', 'ratings', { hosts: ['ratings'], http: [{ match: [{ uri: { prefix: '/v2' } }], route: [{ destination: { host: 'ratings', subset: 'v2' } }] }, { route: [{ destination: { host: 'ratings' } }] }] });
  const objects = [reviews, ratings, vs];
  const push = pushContext(objects);
  const vh = (p: typeof push, ns: string, labels?: Record<string, string>) =>
    ((buildRoutes(p, proxyIn(p, { namespace: ns, ...(labels ? { metadata: { LABELS: labels } } : {}) }), ['9080']) as Json[])[0]!.virtualHosts as Json[]).find((v) => v.name === 'ratings.default.svc.cluster.local:9080')!;
  const a = vh(push, 'ns-a');
  assert.equal(vh(push, 'ns-b'), a, 'another namespace that reads the same: the same object');
  assert.equal(vh(pushContext(objects, { version: 'v2' }), 'ns-b'), a, 'a later push with the same inputs reuses it');
  // A DestinationRule's consistent hash is read by the routes: other routes, and they carry it.
  const hashed = pushContext([...objects, istio('DestinationRule', 'default', 'ratings', { host: 'ratings', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } })]);
  const h = vh(hashed, 'ns-a');
  assert.notEqual(h.routes, a.routes);
  assert.deepEqual(h.routes[1].route.hashPolicy, [{ header: { headerName: 'x-user' } }]);
  assert.equal(vh(push, 'ns-a').routes[1].route.hashPolicy, undefined, 'without the rule, the routes without a hash again');
  // An edit is a new object: new routes.
  const edited = istio('VirtualService', 'default', 'ratings', { hosts: ['ratings'], http: [{ match: [{ uri: { prefix: '/v3' } }], route: [{ destination: { host: 'ratings' } }] }] });
  const e = vh(pushContext([reviews, ratings, edited]), 'ns-a');
  assert.equal(e.routes[0].match.prefix, '/v3');
  // A match on source labels reads the proxy: proxies whose labels differ get their own routes.
  const bySource = istio('VirtualService', 'default', 'ratings', { hosts: ['ratings'], http: [{ match: [{ sourceLabels: { app: 'web' } }], route: [{ destination: { host: 'ratings', subset: 'v2' } }] }, { route: [{ destination: { host: 'ratings' } }] }] });
  const sp = pushContext([reviews, ratings, bySource]);
  const web = vh(sp, 'ns-a', { app: 'web' });
  const other = vh(sp, 'ns-a', { app: 'other' });
  assert.equal(web.routes[0].route.cluster, 'outbound|9080|v2|ratings.default.svc.cluster.local');
  assert.equal(other.routes[0].route.cluster, 'outbound|9080||ratings.default.svc.cluster.local');
  assert.equal(vh(sp, 'ns-b', { app: 'web' }).routes[0].route.cluster, 'outbound|9080|v2|ratings.default.svc.cluster.local');
});

test('the default virtual hosts of a port are built once for a class while what they read holds: a VirtualService edit that keeps its hosts looks up no DestinationRule for them', () => {
  const ratingsHost = 'ratings.default.svc.cluster.local';
  const hashRule = istio('DestinationRule', 'default', 'ratings', { host: 'ratings', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } });
  const reviewsAt = (prefix: string) => istio('VirtualService', 'default', 'reviews', { hosts: ['reviews'], http: [{ match: [{ uri: { prefix } }], route: [{ destination: { host: 'reviews' } }] }] });
  const details = service('details', 'default', '10.96.0.12', [['http', 9080]]);
  // Counts the DestinationRule lookups for ratings, the service no VirtualService routes.
  let lookups = 0;
  const routesOf = (objects: unknown[], labels: Record<string, string> = { app: 'edit' }) => {
    const push = pushContext(objects as Parameters<typeof pushContext>[0]);
    const lookup = push.destinationRule.bind(push);
    push.destinationRule = (proxy, hostname, direction) => {
      if (hostname === ratingsHost) lookups++;
      return lookup(proxy, hostname, direction);
    };
    return (buildRoutes(push, proxyIn(push, { namespace: 'edit-ns', metadata: { LABELS: labels } }), ['9080']) as Json[])[0]!;
  };
  const vhost = (rc: Json, name: string) => (rc.virtualHosts as Json[]).find((v) => v.name === name);
  // The same inputs for a proxy whose labels no earlier build had: built from scratch.
  let fresh = 0;
  const assertSameAsFresh = (rc: Json, objects: unknown[]) => assert.deepEqual(rc, routesOf(objects, { app: `fresh-${++fresh}` }));

  const first = [reviews, ratings, hashRule, reviewsAt('/a')];
  const a = routesOf(first);
  assert.equal(lookups, 1, 'the first build looks ratings up');
  const ratingsVhost = vhost(a, `${ratingsHost}:9080`)!;
  assert.deepEqual(ratingsVhost.routes[0].route.hashPolicy, [{ header: { headerName: 'x-user' } }]);

  // The edit: the same hosts, another route. The default virtual hosts are the ones built before.
  lookups = 0;
  const edited = [reviews, ratings, hashRule, reviewsAt('/b')];
  const b = routesOf(edited);
  assert.equal(lookups, 0, 'no DestinationRule lookup for a service the edit does not route');
  assert.equal(vhost(b, `${ratingsHost}:9080`), ratingsVhost);
  assert.equal(vhost(b, 'reviews.default.svc.cluster.local:9080')!.routes[0].match.prefix, '/b');
  assertSameAsFresh(b, edited);

  // What they read changes: each is built again, as from scratch.
  const withoutRule = [reviews, ratings, reviewsAt('/b')];
  lookups = 0;
  const c = routesOf(withoutRule);
  assert.equal(lookups, 1, 'the DestinationRules changed: looked up again');
  assert.equal(vhost(c, `${ratingsHost}:9080`)!.routes[0].route.hashPolicy, undefined);
  assertSameAsFresh(c, withoutRule);

  const routedRatings = [...withoutRule, istio('VirtualService', 'default', 'ratings', { hosts: ['ratings'], http: [{ match: [{ uri: { prefix: '/r' } }], route: [{ destination: { host: 'ratings' } }] }] })];
  const d = routesOf(routedRatings);
  assert.equal(vhost(d, `${ratingsHost}:9080`)!.routes[0].match.prefix, '/r', 'a VirtualService took the host');
  assertSameAsFresh(d, routedRatings);

  const moreServices = [...withoutRule, details];
  const e = routesOf(moreServices);
  assert.ok(vhost(e, 'details.default.svc.cluster.local:9080'), 'a new service has its virtual host');
  assert.equal(vhost(e, `${ratingsHost}:9080`)!.routes[0].match.prefix, '/', 'the host the VirtualService gave back has its default route again');
  assertSameAsFresh(e, moreServices);
});
