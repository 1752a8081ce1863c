/**
 * Istio's own pilot-agent obtains a workload certificate from Sextant's CA.
 *
 * pilot-agent runs outside Kubernetes, without Envoy (DISABLE_ENVOY=true, the
 * proxyless mode), in a scratch working directory: it resolves its well-known
 * paths relative to the cwd, so
 *   ./var/run/secrets/tokens/istio-token   the JWT (JWT_POLICY=third-party-jwt)
 *   ./var/run/secrets/istio/root-cert.pem  the root it trusts for the CA's TLS
 *                                          (PILOT_CERT_PROVIDER=istiod default)
 * CA_ADDR=localhost:<port>: for a "localhost" address pilot-agent checks the
 * server certificate for istiod.istio-system.svc. It sends a CSR for
 * spiffe://$TRUST_DOMAIN/ns/$POD_NAMESPACE/sa/$SERVICE_ACCOUNT with
 * "authorization: Bearer <token>" and "ClusterID" metadata, and writes
 * key.pem, cert-chain.pem and root-cert.pem to $OUTPUT_CERTS.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { freePort } from './backends.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CertificateAuthority, JwtAuthenticator, MemoryCaStore, MtlsAuthenticator, checkSvidChain } from '@sextant/ca';
import { opensslVerify, startCaServer, testIssuer, waitForFile, type TestServer } from '@sextant/testing/ca';
import { skipUnless, toolPath } from './tools.js';

const NS = 'e2e-ns';
const SA = 'e2e-sa';
const TD = 'cluster.local';
const ID = `spiffe://${TD}/ns/${NS}/sa/${SA}`;

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});


function stop(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

for (const keyKind of ['RSA (default)', 'ECDSA'] as const) {
  test(`pilot-agent (${keyKind} key) obtains a certificate from Sextant's CA`, { skip: skipUnless('pilot-agent'), timeout: 120_000 }, async () => {
    const bin = toolPath('pilot-agent')!;
    const cwd = await mkdtemp(join(tmpdir(), 'sextant-pilot-agent-'));
    cleanups.push(() => rm(cwd, { recursive: true, force: true }));
    const ca = await CertificateAuthority.open(new MemoryCaStore(), { trustDomain: TD });
    const issuer = await testIssuer('https://kubernetes.default.svc.cluster.local');
    const server: TestServer = await startCaServer(ca, [
      new MtlsAuthenticator(ca),
      new JwtAuthenticator({ jwks: issuer.jwks, issuer: issuer.issuer, trustDomain: TD }),
    ]);
    cleanups.push(() => server.close());

    await mkdir(join(cwd, 'var/run/secrets/tokens'), { recursive: true });
    await mkdir(join(cwd, 'var/run/secrets/istio'), { recursive: true });
    await mkdir(join(cwd, 'etc/istio/proxy'), { recursive: true });
    await writeFile(join(cwd, 'var/run/secrets/tokens/istio-token'), await issuer.token(NS, SA));
    await writeFile(join(cwd, 'var/run/secrets/istio/root-cert.pem'), ca.rootCertPem());
    const out = join(cwd, 'out');
    const statusPort = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: cwd,
      CA_ADDR: `localhost:${server.port}`,
      PILOT_CERT_PROVIDER: 'istiod',
      JWT_POLICY: 'third-party-jwt',
      DISABLE_ENVOY: 'true',
      OUTPUT_CERTS: out,
      POD_NAME: 'e2e-pod',
      POD_NAMESPACE: NS,
      SERVICE_ACCOUNT: SA,
      INSTANCE_IP: '127.0.0.1',
      TRUST_DOMAIN: TD,
      ISTIO_META_CLUSTER_ID: 'Kubernetes',
      CLOUD_PLATFORM: 'none',
      GRPC_XDS_BOOTSTRAP: join(cwd, 'etc/istio/proxy/grpc-bootstrap.json'),
      PROXY_CONFIG: JSON.stringify({ discoveryAddress: `localhost:${server.port}`, statusPort }),
      ...(keyKind === 'ECDSA' ? { ECC_SIGNATURE_ALGORITHM: 'ECDSA' } : {}),
    };
    let logs = '';
    const proc = spawn(bin, ['proxy', 'sidecar'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => stop(proc));
    proc.stdout!.on('data', (d) => (logs += d));
    proc.stderr!.on('data', (d) => (logs += d));
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code, sig) => reject(new Error(`pilot-agent exited (${code ?? sig}):\n${logs.slice(-4000)}`))));

    try {
      await Promise.race([Promise.all([waitForFile(join(out, 'cert-chain.pem'), 60_000), waitForFile(join(out, 'root-cert.pem'), 60_000)]), exited]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- pilot-agent log ---\n${logs.slice(-4000)}`);
    }
    const chainPem = await readFile(join(out, 'cert-chain.pem'), 'utf8');
    const rootPem = await readFile(join(out, 'root-cert.pem'), 'utf8');
    const keyPem = await readFile(join(out, 'key.pem'), 'utf8');
    assert.equal(rootPem.trim(), ca.rootCertPem().trim(), 'root-cert.pem is the CA bundle');
    const conf = checkSvidChain(chainPem, { expectedId: ID, trustDomain: TD, trustBundle: rootPem });
    assert.deepEqual(conf.violations, [], 'X.509-SVID conformance');
    const leafPem = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/)![0];
    const v = await opensslVerify([leafPem, rootPem], { purpose: 'sslclient' });
    assert.ok(v.ok, v.output);
    const leaf = new X509Certificate(leafPem);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem)), 'key.pem matches the certificate');
    assert.equal(createPublicKey(keyPem).asymmetricKeyType, keyKind === 'ECDSA' ? 'ec' : 'rsa');
    assert.ok(server.service.stats.issued >= 1, 'issued through the CSR API');
  });
}
