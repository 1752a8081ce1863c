/**
 * The certificate authority: loads or creates its signing material, issues
 * X.509-SVIDs from CSRs, rotates a self-signed root with an overlap period,
 * and reloads a plugged-in CA when its files change.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { silentLogger, type Logger } from '@sextant/api';
import { parseCsr, DEFAULT_MAX_CSR_BYTES, type ParsedCsr } from './csr.js';
import { CaError, denied, invalid } from './errors.js';
import { parseSpiffeId } from './spiffe.js';
import { CA_FILES, NEXT_CERT, NEXT_KEY, STATE_FILE, type CaFiles, type CaMaterial, type CaStore } from './store.js';
import {
  EXT,
  OID,
  akiExtension,
  certParts,
  certPem,
  certsFromPem,
  extension,
  generateKey,
  keyIdentifier,
  keyMatchesCert,
  keyPem,
  name,
  privateKeyFromPem,
  randomSerial,
  sanValue,
  signCertificate,
  signatureAlgorithmFor,
  skiExtension,
  spkiDer,
  type CertParts,
  type KeyAlgorithm,
  type SignatureAlgorithm,
} from './x509.js';

const DAY = 86400;

export interface CaOptions {
  /** SPIFFE trust domain (default cluster.local). */
  trustDomain?: string;
  /** Leaf lifetime when the request asks for none (default 24 h). */
  defaultTtlSeconds?: number;
  /** Longest leaf lifetime a request may ask for; more is refused (default 90 days). */
  maxTtlSeconds?: number;
  /** Lifetime of a self-signed root (default 10 years). */
  rootTtlSeconds?: number;
  /** Key of a new self-signed root (default ecdsa-p256). */
  rootKeyAlgorithm?: KeyAlgorithm;
  /** NotBefore is set this far in the past to absorb clock skew (default 120 s). */
  backdateSeconds?: number;
  /** A self-signed root with less than this left starts a rotation (default a fifth of rootTtl). */
  rotateBeforeSeconds?: number;
  /**
   * How long a new root is trusted (distributed in every trust bundle) before it
   * starts signing (default = defaultTtl: every workload has renewed, and so
   * fetched the new bundle, at least once in that window).
   */
  distributionSeconds?: number;
  /** Largest CSR accepted (default 16 KiB). */
  maxCsrBytes?: number;
  /** Whether this replica may create and rotate the root (the elected leader). Default: always. */
  isWriter?: () => boolean;
  /** How often `start()` checks rotation and expiry (default 60 s). */
  checkIntervalMs?: number;
  now?: () => number;
  logger?: Logger;
}

export interface IssueRequest {
  /** PEM CSR. */
  csr: string;
  /** The authenticated caller's SPIFFE ID; the only URI SAN the certificate will carry. */
  identity: string;
  /** Requested lifetime in seconds; 0 or undefined = default. */
  ttlSeconds?: number;
}

export interface IssueResult {
  /** IstioCertificateResponse.cert_chain: leaf, intermediates, then the trusted roots (one element). */
  certChain: string[];
  leafPem: string;
  notAfter: number;
}

export type CaChange = 'roots' | 'signer';

interface Signer {
  cert: CertParts;
  key: KeyObject;
  /** signer … root, root last. */
  chain: CertParts[];
  sigAlg: SignatureAlgorithm;
  aki: Buffer;
  /** PEMs of the chain above the leaf, excluding the root (response elements). */
  intermediatePems: string[];
  /** Latest NotAfter a leaf may have. */
  maxNotAfter: number;
}

interface State {
  origin: CaMaterial['origin'];
  signer: Signer;
  /** Trusted roots, the active signer's root first. */
  roots: CertParts[];
  pending?: { cert: CertParts; key: KeyObject; since: number };
  /** Roots no longer signing but still trusted until `until`. */
  retiring: { cert: CertParts; until: number; signer?: CertParts }[];
  /** Bundle PEM, cached. */
  bundlePem: string;
  filesFingerprint: string;
}

