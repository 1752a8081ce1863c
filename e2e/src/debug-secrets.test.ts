/**
 * Issue 9 §1: no private key leaves through debug output, and /debug/* answers
 * only loopback or authenticated callers. The daemon serves a gateway its
 * `kubernetes://` credential and an agentless proxy its `default` workload key
 * over SDS on the secure port; then every debug endpoint (and the logs and
 * metrics) is read and searched for that key material. The daemon listens on
 * 127.0.0.2 so a client bound to 127.0.0.3 is a non-loopback caller.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, decodeResources } from '@sextant/testing/xds-client';
import { configDir, istio, meshPlaintext, namespace, service, workload, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { createTestIssuer, type TestIssuer } from './fixtures/secure.js';
import { startSextant, type RunningSextant } from './sextant.js';

const GATEWAY = 'router~127.0.0.1~istio-ingressgateway-xyz.istio-system~istio-system.svc.cluster.local';
const AGENTLESS = 'sidecar~127.0.0.5~web-a.default~default.svc.cluster.local';
const REDACTED_B64 = Buffer.from('[redacted]').toString('base64');

function httpGet(url: string, localAddress: string, token?: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: Number(u.port), path: `${u.pathname}${u.search}`, localAddress, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Every form in which a PEM private key could show up in JSON text: the PEM, its base64, and its base64 body lines. */
function keyForms(pem: string): string[] {
  const lines = pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  return [pem, JSON.stringify(pem).slice(1, -1), Buffer.from(pem).toString('base64'), ...lines];
}

function assertNoKey(where: string, text: string, keys: string[][]): void {
  assert.ok(!text.includes('PRIVATE KEY'), `${where} carries a PEM private key label`);
  for (const forms of keys) for (const f of forms) assert.ok(!text.includes(f), `${where} carries private key material (${f.slice(0, 24)}…)`);
}

