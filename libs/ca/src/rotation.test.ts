/**
 * Root rotation with short lifetimes on a simulated clock: clients renew at
 * half-life as pilot-agent does, taking the trust bundle from each response,
 * and every client verifies every other client's chain at every step. With the
 * overlap no verification ever fails; without it (negative control) they do.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { CertificateAuthority, type CaOptions } from './authority.js';
import { createCsr } from './csr.js';
import { MemoryCaStore } from './store.js';
import { checkSvidChain } from './svid-check.js';
import { opensslVerify } from '@sextant/testing/ca';
import { generateKey } from './x509.js';

const splitPem = (s: string) => s.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];

/** Path validation at time t: leaf → (intermediates) → a root of the bundle, signatures and validity. */
function verifyAt(chain: string[], bundlePem: string, t: number): string | undefined {
  const certs = chain.slice(0, -1).flatMap(splitPem).map((p) => new X509Certificate(p));
  const roots = splitPem(bundlePem).map((p) => new X509Certificate(p));
  const valid = (c: X509Certificate) => t >= Date.parse(c.validFrom) && t <= Date.parse(c.validTo);
  let cur = certs[0]!;
  for (let depth = 0; depth < 5; depth++) {
    if (!valid(cur)) return `${cur.subject || 'leaf'} not valid at t`;
    const root = roots.find((r) => cur.checkIssued(r) && cur.verify(r.publicKey));
    if (root) return valid(root) ? undefined : 'root not valid at t';
    const next = certs.find((c) => c !== cur && cur.checkIssued(c) && cur.verify(c.publicKey));
    if (!next) return 'no trusted issuer in the bundle';
    cur = next;
  }
  return 'chain too long';
}

interface Client {
  id: string;
  chain: string[];
  bundle: string;
  obtained: number;
  notAfter: number;
}

async function simulate(opts: CaOptions, steps: number, withOpenssl: boolean) {
  let t = Date.now();
  const ca = await CertificateAuthority.open(new MemoryCaStore(), { ...opts, now: () => t });
  let signerChanges = 0;
  let maxRoots = 1;
  ca.onChange((c) => {
    if (c === 'signer') signerChanges++;
  });
  const key = generateKey('ecdsa-p256').privateKey;
  const renew = (id: string): Client => {
    const r = ca.issue({ csr: createCsr(key, { uris: [id] }), identity: id });
    return { id, chain: r.certChain, bundle: r.certChain[r.certChain.length - 1]!, obtained: t, notAfter: r.notAfter };
  };
  // Clients start one or more seconds apart, so their renewals are staggered as in a real mesh.
  const clients: Client[] = [];
  const failures: string[] = [];
  let checked = 0;
  let opensslRuns = 0;
  for (let step = 0; step < steps; step++) {
    t += 1000;
    const before = signerChanges;
    await ca.tick();
    if (step % 3 === 0 && clients.length < 4) clients.push(renew(`spiffe://cluster.local/ns/ns${clients.length}/sa/sa${clients.length}`));
    maxRoots = Math.max(maxRoots, ca.trustBundle().length);
    clients.forEach((c, i) => {
      if (t >= c.obtained + (c.notAfter - c.obtained) / 2) {
        clients[i] = renew(c.id);
        const conf = checkSvidChain(clients[i]!.chain, { expectedId: c.id, now: new Date(t) });
        if (!conf.ok) failures.push(`step ${step}: issued chain not conforming: ${conf.violations.join('; ')}`);
      }
    });
    for (const a of clients) {
      for (const b of clients) {
        checked++;
        const err = verifyAt(a.chain, b.bundle, t);
        if (err) failures.push(`step ${step}: ${b.id} cannot verify ${a.id}: ${err}`);
      }
    }
    if (withOpenssl && (signerChanges !== before || step % 25 === 0)) {
      for (const a of clients) {
        for (const b of clients) {
          const v = await opensslVerify(a.chain, { attime: t / 1000, caFile: b.bundle });
          opensslRuns++;
          if (!v.ok) failures.push(`step ${step}: openssl: ${b.id} cannot verify ${a.id}: ${v.output}`);
        }
      }
    }
  }
  return { failures, signerChanges, maxRoots, checked, opensslRuns, finalRoots: ca.trustBundle().length };
}

const SHORT: CaOptions = {
  rootTtlSeconds: 120,
  rotateBeforeSeconds: 60,
  distributionSeconds: 10,
  defaultTtlSeconds: 8,
  maxTtlSeconds: 16,
  backdateSeconds: 1,
};

describe('root rotation', () => {
  test('clients renewing through the overlap never fail verification', async (t) => {
    const r = await simulate(SHORT, 330, true);
    t.diagnostic(`${r.checked} pairwise checks, ${r.opensslRuns} openssl verifications, ${r.signerChanges} root switches, up to ${r.maxRoots} trusted roots`);
    assert.deepEqual(r.failures, []);
    assert.ok(r.signerChanges >= 2, `rotated at least twice (got ${r.signerChanges})`);
    assert.equal(r.maxRoots, 2, 'both roots trusted during the overlap');
    assert.ok(r.opensslRuns > 50);
  });

  test('negative control: without a distribution period, clients do fail', async () => {
    const r = await simulate({ ...SHORT, distributionSeconds: 0 }, 150, false);
    assert.ok(r.failures.length > 0, 'the check can fail');
  });

  test('rotation state survives a restart', async () => {
    let t = Date.now();
    const store = new MemoryCaStore();
    const ca = await CertificateAuthority.open(store, { ...SHORT, now: () => t });
    t += 61_000;
    await ca.tick();
    assert.equal(ca.trustBundle().length, 2, 'pending root trusted');
    const restarted = await CertificateAuthority.open(store, { ...SHORT, now: () => t });
    assert.deepEqual(restarted.trustBundle(), ca.trustBundle());
    t += 10_000;
    await restarted.tick();
    assert.notEqual(restarted.signingChain()[0], ca.signingChain()[0], 'the pending root took over after the restart');
    assert.equal(restarted.trustBundle().length, 2, 'old root still trusted');
  });
});
