/**
 * Gateway credentials over SDS (issue 4 §5): an HTTPS Gateway server with
 * `credentialName` gets its certificate and key from a Kubernetes Secret as
 * the SDS secret `kubernetes://<name>`, served by Sextant over ADS on the
 * secure port — only to a proxy authenticated in the Secret's namespace.
 * A real Envoy gateway terminates real TLS with it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { freePort, startHttpBackend, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer, secureAdsBootstrap, type TestIssuer } from './fixtures/secure.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const HOST = 'shop.example.com';
const GATEWAY_NODE = 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local';

function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`], { stdio: 'ignore' });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

function httpsGet(port: number, ca: string): Promise<{ status: number; body: string; peerCN: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/hello', servername: HOST, headers: { host: HOST }, ca, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerCN: String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS gateway with credentialName: certificate from a Kubernetes Secret over SDS', { skip: skipUnless('envoy') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let issuer: TestIssuer;
  let rootPem: string;
  let tls: { cert: string; key: string };
  let gatewayPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-gwtls-'));
    tls = selfSignedCert(dir);
    issuer = createTestIssuer(dir);
    backend = await startHttpBackend('web', '127.0.0.21');
    gatewayPort = await freePort();
    const secret: K8sObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'shop-cert', namespace: 'istio-system' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(tls.cert).toString('base64'), 'tls.key': Buffer.from(tls.key).toString('base64') },
    };
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'https', port: 443, targetPort: gatewayPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway' }, ports: [{ name: 'https', port: gatewayPort }] }),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'web', pod: 'web-a', ip: backend.host, labels: { app: 'web' }, ports: [{ name: 'http', port: backend.port }] }),
      secret,
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop-gateway', 'istio-system', {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: [HOST], tls: { mode: 'SIMPLE', credentialName: 'shop-cert' } }],
      }),
      istio('VirtualService', 'shop', 'default', { hosts: [HOST], gateways: ['istio-system/shop-gateway'], http: [{ route: [{ destination: { host: 'web' } }] }] }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    envoy = await startEnvoy({
      adsAddress: sextant.secureAddress,
      nodeId: GATEWAY_NODE,
      metadata: { NAMESPACE: 'istio-system', SERVICE_ACCOUNT: 'istio-ingressgateway', LABELS: { istio: 'ingressgateway' } },
      bootstrapExtra: secureAdsBootstrap(sextant.secureAddress, rootPem, issuer.token('istio-system', 'istio-ingressgateway')),
    });
    await envoy.waitForListener(`0.0.0.0_${gatewayPort}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the gateway terminates TLS with the Secret\'s certificate and routes to the backend', async () => {
    const r = await httpsGet(gatewayPort, tls.cert);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.peerCN, HOST);
    assert.ok(backend.requests.some((q) => q.url === '/hello'), 'backend saw the request');
  });

  const sdsClient = (secure: boolean, token?: string, node = GATEWAY_NODE, ns = 'istio-system') => {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    return new SotwClient(secure ? sextant!.secureAddress : sextant!.xdsAddress, {
      node: { id: node, metadata: { NAMESPACE: ns } },
      metadata,
      ...(secure
        ? { credentials: grpc.credentials.createSsl(Buffer.from(rootPem)), channelOptions: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc' } }
        : {}),
    });
  };

  test('an unauthenticated proxy (plaintext port) does not get the credential', async () => {
    const c = sdsClient(false);
    try {
      c.request(TypeUrl.Secret, { resourceNames: ['kubernetes://shop-cert'] });
      await sextant!.waitForLog((l) => l.secret === 'kubernetes://shop-cert' && String(l.msg).includes('not authenticated'));
      const r = await c.next();
      assert.deepEqual(resourceNames(r), []);
    } finally {
      c.close();
    }
  });

  test('a proxy authenticated in another namespace does not get it either', async () => {
    const c = sdsClient(true, issuer.token('default', 'web'), 'router~127.0.0.5~gw-2.default~default.svc.cluster.local', 'default');
    try {
      c.request(TypeUrl.Secret, { resourceNames: ['kubernetes://istio-system/shop-cert'] });
      const logged = await sextant!.waitForLog((l) => l.secret === 'kubernetes://istio-system/shop-cert' && typeof l.reason === 'string');
      assert.match(String(logged.reason), /may not read Secrets in namespace istio-system/);
      assert.deepEqual(resourceNames(await c.next()), []);
    } finally {
      c.close();
    }
  });
});
