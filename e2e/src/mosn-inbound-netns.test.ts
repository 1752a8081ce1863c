/**
 * PERMISSIVE on a real MOSN v1.6.1 server in iptables mode: inbound traffic
 * to the pod's port 9080 is REDIRECTed to MOSN's virtualInbound (15006) in a
 * network namespace this test creates. MOSN's converter makes a per-port
 * listener from virtualInbound's chains and, when a port has both an mTLS and
 * a plaintext chain (PERMISSIVE), turns its TLS inspector on: the same port
 * takes plaintext and mTLS. Certificates come from Sextant's CA through
 * Istio's pilot-agent beside MOSN (SDS on the Unix socket in its working
 * directory; the agent also writes them out with OUTPUT_CERTS, and the test
 * uses them as a mesh client's certificate for a real mTLS request).
 *
 * The app is a plain HTTP server inside the namespace; the client is this
 * process, on the veth's host end (root namespace, the test's /24 only, as in
 * mosn-iptables.test.ts).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { httpGet, until } from './backends.js';
import { spawnManaged, type ManagedChild } from './child.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, endpointSlice, istio, namespace, pod, service, type ConfigDir } from './fixtures/mesh.js';
import { canNetns, createPodNetns, debianIptables, type PodNetns } from './fixtures/netns.js';
import { createTestIssuer } from './fixtures/secure.js';
import { startMosn, type RunningMosn } from './mosn.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

describe('MOSN server in iptables mode: PERMISSIVE takes plaintext and mTLS on one port', { timeout: 180_000, skip: skipUnless('mosn', 'pilot-agent') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  const id = (process.pid + 97) % 200;
  const net = `10.252.${id}`;
  const HOST = `${net}.1`;
  const POD = `${net}.2`;
  let ns: PodNetns | undefined;
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  let agent: RunningAgent | undefined;
  let mosn: RunningMosn | undefined;
  let app: ManagedChild | undefined;
  let rootPem: string;
  let certs: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-mosn-inbound-'));
    certs = join(dir, 'certs');
    mkdirSync(certs);
    const issuer = createTestIssuer(dir);
    const ipt = debianIptables();
    ns = createPodNetns('mosnin', net);
    // Istio's inbound capture, reduced to the one port: what arrives on the veth for 9080 goes to 15006.
    ns.exec(ipt.bin, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '-i', ns.podIf, '--dport', '9080', '-j', 'REDIRECT', '--to-ports', '15006'], ipt.env);
    // The app: answers with the address the connection came from (MOSN's inbound passthrough binds 127.0.0.6).
    app = spawnManaged('ip', ['netns', 'exec', ns!.name, process.execPath, '-e', `require('node:http').createServer((q, s) => { s.setHeader('x-backend', 'app'); s.end(JSON.stringify({ from: q.socket.remoteAddress })); }).listen(9080, '0.0.0.0', () => console.log('listening'))`]);
    await until(async () => app!.output(), (o) => o.includes('listening') || app!.isEnded(), 'the app in the namespace', 15_000);
    assert.ok(!app.isEnded(), app.output());

    cfg = configDir({
      'kubernetes.yaml': [
        namespace('default'),
        namespace('istio-system'),
        service('productpage', 'default', '10.96.9.1', [{ name: 'http', port: 9080 }]),
        pod('productpage-v1-0', 'default', POD, { app: 'productpage', 'security.istio.io/tlsMode': 'istio' }, 'productpage'),
        endpointSlice('productpage', 'default', 'productpage-v1-0', POD, [{ name: 'http', port: 9080 }]),
      ],
      'istio.yaml': [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'PERMISSIVE' } } }],
    });
    const caDir = join(dir, 'ca');
    // On every address: the agent (root namespace) dials `localhost` so that Sextant's serving certificate
    // verifies, and MOSN (in the namespace) dials the veth's host end. Only loopback and the veth reach it.
    sextant = await startSextant({ configDir: cfg.dir, args: ['--listen-address', '0.0.0.0', '--ca-dir', caDir, ...issuer.args] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const placeholder = join(dir, 'no-envoy.sh');
    writeFileSync(placeholder, '#!/bin/sh\nexec sleep 100000\n');
    chmodSync(placeholder, 0o755);
    // The agent runs in the root namespace: it talks to Sextant and serves SDS on a Unix socket (a path, reachable from the namespace).
    agent = await startAgent({
      discoveryAddress: `localhost:${sextant.secureAddress.split(':').pop()!}`,
      rootPem,
      token: issuer.token('default', 'productpage'),
      podName: 'productpage-v1-0',
      namespace: 'default',
      serviceAccount: 'productpage',
      ip: POD,
      labels: { app: 'productpage', 'security.istio.io/tlsMode': 'istio' },
      envoyPath: placeholder,
      env: { OUTPUT_CERTS: certs },
    });
    mosn = await startMosn({
      adsAddress: `${HOST}:${sextant.xdsAddress.split(':').pop()!}`,
      nodeId: `sidecar~${POD}~productpage-v1-0.default~default.svc.cluster.local`,
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'REDIRECT', SEXTANT_DATA_PLANE: 'mosn', LABELS: { app: 'productpage', 'security.istio.io/tlsMode': 'istio' }, SERVICE_ACCOUNT: 'productpage' },
      netns: ns!.name,
      adminHost: POD,
      cwd: agent.cwd,
      ...(process.env.SEXTANT_MOSN_LOG_LEVEL ? { logLevel: process.env.SEXTANT_MOSN_LOG_LEVEL } : {}),
    });
    await mosn.waitForListener('virtualInbound', 60_000);
  });

  after(async () => {
    await mosn?.stop().catch(() => {});
    await agent?.stop().catch(() => {});
    await app?.stop().catch(() => {});
    await sextant?.stop();
    cfg?.remove();
    ns?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const withMosn = (e: Error) => new Error(`${e.message}\n--- MOSN ---\n${mosn?.output().slice(-4000)}`);

  test('plaintext to the pod port is taken by MOSN (redirected to virtualInbound) and reaches the app', async () => {
    const r = await until(() => httpGet(9080, '/plain', {}, POD), (x) => x.backend === 'app', 'plaintext through MOSN', 30_000).catch((e: Error) => {
      throw withMosn(e);
    });
    assert.equal(r.status, 200);
    // Forwarded by MOSN over loopback, not straight from the client on the veth.
    assert.match(JSON.parse(r.body).from, /^127\./, r.body);
  });

  test('mTLS on the same port: MOSN presents the certificate Sextant issued and serves a request from a mesh client certificate', async () => {
    await until(async () => existsSync(join(certs, 'cert-chain.pem')), (x) => x, "the agent's OUTPUT_CERTS", 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\n--- agent ---\n${agent?.output().slice(-3000)}\n--- MOSN ---\n${mosn?.output().slice(-3000)}`);
    });
    const key = readFileSync(join(certs, 'key.pem'));
    const cert = readFileSync(join(certs, 'cert-chain.pem'));
    const answer = await until(
      () =>
        new Promise<{ peer: string; body: string }>((resolve, reject) => {
          const s = connect({ host: POD, port: 9080, key, cert, ca: rootPem, ALPNProtocols: ['istio', 'http/1.1'], servername: 'outbound_.9080_._.productpage.default.svc.cluster.local', checkServerIdentity: () => undefined, timeout: 10_000 });
          s.on('timeout', () => s.destroy(new Error('TLS: no answer within 10 s')));
          s.on('error', reject);
          s.once('secureConnect', () => {
            const peer = s.getPeerX509Certificate();
            const req = request({ createConnection: () => s, host: POD, path: '/mtls', headers: { host: 'productpage' } }, (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d));
              res.on('end', () => resolve({ peer: peer?.subjectAltName ?? '', body: `${res.headers['x-backend']} ${body}` }));
            });
            req.on('error', reject);
            req.end();
          });
        }),
      (x) => x.body.startsWith('app '),
      'an mTLS request through MOSN',
      30_000,
    ).catch((e: Error) => {
      throw withMosn(e);
    });
    assert.match(answer.peer, /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage/);
    const leaf = new X509Certificate(readFileSync(join(certs, 'cert-chain.pem')));
    assert.ok(leaf.verify(new X509Certificate(rootPem).publicKey), "the agent's certificate is issued under Sextant's root");
  });
});
