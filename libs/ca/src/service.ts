/**
 * The gRPC side: istio.v1.auth.IstioCertificateService and the TLS credentials
 * of the secure port (15012), whose serving certificate comes from the same CA.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { silentLogger, type Logger } from '@sextant/api';
import { authenticate, bearerTokenFrom, type Authenticator } from './auth.js';
import type { CertificateAuthority } from './authority.js';
import { CaError, Code } from './errors.js';
import { generateKey, isIp, keyPem, type KeyAlgorithm } from './x509.js';

export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';

/** Finds proto/istio/security/v1alpha1/ca.proto by walking up from this module (repo root or an installed copy). */
export function caProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'proto', 'istio', 'security', 'v1alpha1', 'ca.proto');
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  throw new Error('proto/istio/security/v1alpha1/ca.proto not found above libs/ca');
}

let loaded: grpc.GrpcObject | undefined;
function caPackage(): grpc.GrpcObject {
  if (!loaded) {
    const def = protoLoader.loadSync(caProtoPath(), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    loaded = grpc.loadPackageDefinition(def);
  }
  return loaded;
}

/** The service client constructor (tests, benchmarks, tools). */
export function caServiceClient(): grpc.ServiceClientConstructor {
  const pkg = caPackage() as unknown as { istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } } };
  return pkg.istio.v1.auth.IstioCertificateService;
}

export interface CaServiceOptions {
  logger?: Logger;
}

export interface CaServiceStats {
  requests: number;
  /** CSRs accepted and not yet answered (a graceful shutdown waits for them). */
  inFlight: number;
  issued: number;
  refusedByCode: Record<string, number>;
}

export interface CaService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  stats: CaServiceStats;
}

interface CertRequest {
  csr?: string;
  validity_duration?: string;
  metadata?: { fields?: Record<string, { stringValue?: string; kind?: string }> };
}

/** `server.addService(s.definition, s.implementation)` on the secure gRPC server. */
export function createCaService(ca: CertificateAuthority, authenticators: Authenticator[], options: CaServiceOptions = {}): CaService {
  const log = (options.logger ?? silentLogger).child({ component: 'ca-service' });
  const stats: CaServiceStats = { requests: 0, inFlight: 0, issued: 0, refusedByCode: {} };
  const definition = caServiceClient().service;

  const handle = async (call: grpc.ServerUnaryCall<CertRequest, unknown>): Promise<{ cert_chain: string[] }> => {
    const bearerToken = bearerTokenFrom(call.metadata.get('authorization'));
    const peer = call.getAuthContext?.()?.sslPeerCertificate?.raw;
    const caller = await authenticate(authenticators, {
      ...(bearerToken !== undefined ? { bearerToken } : {}),
      ...(peer ? { peerCertificate: peer } : {}),
    });
    const req = call.request;
    const impersonate = req.metadata?.fields?.['ImpersonatedIdentity']?.stringValue;
    if (impersonate) throw new CaError('UNAUTHENTICATED', `impersonation (ImpersonatedIdentity ${impersonate}) is not supported by this CA`);
    const ttlText = req.validity_duration ?? '0';
    const ttlSeconds = Number(ttlText);
    if (!/^-?\d+$/.test(ttlText)) throw new CaError('INVALID_ARGUMENT', `validity_duration ${ttlText} is not an integer`);
    const r = ca.issue({ csr: req.csr ?? '', identity: caller.identity, ttlSeconds });
    log.debug({ identity: caller.identity, method: caller.method, notAfter: new Date(r.notAfter).toISOString() }, 'certificate issued');
    return { cert_chain: r.certChain };
  };

  const implementation: grpc.UntypedServiceImplementation = {
    CreateCertificate: (call: grpc.ServerUnaryCall<CertRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      stats.requests++;
      stats.inFlight++;
      handle(call).then(
        (res) => {
          stats.inFlight--;
          stats.issued++;
          callback(null, res);
        },
        (e: unknown) => {
          stats.inFlight--;
          const err = e instanceof CaError ? e : new CaError('INTERNAL', `internal error: ${(e as Error).message}`);
          stats.refusedByCode[err.codeName] = (stats.refusedByCode[err.codeName] ?? 0) + 1;
          const fields = { peer: call.getPeer(), code: err.codeName, reason: err.message };
          if (err.codeName === 'INTERNAL') log.error(fields, 'CSR failed');
          else log.warn(fields, 'CSR refused');
          callback({ code: err.code, details: err.message });
        },
      );
    },
  };
  return { definition, implementation, stats };
}