interface StateFile {
  managed: 'self-signed';
  pendingSince?: number;
  retiring?: { fingerprint: string; until: number }[];
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  private readonly o: Required<Omit<CaOptions, 'logger' | 'now' | 'isWriter' | 'trustDomain' | 'defaultTtlSeconds' | 'maxTtlSeconds'>>;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly isWriter: () => boolean;
  private state!: State;
  private listeners = new Set<(c: CaChange) => void>();
  private stopWatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  /** Certificates issued since start (tests assert on it). */
  readonly stats = { issued: 0, refused: 0 };

  private constructor(
    private readonly store: CaStore,
    opts: CaOptions,
  ) {
    this.trustDomain = opts.trustDomain ?? 'cluster.local';
    if (typeof parseSpiffeId(`spiffe://${this.trustDomain}`) === 'string') throw new Error(`trust domain ${JSON.stringify(this.trustDomain)} is not valid`);
    this.defaultTtlSeconds = opts.defaultTtlSeconds ?? DAY;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? 90 * DAY;
    const rootTtl = opts.rootTtlSeconds ?? 10 * 365 * DAY;
    this.o = {
      rootTtlSeconds: rootTtl,
      rootKeyAlgorithm: opts.rootKeyAlgorithm ?? 'ecdsa-p256',
      backdateSeconds: opts.backdateSeconds ?? 120,
      rotateBeforeSeconds: opts.rotateBeforeSeconds ?? Math.floor(rootTtl / 5),
      distributionSeconds: opts.distributionSeconds ?? this.defaultTtlSeconds,
      maxCsrBytes: opts.maxCsrBytes ?? DEFAULT_MAX_CSR_BYTES,
      checkIntervalMs: opts.checkIntervalMs ?? 60_000,
    };
    if (this.defaultTtlSeconds > this.maxTtlSeconds) throw new Error('defaultTtlSeconds is above maxTtlSeconds');
    this.now = opts.now ?? Date.now;
    this.log = (opts.logger ?? silentLogger).child({ component: 'ca' });
    this.isWriter = opts.isWriter ?? (() => true);
  }

  /** Loads the CA from `store`, creating a self-signed root there when it is empty. */
  static async open(store: CaStore, opts: CaOptions = {}): Promise<CertificateAuthority> {
    const ca = new CertificateAuthority(store, opts);
    const material = await store.load();
    if (material) {
      ca.state = ca.fromMaterial(material);
      ca.log.info({ store: store.description, origin: material.origin, root: ca.describeRoot() }, 'CA loaded');
    } else {
      if (!ca.isWriter()) throw new Error(`${store.description}: no CA material yet and this replica may not create it`);
      ca.state = ca.newSelfSigned();
      await store.save(ca.toFiles());
      ca.log.info({ store: store.description, root: ca.describeRoot() }, 'created self-signed root CA');
    }
    await ca.tick();
    return ca;
  }

  get origin(): CaMaterial['origin'] {
    return this.state.origin;
  }

