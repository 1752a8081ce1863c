/** PKCS#10 certificate requests: strict parsing, signature and key checks, and creation. */
import { createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as der from './der.js';
import { invalid } from './errors.js';
import { OID, describeKey, extension, name, sanValue, signatureAlgorithmFor, spkiDer, type KeyDescription, type NameAttr, type SanEntries } from './x509.js';

export interface ParsedCsr {
  publicKey: KeyObject;
  /** DER SubjectPublicKeyInfo, copied into the certificate as is. */
  spki: Buffer;
  key: KeyDescription;
  uris: string[];
  dnsNames: string[];
  ips: string[];
  emails: string[];
  /** Count of other GeneralName kinds (otherName, directoryName, ...). */
  otherNames: number;
}

export const DEFAULT_MAX_CSR_BYTES = 16 * 1024;

const HASH_BY_SIG_OID: Record<string, { kind: 'ec' | 'rsa'; hash: string }> = {
  [OID.ecdsaSha256]: { kind: 'ec', hash: 'sha256' },
  [OID.ecdsaSha384]: { kind: 'ec', hash: 'sha384' },
  [OID.ecdsaSha512]: { kind: 'ec', hash: 'sha512' },
  [OID.rsaSha256]: { kind: 'rsa', hash: 'sha256' },
  [OID.rsaSha384]: { kind: 'rsa', hash: 'sha384' },
  [OID.rsaSha512]: { kind: 'rsa', hash: 'sha512' },
};

function fail(msg: string): never {
  throw invalid(`invalid CSR: ${msg}`);
}

/** Reads one PEM "CERTIFICATE REQUEST" and checks everything about it except identity. */
export function parseCsr(pemText: string, maxBytes = DEFAULT_MAX_CSR_BYTES): ParsedCsr {
  if (typeof pemText !== 'string' || pemText.length === 0) fail('csr field is empty');
  if (Buffer.byteLength(pemText) > maxBytes) fail(`csr is ${Buffer.byteLength(pemText)} bytes, over the ${maxBytes}-byte limit`);
  let blocks: der.PemBlock[];
  try {
    blocks = der.pemBlocks(pemText);
  } catch (e) {
    fail((e as Error).message);
  }
  if (blocks.length === 0) fail('no PEM block found');
  if (blocks.length > 1) fail(`expected one PEM block, found ${blocks.length}`);
  const block = blocks[0]!;
  if (block.label !== 'CERTIFICATE REQUEST' && block.label !== 'NEW CERTIFICATE REQUEST') fail(`PEM block is ${block.label}, not CERTIFICATE REQUEST`);
  try {
    return parseCsrDer(block.der);
  } catch (e) {
    if (e instanceof der.DerError) fail(`malformed DER: ${e.message}`);
    throw e;
  }
}

export function parseCsrDer(csrDer: Buffer): ParsedCsr {
  const top = der.children(der.expect(der.parse(csrDer), der.TAG.SEQUENCE, 'CertificationRequest'));
  if (top.length !== 3) fail(`CertificationRequest has ${top.length} elements, expected 3`);
  const cri = der.expect(top[0], der.TAG.SEQUENCE, 'certificationRequestInfo');
  const sigAlg = der.children(der.expect(top[1], der.TAG.SEQUENCE, 'signatureAlgorithm'));
  const signature = der.readBitString(top[2]!, 'signature');
  if (top[2]!.content[0] !== 0) fail('signature BIT STRING has unused bits');

  const criParts = der.children(cri);
  if (criParts.length < 3 || criParts.length > 4) fail('certificationRequestInfo has the wrong number of elements');
  if (der.readInteger(criParts[0]!, 'version') !== 0n) fail('version must be 0 (v1)');
  der.expect(criParts[1], der.TAG.SEQUENCE, 'subject');
  const spkiNode = der.expect(criParts[2], der.TAG.SEQUENCE, 'subjectPKInfo');
  const attrs = criParts[3];
  if (attrs && attrs.tag !== 0xa0) fail('attributes must be [0]');

  const publicKey = publicKeyFromSpki(Buffer.from(spkiNode.raw));
  const key = describeKey(publicKey);
  if (typeof key === 'string') fail(`weak or unsupported key: ${key}`);

  const algOid = der.decodeOid(der.expect(sigAlg[0], der.TAG.OID, 'signatureAlgorithm.algorithm').content);
  const alg = HASH_BY_SIG_OID[algOid];
  if (!alg) fail(`signature algorithm ${algOid} is not allowed`);
  if (alg.kind !== key.kind) fail(`signature algorithm ${algOid} does not match the ${key.kind.toUpperCase()} key`);
  if (sigAlg.length > 2 || (sigAlg.length === 2 && (alg.kind === 'ec' || sigAlg[1]!.tag !== der.TAG.NULL || sigAlg[1]!.content.length))) {
    fail('signature algorithm has unexpected parameters');
  }
  let ok = false;
  try {
    ok = cryptoVerify(alg.hash, cri.raw, publicKey, signature);
  } catch {
    ok = false;
  }
  if (!ok) fail('signature does not verify with the request\'s public key');

  const out: ParsedCsr = {
    publicKey,
    // publicKeyFromSpki checked this encoding strictly (minimal DER, no extra bytes) for every key kind accepted.
    spki: Buffer.from(spkiNode.raw),
    key,
    uris: [],
    dnsNames: [],
    ips: [],
    emails: [],
    otherNames: 0,
  };
  if (attrs) readAttributes(attrs, out);
  return out;
}

function readAttributes(attrs: der.Node, out: ParsedCsr): void {
  let sawExtensions = false;
  for (const attr of der.children(attrs)) {
    const parts = der.children(der.expect(attr, der.TAG.SEQUENCE, 'attribute'));
    const type = der.decodeOid(der.expect(parts[0], der.TAG.OID, 'attribute.type').content);
    const values = der.children(der.expect(parts[1], der.TAG.SET, 'attribute.values'));
    if (type !== OID.extensionRequest) continue;
    if (sawExtensions || values.length !== 1) fail('extensionRequest must appear once with one value');
    sawExtensions = true;
    const seen = new Set<string>();
    for (const ext of der.children(der.expect(values[0], der.TAG.SEQUENCE, 'extensions'))) {
      const e = der.children(der.expect(ext, der.TAG.SEQUENCE, 'extension'));
      const id = der.decodeOid(der.expect(e[0], der.TAG.OID, 'extnID').content);
      if (seen.has(id)) fail(`extension ${id} appears twice`);
      seen.add(id);
      const value = der.expect(e[e.length - 1], der.TAG.OCTET_STRING, 'extnValue').content;
      if (id === OID.subjectAltName) readSans(Buffer.from(value), out);
    }
  }
}

function readSans(value: Buffer, out: ParsedCsr): void {
  const names = der.children(der.expect(der.parse(value), der.TAG.SEQUENCE, 'subjectAltName'));
  for (const n of names) {
    const text = () => {
      const s = n.content.toString('latin1');
      if (!/^[\x20-\x7e]*$/.test(s)) fail('subjectAltName has non-printable characters');
      return s;
    };
    switch (n.tag) {
      case 0x81:
        out.emails.push(text());
        break;
      case 0x82:
        out.dnsNames.push(text());
        break;
      case 0x86:
        out.uris.push(text());
        break;
      case 0x87:
        out.ips.push(n.content.length === 4 ? [...n.content].join('.') : n.content.toString('hex'));
        break;
      default:
        out.otherNames++;
    }
  }
}

const b64url = (b: Buffer) => b.toString('base64url');
const CURVES: Record<string, { crv: string; len: number }> = { [OID.p256]: { crv: 'P-256', len: 32 }, [OID.p384]: { crv: 'P-384', len: 48 } };

/**
 * Reads a SubjectPublicKeyInfo. RSA and EC P-256/P-384 keys are decoded here
 * and imported as JWK, which OpenSSL 3 does several times faster than decoding
 * SPKI (the point is still checked to be on the curve); anything else goes to
 * the generic decoder and is refused later by describeKey.
 */
export function publicKeyFromSpki(spki: Buffer): KeyObject {
  const parts = der.children(der.expect(der.parse(spki), der.TAG.SEQUENCE, 'subjectPKInfo'));
  if (parts.length !== 2) fail('subjectPKInfo must have 2 elements');
  const alg = der.children(der.expect(parts[0], der.TAG.SEQUENCE, 'subjectPKInfo.algorithm'));
  const algOid = der.decodeOid(der.expect(alg[0], der.TAG.OID, 'subjectPKInfo.algorithm.algorithm').content);
  const bits = der.readBitString(parts[1]!, 'subjectPublicKey');
  if (parts[1]!.content[0] !== 0) fail('subjectPublicKey has unused bits');
  try {
    if (algOid === OID.rsaEncryption) {
      if (alg.length !== 2 || alg[1]!.tag !== der.TAG.NULL || alg[1]!.content.length) fail('RSA key algorithm parameters must be NULL');
      const rsa = der.children(der.expect(der.parse(bits), der.TAG.SEQUENCE, 'RSAPublicKey'));
      if (rsa.length !== 2) fail('RSAPublicKey must have 2 elements');
      const mag = (n: der.Node, what: string) => {
        if (der.readInteger(n, what) <= 0n) fail(`RSA ${what} is not positive`);
        return n.content[0] === 0 ? n.content.subarray(1) : n.content;
      };
      return createPublicKey({ key: { kty: 'RSA', n: b64url(mag(rsa[0]!, 'modulus')), e: b64url(mag(rsa[1]!, 'exponent')) }, format: 'jwk' });
    }
    if (algOid === OID.ecPublicKey && alg.length === 2 && alg[1]!.tag === der.TAG.OID) {
      const curve = CURVES[der.decodeOid(alg[1]!.content)];
      if (curve && bits.length === 1 + 2 * curve.len && bits[0] === 0x04) {
        return createPublicKey({
          key: { kty: 'EC', crv: curve.crv, x: b64url(bits.subarray(1, 1 + curve.len)), y: b64url(bits.subarray(1 + curve.len)) },
          format: 'jwk',
        });
      }
    }
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (e) {
    if (e instanceof der.DerError || (e as { codeName?: string }).codeName) throw e;
    fail(`public key cannot be read: ${(e as Error).message}`);
  }
}

export interface CsrOptions extends SanEntries {
  subject?: NameAttr[];
}

/** Creates a PEM CSR signed by `privateKey` (used by tests, benchmarks and the serving certificate). */
export function createCsr(privateKey: KeyObject, opts: CsrOptions = {}): string {
  const spki = spkiDer(createPublicKey(privateKey));
  const exts: Buffer[] = [];
  const sans = (opts.uris?.length ?? 0) + (opts.dnsNames?.length ?? 0) + (opts.ips?.length ?? 0);
  if (sans) exts.push(extension(OID.subjectAltName, !opts.subject?.length, sanValue(opts)));
  const attrs = exts.length ? [der.seq(der.oid(OID.extensionRequest), der.set(der.seq(...exts)))] : [];
  const cri = der.seq(der.smallInt(0), name(opts.subject ?? []), spki, der.tlv(0xa0, ...attrs));
  const alg = signatureAlgorithmFor(privateKey);
  const sig = cryptoSign(alg.hash, cri, privateKey);
  return der.pem('CERTIFICATE REQUEST', der.seq(cri, alg.algId, der.bitString(sig)));
}