describe('debug output never carries a private key; /debug/* needs loopback or a token', () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant;
  let issuer: TestIssuer;
  let rootPem: string;
  let tlsKey: string;
  let workloadKey: string;
  const clients: SotwClient[] = [];

  const sds = (node: string, ns: string, sa: string) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${issuer.token(ns, sa)}`);
    const c = new SotwClient(sextant.secureAddress, {
      node: { id: node, metadata: { NAMESPACE: ns, SERVICE_ACCOUNT: sa } },
      metadata,
      credentials: grpc.credentials.createSsl(Buffer.from(rootPem)),
      channelOptions: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc' },
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-debugsec-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '1', '-subj', '/CN=shop.example.com'], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'tls.crt'), 'utf8');
    tlsKey = readFileSync(join(dir, 'tls.key'), 'utf8');
    issuer = createTestIssuer(dir);
    const k8s: K8sObject[] = [
      namespace('default'),
      namespace('istio-system'),
      service('web', 'default', '10.96.1.10', [{ name: 'http', port: 8000 }]),
      ...workload({ svc: 'web', pod: 'web-a', ip: '127.0.0.5', labels: { app: 'web' }, ports: [{ name: 'http', port: 8000 }] }),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'shop-cert', namespace: 'istio-system' },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': Buffer.from(cert).toString('base64'), 'tls.key': Buffer.from(tlsKey).toString('base64') },
      },
    ];
    const istioCfg: K8sObject[] = [
      meshPlaintext(),
      istio('Gateway', 'shop-gateway', 'istio-system', {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['shop.example.com'], tls: { mode: 'SIMPLE', credentialName: 'shop-cert' } }],
      }),
    ];
    cfg = configDir({ 'kubernetes.yaml': k8s, 'istio.yaml': istioCfg });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--listen-address', '127.0.0.2', '--ca-dir', caDir, '--agentless-sds', ...issuer.args] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');

    // The gateway gets its credential, the agentless proxy its workload key: both are now in Sextant's per-stream state.
    const gw = sds(GATEWAY, 'istio-system', 'istio-ingressgateway');
    gw.request(TypeUrl.Secret, { resourceNames: ['kubernetes://shop-cert'] });
    const gwRes = await gw.next();
    const gwSecret = decodeResources(gwRes)[0]!.json as { tlsCertificate: { privateKey: { inlineBytes: string } } };
    assert.equal(Buffer.from(gwSecret.tlsCertificate.privateKey.inlineBytes, 'base64').toString(), tlsKey, 'the gateway really got the Secret\'s tls.key');
    gw.ack(gwRes, ['kubernetes://shop-cert']);
    const wl = sds(AGENTLESS, 'default', 'web');
    wl.request(TypeUrl.Secret, { resourceNames: ['default'] });
    const wlRes = await wl.next();
    const wlSecret = decodeResources(wlRes)[0]!.json as { tlsCertificate: { privateKey: { inlineBytes: string } } };
    workloadKey = Buffer.from(wlSecret.tlsCertificate.privateKey.inlineBytes, 'base64').toString();
    assert.match(workloadKey, /PRIVATE KEY/);
    wl.ack(wlRes, ['default']);
  });

  after(async () => {
    for (const c of clients) c.close();
    await sextant?.stop();
    cfg?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  const paths = () => [
    '/debug',
    '/debug/syncz',
    `/debug/config_dump?proxyID=${encodeURIComponent(GATEWAY)}`,
    '/debug/config_dump?proxyID=istio-ingressgateway-xyz.istio-system',
    `/debug/config_dump?proxyID=${encodeURIComponent(AGENTLESS)}`,
    '/debug/config_dump?proxyID=web-a.default',
    `/debug/sextant_dump?proxyID=${encodeURIComponent(GATEWAY)}`,
    `/debug/sextant_dump?proxyID=${encodeURIComponent(AGENTLESS)}`,
    '/debug/config_issues',
    '/debug/push_status',
  ];

  test('from loopback every debug endpoint answers, shows the secrets by name, and carries no key material', async () => {
    const keys = [keyForms(tlsKey), keyForms(workloadKey)];
    for (const path of paths()) {
      const res = await httpGet(`${sextant.httpUrl}${path}`, '127.0.0.1');
      assert.equal(res.status, 200, `${path}: ${res.body.slice(0, 300)}`);
      assertNoKey(path, res.body, keys);
    }
    // Not vacuous: the dumps hold the secrets, redacted as Envoy redacts them.
    const gwDump = JSON.parse((await httpGet(`${sextant.httpUrl}/debug/config_dump?proxyID=istio-ingressgateway-xyz.istio-system`, '127.0.0.1')).body) as { configs: Array<Record<string, unknown>> };
    const secrets = gwDump.configs.find((c) => String(c['@type']).endsWith('SecretsConfigDump')) as { dynamicActiveSecrets: Array<{ name: string; secret: { tlsCertificate: { privateKey: { inlineBytes: string }; certificateChain: unknown } } }> };
    assert.deepEqual(secrets.dynamicActiveSecrets.map((s) => s.name), ['kubernetes://shop-cert']);
    assert.equal(secrets.dynamicActiveSecrets[0]!.secret.tlsCertificate.privateKey.inlineBytes, REDACTED_B64);
    assert.ok(secrets.dynamicActiveSecrets[0]!.secret.tlsCertificate.certificateChain, 'the certificate itself is shown');
    const wlDump = (await httpGet(`${sextant.httpUrl}/debug/config_dump?proxyID=web-a.default`, '127.0.0.1')).body;
    assert.ok(wlDump.includes('"name":"default"') && wlDump.includes(REDACTED_B64), wlDump.slice(0, 500));
    // Nor do the metrics or the logs.
    const metrics = await httpGet(`${sextant.monitoringUrl}/metrics`, '127.0.0.1');
    assert.equal(metrics.status, 200);
    assertNoKey('/metrics', metrics.body, keys);
    assertNoKey('the logs', sextant.logs.map((l) => JSON.stringify(l)).join('\n'), keys);
  });

  test('from a non-loopback address /debug/* refuses callers without a valid token; /ready and /metrics stay open', async () => {
    for (const path of paths()) {
      const res = await httpGet(`${sextant.httpUrl}${path}`, '127.0.0.3');
      assert.equal(res.status, 401, `${path} without a token: ${res.body}`);
      const forged = await httpGet(`${sextant.httpUrl}${path}`, '127.0.0.3', 'not.a.token');
      assert.equal(forged.status, 401, `${path} with a bad token`);
    }
    assert.equal((await httpGet(`${sextant.httpUrl}/ready`, '127.0.0.3')).status, 200);
    assert.equal((await httpGet(`${sextant.monitoringUrl}/metrics`, '127.0.0.3')).status, 200);
    await sextant.waitForLog((l) => String(l.msg).startsWith('debug request refused') && l.peer === '127.0.0.3');
  });

  test('a token from the system namespace reads everything (still redacted); another namespace only its own proxies\' dumps', async () => {
    const keys = [keyForms(tlsKey), keyForms(workloadKey)];
    const admin = issuer.token('istio-system', 'istioctl');
    for (const path of paths()) {
      const res = await httpGet(`${sextant.httpUrl}${path}`, '127.0.0.3', admin);
      assert.equal(res.status, 200, `${path}: ${res.body.slice(0, 300)}`);
      assertNoKey(path, res.body, keys);
    }
    const app = issuer.token('default', 'web');
    assert.equal((await httpGet(`${sextant.httpUrl}/debug/syncz`, '127.0.0.3', app)).status, 403);
    assert.equal((await httpGet(`${sextant.httpUrl}/debug/config_dump?proxyID=web-a.default`, '127.0.0.3', app)).status, 200);
    assert.equal((await httpGet(`${sextant.httpUrl}/debug/config_dump?proxyID=istio-ingressgateway-xyz.istio-system`, '127.0.0.3', app)).status, 404);
  });

  test('over xDS on the secure port (istio.io/debug/config_dump, syncz), the keys are redacted too', async () => {
    const keys = [keyForms(tlsKey), keyForms(workloadKey)];
    // istioctl's stream: adsc's node, a token of the system namespace's `default` account.
    const ctl = sds('sidecar~~test-1.istio-system~istio-system.svc.cluster.local', 'istio-system', 'default');
    ctl.request('istio.io/debug/config_dump', { resourceNames: ['istio-ingressgateway-xyz.istio-system'] });
    const dump = await ctl.next();
    const text = JSON.stringify(decodeResources(dump).map((r) => r.json));
    assert.ok(text.includes('kubernetes://shop-cert') && text.includes(REDACTED_B64), text.slice(0, 400));
    assertNoKey('istio.io/debug/config_dump', text, keys);
    for (const r of dump.resources) for (const k of [tlsKey, workloadKey]) assert.ok(!Buffer.from(r.value).includes(Buffer.from(k)), 'raw key bytes in the response');
    ctl.request('istio.io/debug/config_dump', { resourceNames: ['web-a.default'] });
    const wl = await ctl.next();
    assertNoKey('istio.io/debug/config_dump (agentless)', JSON.stringify(decodeResources(wl).map((r) => r.json)), keys);
    for (const r of wl.resources) assert.ok(!Buffer.from(r.value).includes(Buffer.from(workloadKey)));
    // istio.io/debug (x internal-debug) reaches the HTTP endpoints: the same redaction.
    for (const path of paths().filter((p) => p !== '/debug').map((p) => p.replace(/^\/debug\//, ''))) {
      ctl.request('istio.io/debug', { resourceNames: [path] });
      const r = await ctl.next();
      const body = Buffer.from(r.resources[0]!.value).toString();
      assert.ok(!body.startsWith('{"statusCode"'), `${path}: ${body.slice(0, 200)}`);
      assertNoKey(`istio.io/debug ${path}`, body, keys);
    }
    ctl.close();
  });
});
