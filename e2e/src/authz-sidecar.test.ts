/**
 * AuthorizationPolicy enforced by stock Istio sidecars (pilot-agent + real
 * Envoy, certificates from Sextant's CA), with real traffic:
 *
 * - client `productpage` (shop/bookinfo-productpage, 127.0.0.1) reaches the
 *   server `ratings` (secure/ratings, 127.0.0.2) over auto mTLS, so the server
 *   sees the client's SPIFFE principal; policies in `secure` are edited while
 *   the proxies run, and each expectation is awaited (no sleeps);
 * - ALLOW and DENY by principal, namespace, path, method and header; DENY
 *   wins over ALLOW; dry-run and AUDIT let traffic through but count it;
 *   CUSTOM sends selected requests to a real ext_authz HTTP server on loopback;
 * - a TCP port of the server (port-level DISABLE so a plain client can
 *   connect): network RBAC by source IP, and an ALLOW rule with an HTTP-only
 *   field dropped on TCP (nothing allowed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, endpointSlice, istio, namespace, pod, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer } from './fixtures/secure.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const NS = 'shop';
const SA = 'bookinfo-productpage';
const SNS = 'secure';
const CLIENT = `cluster.local/ns/${NS}/sa/${SA}`;

const ap = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>): K8sObject => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: SNS, ...(annotations ? { annotations } : {}) },
  spec,
});

/** Sends one line over TCP from `localAddress`; resolves with what came back before the connection closed or 2 s passed. */
function tcpRoundTrip(port: number, localAddress: string, line: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.2', port, localAddress });
    let got = '';
    const done = () => {
      s.destroy();
      resolve(got);
    };
    s.setTimeout(2000, done);
    s.on('data', (d) => {
      got += d.toString();
      if (got.endsWith('\n')) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => s.write(line + '\n'));
  });
}

