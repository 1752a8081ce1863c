/**
 * mTLS between two real MOSN v1.6.1 sidecars with certificates from Sextant's
 * CA: each MOSN dials SDS over the Unix socket Istio's pilot-agent serves
 * (`./var/run/secrets/workload-spiffe-uds/socket` in its working directory),
 * and the agent gets `default` and `ROOTCA` from Sextant's CSR API with a
 * service-account token, as in a pod. The agents run without Envoy (their
 * proxy binary is a placeholder that only waits): MOSN is the data plane.
 *
 * Client `productpage` (shop, 127.0.0.1): a bound egress listener; server
 * `ratings` (secure, 127.0.0.2, label tlsMode=istio): a bound Sidecar ingress
 * listener forwarding to a loopback backend, PeerAuthentication STRICT.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, httpGet, startHttpBackend, until, type HttpBackend } from './backends.js';
import { startAgent, type RunningAgent } from './fixtures/agent.js';
import { configDir, istio, namespace, pod, strictRatings, type ConfigDir } from './fixtures/mesh.js';
import { createTestIssuer, presentedCertificate } from './fixtures/secure.js';
import { startMosn, type RunningMosn } from './mosn.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless } from './tools.js';

// Once, in a cold run, this suite hung before Sextant wrote its CA, idle with no child: startSextant's
// stop() waited for an 'exit' that a failed spawn never emits. Every wait on a child is bounded now
// (e2e/src/child.ts, child.test.ts); the suite timeout stays as a last resort.
describe('MOSN to MOSN mTLS with certificates from Sextant over SDS (Unix socket)', { timeout: 180_000, skip: skipUnless('mosn', 'pilot-agent') }, () => {
  let dir: string;
  let cfg: ConfigDir;
  let sextant: RunningSextant | undefined;
  const agents: RunningAgent[] = [];
  const mosns: RunningMosn[] = [];
  let ratings: HttpBackend;
  let port: number;
  let inbound: number;
  let rootPem: string;
  const NS = 'shop';
  const SNS = 'secure';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-mosn-mtls-'));
    const issuer = createTestIssuer(dir);
    ratings = await startHttpBackend('ratings-v1', '127.0.0.1');
    port = await freePort();
    inbound = await freePort('127.0.0.2');
    const ratingsCfg = strictRatings(SNS, port, inbound, ratings.port);
    cfg = configDir({
      'kubernetes.yaml': [
        namespace(NS),
        namespace('istio-system'),
        pod('productpage-v1-0', NS, '127.0.0.1', { app: 'productpage' }, 'productpage'),
        ...ratingsCfg.kubernetes,
      ],
      'istio.yaml': [
        istio('Sidecar', 'productpage', NS, {
          workloadSelector: { labels: { app: 'productpage' } },
          egress: [{ port: { number: port, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', captureMode: 'NONE', hosts: [`${SNS}/*`] }],
        }),
        ...ratingsCfg.istio,
      ],
    });
    const caDir = join(dir, 'ca');
    sextant = await startSextant({ configDir: cfg.dir, args: ['--ca-dir', caDir, ...issuer.args] });
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    // The agents' "Envoy": waits until killed. MOSN is started beside each agent, in its working directory.
    const placeholder = join(dir, 'no-envoy.sh');
    writeFileSync(placeholder, '#!/bin/sh\nexec sleep 100000\n');
    chmodSync(placeholder, 0o755);
    const securePort = sextant.secureAddress.split(':').pop()!;
    for (const [ns, sa, podName, ip, labels] of [
      [NS, 'productpage', 'productpage-v1-0', '127.0.0.1', { app: 'productpage' }],
      [SNS, 'ratings', 'ratings-v1-0', '127.0.0.2', { app: 'ratings', version: 'v1', 'security.istio.io/tlsMode': 'istio' }],
    ] as const) {
      const agent = await startAgent({
        discoveryAddress: `localhost:${securePort}`,
        rootPem,
        token: issuer.token(ns, sa),
        podName,
        namespace: ns,
        serviceAccount: sa,
        ip,
        labels,
        envoyPath: placeholder,
        proxyConfig: { interceptionMode: 'NONE' },
        env: { ISTIO_META_INTERCEPTION_MODE: 'NONE' },
      });
      agents.push(agent);
      mosns.push(
        await startMosn({
          adsAddress: sextant.xdsAddress,
          nodeId: `sidecar~${ip}~${podName}.${ns}~${ns}.svc.cluster.local`,
          metadata: { NAMESPACE: ns, INTERCEPTION_MODE: 'NONE', SEXTANT_DATA_PLANE: 'mosn', LABELS: labels, SERVICE_ACCOUNT: sa },
          cwd: agent.cwd,
        }),
      );
    }
    await mosns[0]!.waitForListener(`127.0.0.1_${port}`, 60_000);
    await mosns[1]!.waitForListener(`127.0.0.2_${inbound}`, 60_000);
    // Until its SDS secrets arrive, MOSN serves a TLS listener as plaintext and its clients dial plaintext
    // (docs/mosn.md, known gaps): wait for the server's certificate, so that a request below that gets
    // through proves the client's TLS too, and plaintext is refused only because STRICT is in force.
    await until(async () => (await presentedCertificate('127.0.0.2', inbound)).pem, (pem) => pem !== undefined, "the server MOSN's certificate (from pilot-agent's SDS)", 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- server MOSN ---\n${mosns[1]!.output().slice(-4000)}\n--- server agent ---\n${agents[1]!.output().slice(-4000)}`);
    });
  });

  after(async () => {
    for (const m of mosns) await m.stop();
    for (const a of agents) await a.stop();
    await sextant?.stop();
    await ratings?.close();
    cfg?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the client MOSN reaches the STRICT server MOSN over mTLS', async () => {
    const r = await until(() => httpGet(port, '/ratings/0', { host: `ratings.${SNS}.svc.cluster.local` }), (x) => x.backend === 'ratings-v1', 'a request through both MOSNs', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- client MOSN ---\n${mosns[0]!.output().slice(-4000)}\n--- server MOSN ---\n${mosns[1]!.output().slice(-4000)}`);
    });
    assert.equal(r.status, 200);
  });

  test('plaintext to the STRICT server MOSN is refused', async () => {
    const res = await httpGet(inbound, '/ratings/0', { host: 'ratings' }, '127.0.0.2').then((x) => x.status, (e: Error) => e.message);
    assert.notEqual(res, 200);
  });

  test("the server MOSN presents the certificate Sextant's CA issued to ratings (via pilot-agent's SDS)", async () => {
    const { pem } = await presentedCertificate('127.0.0.2', inbound);
    assert.ok(pem, 'the server MOSN presents a certificate');
    const leaf = new X509Certificate(pem);
    assert.ok(leaf.checkIssued(new X509Certificate(rootPem)) && leaf.verify(new X509Certificate(rootPem).publicKey), `issued by Sextant's root: ${leaf.issuer}`);
    assert.match(leaf.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/secure\/sa\/ratings/);
  });
});