  /** Starts watching the store (plugged-in reload) and the rotation/expiry timer. */
  start(): void {
    if (!this.stopWatch && this.store.watch) this.stopWatch = this.store.watch(() => void this.reload());
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.o.checkIntervalMs);
      this.timer.unref();
    }
  }

  stop(): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  onChange(listener: (c: CaChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** PEM of every trusted root, the active root first. */
  trustBundle(): string[] {
    return this.state.roots.map((r) => certPem(r.der));
  }

  /** The trusted roots as one PEM text (root-cert.pem, the istio-ca-root-cert ConfigMap value). */
  rootCertPem(): string {
    return this.state.bundlePem;
  }

  /** PEM of the signing certificate's chain, signer first, root last. */
  signingChain(): string[] {
    return this.state.signer.chain.map((c) => certPem(c.der));
  }

  /** Signs a CSR for `identity`. Throws CaError (INVALID_ARGUMENT / PERMISSION_DENIED) on refusal. */
  issue(req: IssueRequest): IssueResult {
    try {
      const ttl = this.checkTtl(req.ttlSeconds);
      const csr = parseCsr(req.csr, this.o.maxCsrBytes);
      checkRequestedIdentity(csr, req.identity);
      return this.sign(csr.spki, csr.key.kind === 'rsa', { uris: [req.identity] }, ttl);
    } catch (e) {
      this.stats.refused++;
      throw e;
    }
  }

  /** The leaf lifetime for a requested `validity_duration` (seconds). */
  checkTtl(requested?: number): number {
    if (requested === undefined || requested === 0) return this.defaultTtlSeconds;
    if (!Number.isFinite(requested) || !Number.isInteger(requested) || requested < 0) throw invalid(`validity_duration ${requested} is not a positive number of seconds`);
    if (requested > this.maxTtlSeconds) throw invalid(`validity_duration ${requested}s is above the maximum of ${this.maxTtlSeconds}s`);
    return requested;
  }

  /** Issues a leaf for a public key directly (serving certificate, agentless mode). */
  issueForKey(publicKey: KeyObject, sans: { uris?: string[]; dnsNames?: string[]; ips?: string[] }, ttlSeconds: number): IssueResult {
    return this.sign(spkiDer(publicKey), publicKey.asymmetricKeyType === 'rsa', sans, ttlSeconds);
  }

  /**
   * Agentless mode: the control plane generates the workload key and certificate.
   * The key exists outside the workload, which is the trade-off of this mode.
   */
  generateWorkloadCertificate(identity: string, ttlSeconds = this.defaultTtlSeconds, alg: KeyAlgorithm = 'ecdsa-p256'): IssueResult & { keyPem: string } {
    const { privateKey, publicKey } = generateKey(alg);
    return { ...this.issueForKey(publicKey, { uris: [identity] }, ttlSeconds), keyPem: keyPem(privateKey) };
  }

  private sign(spki: Buffer, rsa: boolean, sans: { uris?: string[]; dnsNames?: string[]; ips?: string[] }, ttlSeconds: number): IssueResult {
    const s = this.state.signer;
    const now = this.now();
    if (now >= s.maxNotAfter) throw new CaError('UNAVAILABLE', 'the signing certificate has expired');
    const notBefore = Math.max(now - this.o.backdateSeconds * 1000, s.cert.notBefore);
    const notAfter = Math.min(now + ttlSeconds * 1000, s.maxNotAfter);
    const leaf = signCertificate(
      {
        serial: randomSerial(),
        sigAlg: s.sigAlg,
        issuer: s.cert.subject,
        subject: EMPTY_NAME,
        notBefore,
        notAfter,
        spki,
        extensions: [
          rsa ? EXT.leafKeyUsageRsa : EXT.leafKeyUsageEc,
          EXT.serverClientAuth,
          EXT.leafBasicConstraints,
          s.aki,
          extension(OID.subjectAltName, true, sanValue(sans)),
        ],
      },
      s.key,
    );
    this.stats.issued++;
    const leafPem = certPem(leaf);
    return { leafPem, certChain: [leafPem, ...s.intermediatePems, this.state.bundlePem], notAfter: Math.floor(notAfter / 1000) * 1000 };
  }

  /**
   * Checks a peer's leaf certificate (mTLS renewal): issued by one of this CA's
   * signers whose root is still trusted, currently valid, not a CA. Returns its
   * URI SAN, or a reason string.
   */
  verifyPeerCertificate(certDer: Buffer): { uri: string } | string {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certDer);
    } catch {
      return 'peer certificate cannot be parsed';
    }
    const now = this.now();
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return 'peer certificate is expired or not yet valid';
    if (cert.ca) return 'peer certificate is a CA certificate';
    const signers = [this.state.signer.cert, ...this.state.retiring.flatMap((r) => (r.signer ? [r.signer] : []))];
    const issuer = signers.find((sc) => cert.checkIssued(sc.x509) && cert.verify(sc.x509.publicKey));
    if (!issuer) return 'peer certificate was not issued by this CA';
    const uris = (cert.subjectAltName ?? '')
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
    if (uris.length !== 1) return `peer certificate has ${uris.length} URI SANs, expected 1`;
    return { uri: uris[0]! };
  }

  /** Re-reads the store; applies valid new material, keeps the current one otherwise. Returns true when it changed. */
  async reload(): Promise<boolean> {
    return this.serialize(async () => {
      let material: CaMaterial | undefined;
      try {
        material = await this.store.load();
      } catch (e) {
        this.log.error({ store: this.store.description, err: (e as Error).message }, 'CA reload failed; keeping the current CA');
        return false;
      }
      if (!material) return false;
      if (fingerprintFiles(material.files) === this.state.filesFingerprint) return false;
      try {
        const before = this.state;
        const next = this.fromMaterial(material);
        this.state = next;
        this.log.info({ store: this.store.description, origin: next.origin, root: this.describeRoot() }, 'CA material reloaded');
        if (next.bundlePem !== before.bundlePem) this.emit('roots');
        if (!next.signer.cert.der.equals(before.signer.cert.der)) this.emit('signer');
        return true;
      } catch (e) {
        this.log.error({ store: this.store.description, err: (e as Error).message }, 'CA material is invalid; keeping the current CA');
        return false;
      }
    });
  }

  /** Advances rotation of a self-signed root; call periodically (start() does). */
  async tick(): Promise<void> {
    await this.serialize(async () => {
      const st = this.state;
      if (st.origin !== 'self-signed' || !this.isWriter()) {
        if (this.now() > st.signer.maxNotAfter - this.o.rotateBeforeSeconds * 1000) {
          this.log.warn({ store: this.store.description, notAfter: new Date(st.signer.maxNotAfter).toISOString() }, 'CA certificate is close to expiry');
        }
        return;
      }
      const now = this.now();
      const changes = new Set<CaChange>();
      // 1. retire roots whose overlap is over
      const keep = st.retiring.filter((r) => r.until > now);
      if (keep.length !== st.retiring.length) {
        st.retiring = keep;
        changes.add('roots');
      }
      // 2. a pending root that has been distributed long enough starts signing
      if (st.pending && now >= st.pending.since + this.o.distributionSeconds * 1000) {
        const old = st.signer;
        st.signer = makeSigner(st.pending.cert, st.pending.key, [st.pending.cert]);
        st.retiring.push({ cert: old.chain[old.chain.length - 1]!, until: Math.min(old.maxNotAfter, now + this.maxTtlSeconds * 1000), signer: old.cert });
        st.pending = undefined;
        changes.add('signer').add('roots');
        this.log.info({ root: this.describeRoot() }, 'CA root rotation: new root is now signing; old root stays trusted until its leaves expire');
      }
      // 3. an active root close to expiry gets a successor, trusted at once, signing later
      if (!st.pending && now >= st.signer.maxNotAfter - this.o.rotateBeforeSeconds * 1000) {
        const { cert, key } = this.createRootCert(now);
        st.pending = { cert, key, since: now };
        changes.add('roots');
        this.log.info({ next: cert.x509.subject, notAfter: cert.x509.validTo }, 'CA root rotation: new root created and added to the trust bundle');
      }
      if (!changes.size) return;
      this.refreshRoots(st);
      await this.store.save(this.toFiles());
      st.filesFingerprint = fingerprintFiles(this.toFiles());
      for (const c of changes) this.emit(c);
    });
  }

  describeRoot(): string {
    const r = this.state.roots[0]!;
    return `${r.x509.subject.replace(/\n/g, ', ')} (until ${r.x509.validTo})`;
  }

  // ------------------------------------------------------------ internals

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.busy.then(fn, fn);
    this.busy = p.catch(() => undefined);
    return p;
  }

  private emit(c: CaChange): void {
    for (const l of this.listeners) {
      try {
        l(c);
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'CA change listener failed');
      }
    }
  }

  private createRootCert(now: number): { cert: CertParts; key: KeyObject } {
    const { privateKey, publicKey } = generateKey(this.o.rootKeyAlgorithm);
    const spki = spkiDer(publicKey);
    const subject = name([
      { oid: OID.organization, value: this.trustDomain },
      { oid: OID.commonName, value: `Sextant root CA ${new Date(now).toISOString()}` },
    ]);
    const kid = keyIdentifier(spki);
    const certDer = signCertificate(
      {
        serial: randomSerial(),
        sigAlg: signatureAlgorithmFor(privateKey),
        issuer: subject,
        subject,
        notBefore: now - this.o.backdateSeconds * 1000,
        notAfter: now + this.o.rootTtlSeconds * 1000,
        spki,
        extensions: [EXT.caKeyUsage, EXT.caBasicConstraints, skiExtension(kid), akiExtension(kid)],
      },
      privateKey,
    );
    return { cert: certParts(certDer), key: privateKey };
  }

  private newSelfSigned(): State {
    const { cert, key } = this.createRootCert(this.now());
    const st: State = { origin: 'self-signed', signer: makeSigner(cert, key, [cert]), roots: [], retiring: [], bundlePem: '', filesFingerprint: '' };
    this.refreshRoots(st);
    return st;
  }

  private refreshRoots(st: State): void {
    const roots: CertParts[] = [];
    const add = (c: CertParts) => {
      if (!roots.some((r) => r.der.equals(c.der))) roots.push(c);
    };
    add(st.signer.chain[st.signer.chain.length - 1]!);
    if (st.pending) add(st.pending.cert);
    for (const r of st.retiring) add(r.cert);
    for (const r of st.origin === 'plugged' ? st.roots : []) add(r);
    st.roots = roots;
    st.bundlePem = roots.map((r) => certPem(r.der)).join('');
  }

  private toFiles(): CaFiles {
    const st = this.state;
    const s = st.signer;
    const files: CaFiles = {
      'ca-cert.pem': certPem(s.cert.der),
      'ca-key.pem': keyPem(s.key),
      'cert-chain.pem': s.chain.map((c) => certPem(c.der)).join(''),
      'root-cert.pem': st.bundlePem,
      [NEXT_CERT]: st.pending ? certPem(st.pending.cert.der) : '',
      [NEXT_KEY]: st.pending ? keyPem(st.pending.key) : '',
    };
    const state: StateFile = {
      managed: 'self-signed',
      ...(st.pending ? { pendingSince: st.pending.since } : {}),
      retiring: st.retiring.map((r) => ({ fingerprint: r.cert.x509.fingerprint256, until: r.until })),
    };
    files[STATE_FILE] = JSON.stringify(state, null, 2) + '\n';
    return files;
  }

  private fromMaterial(m: CaMaterial): State {
    const where = this.store.description;
    for (const f of ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem'] as const) {
      if (!m.files[f]?.trim()) throw new Error(`${where}: ${f} is missing or empty`);
    }
    const signerCert = certParts(certsFromPem(m.files['ca-cert.pem']!, `${where}: ca-cert.pem`)[0]!);
    const key = privateKeyFromPem(m.files['ca-key.pem']!, `${where}: ca-key.pem`);
    if (!keyMatchesCert(key, signerCert.x509)) throw new Error(`${where}: ca-key.pem does not match ca-cert.pem`);
    if (!signerCert.isCa) throw new Error(`${where}: ca-cert.pem is not a CA certificate (basicConstraints CA:TRUE)`);
    const roots = certsFromPem(m.files['root-cert.pem']!, `${where}: root-cert.pem`).map(certParts);
    const extra = m.files['cert-chain.pem']?.trim() ? certsFromPem(m.files['cert-chain.pem'], `${where}: cert-chain.pem`).map(certParts) : [];
    const chain = buildChain(signerCert, [...extra, ...roots], where);
    const chainRoot = chain[chain.length - 1]!;
    if (!roots.some((r) => r.der.equals(chainRoot.der))) throw new Error(`${where}: the root of cert-chain.pem is not in root-cert.pem`);
    const now = this.now();
    if (now > signerCert.notAfter) throw new Error(`${where}: ca-cert.pem expired at ${signerCert.x509.validTo}`);

    const st: State = {
      origin: m.origin,
      signer: makeSigner(signerCert, key, chain),
      roots: [chainRoot, ...roots.filter((r) => !r.der.equals(chainRoot.der))],
      retiring: [],
      bundlePem: '',
      filesFingerprint: fingerprintFiles(m.files),
    };
    if (m.origin === 'self-signed' && m.files[STATE_FILE]) {
      let saved: StateFile;
      try {
        saved = JSON.parse(m.files[STATE_FILE]) as StateFile;
      } catch {
        throw new Error(`${where}: ${STATE_FILE} is not valid JSON`);
      }
      if (saved.pendingSince !== undefined && m.files[NEXT_CERT]?.trim()) {
        const cert = certParts(certsFromPem(m.files[NEXT_CERT], `${where}: ${NEXT_CERT}`)[0]!);
        const nkey = privateKeyFromPem(m.files[NEXT_KEY] ?? '', `${where}: ${NEXT_KEY}`);
        if (!keyMatchesCert(nkey, cert.x509)) throw new Error(`${where}: ${NEXT_KEY} does not match ${NEXT_CERT}`);
        st.pending = { cert, key: nkey, since: saved.pendingSince };
      }
      for (const r of saved.retiring ?? []) {
        const cert = roots.find((c) => c.x509.fingerprint256 === r.fingerprint);
        if (cert) st.retiring.push({ cert, until: r.until, signer: cert });
      }
      st.roots = [];
    }
    this.refreshRoots(st);
    return st;
  }
}

