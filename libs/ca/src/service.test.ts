/**
 * The CSR API over a real gRPC server on 127.0.0.1:0 with TLS: happy paths
 * (JWT, mTLS renewal), and a corpus of more than 200 distinct bad requests that
 * must each be refused with the right status while no certificate is issued.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { JwtAuthenticator, MtlsAuthenticator, type Authenticator } from './auth.js';
import { CertificateAuthority } from './authority.js';
import { createCsr } from './csr.js';
import * as der from './der.js';
import { MemoryCaStore } from './store.js';
import { checkSvidChain } from './svid-check.js';
import { caClient, opensslVerify, startCaServer, testIssuer, type CaClient, type TestIssuer, type TestServer } from '@sextant/testing/ca';
import { OID, extension, generateKey, keyPem, name, sanValue } from './x509.js';

const TD = 'cluster.local';
const NS = 'default';
const SA = 'app';
const ID = `spiffe://${TD}/ns/${NS}/sa/${SA}`;
const MAX_TTL = 7 * 86400;

let dir: string;
let ca: CertificateAuthority;
let issuer: TestIssuer;
let server: TestServer;
let client: CaClient;
let clockShift = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sextant-ca-svc-'));
  // Created three days in the past so the corpus can hold an already expired client certificate.
  clockShift = -3 * 86400_000;
  ca = await CertificateAuthority.open(new MemoryCaStore(), { maxTtlSeconds: MAX_TTL, now: () => Date.now() + clockShift });
  clockShift = 0;
  issuer = await testIssuer();
  const jwksFile = join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify(issuer.jwks));
  const auths: Authenticator[] = [new MtlsAuthenticator(ca), new JwtAuthenticator({ jwksFile, issuer: issuer.issuer, trustDomain: TD })];
  server = await startCaServer(ca, auths, ['sextant.example.com', '127.0.0.1']);
  client = caClient(server.address, ca.rootCertPem());
});
after(async () => {
  client?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function ecCsr(sans: { uris?: string[]; dnsNames?: string[]; ips?: string[] } = { uris: [ID] }): { csr: string; key: KeyObject } {
  const { privateKey } = generateKey('ecdsa-p256');
  return { csr: createCsr(privateKey, sans), key: privateKey };
}

describe('CreateCertificate', () => {
  test('JWT caller gets a conforming chain that openssl verifies', async () => {
    const chain = await client.createCertificate(ecCsr().csr, { token: await issuer.token(NS, SA) });
    assert.deepEqual(checkSvidChain(chain, { expectedId: ID, trustDomain: TD }).violations, []);
    const v = await opensslVerify(chain, { purpose: 'sslclient' });
    assert.ok(v.ok, v.output);
    assert.equal(chain[chain.length - 1], ca.rootCertPem(), 'root bundle last');
  });

  test('serving certificate: istiod.istio-system.svc plus configured names, from the same CA', async () => {
    const pems = server.credentials.servingChainPem().match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!;
    const leaf = new X509Certificate(pems[0]!);
    assert.match(leaf.subjectAltName!, /DNS:istiod\.istio-system\.svc/);
    assert.match(leaf.subjectAltName!, /DNS:sextant\.example\.com/);
    assert.match(leaf.subjectAltName!, /IP Address:127\.0\.0\.1/);
    const v = await opensslVerify([pems[0]!, ca.rootCertPem()], { purpose: 'sslserver' });
    assert.ok(v.ok, v.output);
  });

  test('validity_duration is honoured up to the maximum', async () => {
    const chain = await client.createCertificate(ecCsr().csr, { token: await issuer.token(NS, SA), validitySeconds: 7200 });
    const leaf = new X509Certificate(chain[0]!);
    assert.ok(Math.abs(Date.parse(leaf.validTo) - Date.now() - 7200_000) < 10_000);
  });

  test('renewal over mTLS with the current certificate, no token', async () => {
    const { csr, key } = ecCsr();
    const first = await client.createCertificate(csr, { token: await issuer.token(NS, SA) });
    const mtls = caClient(server.address, ca.rootCertPem(), { keyPem: keyPem(key), chainPem: first.slice(0, -1).join('') });
    try {
      const renewed = await mtls.createCertificate(ecCsr().csr);
      assert.deepEqual(checkSvidChain(renewed, { expectedId: ID }).violations, []);
      // The renewing caller can still only ask for its own identity.
      await assert.rejects(mtls.createCertificate(ecCsr({ uris: [`spiffe://${TD}/ns/${NS}/sa/other`] }).csr), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED);
    } finally {
      mtls.close();
    }
  });
});

// ------------------------------------------------------------------ corpus

interface BadCase {
  name: string;
  code: grpc.status;
  run: () => Promise<string[]>;
}

const b64u = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

/** A PKCS#10 request assembled by hand so that every field can be wrong. */
function rawCsr(o: {
  key: KeyObject;
  signer?: KeyObject;
  spki?: Buffer;
  version?: number;
  subject?: Buffer;
  sanValue?: Buffer;
  attrs?: Buffer;
  sigOid?: string;
  sigParams?: Buffer | null;
  hash?: string | null;
  mutateSig?: (s: Buffer) => Buffer;
  extra?: Buffer;
  unusedBits?: number;
}): string {
  const spki = o.spki ?? createPublicKey(o.key).export({ type: 'spki', format: 'der' });
  const attrs =
    o.attrs ??
    der.tlv(0xa0, ...(o.sanValue ? [der.seq(der.oid(OID.extensionRequest), der.set(der.seq(extension(OID.subjectAltName, true, o.sanValue))))] : []));
  const cri = der.seq(der.smallInt(o.version ?? 0), o.subject ?? name([]), spki, attrs);
  const kt = o.key.asymmetricKeyType;
  const hash = o.hash === undefined ? (kt === 'rsa' || kt === 'dsa' ? 'sha256' : kt === 'ec' ? 'sha256' : null) : o.hash;
  let sig: Buffer = cryptoSign(hash, cri, o.signer ?? o.key);
  if (o.mutateSig) sig = o.mutateSig(sig);
  const sigOid = o.sigOid ?? (kt === 'rsa' ? OID.rsaSha256 : OID.ecdsaSha256);
  const alg = o.sigParams === null || (o.sigParams === undefined && kt !== 'rsa') ? der.seq(der.oid(sigOid)) : der.seq(der.oid(sigOid), o.sigParams ?? der.nullValue());
  const body = [cri, alg, der.bitString(sig, o.unusedBits ?? 0)];
  if (o.extra) body.push(o.extra);
  return der.pem('CERTIFICATE REQUEST', der.seq(...body));
}