describe('AuthorizationPolicy on stock Istio sidecars (pilot-agent + Envoy) with real traffic', { skip: skipUnless('envoy', 'pilot-agent') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let client: RunningAgent | undefined;
  let server: RunningAgent | undefined;
  let ratings: HttpBackend;
  let echo: NetServer;
  let extAuthz: HttpServer;
  const extChecks: Array<{ path: string; header: string | undefined }> = [];
  let port: number;
  let inbound: number;
  let tcpIn: number;

  const get = (path: string, headers: Record<string, string> = {}) => httpGet(port, path, { host: 'ratings.secure', ...headers });
  const status = async (path: string, headers: Record<string, string> = {}) => (await get(path, headers)).status;
  /**
   * Replaces the policies, waits until the server's Envoy runs them (every
   * policy name in its active listeners) and no connection is left on an
   * older filter chain (a request per poll lets a pooled client connection
   * see the drain and reconnect). Policy names are unique per step.
   */
  async function policies(list: K8sObject[]) {
    cfg.write('authz.yaml', list.length ? list : [namespace('placeholder')]);
    const names = list.map((p) => `-policy[${p.metadata.name}]-`);
    await until(
      async () => JSON.stringify(await server!.configDump()),
      (d) => (names.length ? names.every((n) => d.includes(n)) : !d.includes('-policy[')),
      `the server Envoy runs ${names.join(', ') || 'no policy'}`,
      30_000,
    );
    await until(
      async () => {
        await get('/drain').catch(() => undefined);
        return serverStat(/listener_manager\.total_filter_chains_draining: (\d+)/);
      },
      (n) => n === 0,
      'no connection left on a replaced filter chain',
      60_000,
    );
  }
  const serverStat = async (name: RegExp) => {
    const m = name.exec(await server!.admin('/stats'));
    return m ? Number(m[1]) : 0;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-authz-'));
    const issuer = createTestIssuer(dir);
    ratings = await startHttpBackend('ratings-v1', '127.0.0.1');
    echo = createNetServer((s) => s.on('data', (d) => s.write(d))).listen(0, '127.0.0.1');
    await new Promise((r) => echo.once('listening', r));
    // The ext_authz HTTP service: allows a request carrying x-ext-authz: allow.
    extAuthz = createHttpServer((req, res) => {
      const header = req.headers['x-ext-authz'] as string | undefined;
      extChecks.push({ path: req.url ?? '', header });
      res.writeHead(header === 'allow' ? 200 : 403).end();
    }).listen(0, '127.0.0.3');
    await new Promise((r) => extAuthz.once('listening', r));
    const extPort = (extAuthz.address() as { port: number }).port;
    port = await freePort();
    inbound = await freePort('127.0.0.2');
    tcpIn = await freePort('127.0.0.2');
    const extSvcPort = await freePort();
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(
      meshFile,
      stringify({ extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: 'ext-authz.ext.svc.cluster.local', port: extSvcPort, includeRequestHeadersInCheck: ['x-ext-authz'] } }] }),
    );
    cfg = configDir({
      'kubernetes.yaml': [
        namespace(NS),
        namespace('istio-system'),
        pod('productpage-v1-7f9c', NS, '127.0.0.1', { app: 'productpage', version: 'v1' }, SA),
        namespace(SNS),
        service('ratings', SNS, '10.96.3.14', [{ name: 'http', port, targetPort: inbound }]),
        pod('ratings-v1-0', SNS, '127.0.0.2', { app: 'ratings', version: 'v1', 'security.istio.io/tlsMode': 'istio' }, 'ratings'),
        endpointSlice('ratings', SNS, 'ratings-v1-0', '127.0.0.2', [{ name: 'http', port: inbound }]),
        namespace('ext'),
        // The ext_authz server is a plain loopback process (no sidecar): the Service port is a free port, its target the server's.
        service('ext-authz', 'ext', '10.96.3.20', [{ name: 'http', port: extSvcPort, targetPort: extPort }]),
        ...workload({ svc: 'ext-authz', namespace: 'ext', pod: 'ext-authz-0', ip: '127.0.0.3', labels: { app: 'ext-authz' }, ports: [{ name: 'http', port: extPort }] }).filter((o) => o.kind !== 'Service'),
      ],
      'istio.yaml': [
        istio('Sidecar', 'productpage', NS, {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: [`${SNS}/*`] }],
        }),
        istio('Sidecar', 'default', SNS, {
          ingress: [
            { port: { number: inbound, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.2', captureMode: 'NONE', defaultEndpoint: `127.0.0.1:${ratings.port}` },
            { port: { number: tcpIn, protocol: 'TCP', name: 'tcp' }, bind: '127.0.0.2', captureMode: 'NONE', defaultEndpoint: `127.0.0.1:${(echo.address() as { port: number }).port}` },
          ],
          egress: [{ port: { number: extSvcPort, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['ext/*'] }],
        }),
        { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: SNS }, spec: { mtls: { mode: 'STRICT' } } },
        { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'ratings', namespace: SNS }, spec: { selector: { matchLabels: { app: 'ratings' } }, portLevelMtls: { [String(tcpIn)]: { mode: 'DISABLE' } } } },
      ],
      'authz.yaml': [namespace('placeholder')],
    });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, '--mesh-config', meshFile, ...issuer.args, '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    const rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const securePort = sextant.secureAddress.split(':').pop()!;
    const sidecar = { discoveryAddress: `localhost:${securePort}`, rootPem, env: { ISTIO_META_INTERCEPTION_MODE: 'NONE' }, proxyConfig: { interceptionMode: 'NONE' } };
    [client, server] = await Promise.all([
      startAgent({ ...sidecar, token: issuer.token(NS, SA), podName: 'productpage-v1-7f9c', namespace: NS, serviceAccount: SA, ip: '127.0.0.1', labels: { app: 'productpage', version: 'v1' } }),
      startAgent({
        ...sidecar,
        token: issuer.token(SNS, 'ratings'),
        podName: 'ratings-v1-0',
        namespace: SNS,
        serviceAccount: 'ratings',
        ip: '127.0.0.2',
        labels: { app: 'ratings', version: 'v1' },
        // Istio's bootstrap keeps only a few stats: keep the RBAC counters.
        proxyConfig: { ...sidecar.proxyConfig, proxyStatsMatcher: { inclusionRegexps: ['.*rbac.*', '.*filter_chains_draining.*'] } },
      }),
    ]);
    await Promise.all([client.waitForListener(`127.0.0.1_${port}`, 40_000), server.waitForListener(`127.0.0.2_${inbound}`, 40_000), server.waitForListener(`127.0.0.2_${tcpIn}`, 40_000)]);
    await until(() => status('/ratings/0'), (s) => s === 200, 'a 200 through both sidecars without policies', 30_000);
  });

  after(async () => {
    await Promise.all([client?.stop(), server?.stop()]);
    await sextant?.stop();
    await ratings?.close();
    echo?.close();
    extAuthz?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('ALLOW by principal and path: the client principal reaches allowed paths only; another principal nothing', async () => {
    await policies([ap('allow-client', { rules: [{ from: [{ source: { principals: [CLIENT] } }], to: [{ operation: { paths: ['/allowed/*'] } }] }] })]);
    assert.equal(await status('/allowed/1'), 200);
    const denied = await get('/other');
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'RBAC: access denied');
    await policies([ap('allow-other', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/someone-else'] } }] }] })]);
    assert.equal(await status('/allowed/1'), 403);
  });

  test('ALLOW by namespace and method', async () => {
    await policies([ap('allow-ns-get', { rules: [{ from: [{ source: { namespaces: [NS] } }], to: [{ operation: { methods: ['GET'] } }] }] })]);
    assert.equal(await status('/ns'), 200);
    await policies([ap('allow-ns-bank', { rules: [{ from: [{ source: { namespaces: ['bank'] } }] }] })]);
    assert.equal(await status('/ns'), 403);
    await policies([ap('allow-ns-post', { rules: [{ from: [{ source: { namespaces: [NS] } }], to: [{ operation: { methods: ['POST'] } }] }] })]);
    assert.equal(await status('/ns'), 403);
  });

  test('DENY by header and method; DENY wins over ALLOW', async () => {
    const allowAll = ap('allow-all', { rules: [{}] });
    await policies([allowAll, ap('deny-header', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-block]', values: ['yes'] }] }] })]);
    assert.equal(await status('/h', { 'x-block': 'yes' }), 403);
    assert.equal(await status('/h', { 'x-block': 'no' }), 200);
    await policies([allowAll, ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'], methods: ['GET'] } }] }] })]);
    assert.equal(await status('/admin'), 403);
    assert.equal(await status('/public'), 200);
  });

  test('dry-run DENY and AUDIT change nothing but are counted', async () => {
    const shadow = /http\.inbound_[0-9.]+_\d+;?\.rbac\.istio_dry_run_deny_\.shadow_denied: (\d+)/;
    const allowed = /http\.inbound_[0-9.]+_\d+;?\.rbac\.allowed: (\d+)/;
    await policies([ap('dry-deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/dry'] } }] }] }, { 'istio.io/dry-run': 'true' }), ap('audit', { action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/dry'] } }] }] })]);
    const [shadowBefore, allowedBefore] = [await serverStat(shadow), await serverStat(allowed)];
    assert.equal(await status('/dry'), 200);
    // The dry-run DENY matched in shadow mode only; the AUDIT filter (the only one enforcing here) let the request through.
    await until(() => serverStat(shadow), (n) => n === shadowBefore + 1, 'the dry-run DENY counted as shadow denied');
    await until(() => serverStat(allowed), (n) => n === allowedBefore + 1, 'the AUDIT filter evaluated the request');
  });

  test('CUSTOM: selected requests go to the ext_authz server on loopback, which decides', async () => {
    await policies([ap('ext', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] })]);
    assert.equal(await status('/ext/1'), 403);
    assert.ok(extChecks.some((c) => c.path === '/ext/1'), JSON.stringify(extChecks));
    assert.equal(await status('/ext/2', { 'x-ext-authz': 'allow' }), 200);
    const before = extChecks.length;
    assert.equal(await status('/not-selected'), 200);
    assert.equal(extChecks.length, before, 'a request the policy does not select is not sent to ext_authz');
  });

  test('TCP: network RBAC denies by source IP; an ALLOW rule with an HTTP-only field allows nothing on TCP', async () => {
    await policies([]);
    assert.equal(await tcpRoundTrip(tcpIn, '127.0.0.9', 'ping'), 'ping\n');
    await policies([ap('deny-ip', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.0.9/32'] } }] }] })]);
    assert.equal(await tcpRoundTrip(tcpIn, '127.0.0.9', 'ping'), '');
    assert.equal(await tcpRoundTrip(tcpIn, '127.0.0.10', 'pong'), 'pong\n');
    await policies([ap('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })]);
    assert.equal(await tcpRoundTrip(tcpIn, '127.0.0.10', 'ping'), '');
    // The same policy still allows GET over HTTP.
    assert.equal(await status('/get'), 200);
    const denied = await serverStat(/tcp\.rbac\.denied: (\d+)/);
    assert.ok(denied > 0, 'network RBAC counted the denied connections');
  });

  test('a rule that cannot be rendered fails closed and is reported on /debug/config_issues', async () => {
    await policies([ap('allow-bad', { rules: [{ from: [{ source: { ipBlocks: ['not-an-ip'] } }] }, { to: [{ operation: { paths: ['/never'] } }] }] })]);
    assert.equal(await status('/bad'), 403);
    const issues = (await debugJson(sextant!.httpUrl, '/debug/config_issues')) as { semantic: Array<{ kind: string; namespace: string; name: string; field: string; reason: string }> };
    const mine = issues.semantic.find((i) => i.kind === 'AuthorizationPolicy' && i.name === 'allow-bad');
    assert.ok(mine, JSON.stringify(issues.semantic));
    assert.equal(mine.namespace, SNS);
    assert.equal(mine.field, 'spec.rules[0].from[0].source.ipBlocks');
    assert.match(mine.reason, /not an IP address or CIDR; the rule is dropped/);
  });
});