const EMPTY_NAME = Buffer.from([0x30, 0x00]);

function makeSigner(cert: CertParts, key: KeyObject, chain: CertParts[]): Signer {
  const kid = cert.ski ?? keyIdentifier(cert.spki);
  const root = chain[chain.length - 1]!;
  const selfSignedRoot = root.subject.equals(root.issuer);
  const above = chain.slice(0, selfSignedRoot ? -1 : chain.length);
  return {
    cert,
    key,
    chain,
    sigAlg: signatureAlgorithmFor(key),
    aki: akiExtension(kid),
    intermediatePems: above.map((c) => certPem(c.der)),
    maxNotAfter: Math.min(...chain.map((c) => c.notAfter)),
  };
}

/** Orders signer → … → root using `pool`, verifying every signature. */
function buildChain(signer: CertParts, pool: CertParts[], where: string): CertParts[] {
  const chain = [signer];
  for (let i = 0; i < 10; i++) {
    const cur = chain[chain.length - 1]!;
    if (cur.subject.equals(cur.issuer) && cur.x509.verify(cur.x509.publicKey)) return chain;
    const parent = pool.find((p) => !p.der.equals(cur.der) && cur.x509.checkIssued(p.x509) && cur.x509.verify(p.x509.publicKey));
    if (!parent) {
      throw new Error(`${where}: no issuer for ${cur.x509.subject.replace(/\n/g, ', ')} in cert-chain.pem or root-cert.pem`);
    }
    if (!parent.isCa) throw new Error(`${where}: ${parent.x509.subject} is not a CA certificate`);
    chain.push(parent);
  }
  throw new Error(`${where}: certificate chain is longer than 10`);
}

function fingerprintFiles(files: CaFiles): string {
  return CA_FILES.map((f) => files[f] ?? '').join('\0');
}

/** Refuses a CSR that asks for anything but the caller's identity. */
export function checkRequestedIdentity(csr: ParsedCsr, identity: string): void {
  const foreign = [
    ...csr.uris.filter((u) => u !== identity).map((u) => `URI ${u}`),
    ...csr.dnsNames.map((d) => `DNS ${d}`),
    ...csr.ips.map((i) => `IP ${i}`),
    ...csr.emails.map((e) => `email ${e}`),
  ];
  if (csr.otherNames) foreign.push(`${csr.otherNames} other name(s)`);
  if (foreign.length) throw denied(`CSR asks for ${foreign.join(', ')}; the caller is ${identity} and may only request that identity`);
  if (csr.uris.length > 1) throw denied(`CSR repeats the URI SAN ${identity}`);
}

