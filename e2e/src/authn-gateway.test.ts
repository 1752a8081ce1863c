/**
 * RequestAuthentication on an ingress gateway (a real Envoy as a router)
 * with real JWTs signed by node:crypto:
 *
 * - the JWKS comes from a loopback HTTP server named by `jwksUri`: Sextant
 *   fetches it and inlines it (the gateway never talks to that server);
 * - valid token → 200 (claims copied to headers as configured); missing token
 *   → 403 from the AuthorizationPolicy that requires a request principal;
 *   expired, unknown issuer or foreign signature → 401; wrong audience →
 *   403 from jwt_authn (Envoy's answer to istiod's config);
 * - AuthorizationPolicy on JWT claims (nested claims included);
 * - a `jwksUri` that cannot be fetched fails closed: every token of that
 *   issuer is refused (and the policy is reported) until the server answers;
 *   an outage after a successful fetch keeps the keys already fetched
 *   (istiod's behaviour).
 */
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const HOST = 'shop.example.com';
const ISSUER = 'https://issuer.test';
const DOWN_ISSUER = 'https://down.test';

interface Signer {
  kid: string;
  key: KeyObject;
  jwks: string;
}

function signer(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  return { kid, key: privateKey, jwks: JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }) };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An RS256 JWT. */
function jwt(s: Signer, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'RS256', typ: 'JWT', kid: s.kid });
  const body = b64url({ iat: now, exp: now + 600, ...claims });
  const sig = createSign('RSA-SHA256').update(`${head}.${body}`).sign(s.key).toString('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * A loopback server answering GET /jwks with a JWKS; stop() and start() again on the same port simulate an outage.
 * Until start(), and after stop(), the port is held by a listener that drops every connection: a port left
 * unbound for the test's first minute was once taken by another process's connection (EADDRINUSE on start).
 */
async function jwksServer(jwks: string, port: number) {
  let server: Server | undefined;
  let hits = 0;
  let holder: NetServer | undefined;
  const hold = async () => {
    holder = createNetServer((socket) => socket.destroy());
    await new Promise<void>((r) => holder!.listen(port, '127.0.0.1', () => r()));
  };
  const release = () => new Promise<void>((r) => (holder ? holder.close(() => r()) : r()));
  await hold();
  const start = async () => {
    await release();
    server = createServer((req, res) => {
      hits++;
      if (req.url === '/jwks') res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', () => r()));
  };
  return {
    url: `http://127.0.0.1:${port}/jwks`,
    start,
    hits: () => hits,
    stop: async () => {
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      await hold();
    },
    /** Frees the port for good. */
    close: async () => {
      await new Promise<void>((r) => (server?.listening ? server.close(() => r()) : r()));
      await release();
    },
  };
}

const ra = (name: string, jwtRules: unknown[]): K8sObject => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'RequestAuthentication',
  metadata: { name, namespace: 'istio-system' },
  spec: { selector: { matchLabels: { istio: 'ingressgateway' } }, jwtRules },
});
const ap = (name: string, spec: Record<string, unknown>): K8sObject => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: 'istio-system' },
  spec: { selector: { matchLabels: { istio: 'ingressgateway' } }, ...spec },
});

