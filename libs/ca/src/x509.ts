/**
 * Keys, names, extensions and certificate signing on node:crypto. Certificates
 * are assembled as DER directly: the per-issue work is a few buffer
 * concatenations and one `crypto.sign`, which is what makes thousands of leaves
 * per second per core possible.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import * as der from './der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  rsaSha256: '1.2.840.113549.1.1.11',
  rsaSha384: '1.2.840.113549.1.1.12',
  rsaSha512: '1.2.840.113549.1.1.13',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

export interface KeyDescription {
  kind: 'ec' | 'rsa';
  /** 'P-256' | 'P-384' for EC keys. */
  curve?: string;
  /** Modulus length for RSA keys. */
  bits?: number;
}

export function generateKey(alg: KeyAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ecdsa-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: Number(alg.slice(4)), publicExponent: 65537 });
  }
}

/** What a key is, or a reason it is not acceptable. RSA ≥ 2048 (≤ 8192), EC P-256/P-384 only. */
export function describeKey(key: KeyObject): KeyDescription | string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return { kind: 'ec', curve: 'P-256' };
    if (curve === 'secp384r1' || curve === 'P-384') return { kind: 'ec', curve: 'P-384' };
    return `EC curve ${curve ?? 'unknown'} is not allowed (P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) return `RSA key of ${bits} bits is too weak (minimum 2048)`;
    if (bits > 8192) return `RSA key of ${bits} bits is too large (maximum 8192)`;
    const e = details.publicExponent ?? 0n;
    if (e < 3n || e % 2n === 0n) return `RSA public exponent ${e} is not allowed`;
    return { kind: 'rsa', bits };
  }
  return `key type ${key.asymmetricKeyType ?? 'unknown'} is not allowed (RSA or ECDSA)`;
}

export interface SignatureAlgorithm {
  /** DER AlgorithmIdentifier. */
  algId: Buffer;
  hash: 'sha256' | 'sha384';
}

export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const d = describeKey(key);
  if (typeof d === 'string') throw new Error(`signing key: ${d}`);
  if (d.kind === 'rsa') return { algId: der.seq(der.oid(OID.rsaSha256), der.nullValue()), hash: 'sha256' };
  if (d.curve === 'P-384') return { algId: der.seq(der.oid(OID.ecdsaSha384)), hash: 'sha384' };
  return { algId: der.seq(der.oid(OID.ecdsaSha256)), hash: 'sha256' };
}

export function spkiDer(publicKey: KeyObject): Buffer {
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const parts = der.children(der.parse(spki));
  const bits = der.readBitString(der.expect(parts[1], der.TAG.BIT_STRING, 'subjectPublicKey'), 'subjectPublicKey');
  return createHash('sha1').update(bits).digest();
}

export interface NameAttr {
  oid: string;
  value: string;
}

/** An X.501 Name, one attribute per RDN, UTF8String values. */
export function name(attrs: NameAttr[]): Buffer {
  return der.seq(
    ...attrs.map((a) => der.set(der.seq(der.oid(a.oid), der.tlv(der.TAG.UTF8_STRING, Buffer.from(a.value, 'utf8'))))),
  );
}

export function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.seq(der.oid(oid), der.bool(true), der.octets(value)) : der.seq(der.oid(oid), der.octets(value));
}

export interface SanEntries {
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
}

function ipBytes(ip: string): Buffer {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return Buffer.from(ip.split('.').map(Number));
  // IPv6 via URL parsing normalisation
  const host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const [head = '', tail = ''] = host.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = host.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function isIp(s: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(s) || s.includes(':');
}

export function sanValue(s: SanEntries): Buffer {
  const names: Buffer[] = [];
  for (const u of s.uris ?? []) names.push(der.implicitPrimitive(6, Buffer.from(u, 'ascii')));
  for (const d of s.dnsNames ?? []) names.push(der.implicitPrimitive(2, Buffer.from(d, 'ascii')));
  for (const ip of s.ips ?? []) names.push(der.implicitPrimitive(7, ipBytes(ip)));
  return der.seq(...names);
}

/** keyUsage bits: 0 digitalSignature, 2 keyEncipherment, 5 keyCertSign, 6 cRLSign. */
export function keyUsageValue(bits: number[]): Buffer {
  let v = 0;
  for (const b of bits) v |= 0x80 >> b;
  let unused = 0;
  while (unused < 8 && !(v & (1 << unused))) unused++;
  return der.bitString(Buffer.from([v]), unused === 8 ? 0 : unused);
}

export const EXT = {
  leafBasicConstraints: extension(OID.basicConstraints, true, der.seq()),
  caBasicConstraints: extension(OID.basicConstraints, true, der.seq(der.bool(true))),
  leafKeyUsageEc: extension(OID.keyUsage, true, keyUsageValue([0])),
  leafKeyUsageRsa: extension(OID.keyUsage, true, keyUsageValue([0, 2])),
  caKeyUsage: extension(OID.keyUsage, true, keyUsageValue([0, 5, 6])),
  serverClientAuth: extension(OID.extKeyUsage, false, der.seq(der.oid(OID.serverAuth), der.oid(OID.clientAuth))),
};

export function akiExtension(keyId: Buffer): Buffer {
  return extension(OID.authorityKeyIdentifier, false, der.seq(der.implicitPrimitive(0, keyId)));
}
export function skiExtension(keyId: Buffer): Buffer {
  return extension(OID.subjectKeyIdentifier, false, der.octets(keyId));
}

/** A random positive serial of up to 128 bits, DER INTEGER. */
export function randomSerial(): Buffer {
  for (;;) {
    const b = randomBytes(16);
    if (b.some((x) => x !== 0)) return der.uintBytes(b);
  }
}

export interface TbsInput {
  serial: Buffer;
  sigAlg: SignatureAlgorithm;
  issuer: Buffer;
  subject: Buffer;
  notBefore: number;
  notAfter: number;
  spki: Buffer;
  extensions: Buffer[];
}

const VERSION_3 = der.explicit(0, der.smallInt(2));

export function signCertificate(t: TbsInput, signingKey: KeyObject): Buffer {
  const tbs = der.seq(
    VERSION_3,
    t.serial,
    t.sigAlg.algId,
    t.issuer,
    der.seq(der.time(t.notBefore), der.time(t.notAfter)),
    t.subject,
    t.spki,
    der.explicit(3, der.seq(...t.extensions)),
  );
  const sig = cryptoSign(t.sigAlg.hash, tbs, signingKey);
  return der.seq(tbs, t.sigAlg.algId, der.bitString(sig));
}

/** The pieces of a certificate a signer needs, read from its DER. */
export interface CertParts {
  der: Buffer;
  subject: Buffer;
  issuer: Buffer;
  spki: Buffer;
  notBefore: number;
  notAfter: number;
  /** The subjectKeyIdentifier value, if present. */
  ski?: Buffer;
  isCa: boolean;
  x509: X509Certificate;
}

export function certParts(certDer: Buffer): CertParts {
  const x509 = new X509Certificate(certDer);
  const top = der.children(der.parse(certDer));
  const tbs = der.children(der.expect(top[0], der.TAG.SEQUENCE, 'tbsCertificate'));
  const off = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const issuer = der.expect(tbs[off + 2], der.TAG.SEQUENCE, 'issuer').raw;
  const subject = der.expect(tbs[off + 4], der.TAG.SEQUENCE, 'subject').raw;
  const spki = der.expect(tbs[off + 5], der.TAG.SEQUENCE, 'subjectPublicKeyInfo').raw;
  let ski: Buffer | undefined;
  for (const n of tbs.slice(off + 6)) {
    if (n.tag !== 0xa3) continue;
    for (const ext of der.children(der.children(n)[0]!)) {
      const parts = der.children(ext);
      const id = der.decodeOid(der.expect(parts[0], der.TAG.OID, 'extnID').content);
      if (id === OID.subjectKeyIdentifier) {
        const value = parts[parts.length - 1]!.content;
        ski = Buffer.from(der.expect(der.parse(value), der.TAG.OCTET_STRING, 'ski').content);
      }
    }
  }
  return {
    der: certDer,
    subject: Buffer.from(subject),
    issuer: Buffer.from(issuer),
    spki: Buffer.from(spki),
    notBefore: Date.parse(x509.validFrom),
    notAfter: Date.parse(x509.validTo),
    ...(ski ? { ski } : {}),
    isCa: x509.ca,
    x509,
  };
}

export function certsFromPem(text: string, what: string): Buffer[] {
  const blocks = der.pemBlocks(text);
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der);
  if (certs.length === 0) throw new Error(`${what}: no CERTIFICATE block found`);
  return certs;
}

export function privateKeyFromPem(text: string, what: string): KeyObject {
  try {
    return createPrivateKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new Error(`${what}: cannot read private key: ${(e as Error).message}`);
  }
}

export function certPem(certDer: Uint8Array): string {
  return der.pem('CERTIFICATE', certDer);
}

export function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** True when the private key matches the certificate's public key. */
export function keyMatchesCert(key: KeyObject, cert: X509Certificate): boolean {
  const a = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const b = cert.publicKey.export({ type: 'spki', format: 'der' });
  return a.equals(b);
}
