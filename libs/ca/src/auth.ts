/**
 * Caller authentication for the CSR API and the secure ADS port: Kubernetes
 * service-account JWTs (TokenReview, or a JWKS file with an issuer), and an
 * existing workload certificate presented over mTLS.
 */
import { readFileSync, statSync } from 'node:fs';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { CertificateAuthority } from './authority.js';
import { CaError, unauthenticated } from './errors.js';
import { parseServiceAccountUsername, parseWorkloadIdentity, workloadIdentity } from './spiffe.js';

export interface AuthRequest {
  /** The token from `authorization: Bearer <token>`. */
  bearerToken?: string;
  /** DER of the peer's leaf certificate when the TLS handshake verified one. */
  peerCertificate?: Buffer;
}

export interface Caller {
  /** spiffe://<trust-domain>/ns/<ns>/sa/<sa> */
  identity: string;
  namespace: string;
  serviceAccount: string;
  /** Which authenticator accepted the caller. */
  method: string;
}

export interface Authenticator {
  readonly name: string;
  /**
   * Resolves to the caller, to undefined when the request carries no credential
   * of this kind, and rejects with a CaError (UNAUTHENTICATED) when it carries
   * one that is not valid.
   */
  authenticate(req: AuthRequest): Promise<Caller | undefined>;
}

export const CA_AUDIENCE = 'istio-ca';
export const MAX_TOKEN_BYTES = 16 * 1024;

/** Extracts the token from gRPC `authorization` metadata values. */
export function bearerTokenFrom(values: unknown[]): string | undefined {
  for (const v of values) {
    const s = typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString() : '';
    const m = /^Bearer\s+(.+)$/i.exec(s.trim());
    if (m) return m[1]!.trim();
  }
  return undefined;
}

/**
 * Runs authenticators in order; the first that accepts wins. When credentials
 * were presented but none accepted, the error lists every reason.
 */
export async function authenticate(authenticators: Authenticator[], req: AuthRequest): Promise<Caller> {
  if (req.bearerToken !== undefined && Buffer.byteLength(req.bearerToken) > MAX_TOKEN_BYTES) {
    throw unauthenticated(`bearer token is over ${MAX_TOKEN_BYTES} bytes`);
  }
  const reasons: string[] = [];
  for (const a of authenticators) {
    try {
      const caller = await a.authenticate(req);
      if (caller) return caller;
    } catch (e) {
      reasons.push(`${a.name}: ${(e as Error).message}`);
    }
  }
  if (reasons.length) throw unauthenticated(`authentication failed: ${reasons.join('; ')}`);
  throw unauthenticated('no credentials: send "authorization: Bearer <service-account JWT>" or a client certificate');
}

function callerFromServiceAccount(trustDomain: string, sub: string, method: string): Caller {
  const sa = parseServiceAccountUsername(sub);
  if (!sa) throw unauthenticated(`subject ${JSON.stringify(sub.slice(0, 200))} is not system:serviceaccount:<namespace>:<name>`);
  return { identity: workloadIdentity(trustDomain, sa.namespace, sa.serviceAccount), ...sa, method };
}

export interface JwtAuthenticatorOptions {
  /** Path of a JWKS JSON file (`--jwks-file`); re-read when it changes. Either this or `jwks`. */
  jwksFile?: string;
  jwks?: JSONWebKeySet;
  /** Required `iss` (`--jwt-issuer`). */
  issuer: string;
  /** Required audience (default istio-ca). */
  audience?: string;
  trustDomain: string;
  /** Allowed clock skew in seconds (default 30). */
  clockToleranceSeconds?: number;
  now?: () => number;
}

/** Standalone mode: JWTs signed by a key in a JWKS file, with a fixed issuer. */
export class JwtAuthenticator implements Authenticator {
  readonly name = 'jwt';
  private keySet!: ReturnType<typeof createLocalJWKSet>;
  private fileStamp = '';
  constructor(private readonly o: JwtAuthenticatorOptions) {
    if (!o.jwks && !o.jwksFile) throw new Error('JwtAuthenticator needs jwks or jwksFile');
    if (o.jwks) this.keySet = createLocalJWKSet(o.jwks);
    else this.loadFile();
  }