async function buildCorpus(): Promise<BadCase[]> {
  const cases: BadCase[] = [];
  const good = await issuer.token(NS, SA);
  const goodCsr = ecCsr().csr;
  const U = grpc.status.UNAUTHENTICATED;
  const I = grpc.status.INVALID_ARGUMENT;
  const P = grpc.status.PERMISSION_DENIED;
  const withToken = (name: string, code: grpc.status, token: string | undefined, csr = goodCsr, extra: { validitySeconds?: number | string; metadata?: Record<string, string> } = {}) =>
    cases.push({ name, code, run: () => client.createCertificate(csr, { ...(token !== undefined ? { token } : {}), ...extra }) });

  // ---- tokens: absent, garbage, malformed headers
  withToken('no credentials', U, undefined);
  cases.push({ name: 'authorization without Bearer', code: U, run: () => client.createCertificate(goodCsr, { metadata: { authorization: good } }) });
  cases.push({ name: 'Basic authorization', code: U, run: () => client.createCertificate(goodCsr, { metadata: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }) });
  const garbage = [
    '', '.', '..', '...', 'a.b.c', 'null', 'undefined', '{}', 'eyJ', 'eyJhbGciOiJub25lIn0', 'eyJhbGciOiJub25lIn0.e30.', 'eyJhbGciOiJub25lIn0.e30',
    '%%%.%%%.%%%', '~~~.~~~.~~~', 'Bearer', good.split('.').slice(0, 2).join('.'), good.split('.').reverse().join('.'),
    good.replace(/\./g, ''), good + '.extra', good.slice(0, good.length / 2), good.slice(1), `${good}x`, good.toUpperCase(), good.toLowerCase(),
  ];
  for (let i = 0; i < 16; i++) garbage.push(randomBytes(8 + i * 7).toString(i % 2 ? 'base64' : 'hex'));
  garbage.forEach((t, i) => withToken(`garbage token #${i}`, U, t));
  // ---- expired, not yet valid, no exp
  for (const s of [31, 120, 3600, 86400, 30 * 86400, 365 * 86400, 10 * 365 * 86400, 45, 600, 7200]) {
    withToken(`token expired ${s}s ago`, U, await issuer.token(NS, SA, { exp: Math.floor(Date.now() / 1000) - s }));
  }
  for (const s of [120, 3600, 86400]) withToken(`token not valid for ${s}s`, U, await issuer.token(NS, SA, { nbf: Math.floor(Date.now() / 1000) + s }));
  withToken('token without exp', U, await issuer.token(NS, SA, { exp: undefined }, { expiresIn: undefined }).then(() => signNoExp()));
  // ---- wrong audience
  for (const aud of ['istio-cb', 'ISTIO-CA', 'istio-ca ', ' istio-ca', 'kubernetes.default.svc', ['api', 'kube'], ['istio'], 'istio-ca-x', 'https://istio-ca', ['Istio-Ca']]) {
    withToken(`wrong audience ${JSON.stringify(aud)}`, U, await issuer.token(NS, SA, { aud }));
  }
  withToken('no audience', U, await issuer.token(NS, SA, { aud: undefined }));
  // ---- wrong issuer
  for (const iss of ['https://evil.test', 'https://issuer.test/', 'http://issuer.test', 'https://ISSUER.test', 'issuer.test', '', 'https://issuer.test.evil', 'kubernetes/serviceaccount', 'https://issuer.tes', 'https://issuer.test#']) {
    withToken(`wrong issuer ${JSON.stringify(iss)}`, U, await issuer.token(NS, SA, { iss }));
  }
  // ---- forged
  const [h, p] = good.split('.') as [string, string, string];
  const otherPayload = b64u({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'system:serviceaccount:kube-system:admin' });
  const sig = good.split('.')[2]!;
  const flip = (s: string, i: number) => {
    const b = Buffer.from(s, 'base64url');
    b[i % b.length]! ^= 0x01;
    return b.toString('base64url');
  };
  withToken('forged: other key, same kid', U, await issuer.forged(NS, SA));
  withToken('forged: other key, admin subject', U, await issuer.forged('kube-system', 'admin'));
  withToken('forged: payload swapped', U, `${h}.${otherPayload}.${sig}`);
  withToken('forged: alg none', U, `${b64u({ alg: 'none', kid: 'k1' })}.${p}.`);
  withToken('forged: alg HS256', U, `${b64u({ alg: 'HS256', kid: 'k1' })}.${p}.${Buffer.from('x').toString('base64url')}`);
  for (const i of [0, 5, 17, 31, 40, 63]) withToken(`forged: signature byte ${i} flipped`, U, `${h}.${p}.${flip(sig, i)}`);
  withToken('forged: truncated signature', U, `${h}.${p}.${sig.slice(0, 20)}`);
  withToken('forged: unknown kid', U, `${b64u({ alg: 'ES256', kid: 'k2' })}.${p}.${sig}`);
  // ---- bad subjects
  for (const sub of ['system:serviceaccount:default', 'user:alice', 'system:serviceaccount:Default:app', 'system:serviceaccount::app', 'system:serviceaccount:default:', 'system:serviceaccount:a:b:c',
    'system:node:worker-1', 'system:serviceaccount:de/fault:app', 'spiffe://cluster.local/ns/default/sa/app', 'system:serviceaccount:default:APP']) {
    withToken(`bad subject ${sub}`, U, await issuer.token(NS, SA, { sub }));
  }
  withToken('kubernetes.io claim disagrees (namespace)', U, await issuer.token(NS, SA, { 'kubernetes.io': { namespace: 'other', serviceaccount: { name: SA } } }));
  withToken('kubernetes.io claim disagrees (account)', U, await issuer.token(NS, SA, { 'kubernetes.io': { namespace: NS, serviceaccount: { name: 'x' } } }));
  // ---- oversized tokens
  for (const n of [16 * 1024 + 1, 32 * 1024, 60 * 1024]) withToken(`oversized token ${n} bytes`, U, 'a'.repeat(n));
  withToken('impersonation requested', U, good, goodCsr, { metadata: {} }); // replaced below
  cases[cases.length - 1] = {
    name: 'impersonation requested',
    code: U,
    run: () => impersonate(good),
  };
  // ---- client certificates that are not this CA's, or expired
  const foreign = await CertificateAuthority.open(new MemoryCaStore());
  const fk = generateKey('ecdsa-p256').privateKey;
  const foreignChain = foreign.issue({ csr: createCsr(fk, { uris: [ID] }), identity: ID }).certChain;
  cases.push({ name: 'client certificate from a foreign CA', code: U, run: () => withClientCert(fk, foreignChain.slice(0, -1).join('')) });
  clockShift = -2 * 86400_000;
  const ek = generateKey('ecdsa-p256').privateKey;
  const expiredChain = ca.issue({ csr: createCsr(ek, { uris: [ID] }), identity: ID, ttlSeconds: 86400 }).certChain;
  clockShift = 0;
  cases.push({ name: 'expired client certificate', code: U, run: () => withClientCert(ek, expiredChain.slice(0, -1).join('')) });

  // ---- CSRs: garbage
  const ec = generateKey('ecdsa-p256').privateKey;
  const goodDer = der.pemBlocks(createCsr(ec, { uris: [ID] }))[0]!.der;
  const garbageCsrs: string[] = [
    '', ' ', 'hello', '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----', goodCsr.replace('REQUEST-----\n', 'REQUEST-----\n!!'),
    goodCsr.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'), goodCsr.replace(/CERTIFICATE REQUEST/g, 'PRIVATE KEY'), goodCsr + goodCsr,
    goodCsr.slice(0, goodCsr.length / 2), goodCsr.replace(/[A-Za-z]/, '*'), der.pem('CERTIFICATE REQUEST', Buffer.alloc(0)),
    der.pem('CERTIFICATE REQUEST', Buffer.concat([goodDer, Buffer.from([0])])), der.pem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x80, 0, 0])),
    der.pem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), der.pem('CERTIFICATE REQUEST', Buffer.from([0x31, 0x00])),
    der.pem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x00])), der.pem('CERTIFICATE REQUEST', der.seq(der.seq(), der.seq(), der.bitString(Buffer.alloc(4)))),
    der.pem('CERTIFICATE REQUEST', der.seq(...Array(40).fill(der.seq()))), keyPem(ec), createPublicKey(ec).export({ type: 'spki', format: 'pem' }).toString(),
    der.pem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x81, 0x05, 1, 2, 3, 4, 5])),
  ];
  for (const cut of [3, 10, 40, 80, 120, 160, goodDer.length - 1]) garbageCsrs.push(der.pem('CERTIFICATE REQUEST', goodDer.subarray(0, cut)));
  for (let i = 0; i < 10; i++) garbageCsrs.push(der.pem('CERTIFICATE REQUEST', randomBytes(20 + i * 30)));
  garbageCsrs.forEach((c, i) => withToken(`garbage CSR #${i}`, I, good, c));
  // ---- CSRs: bad signatures and algorithms
  const rsa = generateKey('rsa-2048').privateKey;
  const sanId = sanValue({ uris: [ID] });
  for (const i of [0, 8, 20, 40, 60]) withToken(`CSR signature byte ${i} flipped`, I, good, rawCsr({ key: ec, sanValue: sanId, mutateSig: (s) => ((s[i % s.length]! ^= 0x40), s) }));
  withToken('CSR signed by another key', I, good, rawCsr({ key: ec, signer: generateKey('ecdsa-p256').privateKey, sanValue: sanId }));
  withToken('CSR RSA signed by another RSA key', I, good, rawCsr({ key: rsa, signer: generateKey('rsa-2048').privateKey, sanValue: sanId }));
  withToken('CSR RSA signature flipped', I, good, rawCsr({ key: rsa, sanValue: sanId, mutateSig: (s) => ((s[100]! ^= 1), s) }));
  withToken('CSR EC key with RSA algorithm', I, good, rawCsr({ key: ec, sanValue: sanId, sigOid: OID.rsaSha256 }));
  withToken('CSR RSA key with ECDSA algorithm', I, good, rawCsr({ key: rsa, sanValue: sanId, sigOid: OID.ecdsaSha256, sigParams: null }));
  withToken('CSR sha1WithRSA', I, good, rawCsr({ key: rsa, sanValue: sanId, sigOid: '1.2.840.113549.1.1.5', hash: 'sha1' }));
  withToken('CSR ecdsa-with-SHA1', I, good, rawCsr({ key: ec, sanValue: sanId, sigOid: '1.2.840.10045.4.1', hash: 'sha1' }));
  withToken('CSR md5WithRSA', I, good, rawCsr({ key: rsa, sanValue: sanId, sigOid: '1.2.840.113549.1.1.4', hash: 'md5' }));
  withToken('CSR hash mismatch (sha384 OID, sha256 signature)', I, good, rawCsr({ key: ec, sanValue: sanId, sigOid: OID.ecdsaSha384 }));
  withToken('CSR ECDSA algorithm with parameters', I, good, rawCsr({ key: ec, sanValue: sanId, sigParams: der.nullValue() }));
  withToken('CSR signature BIT STRING with unused bits', I, good, rawCsr({ key: ec, sanValue: sanId, unusedBits: 3 }));
  withToken('CSR version 1', I, good, rawCsr({ key: ec, sanValue: sanId, version: 1 }));
  withToken('CSR version 2', I, good, rawCsr({ key: ec, sanValue: sanId, version: 2 }));
  withToken('CSR with a fourth element', I, good, rawCsr({ key: ec, sanValue: sanId, extra: der.nullValue() }));
  withToken('CSR attributes not [0]', I, good, rawCsr({ key: ec, attrs: der.set() }));
  withToken('CSR SPKI of another key than the signer', I, good, rawCsr({ key: ec, spki: createPublicKey(generateKey('ecdsa-p256').privateKey).export({ type: 'spki', format: 'der' }), sanValue: sanId }));
  withToken('CSR SPKI garbage', I, good, rawCsr({ key: ec, spki: der.seq(der.seq(der.oid(OID.ecPublicKey), der.oid(OID.p256)), der.bitString(randomBytes(65))), sanValue: sanId }));
  // ---- weak or unsupported keys
  const weak: [string, KeyObject][] = [
    ['RSA 1024', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey],
    ['RSA 1536', generateKeyPairSync('rsa', { modulusLength: 1536 }).privateKey],
    ['RSA 2040', generateKeyPairSync('rsa', { modulusLength: 2040 }).privateKey],
    ['RSA 512', generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey],
    ['EC P-521', generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey],
    ['EC secp256k1', generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey],
    ['EC P-224', generateKeyPairSync('ec', { namedCurve: 'P-224' }).privateKey],
    ['EC brainpoolP256r1', generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' }).privateKey],
    ['Ed25519', generateKeyPairSync('ed25519').privateKey],
    ['Ed448', generateKeyPairSync('ed448').privateKey],
    ['DSA 2048', generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 }).privateKey],
    ['RSA e=3 1024', generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 3 }).privateKey],
  ];
  for (const [n, k] of weak) {
    const kt = k.asymmetricKeyType;
    const sigOid = kt === 'ed25519' ? '1.3.101.112' : kt === 'ed448' ? '1.3.101.113' : kt === 'dsa' ? '2.16.840.1.101.3.4.3.2' : undefined;
    withToken(`weak/unsupported key ${n}`, I, good, rawCsr({ key: k, sanValue: sanId, ...(sigOid ? { sigOid, sigParams: null } : {}), ...(kt === 'ed25519' || kt === 'ed448' ? { hash: null } : {}) }));
  }
  // ---- oversized
  withToken('CSR of 17 KiB (many SANs)', I, good, createCsr(ec, { uris: [ID], dnsNames: Array.from({ length: 600 }, (_, i) => `host-${i}.example.com`) }));
  withToken('CSR of 1 MiB', I, good, 'A'.repeat(1024 * 1024));
  withToken('CSR with a 20 KiB subject', I, good, rawCsr({ key: ec, subject: name([{ oid: OID.organization, value: 'x'.repeat(20 * 1024) }]) }));
  // ---- validity_duration
  for (const v of [MAX_TTL + 1, MAX_TTL * 2, 10 ** 12, '9223372036854775807', -1, -86400, '-9223372036854775808']) {
    withToken(`validity_duration ${v}`, I, good, goodCsr, { validitySeconds: v });
  }

  // ---- foreign identities (valid token for default/app)
  const foreignUris = [
    `spiffe://${TD}/ns/${NS}/sa/other`, `spiffe://${TD}/ns/kube-system/sa/${SA}`, `spiffe://evil.local/ns/${NS}/sa/${SA}`, `${ID}/`, `spiffe://${TD}/ns/${NS}/sa/APP`,
    `${ID}?x=1`, `${ID}/extra`, `http://${TD}/ns/${NS}/sa/${SA}`, `spiffe://${TD}`, `spiffe://${TD}/ns/${NS}`, `spiffe://CLUSTER.LOCAL/ns/${NS}/sa/${SA}`,
    `spiffe://${TD}/ns/istio-system/sa/istiod`, `spiffe://${TD}/ns/${NS}/sa/${SA}#frag`, `spiffe://${TD}//ns/${NS}/sa/${SA}`,
  ];
  for (const u of foreignUris) withToken(`foreign URI ${u}`, P, good, createCsr(ec, { uris: [u] }));
  for (const u of foreignUris.slice(0, 4)) withToken(`own + foreign URI ${u}`, P, good, createCsr(ec, { uris: [ID, u] }));
  for (const d of ['istiod.istio-system.svc', 'evil.example.com', 'localhost', '*.example.com', 'app.default.svc.cluster.local']) withToken(`DNS SAN ${d}`, P, good, createCsr(ec, { uris: [ID], dnsNames: [d] }));
  for (const ip of ['10.0.0.1', '127.0.0.1', '::1']) withToken(`IP SAN ${ip}`, P, good, createCsr(ec, { uris: [ID], ips: [ip] }));
  withToken('email SAN', P, good, rawCsr({ key: ec, sanValue: der.seq(der.implicitPrimitive(6, Buffer.from(ID)), der.implicitPrimitive(1, Buffer.from('a@b.c'))) }));
  withToken('directoryName SAN', P, good, rawCsr({ key: ec, sanValue: der.seq(der.implicitPrimitive(6, Buffer.from(ID)), der.tlv(0xa4, name([{ oid: OID.commonName, value: 'x' }]))) }));
  withToken('otherName SAN', P, good, rawCsr({ key: ec, sanValue: der.seq(der.tlv(0xa0, der.oid('1.3.6.1.4.1.311.20.2.3'), der.explicit(0, der.tlv(der.TAG.UTF8_STRING, Buffer.from('admin'))))) }));
  withToken('duplicate own URI', P, good, createCsr(ec, { uris: [ID, ID] }));
  withToken('mTLS-less CSR for the token of another account', P, await issuer.token(NS, 'other'), createCsr(ec, { uris: [ID] }));
  return cases;

  async function signNoExp(): Promise<string> {
    const { SignJWT } = await import('jose');
    const fake = `${b64u({ alg: 'ES256', kid: 'k1' })}.${b64u({ sub: `system:serviceaccount:${NS}:${SA}`, aud: ['istio-ca'], iss: issuer.issuer })}`;
    void SignJWT;
    return `${fake}.${good.split('.')[2]}`;
  }
  async function impersonate(token: string): Promise<string[]> {
    const Ctor = (await import('./service.js')).caServiceClient();
    const c = new Ctor(server.address, grpc.credentials.createSsl(Buffer.from(ca.rootCertPem())), { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc' });
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    try {
      return await new Promise((resolve, reject) =>
        (c as unknown as { CreateCertificate: Function }).CreateCertificate(
          { csr: goodCsr, validity_duration: '0', metadata: { fields: { ImpersonatedIdentity: { stringValue: `spiffe://${TD}/ns/kube-system/sa/admin` } } } },
          md,
          (e: Error | null, r?: { cert_chain: string[] }) => (e ? reject(e) : resolve(r!.cert_chain)),
        ),
      );
    } finally {
      c.close();
    }
  }
  async function withClientCert(key: KeyObject, chainPem: string): Promise<string[]> {
    const c = caClient(server.address, ca.rootCertPem(), { keyPem: keyPem(key), chainPem });
    try {
      return await c.createCertificate(ecCsr().csr);
    } finally {
      c.close();
    }
  }
}

describe('bad-input corpus', () => {
  test('every bad CSR or credential is refused with the right status and no certificate is issued', async (t) => {
    const cases = await buildCorpus();
    assert.ok(cases.length >= 200, `corpus has ${cases.length} cases`);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are distinct');
    const issuedBefore = ca.stats.issued;
    const apiIssuedBefore = server.service.stats.issued;
    const failures: string[] = [];
    const codes: Record<string, number> = {};
    for (const c of cases) {
      try {
        const chain = await c.run();
        failures.push(`${c.name}: was ACCEPTED (${chain.length} certificates)`);
      } catch (e) {
        const err = e as grpc.ServiceError;
        codes[grpc.status[err.code]!] = (codes[grpc.status[err.code]!] ?? 0) + 1;
        if (err.code !== c.code) failures.push(`${c.name}: got ${grpc.status[err.code]} (${err.details}), want ${grpc.status[c.code]}`);
        else if (!err.details || err.details.length < 10) failures.push(`${c.name}: unclear message ${JSON.stringify(err.details)}`);
      }
    }
    t.diagnostic(`${cases.length} cases: ${JSON.stringify(codes)}`);
    assert.deepEqual(failures, []);
    assert.equal(ca.stats.issued, issuedBefore, 'no certificate signed');
    assert.equal(server.service.stats.issued, apiIssuedBefore, 'no certificate returned');
    // The corpus covers every refusal kind.
    assert.ok(codes.UNAUTHENTICATED! >= 80 && codes.INVALID_ARGUMENT! >= 60 && codes.PERMISSION_DENIED! >= 25, JSON.stringify(codes));
    // The server is still healthy afterwards.
    const chain = await client.createCertificate(ecCsr().csr, { token: await issuer.token(NS, SA) });
    assert.deepEqual(checkSvidChain(chain, { expectedId: ID }).violations, []);
  });
});
