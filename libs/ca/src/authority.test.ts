import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { recordingLogger } from '@sextant/api';
import { CertificateAuthority } from './authority.js';
import { createCsr } from './csr.js';
import { CaError } from './errors.js';
import { FileCaStore, MemoryCaStore } from './store.js';
import { checkSvidChain } from './svid-check.js';
import { makePluggedCa, opensslVerify } from '@sextant/testing/ca';
import { generateKey, type KeyAlgorithm } from './x509.js';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sextant-ca-test-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function assertGoodChain(chain: string[], identity = ID): Promise<void> {
  const conf = checkSvidChain(chain, { expectedId: identity, trustDomain: 'cluster.local' });
  assert.deepEqual(conf.violations, [], 'X.509-SVID conformance');
  for (const purpose of ['sslclient', 'sslserver']) {
    const v = await opensslVerify(chain, { purpose });
    assert.ok(v.ok, `openssl verify -purpose ${purpose}: ${v.output}`);
  }
}

describe('self-signed root in --ca-dir', () => {
  test('created on first start in the cacerts layout, reused on the next', async () => {
    const dir = await tmp();
    const ca = await CertificateAuthority.open(new FileCaStore(dir));
    for (const f of ['root-cert.pem', 'ca-cert.pem', 'ca-key.pem', 'cert-chain.pem']) {
      assert.ok((await stat(join(dir, f))).size > 0, f);
    }
    assert.equal((await stat(join(dir, 'ca-key.pem'))).mode & 0o777, 0o600);
    const root = new X509Certificate(await readFile(join(dir, 'root-cert.pem'), 'utf8'));
    assert.ok(root.ca);
    assert.equal(root.publicKey.asymmetricKeyType, 'ec', 'default root key is ECDSA');
    assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * 86400_000);
    assert.ok(years > 9.99 && years < 10.01, `10-year lifetime, got ${years}`);
    assert.equal(ca.origin, 'self-signed');
    const again = await CertificateAuthority.open(new FileCaStore(dir));
    assert.equal(again.rootCertPem(), ca.rootCertPem(), 'same root after restart');
  });

  for (const caAlg of ['ecdsa-p256', 'rsa-2048'] as KeyAlgorithm[]) {
    for (const leafAlg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'] as KeyAlgorithm[]) {
      test(`${caAlg} CA signs a ${leafAlg} CSR: openssl verify and SVID conformance`, async () => {
        const ca = await CertificateAuthority.open(new MemoryCaStore(), { rootKeyAlgorithm: caAlg });
        const { privateKey } = generateKey(leafAlg);
        const r = ca.issue({ csr: createCsr(privateKey, { uris: [ID] }), identity: ID });
        assert.equal(r.certChain.length, 2, 'leaf + root');
        await assertGoodChain(r.certChain);
        const leaf = new X509Certificate(r.certChain[0]!);
        assert.ok(!leaf.subject, `empty subject, got ${leaf.subject}`);
        assert.equal(leaf.subjectAltName, `URI:${ID}`);
      });
    }
  }

  test('a CSR without SANs gets the caller identity', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore());
    const r = ca.issue({ csr: createCsr(generateKey('ecdsa-p256').privateKey), identity: ID });
    await assertGoodChain(r.certChain);
  });

  test('lifetime: default 24 h, requested honoured, above the maximum refused', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore(), { maxTtlSeconds: 7 * 86400 });
    const csr = createCsr(generateKey('ecdsa-p256').privateKey, { uris: [ID] });
    const life = (pem: string) => {
      const c = new X509Certificate(pem);
      return { nb: Date.parse(c.validFrom), na: Date.parse(c.validTo) };
    };
    const now = Date.now();
    const d = life(ca.issue({ csr, identity: ID }).certChain[0]!);
    assert.ok(Math.abs(d.na - now - 86400_000) < 5000, 'default 24 h');
    assert.ok(d.nb <= now - 60_000 && d.nb >= now - 200_000, 'NotBefore backdated a little');
    const h = life(ca.issue({ csr, identity: ID, ttlSeconds: 3600 }).certChain[0]!);
    assert.ok(Math.abs(h.na - now - 3600_000) < 5000);
    const max = life(ca.issue({ csr, identity: ID, ttlSeconds: 7 * 86400 }).certChain[0]!);
    assert.ok(Math.abs(max.na - now - 7 * 86400_000) < 5000);
    assert.throws(() => ca.issue({ csr, identity: ID, ttlSeconds: 7 * 86400 + 1 }), (e: CaError) => e.codeName === 'INVALID_ARGUMENT' && /maximum/.test(e.message));
    assert.throws(() => ca.issue({ csr, identity: ID, ttlSeconds: -5 }), (e: CaError) => e.codeName === 'INVALID_ARGUMENT');
  });

  test('serials are random, positive and distinct', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore());
    const csr = createCsr(generateKey('ecdsa-p256').privateKey, { uris: [ID] });
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) serials.add(new X509Certificate(ca.issue({ csr, identity: ID }).certChain[0]!).serialNumber);
    assert.equal(serials.size, 200);
    for (const s of serials) assert.ok(s.length >= 16 && s.length <= 34, `serial ${s}`);
  });

  test('refuses CSRs for other identities', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore());
    const key = generateKey('ecdsa-p256').privateKey;
    for (const sans of [{ uris: ['spiffe://cluster.local/ns/default/sa/other'] }, { uris: [ID], dnsNames: ['evil.example'] }, { ips: ['10.0.0.1'] }, { uris: [ID, ID] }]) {
      assert.throws(() => ca.issue({ csr: createCsr(key, sans), identity: ID }), (e: CaError) => e.codeName === 'PERMISSION_DENIED');
    }
    assert.equal(ca.stats.issued, 0);
  });
});

