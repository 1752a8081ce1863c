/** CA test scaffolding: a real CA gRPC server on 127.0.0.1:0, a CSR client, JWT issuers and openssl checks, shared by the CA's unit tests, the e2e tests and the benchmark. */
import { execFile } from 'node:child_process';
import { mkdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { caServiceClient, createCaService, createSecureServerCredentials, ISTIOD_DNS_NAME, type Authenticator, type CaService, type CertificateAuthority, type SecureServerCredentials } from '@sextant/ca';

export interface TestServer {
  port: number;
  address: string;
  service: CaService;
  credentials: SecureServerCredentials;
  close(): Promise<void>;
}

/** A real gRPC server on 127.0.0.1:0 serving the CA over TLS from `ca`. */
export async function startCaServer(ca: CertificateAuthority, authenticators: Authenticator[], dnsNames: string[] = []): Promise<TestServer> {
  const server = new grpc.Server();
  const service = createCaService(ca, authenticators);
  server.addService(service.definition, service.implementation);
  const credentials = createSecureServerCredentials(ca, dnsNames);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    address: `127.0.0.1:${port}`,
    service,
    credentials,
    close: () =>
      new Promise<void>((resolve) => {
        credentials.close();
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000).unref();
      }),
  };
}

export interface CaClient {
  createCertificate(csr: string, opts?: { token?: string; validitySeconds?: number | string; metadata?: Record<string, string> }): Promise<string[]>;
  close(): void;
}

/** A client that verifies the server against `rootPem`, optionally presenting a client certificate. */
export function caClient(address: string, rootPem: string, clientCert?: { keyPem: string; chainPem: string }): CaClient {
  const Ctor = caServiceClient();
  const creds = grpc.credentials.createSsl(
    Buffer.from(rootPem),
    clientCert ? Buffer.from(clientCert.keyPem) : null,
    clientCert ? Buffer.from(clientCert.chainPem) : null,
  );
  const client = new Ctor(address, creds, { 'grpc.ssl_target_name_override': ISTIOD_DNS_NAME, 'grpc.default_authority': ISTIOD_DNS_NAME });
  return {
    createCertificate(csr, opts = {}) {
      const md = new grpc.Metadata();
      if (opts.token !== undefined) md.set('authorization', `Bearer ${opts.token}`);
      md.set('ClusterID', 'Kubernetes');
      for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
      const req = {
        csr,
        validity_duration: String(opts.validitySeconds ?? 0),
        metadata: { fields: { CertSigner: { stringValue: '' } } },
      };
      return new Promise((resolve, reject) => {
        (client as unknown as { CreateCertificate: (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res?: { cert_chain: string[] }) => void) => void }).CreateCertificate(
          req,
          md,
          { deadline: Date.now() + 10_000 },
          (err, res) => (err ? reject(err) : resolve(res!.cert_chain)),
        );
      });
    },
    close: () => client.close(),
  };
}

export interface TestIssuer {
  issuer: string;
  jwks: JSONWebKeySet;
  /** Signs a token; claims override the defaults (sub for ns/sa, aud istio-ca, exp in 1 h). */
  token(ns: string, sa: string, claims?: Record<string, unknown>, opts?: { expiresIn?: string | number; alg?: string }): Promise<string>;
  /** Signs with a key not in the JWKS (same kid): a forgery. */
  forged(ns: string, sa: string): Promise<string>;
}

export async function testIssuer(issuer = 'https://issuer.test'): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const other = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  type SignKey = Parameters<SignJWT['sign']>[0];
  const sign = (key: SignKey, ns: string, sa: string, claims: Record<string, unknown> = {}, opts: { expiresIn?: string | number; alg?: string } = {}) => {
    const jwt = new SignJWT({ sub: `system:serviceaccount:${ns}:${sa}`, aud: ['istio-ca'], ...claims })
      .setProtectedHeader({ alg: opts.alg ?? 'ES256', kid: 'k1' })
      .setIssuer(typeof claims.iss === 'string' ? claims.iss : issuer)
      .setIssuedAt();
    if (opts.expiresIn !== undefined) jwt.setExpirationTime(opts.expiresIn);
    else if (!('exp' in claims)) jwt.setExpirationTime('1h');
    return jwt.sign(key);
  };
  return {
    issuer,
    jwks: { keys: [jwk] },
    token: (ns, sa, claims, opts) => sign(privateKey as SignKey, ns, sa, claims, opts),
    forged: (ns, sa) => sign(other.privateKey as SignKey, ns, sa),
  };
}

