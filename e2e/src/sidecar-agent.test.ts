/**
 * A stock Istio sidecar served by Sextant: Istio's own `pilot-agent proxy
 * sidecar` (master, 1.31-dev) running a real Envoy (upstream 1.38.3), with no
 * Kubernetes and no iptables (INTERCEPTION_MODE NONE).
 *
 * The agent gets its certificate from Sextant's CA (CSR API on the secure
 * port, JWT from a test issuer), writes Envoy's bootstrap from Istio's own
 * template, starts Envoy, proxies Envoy's ADS stream over its XDS UDS to
 * Sextant's secure port, and serves `default`/`ROOTCA` to Envoy over SDS.
 * Config: a Service with a loopback backend (Pod + EndpointSlice), a
 * VirtualService, and a Sidecar selected by the pod's labels whose egress
 * listener binds 127.0.0.1:<port> with captureMode NONE; mesh-wide
 * PeerAuthentication DISABLE (the backend has no sidecar).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseProxy } from '@sextant/model';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { clusters, listeners, rdsName } from './fixtures/dump.js';
import { configDir, istio, meshPlaintext, namespace, pod, service, workload, type ConfigDir } from './fixtures/mesh.js';
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
  let backend: HttpBackend;
  let port: number;
  let rootPem: string;
  const NS = 'shop';
  const POD = 'productpage-v1-7f9c';
  const SA = 'bookinfo-productpage';
  const FQDN = `reviews.${NS}.svc.cluster.local`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-sidecar-agent-'));
    const issuer = createTestIssuer(dir);
    backend = await startHttpBackend('reviews-v1', '127.0.0.31');
    port = await freePort();
    cfg = configDir({
      'kubernetes.yaml': [
        namespace(NS),
        namespace('istio-system'),
        pod(POD, NS, '127.0.0.1', { app: 'productpage', version: 'v1' }, SA),
        service('reviews', NS, '10.96.3.13', [{ name: 'http', port }]),
        ...workload({ svc: 'reviews', namespace: NS, pod: 'reviews-v1-pod', ip: backend.host, labels: { app: 'reviews', version: 'v1' }, ports: [{ name: 'http', port: backend.port }] }),
      ],
      'istio.yaml': [
        meshPlaintext(),
        istio('Sidecar', 'productpage', NS, {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
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
    agent = await startAgent({
      discoveryAddress: `localhost:${securePort}`,
      rootPem,
      token: issuer.token(NS, SA),
      podName: POD,
      namespace: NS,
      serviceAccount: SA,
      ip: '127.0.0.1',
      labels: { app: 'productpage', version: 'v1' },
      env: { ISTIO_META_INTERCEPTION_MODE: 'NONE', ISTIO_META_WORKLOAD_NAME: 'productpage-v1' },
      proxyConfig: { interceptionMode: 'NONE' },
    });
    await agent.waitForListener(`127.0.0.1_${port}`, 40_000);
  });

  after(async () => {
    await agent?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the egress listener routes real HTTP through the VirtualService to the loopback backend', async () => {
    const r = await until(() => httpGet(port, '/reviews/1', { host: 'reviews' }), (x) => x.status === 200, 'a 200 through the sidecar');
    assert.equal(r.backend, 'reviews-v1');
    assert.equal(r.headers['x-routed-by'], 'vs-reviews');
    assert.ok(backend.requests.some((q) => q.url === '/reviews/1'), 'the backend saw the request');
  });

  test('Envoy ACKed CDS, EDS, LDS and RDS through the agent, no NACK', async () => {
    const conns = (await debugJson(sextant!.httpUrl, '/debug/syncz')) as Conn[];
    const mine = conns.filter((c) => c.proxyId === agent!.nodeId);
    assert.equal(mine.length, 1, `one stream for ${agent!.nodeId}: ${JSON.stringify(conns.map((c) => c.proxyId))}`);
    const byType = new Map(mine[0]!.types.map((t) => [t.typeUrl, t]));
    for (const [k, url] of Object.entries(TYPES)) {
      const t = byType.get(url);
      assert.ok(t, `${k} subscribed`);
      assert.ok(t.versionAcked, `${k} acked: ${JSON.stringify(t)}`);
      assert.equal(t.versionAcked, t.versionSent, `${k} acked the version sent`);
      assert.ok(!t.nacks, `${k} never NACKed: ${JSON.stringify(t.lastNack)}`);
    }
    const dump = await agent!.configDump();
    const ls = listeners(dump);
    assert.ok(ls.has(`127.0.0.1_${port}`));
    assert.equal(rdsName(ls.get(`127.0.0.1_${port}`)!), String(port));
    assert.ok([...clusters(dump).keys()].includes(`outbound|${port}||${FQDN}`));
  });

  test("the node pilot-agent sends is parsed as Istio's: ID, ISTIO_VERSION, LABELS, NAMESPACE, INTERCEPTION_MODE", async () => {
    const dump = (await debugJson(sextant!.httpUrl, `/debug/config_dump?proxyID=${encodeURIComponent(agent!.nodeId)}`)) as { node: { id: string; metadata: Record<string, unknown> } };
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
  });
});
