import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeJson } from '@sextant/envoy';
import { buildListeners, buildRoutes } from './index.js';
import { endpointSlice, istio, proxy, proxyIn, pushContext, service, type ProxyOptions } from '@sextant/testing/push';
import { walkRequest } from '../route/walk.js';

type Json = Record<string, any>;

const web = service('web', 'default', '10.96.0.40', [['http', 8000]]);
const db = service('db', 'default', '10.96.0.41', [['tcp', 5432]]);
const gw = istio('Gateway', 'istio-system', 'ingress', {
  selector: { istio: 'ingressgateway' },
  servers: [
    { port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] },
    { port: { number: 8443, name: 'https', protocol: 'HTTPS' }, hosts: ['web.example.com'], tls: { mode: 'SIMPLE', credentialName: 'web-cert' } },
    { port: { number: 9443, name: 'tls', protocol: 'TLS' }, hosts: ['*.pass.example.com'], tls: { mode: 'PASSTHROUGH' } },
    { port: { number: 15432, name: 'tcp', protocol: 'TCP' }, hosts: ['*'] },
  ],
});
const vs = istio('VirtualService', 'default', 'web', {
  hosts: ['web.example.com'],
  gateways: ['istio-system/ingress'],
  http: [
    { match: [{ uri: { prefix: '/v2' } }], route: [{ destination: { host: 'web', port: { number: 8000 } } }] },
    { route: [{ destination: { host: 'web' } }] },
  ],
  tcp: [{ match: [{ port: 15432 }], route: [{ destination: { host: 'db', port: { number: 5432 } } }] }],
});
const passVs = istio('VirtualService', 'default', 'pass', {
  hosts: ['a.pass.example.com'],
  gateways: ['istio-system/ingress'],
  tls: [{ match: [{ sniHosts: ['a.pass.example.com'] }], route: [{ destination: { host: 'web', port: { number: 8000 } } }] }],
});
const ROUTER: ProxyOptions = { type: 'router', namespace: 'istio-system', ip: '10.0.0.20', pod: 'istio-ingressgateway-abc', metadata: { LABELS: { istio: 'ingressgateway' } } };
const router = proxy(ROUTER);

test('gateway listeners and routes carry istiod names; SDS secret kubernetes://<credentialName>', () => {
  const push = pushContext([web, db, gw, vs, passVs]);
  const ls = buildListeners(push, router) as Json[];
  assert.deepEqual(ls.map((l) => l.name), ['0.0.0.0_15432', '0.0.0.0_8080', '0.0.0.0_8443', '0.0.0.0_9443']);
  const https = ls.find((l) => l.name === '0.0.0.0_8443')!;
  const chain = https.filterChains[0];
  assert.deepEqual(chain.filterChainMatch.serverNames, ['web.example.com']);
  assert.equal(chain.transportSocket.typedConfig.commonTlsContext.tlsCertificateSdsSecretConfigs[0].name, 'kubernetes://web-cert');
  assert.deepEqual(chain.transportSocket.typedConfig.commonTlsContext.tlsCertificateSdsSecretConfigs[0].sdsConfig.ads, {});
  assert.equal(chain.filters[0].typedConfig.rds.routeConfigName, 'https.8443.https.ingress.istio-system');
  const pass = ls.find((l) => l.name === '0.0.0.0_9443')!;
  assert.deepEqual(pass.filterChains[0].filterChainMatch.serverNames, ['a.pass.example.com']);
  assert.equal(pass.filterChains[0].filters[0].typedConfig.cluster, 'outbound|8000||web.default.svc.cluster.local');
  assert.equal(ls.find((l) => l.name === '0.0.0.0_15432')!.filterChains[0].filters[0].typedConfig.cluster, 'outbound|5432||db.default.svc.cluster.local');
  const rs = buildRoutes(push, router, ['http.8080', 'https.8443.https.ingress.istio-system']) as Json[];
  assert.deepEqual(rs.map((r) => r.name), ['http.8080', 'https.8443.https.ingress.istio-system']);
  assert.deepEqual(rs[0]!.virtualHosts.map((v: Json) => [v.name, v.domains]), [['web.example.com:8080', ['web.example.com']]]);
  assert.equal(walkRequest(ls, rs, { port: 8080, host: 'web.example.com', path: '/v2/x' })!.cluster, 'outbound|8000||web.default.svc.cluster.local');
  assert.equal(walkRequest(ls, rs, { port: 8080, host: 'other.example.com', path: '/' })!.virtualHost, undefined);
  for (const l of ls) encodeJson('envoy.config.listener.v3.Listener', l);
  for (const r of rs) encodeJson('envoy.config.route.v3.RouteConfiguration', r);
});

test('a gateway with no VirtualService for a port answers 404 from a blackhole virtual host', () => {
  const push = pushContext([web, gw]);
  const [rc] = buildRoutes(push, router, ['http.8080']) as Json[];
  assert.deepEqual(rc!.virtualHosts[0].name, 'blackhole:8080');
  assert.equal(rc!.virtualHosts[0].routes[0].directResponse.status, 404);
});

