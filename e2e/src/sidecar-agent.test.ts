/**
 * A stock Istio sidecar served by Sextant: Istio's own `pilot-agent proxy
 * sidecar` (master, 1.31-dev) running a real Envoy (upstream 1.38.3), with no
 * Kubernetes and no iptables (INTERCEPTION_MODE NONE).
 *
 * The agent gets its certificate from Sextant's CA (CSR API on the secure
 * port, JWT from a test issuer), writes Envoy's bootstrap from Istio's own
 * template, starts Envoy, proxies Envoy's ADS stream over its XDS UDS to
 * Sextant's secure port, and serves `default`/`ROOTCA` to Envoy over SDS.
 *
 * Two such sidecars:
 * - client `productpage` (shop/bookinfo-productpage, 127.0.0.1): a Sidecar
 *   selected by its pod labels, whose egress listener binds 127.0.0.1:<P>
 *   with captureMode NONE. `reviews` (a loopback backend without a sidecar,
 *   Pod + EndpointSlice) is reached through a VirtualService in plaintext;
 * - server `ratings` (secure/ratings, 127.0.0.2): its pod carries
 *   `security.istio.io/tlsMode: istio`, its Sidecar ingress listener binds
 *   127.0.0.2:<Q> (captureMode NONE) and forwards to a loopback backend, and
 *   PeerAuthentication STRICT in its namespace. The client reaches it with
 *   auto mTLS; both ends use the certificates their agents got from Sextant
 *   and hand to Envoy over SDS.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseProxy } from '@sextant/model';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { clusters, listeners, rdsName } from './fixtures/dump.js';
import { configDir, istio, productpageWithReviews, strictRatings, type ConfigDir } from './fixtures/mesh.js';
import { createTestIssuer } from './fixtures/secure.js';
import { debugJson, startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

interface TypeStatus {
  typeUrl: string;
  versionSent?: string;
  versionAcked?: string;
  nonceSent?: string;
  nonceAcked?: string;
  nacks?: number;
  lastNack?: unknown;
  names: string[];
}
interface Conn {
  proxyId: string;
  identity?: unknown;
  types: TypeStatus[];
}

const TYPES = {
  cds: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  eds: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  lds: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  rds: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
};

describe('stock Istio sidecar: pilot-agent + Envoy served by Sextant', { skip: skipUnless('envoy', 'pilot-agent') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let agent: RunningAgent | undefined;
  let server: RunningAgent | undefined;
  let backend: HttpBackend;
  let ratings: HttpBackend;
  let port: number;
  let inbound: number;
  let rootPem: string;
  const NS = 'shop';
  const POD = 'productpage-v1-7f9c';
  const SA = 'bookinfo-productpage';
  const FQDN = `reviews.${NS}.svc.cluster.local`;
  const SNS = 'secure';
  const SFQDN = `ratings.${SNS}.svc.cluster.local`;
  const CLIENT_ID = `spiffe://cluster.local/ns/${NS}/sa/${SA}`;
  const SERVER_ID = `spiffe://cluster.local/ns/${SNS}/sa/ratings`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-sidecar-agent-'));
    const issuer = createTestIssuer(dir);
    backend = await startHttpBackend('reviews-v1', '127.0.0.31');
    ratings = await startHttpBackend('ratings-v1', '127.0.0.1');
    port = await freePort();
    inbound = await freePort('127.0.0.2');
    const ratingsCfg = strictRatings(SNS, port, inbound, ratings.port);
    cfg = configDir({
      'kubernetes.yaml': [
        ...productpageWithReviews(NS, POD, SA, port, backend),
        ...ratingsCfg.kubernetes,
      ],
      'istio.yaml': [
        istio('Sidecar', 'productpage', NS, {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*', `${SNS}/*`] }],
        }),
        ...ratingsCfg.istio,
        istio('VirtualService', 'reviews', NS, {
          hosts: ['reviews'],
          http: [{ match: [{ uri: { prefix: '/reviews' } }], route: [{ destination: { host: 'reviews' } }], headers: { response: { set: { 'x-routed-by': 'vs-reviews' } } } }],
        }),
      ],
    });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args, '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const securePort = sextant.secureAddress.split(':').pop()!;
    const sidecar = { discoveryAddress: `localhost:${securePort}`, rootPem, env: { ISTIO_META_INTERCEPTION_MODE: 'NONE' }, proxyConfig: { interceptionMode: 'NONE' } };
    [agent, server] = await Promise.all([
      startAgent({
        ...sidecar,
        token: issuer.token(NS, SA),
        podName: POD,
        namespace: NS,
        serviceAccount: SA,
        ip: '127.0.0.1',
        labels: { app: 'productpage', version: 'v1' },
        env: { ...sidecar.env, ISTIO_META_WORKLOAD_NAME: 'productpage-v1' },
        // Istio's bootstrap keeps only a few stats; ask for the TLS handshake counters too (ProxyConfig reaches the bootstrap).
        proxyConfig: { ...sidecar.proxyConfig, proxyStatsMatcher: { inclusionSuffixes: ['ssl.handshake'] } },
      }),
      startAgent({ ...sidecar, token: issuer.token(SNS, 'ratings'), podName: 'ratings-v1-0', namespace: SNS, serviceAccount: 'ratings', ip: '127.0.0.2',
        // Labels from the environment this time (ISTIO_METAJSON_LABELS), not the downward-API file.
        env: { ...sidecar.env, ISTIO_METAJSON_LABELS: JSON.stringify({ app: 'ratings', version: 'v1' }) },
      }),
    ]);
    await Promise.all([agent.waitForListener(`127.0.0.1_${port}`, 40_000), server.waitForListener(`127.0.0.2_${inbound}`, 40_000)]);
  });

  after(async () => {
    await Promise.all([agent?.stop(), server?.stop()]);
    await sextant?.stop();
    await Promise.all([backend?.close(), ratings?.close()]);
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the egress listener routes real HTTP through the VirtualService to the loopback backend', async () => {
    const r = await until(() => httpGet(port, '/reviews/1', { host: 'reviews' }), (x) => x.status === 200, 'a 200 through the sidecar');
    assert.equal(r.backend, 'reviews-v1');
    assert.equal(r.headers['x-routed-by'], 'vs-reviews');
    assert.ok(backend.requests.some((q) => q.url === '/reviews/1'), 'the backend saw the request');
  });

  test('both Envoys ACKed CDS, EDS, LDS and RDS through their agents, no NACK', async () => {
    const conns = (await debugJson(sextant!.httpUrl, '/debug/syncz')) as Conn[];
    for (const a of [agent!, server!]) {
      const mine = conns.filter((c) => c.proxyId === a.nodeId);
      assert.equal(mine.length, 1, `one stream for ${a.nodeId}: ${JSON.stringify(conns.map((c) => c.proxyId))}`);
      // The agent's XDS proxy authenticated upstream as the workload.
      const id = (mine[0]!.identity ?? {}) as { namespace?: string; serviceAccount?: string };
      assert.deepEqual({ namespace: id.namespace, serviceAccount: id.serviceAccount }, a === agent ? { namespace: NS, serviceAccount: SA } : { namespace: SNS, serviceAccount: 'ratings' }, JSON.stringify(id));
      const byType = new Map(mine[0]!.types.map((t) => [t.typeUrl, t]));
      // The server has only an inbound listener (inline routes, static inbound cluster): no RDS or EDS to ask for.
      const expected = a === agent ? Object.entries(TYPES) : Object.entries(TYPES).filter(([k]) => k === 'cds' || k === 'lds');
      assert.deepEqual(
        [...byType.keys()].filter((u) => !expected.some(([, x]) => x === u)).filter((u) => byType.get(u)!.nacks),
        [],
        `${a.nodeId}: no NACK on any other type`,
      );
      for (const [k, url] of expected) {
        const t = byType.get(url);
        assert.ok(t, `${a.nodeId}: ${k} subscribed`);
        assert.ok(t.versionAcked, `${a.nodeId}: ${k} acked: ${JSON.stringify(t)}`);
        assert.equal(t.versionAcked, t.versionSent, `${a.nodeId}: ${k} acked the version sent`);
        assert.ok(!t.nacks, `${a.nodeId}: ${k} never NACKed: ${JSON.stringify(t.lastNack)}`);
      }
    }
    const dump = await agent!.configDump();
    const ls = listeners(dump);
    assert.ok(ls.has(`127.0.0.1_${port}`));
    assert.equal(rdsName(ls.get(`127.0.0.1_${port}`)!), String(port));
    const cs = [...clusters(dump).keys()];
    for (const c of [`outbound|${port}||${FQDN}`, `outbound|${port}||${SFQDN}`]) assert.ok(cs.includes(c), `${c} in ${cs}`);
  });

  test("the node pilot-agent sends is parsed as Istio's: ID, ISTIO_VERSION, LABELS, NAMESPACE, INTERCEPTION_MODE", async () => {
    const dump = (await debugJson(sextant!.httpUrl, `/debug/sextant_dump?proxyID=${encodeURIComponent(agent!.nodeId)}`)) as { node: { id: string; metadata: Record<string, unknown> } };
    assert.equal(dump.node.id, `sidecar~127.0.0.1~${POD}.${NS}~${NS}.svc.cluster.local`);
    const view = parseProxy(dump.node.id, dump.node.metadata);
    assert.equal(view.type, 'sidecar');
    assert.equal(view.namespace, NS);
    assert.match(view.istioVersion, /^1\.31/);
    assert.deepEqual(view.labels, { app: 'productpage', version: 'v1' });
    assert.equal(view.interceptionMode, 'NONE');
    assert.equal(view.serviceAccount, SA);
    assert.equal(view.clusterId, 'Kubernetes');
    assert.equal(view.workloadName, 'productpage-v1');
    // INSTANCE_IP first, then the host addresses pilot-agent found (INSTANCE_IPS).
    assert.equal(view.ipAddresses[0], '127.0.0.1');
    assert.deepEqual(view.ipAddresses, String(dump.node.metadata.INSTANCE_IPS).split(','));
    const sdump = (await debugJson(sextant!.httpUrl, `/debug/sextant_dump?proxyID=${encodeURIComponent(server!.nodeId)}`)) as { node: { id: string; metadata: Record<string, unknown> } };
    const sview = parseProxy(sdump.node.id, sdump.node.metadata);
    assert.deepEqual(sview.labels, { app: 'ratings', version: 'v1' });
    assert.equal(sview.namespace, SNS);
    assert.equal(sview.serviceAccount, 'ratings');
  });

  /** The SDS secrets Envoy holds, by name, with the certificates decoded. */
  async function secrets(a: RunningAgent): Promise<Map<string, { chain?: X509Certificate[]; roots?: X509Certificate[] }>> {
    const dump = await a.configDump();
    const sec = dump.configs.find((c) => c['@type'].endsWith('SecretsConfigDump')) as { dynamic_active_secrets?: Array<{ name: string; secret: Record<string, any> }> } | undefined;
    const certs = (b64: string | undefined) => {
      if (!b64) return undefined;
      const pem = Buffer.from(b64, 'base64').toString();
      return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
    };
    const out = new Map<string, { chain?: X509Certificate[]; roots?: X509Certificate[] }>();
    for (const s of sec?.dynamic_active_secrets ?? []) {
      const chain = certs(s.secret.tls_certificate?.certificate_chain?.inline_bytes);
      const roots = certs(s.secret.validation_context?.trusted_ca?.inline_bytes);
      out.set(s.name, { ...(chain ? { chain } : {}), ...(roots ? { roots } : {}) });
    }
    return out;
  }

  test('auto mTLS: the client sidecar reaches the STRICT server sidecar; the server sees the client identity', async () => {
    const r = await until(() => httpGet(port, '/ratings/7', { host: 'ratings.secure' }), (x) => x.status === 200, 'a 200 from ratings through both sidecars', 30_000);
    assert.equal(r.backend, 'ratings-v1');
    const seen = ratings.requests.findLast((q) => q.url === '/ratings/7')!;
    const xfcc = String(seen.headers['x-forwarded-client-cert'] ?? '');
    assert.match(xfcc, new RegExp(`By=${SERVER_ID.replaceAll('/', '\\/')}`), xfcc);
    assert.match(xfcc, new RegExp(`URI=${CLIENT_ID.replaceAll('/', '\\/')}`), xfcc);
    const stats = await agent!.admin('/stats');
    assert.match(stats, new RegExp(`cluster\\.outbound\\|${port}\\|\\|${SFQDN.replaceAll('.', '\\.')}[^\\n]*ssl\\.handshake: [1-9]`), 'the client cluster did TLS handshakes');
    // The plaintext backend (no tlsMode label) is still reached without TLS.
    assert.equal((await httpGet(port, '/reviews/2', { host: 'reviews' })).backend, 'reviews-v1');
  });

  test('STRICT: plaintext straight to the server sidecar inbound port is refused', async () => {
    const before = ratings.requests.length;
    const r = await httpGet(inbound, '/plain', {}, '127.0.0.2').then(
      (x) => `status ${x.status}`,
      (e: Error) => `error ${e.message}`,
    );
    assert.match(r, /^error /, r);
    assert.equal(ratings.requests.length, before);
  });

  test("SDS from the agents: each Envoy holds `default` for its own SPIFFE ID and `ROOTCA` = Sextant's root", async () => {
    const root = new X509Certificate(rootPem);
    for (const [a, id] of [
      [agent!, CLIENT_ID],
      [server!, SERVER_ID],
    ] as const) {
      const s = await secrets(a);
      const leaf = s.get('default')?.chain?.[0];
      assert.ok(leaf, `${a.nodeId}: secret default with a certificate: ${[...s.keys()]}`);
      assert.equal(leaf.subjectAltName, `URI:${id}`);
      const rootca = s.get('ROOTCA')?.roots;
      assert.ok(rootca?.some((c) => c.fingerprint256 === root.fingerprint256), `${a.nodeId}: ROOTCA holds Sextant's root`);
      const chain = s.get('default')!.chain!;
      const issuer = chain[1] ?? root;
      assert.ok(leaf.verify(issuer.publicKey), `${a.nodeId}: leaf signed by ${issuer.subject}`);
    }
  });
});
