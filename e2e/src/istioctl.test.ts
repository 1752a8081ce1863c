/**
 * Istio's own `istioctl` (the pinned build) against Sextant, as an operator
 * runs it out of cluster with `--xds-address` (issue 13): a stock sidecar
 * (pilot-agent + Envoy) and a real Envoy gateway with a `kubernetes://`
 * credential are connected; then
 * - `istioctl proxy-status` lists both with SYNCED types, over the plaintext
 *   port from loopback and over the secure port with a workload certificate
 *   (`--cert-dir`, the CA's own mTLS caller authentication);
 * - `istioctl proxy-status <pod>.<ns> --file <Envoy's own dump>` compares what
 *   Envoy runs with Sextant's `istio.io/debug/config_dump` and finds them equal;
 * - `istioctl proxy-config cluster|listener|route|eds|secret --file` parse the
 *   HTTP `/debug/config_dump` (and `endpoint --file` parses `/debug/clusters`);
 * - `istioctl x internal-debug` reads the debug paths over xDS.
 * The kubeconfig istioctl insists on points at nothing: no Kubernetes here.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority, FileCaStore } from '@sextant/ca';
import { freePort, startHttpBackend, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, istio, meshPlaintext, productpageWithReviews, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer, secureAdsBootstrap } from './fixtures/secure.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { runIstioctl } from './fixtures/istioctl.js';
import { skipUnless } from './tools.js';


const NS = 'shop';
const POD = 'productpage-v1-7f9c';
const SA = 'bookinfo-productpage';
const GW_POD = 'istio-ingressgateway-xyz';
// Its own address: a proxy is matched to its pod by IP, and the sidecar's pod is 127.0.0.1.
const GW_IP = '127.0.0.9';
const GW_NODE = `router~${GW_IP}~${GW_POD}.istio-system~istio-system.svc.cluster.local`;
const HOST = 'shop.example.com';

describe('istioctl against Sextant (out of cluster, --xds-address)', { skip: skipUnless('envoy', 'pilot-agent', 'istioctl') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let agent: RunningAgent | undefined;
  let gateway: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let port: number;
  let gatewayPort: number;
  let tlsKey: string;
  let kubeconfig: string;
  let certDir: string;

  /** Runs istioctl with a kubeconfig that points at nothing (it builds a client even when it does not use it). */
  const istioctl = (args: string[], timeoutMs = 60_000) => runIstioctl(kubeconfig, args, timeoutMs);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-istioctl-'));
    const issuer = createTestIssuer(dir);
    backend = await startHttpBackend('reviews-v1', '127.0.0.31');
    port = await freePort();
    gatewayPort = await freePort();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '1', '-subj', `/CN=${HOST}`], { stdio: 'ignore' });
    tlsKey = readFileSync(join(dir, 'tls.key'), 'utf8');
    const k8s: K8sObject[] = [
      ...productpageWithReviews(NS, POD, SA, port, backend),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'https', port: 443, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: GW_POD, ip: GW_IP, labels: { istio: 'ingressgateway' }, ports: [{ name: 'https', port: gatewayPort }] }),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'shop-cert', namespace: 'istio-system' },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': Buffer.from(readFileSync(join(dir, 'tls.crt'))).toString('base64'), 'tls.key': Buffer.from(tlsKey).toString('base64') },
      },
    ];
    cfg = configDir({
      'kubernetes.yaml': k8s,
      'istio.yaml': [
        // Plaintext mesh: the bare Envoy gateway has no SDS server for the auto-mTLS `default`/`ROOTCA` secrets.
        meshPlaintext(),
        istio('Sidecar', 'productpage', NS, {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: ['./*'] }],
        }),
        istio('VirtualService', 'reviews', NS, { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }),
        istio('Gateway', 'shop-gateway', 'istio-system', {
          selector: { istio: 'ingressgateway' },
          servers: [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: [HOST], tls: { mode: 'SIMPLE', credentialName: 'shop-cert' } }],
        }),
        istio('VirtualService', 'shop', NS, { hosts: [HOST], gateways: ['istio-system/shop-gateway'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }),
      ],
    });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args, '--pod-name', 'sextant-e2e-0', '--debounce-after', '10ms', '--debounce-max', '200ms'] });
    const rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const securePort = sextant.secureAddress.split(':').pop()!;
    [agent, gateway] = await Promise.all([
      startAgent({
        discoveryAddress: `localhost:${securePort}`,
        rootPem,
        token: issuer.token(NS, SA),
        podName: POD,
        namespace: NS,
        serviceAccount: SA,
        ip: '127.0.0.1',
        labels: { app: 'productpage', version: 'v1' },
        env: { ISTIO_META_INTERCEPTION_MODE: 'NONE' },
        proxyConfig: { interceptionMode: 'NONE' },
      }),
      startEnvoy({
        adsAddress: sextant.secureAddress,
        nodeId: GW_NODE,
        metadata: { NAMESPACE: 'istio-system', SERVICE_ACCOUNT: 'istio-ingressgateway', LABELS: { istio: 'ingressgateway' }, CLUSTER_ID: 'Kubernetes' },
        bootstrapExtra: secureAdsBootstrap(sextant.secureAddress, rootPem, issuer.token('istio-system', 'istio-ingressgateway')),
      }),
    ]);
    await Promise.all([agent.waitForListener(`127.0.0.1_${port}`, 40_000), gateway.waitForListener(`0.0.0.0_${gatewayPort}`, 60_000)]);

    // istioctl needs a kubeconfig to start even when it talks to --xds-address only; this one points at a closed port.
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:9' } }],
        users: [{ name: 'none', user: {} }],
        contexts: [{ name: 'none', context: { cluster: 'none', user: 'none' } }],
        'current-context': 'none',
      }),
    );
    // --cert-dir: a workload certificate of istio-system/default from Sextant's own CA (what an operator would fetch with a CSR).
    certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const ca = await CertificateAuthority.open(new FileCaStore(caDir), { trustDomain: 'cluster.local' });
    const cert = ca.generateWorkloadCertificate('spiffe://cluster.local/ns/istio-system/sa/default', 3600);
    writeFileSync(join(certDir, 'cert-chain.pem'), cert.certChain.slice(0, -1).join(''));
    writeFileSync(join(certDir, 'key.pem'), cert.keyPem);
    writeFileSync(join(certDir, 'root-cert.pem'), rootPem);
  });

  after(async () => {
    await Promise.all([agent?.stop(), gateway?.stop()]);
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `proxy-status -v 1` rows: node ID → the status column per type. */
  function statusRows(out: string): Map<string, string> {
    const rows = new Map<string, string>();
    for (const line of out.split('\n').slice(1)) {
      const id = line.split(/\s+/)[0];
      if (id) rows.set(id, line);
    }
    return rows;
  }

  const assertSynced = (out: string) => {
    const rows = statusRows(out);
    const sidecar = rows.get(`sidecar~127.0.0.1~${POD}.${NS}~${NS}.svc.cluster.local`);
    const gw = rows.get(GW_NODE);
    assert.ok(sidecar && gw, `both proxies listed:\n${out}`);
    // CDS, LDS, EDS, RDS for the sidecar; the gateway too (its EDS watch may be empty but is answered).
    assert.equal(sidecar.match(/SYNCED/g)?.length, 4, sidecar);
    assert.ok((gw.match(/SYNCED/g)?.length ?? 0) >= 3, gw);
    assert.doesNotMatch(out, /STALE|ERROR|INVALID|MISSING/, out);
    assert.match(out, /sextant-e2e-0/, 'the control plane instance ID from control_plane.identifier');
  };

  test('proxy-status over the plaintext port from loopback lists both proxies SYNCED', async () => {
    const out = await istioctl(['proxy-status', '-v', '1', '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assertSynced(out);
    const short = await istioctl(['proxy-status', '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assert.match(short, new RegExp(`${POD}\\.${NS}.*4 \\(CDS,LDS,EDS,RDS\\)`), short);
  });

  test('proxy-status over the secure port with a workload certificate (--cert-dir)', async () => {
    const out = await istioctl(['proxy-status', '-v', '1', '--xds-address', sextant!.secureAddress, '--cert-dir', certDir, '--authority', 'istiod.istio-system.svc']);
    assertSynced(out);
  });

  test("proxy-status <pod>.<ns> compares Envoy's own config dump with Sextant's and finds no difference", async () => {
    const envoyDump = join(dir, 'envoy-dump.json');
    writeFileSync(envoyDump, await agent!.admin('/config_dump'));
    const out = await istioctl(['proxy-status', `${POD}.${NS}`, '--file', envoyDump, '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assert.match(out, /Clusters Match/, out);
    assert.match(out, /Listeners Match/, out);
    assert.match(out, /Routes Match/, out);
  });

  test('proxy-config cluster|listener|route|eds|secret --file read /debug/config_dump; endpoint --file reads /debug/clusters', async () => {
    const dumpFor = async (id: string, path = 'config_dump') => {
      const res = await fetch(`${sextant!.httpUrl}/debug/${path}?proxyID=${encodeURIComponent(id)}`);
      assert.equal(res.status, 200);
      const file = join(dir, `${path}-${id.replace(/[^a-z0-9]/gi, '_')}.json`);
      writeFileSync(file, await res.text());
      return file;
    };
    const sidecar = await dumpFor(`${POD}.${NS}`);
    const fqdn = `reviews.${NS}.svc.cluster.local`;
    const clusters = await istioctl(['proxy-config', 'cluster', '--file', sidecar]);
    assert.match(clusters, new RegExp(`${fqdn.replace(/\./g, '\\.')}\\s+${port}\\s+-\\s+outbound\\s+EDS`), clusters);
    assert.match(clusters, /BlackHoleCluster/);
    const listeners = await istioctl(['proxy-config', 'listener', '--file', sidecar]);
    assert.match(listeners, new RegExp(`127\\.0\\.0\\.1\\s+${port}\\s`), listeners);
    const routes = await istioctl(['proxy-config', 'route', '--file', sidecar]);
    // istioctl drops the FQDN itself from DOMAINS; istiod's list then starts with its absolute form
    // (`reviews.<ns>.svc.cluster.local.`, ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN) and the short names.
    assert.match(routes, new RegExp(`${port}\\s+\\S+:${port}\\s+(${fqdn.replace(/\./g, '\\.')}\\., )?reviews(\\.${NS})?(, .*)?\\s`), routes);
    const eds = await istioctl(['proxy-config', 'eds', '--file', sidecar]);
    assert.match(eds, new RegExp(`${backend.host}:${backend.port}\\s+HEALTHY.*outbound\\|${port}\\|\\|${fqdn.replace(/\./g, '\\.')}`), eds);
    const endpoints = await istioctl(['proxy-config', 'endpoint', '--file', await dumpFor(`${POD}.${NS}`, 'clusters')]);
    assert.match(endpoints, new RegExp(`${backend.host}:${backend.port}\\s+HEALTHY.*outbound\\|${port}\\|\\|${fqdn.replace(/\./g, '\\.')}`), endpoints);

    const gw = await dumpFor(GW_NODE);
    const secrets = await istioctl(['proxy-config', 'secret', '--file', gw]);
    assert.match(secrets, /kubernetes:\/\/shop-cert/, secrets);
    for (const text of [readFileSync(gw, 'utf8'), secrets]) {
      assert.ok(!text.includes('PRIVATE KEY') && !text.includes(Buffer.from(tlsKey).toString('base64')), 'no key in the dump or istioctl\'s view of it');
    }
    assert.ok(readFileSync(gw, 'utf8').includes(Buffer.from('[redacted]').toString('base64')));
  });

  test('x internal-debug reads debug paths over xDS', async () => {
    const syncz = await istioctl(['x', 'internal-debug', 'syncz', '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assert.match(syncz, new RegExp(`${POD}\\.${NS}`), syncz);
    const dump = await istioctl(['x', 'internal-debug', `config_dump?proxyID=${GW_POD}.istio-system`, '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assert.match(dump, /SecretsConfigDump/, dump.slice(0, 500));
    assert.ok(!dump.includes('PRIVATE KEY') && !dump.includes(Buffer.from(tlsKey).toString('base64')));
    const list = await istioctl(['x', 'internal-debug', '--list', '--plaintext', '--xds-address', sextant!.xdsAddress]);
    assert.match(list, /config_dump/, list);
  });

  test('x version reads the control plane version from control_plane.identifier and the proxies\' from syncz', async () => {
    const out = await istioctl(['x', 'version', '--plaintext', '--xds-address', sextant!.xdsAddress]);
    const version = (JSON.parse(readFileSync(new URL('../../apps/sextant/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    assert.match(out, new RegExp(`control plane version: ${version.replace(/\./g, '\\.')}`), out);
    // The stock sidecar says its Istio version; the bare Envoy gateway does not.
    assert.match(out, /data plane version: .*1\.31-dev \(1 proxies\)/, out);
  });
});
