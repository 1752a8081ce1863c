/**
 * mTLS between a real MOSN v1.6.1 sidecar and a real Envoy sidecar, both ways,
 * with certificates from Sextant's CA: the Envoy sidecar is Istio's
 * pilot-agent with Envoy (SDS from the agent, as in sidecar-agent.test.ts);
 * MOSN dials SDS on the Unix socket of a pilot-agent run beside it without
 * Envoy (as in mosn-mtls.test.ts).
 *
 * Namespace `secure`, PeerAuthentication STRICT, then PERMISSIVE (live):
 * - `ratings` (127.0.0.2): Envoy. Ingress bound on 127.0.0.2:<Q>, egress on
 *   127.0.0.2:<P>;
 * - `reviews` (127.0.0.4): MOSN. Ingress bound on 127.0.0.4:<R>, egress on
 *   127.0.0.4:<P>.
 * Both pods carry `security.istio.io/tlsMode: istio`, so each side's client
 * uses auto mTLS to the other. The Envoy server's backend sees the MOSN
 * client's SPIFFE ID in x-forwarded-client-cert.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, endpointSlice, istio, namespace, pod, service, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer, presentedCertificate } from './fixtures/secure.js';
import { startMosn, type RunningMosn } from './mosn.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const NS = 'secure';
const ENVOY_ID = `spiffe://cluster.local/ns/${NS}/sa/ratings`;
const MOSN_ID = `spiffe://cluster.local/ns/${NS}/sa/reviews`;

describe('MOSN <-> Envoy sidecar mTLS with certificates from Sextant (STRICT, then PERMISSIVE)', { timeout: 180_000, skip: skipUnless('mosn', 'pilot-agent', 'envoy') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningAgent | undefined;
  let mosnAgent: RunningAgent | undefined;
  let mosn: RunningMosn | undefined;
  let ratings: HttpBackend;
  let reviews: HttpBackend;
  let rootPem: string;
  let P: number;
  let Q: number;
  let R: number;

  const peerAuth = (mode: 'STRICT' | 'PERMISSIVE'): K8sObject => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: NS }, spec: { mtls: { mode } } });
  const withOutput = (err: Error) => new Error(`${err.message}\n--- MOSN ---\n${mosn?.output().slice(-3000)}\n--- Envoy agent ---\n${envoy?.output().slice(-3000)}`);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-mosn-envoy-'));
    const issuer = createTestIssuer(dir);
    ratings = await startHttpBackend('ratings-v1', '127.0.0.1');
    reviews = await startHttpBackend('reviews-v1', '127.0.0.1');
    P = await freePort();
    Q = await freePort('127.0.0.2');
    R = await freePort('127.0.0.4');
    const sidecar = (app: string, ip: string, inbound: number, backend: HttpBackend) =>
      istio('Sidecar', app, NS, {
        workloadSelector: { labels: { app } },
        ingress: [{ port: { number: inbound, protocol: 'HTTP', name: 'http' }, bind: ip, captureMode: 'NONE', defaultEndpoint: `127.0.0.1:${backend.port}` }],
        egress: [{ port: { number: P, protocol: 'HTTP', name: 'http' }, bind: ip, captureMode: 'NONE', hosts: ['./*'] }],
      });
    const labels = (app: string) => ({ app, version: 'v1', 'security.istio.io/tlsMode': 'istio' });
    cfg = configDir({
      'kubernetes.yaml': [
        namespace(NS),
        namespace('istio-system'),
        service('ratings', NS, '10.96.4.2', [{ name: 'http', port: P, targetPort: Q }]),
        pod('ratings-v1-0', NS, '127.0.0.2', labels('ratings'), 'ratings'),
        endpointSlice('ratings', NS, 'ratings-v1-0', '127.0.0.2', [{ name: 'http', port: Q }]),
        service('reviews', NS, '10.96.4.4', [{ name: 'http', port: P, targetPort: R }]),
        pod('reviews-v1-0', NS, '127.0.0.4', labels('reviews'), 'reviews'),
        endpointSlice('reviews', NS, 'reviews-v1-0', '127.0.0.4', [{ name: 'http', port: R }]),
      ],
      'istio.yaml': [sidecar('ratings', '127.0.0.2', Q, ratings), sidecar('reviews', '127.0.0.4', R, reviews)],
      'peer.yaml': [peerAuth('STRICT')],
    });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args, '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const discoveryAddress = `localhost:${sextant.secureAddress.split(':').pop()!}`;
    const common = { discoveryAddress, rootPem, namespace: NS, proxyConfig: { interceptionMode: 'NONE' }, env: { ISTIO_META_INTERCEPTION_MODE: 'NONE' } };
    // MOSN's agent runs no Envoy: its "proxy binary" only waits.
    const placeholder = join(dir, 'no-envoy.sh');
    writeFileSync(placeholder, '#!/bin/sh\nexec sleep 100000\n');
    chmodSync(placeholder, 0o755);
    [envoy, mosnAgent] = await Promise.all([
      startAgent({
        ...common,
        token: issuer.token(NS, 'ratings'),
        podName: 'ratings-v1-0',
        serviceAccount: 'ratings',
        ip: '127.0.0.2',
        labels: labels('ratings'),
        // Istio's bootstrap keeps only a few stats; the TLS handshake counters prove the Envoy client's side.
        proxyConfig: { ...common.proxyConfig, proxyStatsMatcher: { inclusionSuffixes: ['ssl.handshake'] } },
      }),
      startAgent({ ...common, token: issuer.token(NS, 'reviews'), podName: 'reviews-v1-0', serviceAccount: 'reviews', ip: '127.0.0.4', labels: labels('reviews'), envoyPath: placeholder }),
    ]);
    mosn = await startMosn({
      adsAddress: sextant.xdsAddress,
      nodeId: 'sidecar~127.0.0.4~reviews-v1-0.secure~secure.svc.cluster.local',
      metadata: { NAMESPACE: NS, INTERCEPTION_MODE: 'NONE', SEXTANT_DATA_PLANE: 'mosn', LABELS: labels('reviews'), SERVICE_ACCOUNT: 'reviews' },
      cwd: mosnAgent.cwd,
    });
    await Promise.all([
      envoy.waitForListener(`127.0.0.2_${Q}`, 60_000),
      envoy.waitForListener(`127.0.0.2_${P}`, 60_000),
      mosn.waitForListener(`127.0.0.4_${R}`, 60_000),
      mosn.waitForListener(`127.0.0.4_${P}`, 60_000),
    ]).catch((err: Error) => {
      throw withOutput(err);
    });
  });

  after(async () => {
    await mosn?.stop().catch(() => {});
    await Promise.all([envoy?.stop(), mosnAgent?.stop()].map((p) => p?.catch(() => {})));
    await sextant?.stop();
    await Promise.all([ratings?.close(), reviews?.close()]);
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** GET through a sidecar's egress listener (bound on `ip`:P), by Host. */
  const via = (ip: string, host: string, path: string) => httpGet(P, path, { host }, ip);
  /** A plaintext GET straight to a server sidecar's inbound port: the status, or the error. */
  const plain = (ip: string, port: number) =>
    httpGet(port, '/plain', {}, ip).then(
      (x) => `status ${x.status} ${x.backend}`,
      (e: Error) => `error ${e.message}`,
    );
  /** TLS handshakes of the Envoy client's cluster to the MOSN server. */
  async function handshakes(): Promise<number> {
    const stats = await envoy!.admin('/stats');
    const m = new RegExp(`cluster\\.outbound\\|${P}\\|\\|reviews\\.secure\\.svc\\.cluster\\.local;?\\.ssl\\.handshake: (\\d+)`).exec(stats);
    return Number(m?.[1] ?? 0);
  }
  /** The certificate chain a server presents (openssl prints it even when it then refuses this client). */
  async function presented(ip: string, port: number): Promise<X509Certificate> {
    const { pem, output } = await presentedCertificate(ip, port);
    assert.ok(pem, output.slice(0, 2000));
    return new X509Certificate(pem);
  }

  test('STRICT: MOSN client -> Envoy server over mTLS; the Envoy server sees the MOSN identity', async () => {
    const r = await until(() => via('127.0.0.4', `ratings.${NS}.svc.cluster.local`, '/ratings/1'), (x) => x.backend === 'ratings-v1', 'MOSN -> Envoy', 40_000).catch((e: Error) => {
      throw withOutput(e);
    });
    assert.equal(r.status, 200);
    const seen = ratings.requests.findLast((q) => q.url === '/ratings/1')!;
    const xfcc = String(seen.headers['x-forwarded-client-cert'] ?? '');
    assert.match(xfcc, new RegExp(`URI=${MOSN_ID.replaceAll('/', '\\/')}`), `MOSN's certificate reached Envoy: ${xfcc}`);
    assert.match(xfcc, new RegExp(`By=${ENVOY_ID.replaceAll('/', '\\/')}`), xfcc);
  });

  test('STRICT: Envoy client -> MOSN server over mTLS', async () => {
    const r = await until(() => via('127.0.0.2', `reviews.${NS}.svc.cluster.local`, '/reviews/1'), (x) => x.backend === 'reviews-v1', 'Envoy -> MOSN', 40_000).catch((e: Error) => {
      throw withOutput(e);
    });
    assert.equal(r.status, 200);
    assert.ok((await handshakes()) > 0, 'the Envoy client did TLS handshakes with MOSN');
  });

  test('STRICT: both servers present the certificates Sextant issued them and refuse plaintext', async () => {
    const root = new X509Certificate(rootPem);
    for (const [ip, port, id] of [
      ['127.0.0.2', Q, ENVOY_ID],
      ['127.0.0.4', R, MOSN_ID],
    ] as const) {
      const leaf = await presented(ip, port);
      assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey), `${ip}: issued by Sextant's root (${leaf.issuer})`);
      assert.ok((leaf.subjectAltName ?? '').includes(`URI:${id}`), `${ip}: ${leaf.subjectAltName}`);
      assert.match(await plain(ip, port), /^error /, `${ip}:${port} refuses plaintext`);
    }
  });

  test('PERMISSIVE (live): the Envoy server accepts plaintext and still takes mTLS from MOSN', async () => {
    cfg.write('peer.yaml', [peerAuth('PERMISSIVE')]);
    await until(() => plain('127.0.0.2', Q), (x) => x === 'status 200 ratings-v1', 'plaintext accepted by the PERMISSIVE Envoy server', 30_000);
    const plainSeen = ratings.requests.findLast((q) => q.url === '/plain')!;
    assert.equal(plainSeen.headers['x-forwarded-client-cert'], undefined, 'plaintext: no client certificate');
    const r = await via('127.0.0.4', `ratings.${NS}.svc.cluster.local`, '/ratings/2');
    assert.equal(r.backend, 'ratings-v1');
    const xfcc = String(ratings.requests.findLast((q) => q.url === '/ratings/2')!.headers['x-forwarded-client-cert'] ?? '');
    assert.match(xfcc, new RegExp(`URI=${MOSN_ID.replaceAll('/', '\\/')}`), `still mTLS from MOSN: ${xfcc}`);
  });

  test('PERMISSIVE on the bound MOSN inbound listener: mTLS only (MOSN serves one chain there), reported for the MOSN proxy; the Envoy client still gets in', async () => {
    const MOSN_NODE = 'sidecar~127.0.0.4~reviews-v1-0.secure~secure.svc.cluster.local';
    const issues = await until(
      async () => ((await debugJson(sextant!.httpUrl, '/debug/config_issues')) as { proxies: Array<Record<string, string>> }).proxies,
      (ps) => ps.some((p) => p.kind === 'PeerAuthentication'),
      'the PERMISSIVE issue for the MOSN proxy',
      30_000,
    );
    const mine = issues.filter((p) => p.kind === 'PeerAuthentication');
    assert.deepEqual(
      mine.map((p) => [p.proxy, `${p.namespace}/${p.name}`, p.field]),
      [[MOSN_NODE, `${NS}/default`, 'spec.mtls.mode']],
      'reported for the MOSN proxy only, not for the Envoy sidecar',
    );
    assert.match(mine[0]!.reason!, /not supported by MOSN on the bound inbound listener 127\.0\.0\.4_\d+/);
    assert.match(await plain('127.0.0.4', R), /^error /, 'plaintext to MOSN still refused');
    const r = await via('127.0.0.2', `reviews.${NS}.svc.cluster.local`, '/reviews/2');
    assert.equal(r.backend, 'reviews-v1');
  });
});