  private loadFile(): void {
    const file = this.o.jwksFile!;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch (e) {
      if (!this.fileStamp) throw new Error(`--jwks-file ${file}: ${(e as Error).message}`);
      return; // keep the last good key set
    }
    if (stamp === this.fileStamp) return;
    try {
      const jwks = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
      if (!Array.isArray(jwks.keys)) throw new Error('no "keys" array');
      this.keySet = createLocalJWKSet(jwks);
      this.fileStamp = stamp;
    } catch (e) {
      if (!this.fileStamp) throw new Error(`--jwks-file ${file}: ${(e as Error).message}`);
    }
  }

  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    if (req.bearerToken === undefined) return undefined;
    if (this.o.jwksFile) this.loadFile();
    const token = req.bearerToken;
    let payload: JWTPayload;
    try {
      decodeProtectedHeader(token);
      const now = this.o.now?.();
      ({ payload } = await jwtVerify(token, this.keySet, {
        issuer: this.o.issuer,
        audience: this.o.audience ?? CA_AUDIENCE,
        clockTolerance: this.o.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp', 'sub', 'iss', 'aud'],
        algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
        ...(now !== undefined ? { currentDate: new Date(now) } : {}),
      }));
    } catch (e) {
      throw new CaError('UNAUTHENTICATED', `JWT rejected: ${describeJoseError(e)}`);
    }
    const caller = callerFromServiceAccount(this.o.trustDomain, String(payload.sub), this.name);
    // A Kubernetes token also names the namespace and account in its private claim; they must agree.
    const k8s = (payload as { 'kubernetes.io'?: { namespace?: string; serviceaccount?: { name?: string } } })['kubernetes.io'];
    if (k8s && (k8s.namespace !== caller.namespace || (k8s.serviceaccount?.name ?? caller.serviceAccount) !== caller.serviceAccount)) {
      throw unauthenticated('JWT kubernetes.io claim disagrees with its subject');
    }
    return caller;
  }
}

function describeJoseError(e: unknown): string {
  const err = e as { code?: string; message?: string; claim?: string };
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return 'token is expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return err.claim === 'aud' ? `wrong audience (must contain ${CA_AUDIENCE})` : err.claim === 'iss' ? 'wrong issuer' : `claim ${err.claim}: ${err.message}`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature does not verify';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key in the JWKS matches the token';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'signing algorithm not allowed';
    default:
      return err.message ?? String(e);
  }
}

/** Result of a Kubernetes TokenReview. */
export interface TokenReviewResult {
  authenticated: boolean;
  /** status.user.username, e.g. system:serviceaccount:ns:sa */
  username?: string;
  /** status.audiences */
  audiences?: string[];
  error?: string;
}

/** Implemented in Kubernetes mode (libs/sources) by creating an authentication.k8s.io/v1 TokenReview. */
export interface TokenReviewer {
  review(token: string, audiences: string[]): Promise<TokenReviewResult>;
}

/** Kubernetes mode: service-account JWTs checked by the API server, audience istio-ca. */
export class TokenReviewAuthenticator implements Authenticator {
  readonly name = 'tokenreview';
  constructor(
    private readonly reviewer: TokenReviewer,
    private readonly trustDomain: string,
    private readonly audience = CA_AUDIENCE,
  ) {}
  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    if (req.bearerToken === undefined) return undefined;
    let r: TokenReviewResult;
    try {
      r = await this.reviewer.review(req.bearerToken, [this.audience]);
    } catch (e) {
      throw new CaError('UNAUTHENTICATED', `TokenReview failed: ${(e as Error).message}`);
    }
    if (!r.authenticated) throw unauthenticated(`token not authenticated${r.error ? `: ${r.error}` : ''}`);
    if (r.audiences && !r.audiences.includes(this.audience)) throw unauthenticated(`wrong audience (must contain ${this.audience})`);
    return callerFromServiceAccount(this.trustDomain, r.username ?? '', this.name);
  }
}

/** Renewal: a valid workload certificate from this CA, presented as the TLS client certificate. */
export class MtlsAuthenticator implements Authenticator {
  readonly name = 'mtls';
  constructor(private readonly ca: CertificateAuthority) {}
  async authenticate(req: AuthRequest): Promise<Caller | undefined> {
    if (!req.peerCertificate) return undefined;
    const r = this.ca.verifyPeerCertificate(req.peerCertificate);
    if (typeof r === 'string') throw unauthenticated(r);
    const id = parseWorkloadIdentity(r.uri);
    if (!id) throw unauthenticated(`peer URI SAN ${r.uri} is not spiffe://<td>/ns/<ns>/sa/<sa>`);
    if (id.trustDomain !== this.ca.trustDomain) throw unauthenticated(`peer trust domain ${id.trustDomain} is not ${this.ca.trustDomain}`);
    return { identity: r.uri, namespace: id.namespace, serviceAccount: id.serviceAccount, method: this.name };
  }
}