describe('RequestAuthentication on an Envoy gateway with real JWTs', { skip: skipUnless('envoy') }, () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let web: HttpBackend;
  let gatewayPort: number;
  const good = signer();
  const foreign = signer();
  const down = signer();
  let jwks: Awaited<ReturnType<typeof jwksServer>>;
  let downJwks: Awaited<ReturnType<typeof jwksServer>>;

  const get = (path: string, token?: string, headers: Record<string, string> = {}) => httpGet(gatewayPort, path, { host: HOST, ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers });
  const status = async (path: string, token?: string) => (await get(path, token)).status;
  const valid = (claims: Record<string, unknown> = {}) => jwt(good, { iss: ISSUER, sub: 'alice', aud: 'shop', ...claims });

  before(async () => {
    web = await startHttpBackend('web', '127.0.0.11');
    gatewayPort = await freePort();
    jwks = await jwksServer(good.jwks, await freePort());
    await jwks.start();
    // The second issuer's JWKS server is down from the start.
    downJwks = await jwksServer(down.jwks, await freePort());
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'http2', port: 80, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway' }, ports: [{ name: 'http2', port: gatewayPort }] }),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'web', pod: 'web-a', ip: web.host, labels: { app: 'web' }, ports: [{ name: 'http', port: web.port }] }),
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop', 'default', { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST] }] }),
      istio('VirtualService', 'shop', 'default', { hosts: [HOST], gateways: ['shop'], http: [{ route: [{ destination: { host: 'web', port: { number: 8000 } } }] }] }),
    ];
    const security: K8sObject[] = [
      ra('jwt', [{ issuer: ISSUER, jwksUri: jwks.url, audiences: ['shop'], outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }] }]),
      ra('jwt-down', [{ issuer: DOWN_ISSUER, jwksUri: downJwks.url }]),
      ap('require-jwt', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] }),
      ap('deny-blocked', { action: 'DENY', rules: [{ when: [{ key: 'request.auth.claims[groups]', values: ['blocked'] }] }, { when: [{ key: 'request.auth.claims[org][team]', values: ['red'] }] }] }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg, 'security.yaml': security });
    sextant = await startSextant({ configDir: cfg.dir, args: ['--jwks-refresh-interval-on-failure', '300ms', '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local',
      metadata: { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' } },
    });
    await envoy.waitForListener(`0.0.0.0_${gatewayPort}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await web?.close();
    await jwks?.close();
    await downJwks?.close();
    cfg?.remove();
  });

  test('a valid token passes; the fetched JWKS is inlined (the gateway never calls the JWKS server); claims reach headers', async () => {
    const r = await until(() => get('/ok', valid()), (x) => x.status === 200, 'a 200 with a valid token', 30_000);
    assert.equal(r.backend, 'web');
    const seen = web.requests.findLast((q) => q.url === '/ok')!;
    assert.equal(seen.headers['x-jwt-sub'], 'alice');
    assert.equal(seen.headers['authorization'], undefined, 'the token is not forwarded (forwardOriginalToken unset)');
    const dump = JSON.stringify(await envoy!.configDump());
    assert.ok(dump.includes(JSON.parse(good.jwks).keys[0].n), 'the JWKS is inline in the gateway config');
    assert.ok(!dump.includes('remote_jwks'), 'no remote JWKS fetch by the gateway');
  });

  test('missing → 403 (AuthorizationPolicy needs a principal); expired, unknown issuer, foreign key → 401; wrong audience → 403 from jwt_authn', async () => {
    const missing = await get('/x');
    assert.equal(missing.status, 403);
    assert.equal(missing.body, 'RBAC: access denied');
    const now = Math.floor(Date.now() / 1000);
    assert.equal(await status('/x', valid({ exp: now - 120, iat: now - 600 })), 401);
    assert.equal(await status('/x', jwt(good, { iss: 'https://other.test', sub: 'alice', aud: 'shop' })), 401);
    // Envoy answers a token for another audience with 403 from jwt_authn itself (not RBAC).
    const aud = await get('/x', valid({ aud: 'bank' }));
    assert.deepEqual([aud.status, aud.body], [403, 'Audiences in Jwt are not allowed']);
    assert.equal(await status('/x', jwt(foreign, { iss: ISSUER, sub: 'alice', aud: 'shop' })), 401);
    assert.equal(await status('/x', 'not.a.jwt'), 401);
    assert.equal(await status('/x', valid()), 200);
  });

  test('AuthorizationPolicy on JWT claims, nested claims included', async () => {
    assert.equal(await status('/c', valid({ groups: ['dev', 'blocked'] })), 403);
    assert.equal(await status('/c', valid({ groups: ['dev'] })), 200);
    assert.equal(await status('/c', valid({ org: { team: 'red' } })), 403);
    assert.equal(await status('/c', valid({ org: { team: 'blue' } })), 200);
  });

  test('a jwksUri that cannot be fetched fails closed until its server answers; a later outage keeps the fetched keys', async () => {
    const downToken = jwt(down, { iss: DOWN_ISSUER, sub: 'bob' });
    assert.equal(await status('/d', downToken), 401);
    const issues = (await debugJson(sextant!.httpUrl, '/debug/config_issues')) as { semantic: Array<{ kind: string; name: string; field: string; reason: string }> };
    const mine = issues.semantic.find((i) => i.kind === 'RequestAuthentication' && i.name === 'jwt-down');
    assert.ok(mine, JSON.stringify(issues.semantic));
    assert.equal(mine.field, 'spec.jwtRules[0].jwksUri');
    assert.match(mine.reason, /could not be fetched.*rejected/);
    // The JWKS server comes up: Sextant's retry fetches it and pushes; the same token now passes.
    await downJwks.start();
    await until(() => status('/d', downToken), (s) => s === 200, 'the token accepted once the JWKS was fetched', 30_000);
    // The first issuer's server goes away: the keys fetched before keep validating (istiod keeps them on refresh failure).
    await jwks.stop();
    assert.equal(await status('/d', valid()), 200);
    assert.equal(await status('/d', jwt(foreign, { iss: ISSUER, sub: 'alice', aud: 'shop' })), 401);
  });
});
