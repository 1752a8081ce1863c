/**
 * X-Forwarded-Client-Cert through a real Envoy gateway, as istiod configures
 * gateways (SANITIZE_SET with the client certificate's subject, cert, DNS and
 * URI SANs): a header the client sends is never passed on; over mutual TLS
 * the upstream gets one the gateway built from the client certificate it
 * verified. The gateway's certificate, its client CA and the client
 * certificate come from a throwaway CA made with openssl; the upstream is a
 * loopback HTTP server that records the headers it gets.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, startHttpBackend, type HttpBackend } from './backends.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer, secureAdsBootstrap } from './fixtures/secure.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

const HOST = 'shop.example.com';
const CLIENT_URI = 'spiffe://cluster.local/ns/partners/sa/acme';
const CLIENT_DNS = 'client.acme.example';
const FORGED = 'By=spiffe://cluster.local/ns/shop/sa/web;URI=spiffe://cluster.local/ns/istio-system/sa/admin';
const GATEWAY_NODE = 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local';

/** A CA, the gateway's server certificate and a client certificate with URI and DNS SANs, all under `dir`. */
function pki(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ossl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=xfcc test CA');
  const leaf = (name: string, subj: string, san: string, usage: string) => {
    ossl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  leaf('server', `/CN=${HOST}`, `DNS:${HOST}`, 'serverAuth');
  leaf('client', '/CN=acme client/O=Acme', `URI:${CLIENT_URI},DNS:${CLIENT_DNS}`, 'clientAuth');
  const r = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { ca: r('ca.crt'), serverCert: r('server.crt'), serverKey: r('server.key'), clientCert: r('client.crt'), clientKey: r('client.key') };
}

describe('gateway XFCC: a client cannot forge x-forwarded-client-cert through the gateway', { skip: skipUnless('envoy') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let backend: HttpBackend;
  let certs: ReturnType<typeof pki>;
  let httpsPort: number;
  let httpPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-xfcc-'));
    certs = pki(dir);
    const issuer = createTestIssuer(dir);
    backend = await startHttpBackend('web', '127.0.0.22');
    httpsPort = await freePort();
    httpPort = await freePort();
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('istio-ingressgateway', 'istio-system', '10.96.0.50', [{ name: 'https', port: 443, targetPort: httpsPort }, { name: 'http', port: 80, targetPort: httpPort }], { istio: 'ingressgateway' }, { istio: 'ingressgateway' }),
      ...workload({ svc: 'istio-ingressgateway', namespace: 'istio-system', pod: 'istio-ingressgateway-xyz', ip: '127.0.0.1', labels: { istio: 'ingressgateway' }, ports: [{ name: 'https', port: httpsPort }, { name: 'http', port: httpPort }] }),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'web', pod: 'web-a', ip: backend.host, labels: { app: 'web' }, ports: [{ name: 'http', port: backend.port }] }),
      // Istio's MUTUAL credential: certificate, key and the CA that verifies clients in one Secret.
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shop-cert', namespace: 'istio-system' }, type: 'Opaque', data: { 'tls.crt': b64(certs.serverCert), 'tls.key': b64(certs.serverKey), 'ca.crt': b64(certs.ca) } },
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop-gateway', 'istio-system', {
        selector: { istio: 'ingressgateway' },
        servers: [
          { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: [HOST], tls: { mode: 'MUTUAL', credentialName: 'shop-cert' } },
          { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [HOST] },
        ],
      }),
      istio('VirtualService', 'shop', 'default', { hosts: [HOST], gateways: ['istio-system/shop-gateway'], http: [{ route: [{ destination: { host: 'web' } }] }] }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args] });
    const rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    envoy = await startEnvoy({
      adsAddress: sextant.secureAddress,
      nodeId: GATEWAY_NODE,
      metadata: { NAMESPACE: 'istio-system', SERVICE_ACCOUNT: 'istio-ingressgateway', LABELS: { istio: 'ingressgateway' } },
      bootstrapExtra: secureAdsBootstrap(sextant.secureAddress, rootPem, issuer.token('istio-system', 'istio-ingressgateway')),
    });
    await envoy.waitForListener(`0.0.0.0_${httpsPort}`);
    await envoy.waitForListener(`0.0.0.0_${httpPort}`);
  });

  after(async () => {
    await envoy?.stop();
    await sextant?.stop();
    await backend?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The x-forwarded-client-cert the upstream got for one request (undefined when it got none). */
  async function upstreamXfcc(path: string, send: (resolve: (status: number) => void, reject: (e: Error) => void) => void): Promise<string | undefined> {
    const status = await new Promise<number>(send);
    assert.equal(status, 200);
    const seen = backend.requests.findLast((q) => q.url === path);
    assert.ok(seen, `the upstream got ${path}`);
    const v = seen.headers['x-forwarded-client-cert'];
    return Array.isArray(v) ? v.join(',') : v;
  }

  test('mutual TLS: the upstream gets the verified client certificate (hash, cert, subject, URI, DNS), not the forged header', async () => {
    const xfcc = await upstreamXfcc('/mtls', (resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: httpsPort, path: '/mtls', servername: HOST, ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, agent: false, timeout: 10_000, headers: { host: HOST, 'x-forwarded-client-cert': FORGED } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.ok(xfcc, 'the gateway set x-forwarded-client-cert (SANITIZE_SET)');
    assert.doesNotMatch(xfcc, /istio-system\/sa\/admin|ns\/shop\/sa\/web/, xfcc);
    const der = new X509Certificate(certs.clientCert).raw;
    const fields = new Map<string, string>();
    // One element (no comma outside quotes): Key=value pairs separated by ';'.
    for (const part of xfcc.match(/(?:[^;"]+|"[^"]*")+/g) ?? []) {
      const i = part.indexOf('=');
      const k = part.slice(0, i);
      fields.set(k, fields.has(k) ? `${fields.get(k)},${part.slice(i + 1)}` : part.slice(i + 1));
    }
    assert.equal(fields.get('Hash'), createHash('sha256').update(der).digest('hex'), xfcc);
    assert.equal(fields.get('URI'), CLIENT_URI, xfcc);
    assert.equal(fields.get('DNS'), CLIENT_DNS, xfcc);
    assert.match(fields.get('Subject') ?? '', /CN=acme client/, xfcc);
    const pem = decodeURIComponent((fields.get('Cert') ?? '').replace(/^"|"$/g, ''));
    assert.equal(new X509Certificate(pem).fingerprint256, new X509Certificate(certs.clientCert).fingerprint256, 'Cert is the client certificate');
    // The forged value is not kept as an earlier element either.
    assert.equal(xfcc.match(/Hash=/g)?.length, 1, xfcc);
  });

  test('plaintext: a client-supplied header is dropped', async () => {
    const xfcc = await upstreamXfcc('/plain', (resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: httpPort, path: '/plain', agent: false, timeout: 10_000, headers: { host: HOST, 'x-forwarded-client-cert': FORGED } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(xfcc, undefined);
  });
});
