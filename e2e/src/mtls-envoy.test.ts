/**
 * Mesh mTLS between two real Envoys configured by Sextant (issue 4 §6, §8).
 *
 * Both Envoys connect to Sextant's secure port over TLS (trusting the root in
 * --ca-dir), authenticated by service-account JWTs minted here and checked
 * against --jwks-file/--jwt-issuer, and run agentless (SEXTANT_AGENTLESS):
 * their `default` and `ROOTCA` secrets come over ADS from Sextant.
 *
 * - server sidecar (mtls/server, 127.0.0.2, INTERCEPTION_MODE NONE): its
 *   Sidecar ingress listener `127.0.0.2_<Q>` carries the chains translated
 *   from PeerAuthentication and forwards to a loopback backend;
 * - client sidecar (client/client): a bound egress listener on 127.0.0.1:<P>
 *   routes `server.mtls.svc.cluster.local` to `outbound|P||server...`, whose
 *   endpoint carries `tlsMode: istio`, so auto mTLS originates ISTIO_MUTUAL.
 *
 * STRICT: through the client Envoy works (the backend sees the client's SPIFFE
 * ID in XFCC), plain HTTP straight to the server's inbound port is refused.
 * PERMISSIVE (by rewriting the PeerAuthentication file, no restart): both work.
 * The server presents a certificate for spiffe://cluster.local/ns/mtls/sa/server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { freePort } from './backends.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { createTestIssuer, secureAdsBootstrap } from './fixtures/secure.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';




interface Reply {
  status: number;
  body: string;
}

function httpGet(host: string, port: number, path: string, hostHeader?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET', headers: hostHeader ? { host: hostHeader } : {}, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Outcome of a request as a short string: `200 <body>` or `error <code>`. */
async function attempt(fn: () => Promise<Reply>): Promise<string> {
  try {
    const r = await fn();
    return `${r.status} ${r.body}`;
  } catch (err) {
    return `error ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
}

async function until(fn: () => Promise<string>, ok: (v: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The certificate the server presents on its inbound port (handshake with ALPN istio, no client certificate). */
function serverCertificate(host: string, port: number, rootPem: string): Promise<{ san: string; authorized: boolean; error?: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, ca: rootPem, ALPNProtocols: ['istio'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      resolve({ san: cert.subjectaltname ?? '', authorized: s.authorized, ...(s.authorizationError ? { error: String(s.authorizationError) } : {}) });
      s.destroy();
    });
    s.once('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  });
}

function peerAuthentication(mode: string): string {
  return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: mtls }
spec: { mtls: { mode: ${mode} } }
`;
}

describe('mesh mTLS between two Envoys with agentless SDS from Sextant', { skip: skipUnless('envoy') }, () => {
  let dir: string;
  let configDir: string;
  let sextant: RunningSextant;
  let backend: Server;
  let server: RunningEnvoy;
  let client: RunningEnvoy;
  let rootPem: string;
  let jwtFor: (namespace: string, sa: string) => string;
  let egressPort: number;
  let inboundPort: number;
  const seen: IncomingHttpHeaders[] = [];
  const HOST = 'server.mtls.svc.cluster.local';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-mtls-'));
    configDir = join(dir, 'config');
    const caDir = join(dir, 'ca');
    const issuer = createTestIssuer(dir);
    jwtFor = issuer.token;

    backend = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`backend ${req.url}`);
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as { port: number }).port;
    egressPort = await freePort('127.0.0.1');
    inboundPort = await freePort('127.0.0.2');

    const { mkdirSync } = await import('node:fs');
    mkdirSync(configDir);
    writeFileSync(
      join(configDir, 'mesh.yaml'),
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: server, namespace: mtls }
spec:
  hosts: [${HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ name: http, number: ${egressPort}, protocol: HTTP, targetPort: ${inboundPort} }]
  endpoints:
    - address: 127.0.0.2
      labels: { app: server, security.istio.io/tlsMode: istio }
      serviceAccount: server
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: mtls }
spec:
  ingress:
    - port: { number: ${inboundPort}, protocol: HTTP, name: http }
      bind: 127.0.0.2
      captureMode: NONE
      defaultEndpoint: 127.0.0.1:${backendPort}
  egress:
    - hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: client }
spec:
  egress:
    - port: { number: ${egressPort}, protocol: HTTP, name: http }
      bind: 127.0.0.1
      captureMode: NONE
      hosts: ["mtls/*"]