export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export const OPENSSL = process.env.OPENSSL ?? '/usr/bin/openssl';

/**
 * `openssl verify` of a CreateCertificate response: leaf against the root
 * bundle (last element), with the middle elements as untrusted intermediates.
 * Optional `attime` (unix seconds) and `purpose`.
 */
export async function opensslVerify(certChain: string[], opts: { attime?: number; purpose?: string; caFile?: string } = {}): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-ca-verify-'));
  try {
    await writeFile(join(dir, 'leaf.pem'), certChain[0]!);
    await writeFile(join(dir, 'roots.pem'), opts.caFile ?? certChain[certChain.length - 1]!);
    const mid = certChain.slice(1, -1).join('');
    const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'roots.pem')];
    if (mid) {
      await writeFile(join(dir, 'mid.pem'), mid);
      args.push('-untrusted', join(dir, 'mid.pem'));
    }
    if (opts.attime !== undefined) args.push('-attime', String(Math.floor(opts.attime)));
    if (opts.purpose) args.push('-purpose', opts.purpose);
    args.push(join(dir, 'leaf.pem'));
    const r = await run(OPENSSL, args);
    return { ok: r.code === 0 && /: OK\s*$/.test(r.stdout), output: (r.stdout + r.stderr).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Resolves when `file` exists and is non-empty (fs.watch on its directory, no polling sleep); rejects after `ms`. */
export function waitForFile(file: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const dir = dirname(file);
    let watcher: FSWatcher | undefined;
    const done = (err?: Error) => {
      clearTimeout(timer);
      watcher?.close();
      if (err) reject(err);
      else resolve();
    };
    const check = () => {
      try {
        if (statSync(file).size > 0) done();
      } catch {
        /* not yet */
      }
    };
    const timer = setTimeout(() => done(new Error(`timed out after ${ms} ms waiting for ${file}`)), ms);
    mkdirSync(dir, { recursive: true });
    watcher = watch(dir, () => check());
    check();
  });
}

/**
 * An operator's plugged-in CA made with the openssl CLI (independent of this
 * package's code): a root and an intermediate, written in the cacerts layout.
 */
export async function makePluggedCa(dir: string, opts: { name?: string; intermediateDays?: number; rsa?: boolean } = {}): Promise<{ rootPem: string }> {
  const { mkdir, readFile } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'sextant-plug-'));
  const n = opts.name ?? 'Plug';
  const keyArgs = opts.rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const must = async (args: string[]) => {
    const r = await run(OPENSSL, args, { cwd: work });
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  try {
    await writeFile(
      join(work, 'ext.cnf'),
      '[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    await must(['req', '-x509', ...keyArgs, '-nodes', '-keyout', 'root-key.pem', '-out', 'root-cert.pem', '-days', '3650', '-subj', `/O=${n}/CN=${n} Root`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await must(['req', '-new', ...keyArgs, '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.csr', '-subj', `/O=${n}/CN=${n} Intermediate`]);
    await must(['x509', '-req', '-in', 'ca.csr', '-CA', 'root-cert.pem', '-CAkey', 'root-key.pem', '-CAcreateserial', '-out', 'ca-cert.pem',
      '-days', String(opts.intermediateDays ?? 365), '-extfile', 'ext.cnf', '-extensions', 'v3_ca']);
    const root = await readFile(join(work, 'root-cert.pem'), 'utf8');
    const inter = await readFile(join(work, 'ca-cert.pem'), 'utf8');
    const key = await readFile(join(work, 'ca-key.pem'), 'utf8');
    await writeFile(join(dir, 'ca-key.pem'), key);
    await writeFile(join(dir, 'cert-chain.pem'), inter + root);
    await writeFile(join(dir, 'root-cert.pem'), root);
    await writeFile(join(dir, 'ca-cert.pem'), inter);
    return { rootPem: root };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