describe('plugged-in CA', () => {
  test('files made by openssl are used, chain included in every response', async () => {
    const dir = await tmp();
    const { rootPem } = await makePluggedCa(dir);
    const ca = await CertificateAuthority.open(new FileCaStore(dir));
    assert.equal(ca.origin, 'plugged');
    assert.equal(ca.rootCertPem().trim(), rootPem.trim());
    const r = ca.issue({ csr: createCsr(generateKey('rsa-2048').privateKey, { uris: [ID] }), identity: ID });
    assert.equal(r.certChain.length, 3, 'leaf, intermediate, root');
    await assertGoodChain(r.certChain);
    // Sextant never writes into a plugged-in directory.
    await ca.tick();
    await assert.rejects(stat(join(dir, 'sextant-ca.json')));
  });

  test('NotAfter never past the signer', async () => {
    const dir = await tmp();
    await makePluggedCa(dir, { intermediateDays: 1 });
    const ca = await CertificateAuthority.open(new FileCaStore(dir));
    const r = ca.issue({ csr: createCsr(generateKey('ecdsa-p256').privateKey, { uris: [ID] }), identity: ID, ttlSeconds: 3 * 86400 });
    const leaf = new X509Certificate(r.certChain[0]!);
    const inter = new X509Certificate(r.certChain[1]!);
    assert.equal(leaf.validTo, inter.validTo);
    await assertGoodChain(r.certChain);
  });

  test('reloaded when the files change; an invalid change is refused and logged', async () => {
    const dir = await tmp();
    await makePluggedCa(dir, { name: 'First' });
    const entries: never[] = [];
    const logger = recordingLogger(entries);
    const ca = await CertificateAuthority.open(new FileCaStore(dir, 50), { logger });
    ca.start();
    try {
      const changed = new Promise<void>((resolve) => {
        const off = ca.onChange((c) => {
          if (c === 'roots') {
            off();
            resolve();
          }
        });
      });
      const { rootPem } = await makePluggedCa(dir, { name: 'Second' });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([changed, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('no reload within 10 s')), 10_000)))]);
      clearTimeout(timer);
      // Files are written one by one; reload until the whole set is consistent.
      await ca.reload();
      assert.equal(ca.rootCertPem().trim(), rootPem.trim());
      const r = ca.issue({ csr: createCsr(generateKey('ecdsa-p256').privateKey, { uris: [ID] }), identity: ID });
      assert.match(new X509Certificate(r.certChain[1]!).subject, /Second Intermediate/);
      await assertGoodChain(r.certChain);

      // A key that does not match: refused, the CA keeps serving the Second CA.
      await writeFile(join(dir, 'ca-key.pem'), generateKey('ecdsa-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      assert.equal(await ca.reload(), false);
      assert.ok(logger.entries.some((e) => e.level === 'error' && /does not match/.test(String(e.err))), 'error logged');
      const r2 = ca.issue({ csr: createCsr(generateKey('ecdsa-p256').privateKey, { uris: [ID] }), identity: ID });
      await assertGoodChain(r2.certChain);
    } finally {
      ca.stop();
    }
  });

  test('missing or broken files are named in the error', async () => {
    const dir = await tmp();
    await makePluggedCa(dir);
    await writeFile(join(dir, 'root-cert.pem'), 'not a pem');
    await assert.rejects(CertificateAuthority.open(new FileCaStore(dir)), /root-cert\.pem: no CERTIFICATE block/);
  });
});