`,
    );
    writeFileSync(join(configDir, 'peer-authentication.yaml'), peerAuthentication('STRICT'));

    sextant = await startSextant({
      configDir,
      args: ['--ca-dir', caDir, ...issuer.args, '--agentless-sds', '--debounce-after', '10ms', '--debounce-max', '200ms'],
    });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    const secureBootstrap = (token: string) => secureAdsBootstrap(sextant.secureAddress, rootPem, token);

    server = await startEnvoy({
      adsAddress: sextant.secureAddress,
      nodeId: 'sidecar~127.0.0.2~server-0.mtls~mtls.svc.cluster.local',
      metadata: { NAMESPACE: 'mtls', SERVICE_ACCOUNT: 'server', LABELS: { app: 'server' }, INTERCEPTION_MODE: 'NONE', SEXTANT_AGENTLESS: 'true' },
      bootstrapExtra: secureBootstrap(jwtFor('mtls', 'server')),
    });
    client = await startEnvoy({
      adsAddress: sextant.secureAddress,
      nodeId: 'sidecar~127.0.0.1~client-0.client~client.svc.cluster.local',
      metadata: { NAMESPACE: 'client', SERVICE_ACCOUNT: 'client', LABELS: { app: 'client' }, INTERCEPTION_MODE: 'NONE', SEXTANT_AGENTLESS: 'true' },
      bootstrapExtra: secureBootstrap(jwtFor('client', 'client')),
    });
    const explain = async (e: RunningEnvoy, err: unknown) => {
      const dump = (await e.configDump().catch(() => ({ configs: [] }))) as { configs: Array<Record<string, unknown>> };
      const secrets = dump.configs.find((c) => String(c['@type']).includes('SecretsConfigDump'));
      const listeners = dump.configs.find((c) => String(c['@type']).includes('ListenersConfigDump'));
      return new Error(
        `${(err as Error).message}\nsecrets: ${JSON.stringify(secrets).slice(0, 1500)}\nlisteners: ${JSON.stringify(listeners).slice(0, 1500)}\nsyncz: ${JSON.stringify(await fetch(`${sextant.httpUrl}/debug/syncz`).then((r) => r.json()).catch((e) => String(e))).slice(0, 3000)}\nsextant: ${sextant.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
    };
    await server.waitForListener(`127.0.0.2_${inboundPort}`, 30_000).catch(async (err) => Promise.reject(await explain(server, err)));
    await client.waitForListener(`127.0.0.1_${egressPort}`, 30_000).catch(async (err) => Promise.reject(await explain(client, err)));
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await sextant?.stop();
    await new Promise((r) => backend?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const viaClient = () => attempt(() => httpGet('127.0.0.1', egressPort, '/through-mesh', HOST));
  const plaintext = () => attempt(() => httpGet('127.0.0.2', inboundPort, '/plaintext'));

  test('the secure port serves a node that is its caller and refuses one that claims another namespace', async () => {
    const open = (token: string, id: string) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      return new SotwClient(sextant.secureAddress, {
        node: { id },
        metadata,
        credentials: grpc.credentials.createSsl(Buffer.from(rootPem)),
        channelOptions: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc', 'grpc.default_authority': 'istiod.istio-system.svc' },
      });
    };
    const honest = open(jwtFor('client', 'client'), 'sidecar~127.0.0.9~client-2.client~client.svc.cluster.local');
    honest.request(TypeUrl.Cluster);
    assert.ok(resourceNames(await honest.next()).length > 0);
    honest.close();
    const intruder = open(jwtFor('client', 'client'), 'sidecar~127.0.0.9~server-2.mtls~mtls.svc.cluster.local');
    intruder.request(TypeUrl.Cluster);
    const s = await intruder.status();
    intruder.close();
    assert.equal(s.code, grpc.status.PERMISSION_DENIED);
    assert.match(s.details, /claims namespace "mtls" but the caller is authenticated as client\/client/);
  });

  test('STRICT: the client sidecar reaches the server over mTLS and the backend sees the client identity', async () => {
    const r = await until(viaClient, (v) => v.startsWith('200'), 'a 200 through the client Envoy');
    assert.equal(r, '200 backend /through-mesh');
    const h = seen.findLast((x) => x['x-forwarded-client-cert'] !== undefined);
    assert.ok(h, 'the backend got an x-forwarded-client-cert header from the server sidecar');
    const xfcc = String(h['x-forwarded-client-cert']);
    assert.match(xfcc, /URI=spiffe:\/\/cluster\.local\/ns\/client\/sa\/client/, xfcc);
    assert.match(xfcc, /By=spiffe:\/\/cluster\.local\/ns\/mtls\/sa\/server/, xfcc);
    // The client Envoy really did TLS on that cluster.
    const stats = await client.stats();
    // Stats of the `tlsMode-istio` transport socket match, under the cluster's alt stat name `outbound|P||host;`.
    const handshakes = Object.entries(stats).filter(([k, v]) => k.startsWith(`cluster.outbound|${egressPort}||${HOST}`) && k.endsWith('ssl.handshake') && Number(v) > 0);
    assert.ok(handshakes.length > 0, `client outbound cluster counted TLS handshakes: ${Object.keys(stats).filter((k) => k.includes('ssl.handshake')).join(', ')}`);
  });

  test('STRICT: a plaintext client straight to the server inbound port is refused', async () => {
    const r = await plaintext();
    assert.match(r, /^error /, `plaintext must not get through under STRICT, got: ${r}`);
    assert.ok(!seen.some((h) => h[':path'] === '/plaintext'));
  });

  test('the server presents its SPIFFE certificate, signed by the Sextant root', async () => {
    const c = await serverCertificate('127.0.0.2', inboundPort, rootPem);
    assert.equal(c.authorized, true, c.error);
    assert.match(c.san, /URI:spiffe:\/\/cluster\.local\/ns\/mtls\/sa\/server/);
  });

  test('PERMISSIVE (file rewritten, no restart): plaintext and mTLS both work', async () => {
    writeFileSync(join(configDir, 'peer-authentication.yaml'), peerAuthentication('PERMISSIVE'));
    const p = await until(plaintext, (v) => v.startsWith('200'), 'plaintext accepted after switching to PERMISSIVE');
    assert.equal(p, '200 backend /plaintext');
    const plainHeaders = seen.findLast((h) => h['x-forwarded-client-cert'] === undefined);
    assert.ok(plainHeaders, 'a plaintext request carries no client certificate');
    assert.equal(await viaClient(), '200 backend /through-mesh');
    const last = seen[seen.length - 1]!;
    assert.match(String(last['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/client\/sa\/client/, 'mesh traffic still uses mTLS under PERMISSIVE');
  });

  test('back to STRICT: plaintext is refused again', async () => {
    writeFileSync(join(configDir, 'peer-authentication.yaml'), peerAuthentication('STRICT'));
    const r = await until(plaintext, (v) => v.startsWith('error'), 'plaintext refused again after switching back to STRICT');
    assert.match(r, /^error /);
    assert.equal(await viaClient(), '200 backend /through-mesh');
  });
});
