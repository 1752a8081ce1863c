/**
 * An X.509-SVID conformance checker written from the SPIFFE standard
 * (standards/X509-SVID.md) and RFC 5280. It is deliberately independent of the
 * issuing code: it parses with @peculiar/x509 / asn1-x509 and verifies
 * signatures with node:crypto. Pure: a chain in, a list of violations out.
 */
import { X509Certificate as NodeCert } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate as AsnCertificate } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { parseSpiffeId } from './spiffe.js';

export interface SvidCheckOptions {
  /** The SPIFFE ID the leaf must carry. */
  expectedId?: string;
  /** The trust domain the leaf must belong to. */
  trustDomain?: string;
  /** Evaluation time (default now). */
  now?: Date;
  /** Trusted roots (PEM); when given, the chain must end in one of them. */
  trustBundle?: string | string[];
}

export interface SvidCheckResult {
  ok: boolean;
  violations: string[];
  spiffeId?: string;
}

const OIDS = {
  san: '2.5.29.17',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  eku: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

function splitPem(input: string | string[]): string[] {
  const text = Array.isArray(input) ? input.join('\n') : input;
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/** Checks a chain ordered leaf → intermediates → root (the root may be omitted when trustBundle is given). */
export function checkSvidChain(chain: string | string[], opts: SvidCheckOptions = {}): SvidCheckResult {
  const v: string[] = [];
  const pems = splitPem(chain);
  if (pems.length === 0) return { ok: false, violations: ['no certificate in the chain'] };
  const now = opts.now ?? new Date();
  let certs: { p: x509.X509Certificate; n: NodeCert; asn: AsnCertificate }[];
  try {
    certs = pems.map((pem) => {
      const p = new x509.X509Certificate(pem);
      return { p, n: new NodeCert(pem), asn: AsnConvert.parse(p.rawData, AsnCertificate) };
    });
  } catch (e) {
    return { ok: false, violations: [`unparsable certificate: ${(e as Error).message}`] };
  }

  // An Istio response ends with the whole trust bundle: the chain stops at its
  // first self-signed root; further certificates must be other trusted roots.
  const firstRoot = certs.findIndex(({ n }) => n.checkIssued(n) && n.verify(n.publicKey));
  if (firstRoot > 0 && firstRoot < certs.length - 1) {
    const extra = certs.splice(firstRoot + 1);
    extra.forEach(({ n }, j) => {
      if (!(n.ca && n.checkIssued(n) && n.verify(n.publicKey))) v.push(`certificate ${firstRoot + 1 + j} follows the root but is not another self-signed root`);
    });
  }

  certs.forEach(({ p, asn }, i) => {
    const what = i === 0 ? 'leaf' : `chain[${i}]`;
    if (asn.tbsCertificate.version !== 2) v.push(`${what}: not an X.509 v3 certificate`);
    const ids = (asn.tbsCertificate.extensions ?? []).map((e) => e.extnID);
    if (new Set(ids).size !== ids.length) v.push(`${what}: an extension appears more than once`);
    const serial = Buffer.from(asn.tbsCertificate.serialNumber);
    if (serial.length > 20) v.push(`${what}: serial number longer than 20 octets`);
    if (serial[0]! & 0x80 || serial.every((b) => b === 0)) v.push(`${what}: serial number is not positive`);
    if (p.notBefore >= p.notAfter) v.push(`${what}: NotBefore is not before NotAfter`);
    if (now < p.notBefore || now > p.notAfter) v.push(`${what}: not valid at ${now.toISOString()}`);
  });

  // ---- leaf (X509-SVID §4.1, §4.3, §4.4, §5)
  const leaf = certs[0]!.p;
  const sanExt = leaf.extensions.find((e) => e.type === OIDS.san);
  let spiffeId: string | undefined;
  if (!sanExt) v.push('leaf: no subjectAltName extension');
  else {
    let names: x509.GeneralName[] = [];
    try {
      names = [...new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.items];
    } catch (e) {
      v.push(`leaf: subjectAltName cannot be parsed: ${(e as Error).message}`);
    }
    const uris = names.filter((n) => n.type === 'url').map((n) => n.value);
    if (uris.length !== 1) v.push(`leaf: ${uris.length} URI SANs, exactly one is required`);
    else {
      spiffeId = uris[0]!;
      const id = parseSpiffeId(spiffeId);
      if (typeof id === 'string') v.push(`leaf: URI SAN ${spiffeId} is not a SPIFFE ID: ${id}`);
      else {
        if (!id.path) v.push('leaf: SPIFFE ID has no path (a leaf SVID identifies a workload)');
        if (opts.trustDomain && id.trustDomain !== opts.trustDomain) v.push(`leaf: trust domain ${id.trustDomain}, expected ${opts.trustDomain}`);
      }
      if (opts.expectedId && spiffeId !== opts.expectedId) v.push(`leaf: SPIFFE ID ${spiffeId}, expected ${opts.expectedId}`);
    }
    const subjectEmpty = certs[0]!.asn.tbsCertificate.subject.length === 0;
    if (subjectEmpty && !sanExt.critical) v.push('leaf: subject is empty but subjectAltName is not critical (RFC 5280 4.2.1.6)');
  }
  const leafBc = leaf.getExtension(x509.BasicConstraintsExtension);
  if (!leafBc) v.push('leaf: no basicConstraints extension');
  else if (leafBc.ca) v.push('leaf: basicConstraints cA is true');
  const leafKu = leaf.getExtension(x509.KeyUsagesExtension);
  if (!leafKu) v.push('leaf: no keyUsage extension');
  else {
    if (!leafKu.critical) v.push('leaf: keyUsage is not critical');
    if (!(leafKu.usages & x509.KeyUsageFlags.digitalSignature)) v.push('leaf: keyUsage lacks digitalSignature');
    if (leafKu.usages & x509.KeyUsageFlags.keyCertSign) v.push('leaf: keyUsage has keyCertSign');
    if (leafKu.usages & x509.KeyUsageFlags.cRLSign) v.push('leaf: keyUsage has cRLSign');
    const rsa = certs[0]!.n.publicKey.asymmetricKeyType === 'rsa';
    if (rsa && !(leafKu.usages & x509.KeyUsageFlags.keyEncipherment)) v.push('leaf: RSA key without keyEncipherment');
  }
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku) v.push('leaf: no extendedKeyUsage extension');
  else {
    const u = eku.usages.map(String);
    if (!u.includes(OIDS.serverAuth)) v.push('leaf: extendedKeyUsage lacks serverAuth');
    if (!u.includes(OIDS.clientAuth)) v.push('leaf: extendedKeyUsage lacks clientAuth');
  }

  // ---- signing certificates (§4.1, §4.3)
  certs.slice(1).forEach(({ p }, j) => {
    const what = `chain[${j + 1}]`;
    const bc = p.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) v.push(`${what}: signing certificate without basicConstraints cA=true`);
    const ku = p.getExtension(x509.KeyUsagesExtension);
    if (!ku || !(ku.usages & x509.KeyUsageFlags.keyCertSign)) v.push(`${what}: signing certificate without keyCertSign`);
    const san = p.extensions.find((e) => e.type === OIDS.san);
    if (san) {
      try {
        for (const n of new x509.SubjectAlternativeNameExtension(san.rawData).names.items) {
          if (n.type !== 'url') continue;
          const id = parseSpiffeId(n.value);
          if (typeof id === 'string' || id.path) v.push(`${what}: signing certificate URI SAN ${n.value} is not a bare trust-domain SPIFFE ID`);
        }
      } catch {
        v.push(`${what}: subjectAltName cannot be parsed`);
      }
    }
  });

  // ---- chain order and signatures: each certificate is issued by the next
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!.n;
    const parent = certs[i + 1]!.n;
    if (!child.checkIssued(parent)) v.push(`chain[${i}] is not issued by chain[${i + 1}] (names/key identifiers differ): wrong order?`);
    else if (!child.verify(parent.publicKey)) v.push(`chain[${i}]: signature does not verify with chain[${i + 1}]'s key`);
    if (certs[i]!.p.notAfter > certs[i + 1]!.p.notAfter) v.push(`chain[${i}]: NotAfter is later than its issuer's`);
  }
  const last = certs[certs.length - 1]!.n;
  const bundle = opts.trustBundle ? splitPem(opts.trustBundle).map((pem) => new NodeCert(pem)) : undefined;
  if (bundle) {
    const anchored = bundle.some((r) => r.raw.equals(last.raw) || (last.checkIssued(r) && last.verify(r.publicKey)));
    if (!anchored) v.push('chain does not end in a certificate of the trust bundle');
  } else if (certs.length < 2) {
    v.push('chain has only the leaf and no trust bundle was given');
  } else if (!(last.checkIssued(last) && last.verify(last.publicKey))) {
    v.push('last certificate of the chain is not a self-signed root');
  }

  return { ok: v.length === 0, violations: v, ...(spiffeId ? { spiffeId } : {}) };
}