test('a gateway whose selector does not match the proxy gives it no listeners', () => {
  const push = pushContext([web, gw, vs]);
  assert.deepEqual(buildListeners(push, proxy({ ...ROUTER, metadata: { LABELS: { app: 'other' } } })), []);
});

test('proxyless gRPC: listeners <host>:<port> with API listeners, RDS outbound|port||fqdn, port domains', () => {
  const echo = service('echo', 'default', '10.96.0.50', [['grpc', 7070]]);
  const evs = istio('VirtualService', 'default', 'echo', {
    hosts: ['echo'],
    http: [
      { match: [{ headers: { 'x-version': { exact: 'v2' } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
      { route: [{ destination: { host: 'echo', subset: 'v1' }, weight: 80 }, { destination: { host: 'echo', subset: 'v2' }, weight: 20 }] },
    ],
  });
  const push = pushContext([echo, evs]);
  const g = proxyIn(push, { metadata: { GENERATOR: 'grpc' } });
  const ls = buildListeners(push, g, { names: ['echo:7070', 'echo.default.svc.cluster.local:7070'] }) as Json[];
  assert.deepEqual(ls.map((l) => l.name), ['echo.default.svc.cluster.local:7070', 'echo:7070']);
  assert.equal(ls[0]!.apiListener.apiListener.rds.routeConfigName, 'outbound|7070||echo.default.svc.cluster.local');
  const [rc] = buildRoutes(push, g, ['outbound|7070||echo.default.svc.cluster.local']) as Json[];
  const vh = rc!.virtualHosts[0];
  assert.ok(vh.domains.includes('echo:7070') && vh.domains.includes('echo.default.svc.cluster.local:7070'));
  assert.equal(vh.routes[0].route.cluster, 'outbound|7070|v2|echo.default.svc.cluster.local');
  assert.deepEqual(vh.routes[1].route.weightedClusters.clusters.map((c: Json) => c.weight), [80, 20]);
  assert.deepEqual(vh.routes[1].route.maxStreamDuration, { maxStreamDuration: '0s' });
  for (const l of ls) encodeJson('envoy.config.listener.v3.Listener', l);
  encodeJson('envoy.config.route.v3.RouteConfiguration', rc);
});

test('a Gateway server port is translated through the gateway Service targetPort (istiod resolvePorts)', () => {
  // istio-ingressgateway: Service port 80 → pod port 8080. A server on 80 listens on 8080;
  // a server on a port the Service does not have (9090) listens as-is.
  const gwSvc = (labels?: Record<string, string>) => service('istio-ingressgateway', 'istio-system', '10.96.0.50', [['http2', 80, 8080]], labels ? { labels } : {});
  const gwSlice = endpointSlice('istio-ingressgateway', 'istio-system', [['http2', 8080]], [{ ip: router.ipAddresses[0]! }]);
  const gw80 = istio('Gateway', 'istio-system', 'gw80', {
    selector: { istio: 'ingressgateway' },
    servers: [
      { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['web.example.com'] },
      { port: { number: 9090, name: 'http-other', protocol: 'HTTP' }, hosts: ['web.example.com'] },
    ],
  });
  const vs80 = istio('VirtualService', 'default', 'web80', {
    hosts: ['web.example.com'],
    gateways: ['istio-system/gw80'],
    http: [{ match: [{ port: 80 }], route: [{ destination: { host: 'web', port: { number: 8000 } } }] }, { route: [{ destination: { host: 'db', port: { number: 5432 } } }] }],
  });
  const push = pushContext([web, db, gwSvc(), gwSlice, gw80, vs80]);
  const ls = buildListeners(push, router) as Json[];
  assert.deepEqual(ls.map((l) => [l.name, l.address.socketAddress.portValue]), [['0.0.0.0_8080', 8080], ['0.0.0.0_9090', 9090]]);
  assert.equal(ls[0]!.filterChains[0].filters[0].typedConfig.rds.routeConfigName, 'http.8080');
  const rs = buildRoutes(push, router, ['http.8080', 'http.9090']) as Json[];
  // Virtual hosts keep the server port in their name; `match.port` compares with the server port.
  assert.deepEqual(rs[0]!.virtualHosts.map((v: Json) => v.name), ['web.example.com:80']);
  assert.equal(walkRequest(ls, rs, { port: 8080, host: 'web.example.com', path: '/' })!.cluster, 'outbound|8000||web.default.svc.cluster.local');
  assert.equal(walkRequest(ls, rs, { port: 9090, host: 'web.example.com', path: '/' })!.cluster, 'outbound|5432||db.default.svc.cluster.local');
  // Opting out of port translation keeps 80.
  const optOut = gwSvc({ 'networking.istio.io/disable-gateway-port-translation': 'true' });
  const push2 = pushContext([web, db, optOut, gwSlice, gw80, vs80]);
  assert.deepEqual((buildListeners(push2, router) as Json[]).map((l) => l.name), ['0.0.0.0_80', '0.0.0.0_9090']);
});