export interface SecureCredentialsOptions {
  /** Serving certificate lifetime (default 24 h); it is re-issued at half-life and on CA changes. */
  ttlSeconds?: number;
  keyAlgorithm?: KeyAlgorithm;
  logger?: Logger;
}

export type SecureServerCredentials = grpc.ServerCredentials & {
  /** Stops the refresh timer and CA listener. */
  close(): void;
  /** PEM chain currently served. */
  servingChainPem(): string;
  /** Re-issues the serving certificate now. */
  refresh(): void;
};

export const ISTIOD_DNS_NAME = 'istiod.istio-system.svc';

/**
 * TLS for the secure port: serving certificate for istiod.istio-system.svc and
 * `dnsNames` (IP literals become IP SANs) issued by `ca`; client certificates
 * are requested and verified against the trust bundle but optional.
 */
export function createSecureServerCredentials(ca: CertificateAuthority, dnsNames: string[] = [], opts: SecureCredentialsOptions = {}): SecureServerCredentials {
  const log = (opts.logger ?? silentLogger).child({ component: 'ca-tls' });
  const ttl = opts.ttlSeconds ?? 86400;
  const names = [...new Set([ISTIOD_DNS_NAME, ...dnsNames])];
  const caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  const idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  let caUpdate: grpc.experimental.CaCertificateUpdate;
  let idUpdate: grpc.experimental.IdentityCertificateUpdate;
  let chainPem = '';
  let timer: NodeJS.Timeout | undefined;

  const issue = () => {
    const { privateKey, publicKey } = generateKey(opts.keyAlgorithm ?? 'ecdsa-p256');
    const r = ca.issueForKey(publicKey, { dnsNames: names.filter((n) => !isIp(n)), ips: names.filter(isIp) }, ttl);
    chainPem = r.certChain.slice(0, -1).join('');
    idUpdate = { certificate: Buffer.from(chainPem), privateKey: Buffer.from(keyPem(privateKey)) };
    caUpdate = { caCertificate: Buffer.from(ca.rootCertPem()) };
    clearTimeout(timer);
    const delay = Math.max(1000, (r.notAfter - Date.now()) / 2);
    timer = setTimeout(refresh, Math.min(delay, 2 ** 31 - 1));
    timer.unref();
  };
  const refresh = () => {
    try {
      issue();
      for (const l of caListeners) l(caUpdate);
      for (const l of idListeners) l(idUpdate);
      log.info({ names }, 'serving certificate refreshed');
    } catch (e) {
      log.error({ err: (e as Error).message }, 'serving certificate refresh failed');
    }
  };
  issue();
  const stopListening = ca.onChange(() => refresh());

  const provider: grpc.experimental.CertificateProvider = {
    // grpc-js registers its watcher only after adding these listeners, so the first update is delivered asynchronously.
    addCaCertificateListener(l) {
      caListeners.add(l);
      queueMicrotask(() => caListeners.has(l) && l(caUpdate));
    },
    removeCaCertificateListener(l) {
      caListeners.delete(l);
    },
    addIdentityCertificateListener(l) {
      idListeners.add(l);
      queueMicrotask(() => idListeners.has(l) && l(idUpdate));
    },
    removeIdentityCertificateListener(l) {
      idListeners.delete(l);
    },
  };
  // The same provider serves both roles (grpc-js's argument order is then irrelevant); requireClientCertificate=false.
  const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return Object.assign(creds, {
    close() {
      clearTimeout(timer);
      stopListening();
    },
    servingChainPem: () => chainPem,
    refresh,
  });
}

export { Code };
