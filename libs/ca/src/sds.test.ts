import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CertificateAuthority } from './authority.js';
import { createCsr } from './csr.js';
import { credentialSecret, parseCredentialName, rootCaSecret, SECRET_TYPE_URL, workloadSecret, type KubernetesSecret } from './sds.js';
import { MemoryCaStore } from './store.js';
import { checkSvidChain } from './svid-check.js';
import { generateKey, keyPem } from './x509.js';

const unb64 = (s: string) => Buffer.from(s, 'base64').toString();
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('SDS secrets', () => {
  test('ROOTCA carries every trusted root, both during a rotation overlap', async () => {
    let t = Date.now();
    const ca = await CertificateAuthority.open(new MemoryCaStore(), { rootTtlSeconds: 100, rotateBeforeSeconds: 50, defaultTtlSeconds: 5, maxTtlSeconds: 10, now: () => t });
    assert.equal(rootCaSecret(ca).name, 'ROOTCA');
    assert.equal(unb64(rootCaSecret(ca).validationContext!.trustedCa.inlineBytes).match(/BEGIN CERTIFICATE/g)!.length, 1);
    t += 51_000;
    await ca.tick();
    const s = rootCaSecret(ca);
    assert.equal(s['@type'], SECRET_TYPE_URL);
    assert.equal(unb64(s.validationContext!.trustedCa.inlineBytes).match(/BEGIN CERTIFICATE/g)!.length, 2);
  });

  test('agentless default: a conforming certificate and its key for the proxy identity', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore());
    const id = 'spiffe://cluster.local/ns/a/sa/b';
    const { secret } = workloadSecret(ca, id);
    assert.equal(secret.name, 'default');
    const chain = unb64(secret.tlsCertificate!.certificateChain.inlineBytes);
    assert.match(unb64(secret.tlsCertificate!.privateKey.inlineBytes), /BEGIN PRIVATE KEY/);
    assert.deepEqual(checkSvidChain(chain, { expectedId: id, trustBundle: ca.rootCertPem() }).violations, []);
  });

  test('kubernetes:// credentials from TLS Secrets, own namespace only', async () => {
    const ca = await CertificateAuthority.open(new MemoryCaStore());
    const k = generateKey('ecdsa-p256').privateKey;
    const cert = ca.issue({ csr: createCsr(k), identity: 'spiffe://cluster.local/ns/gw/sa/x' }).leafPem;
    const secrets: KubernetesSecret[] = [
      { metadata: { namespace: 'gw', name: 'tls' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(cert), 'tls.key': b64(keyPem(k)), 'ca.crt': b64(ca.rootCertPem()) } },
      { metadata: { namespace: 'gw', name: 'generic' }, data: { cert: b64(cert), key: b64(keyPem(k)) } },
      { metadata: { namespace: 'gw', name: 'generic-cacert' }, data: { cacert: b64(ca.rootCertPem()) } },
      { metadata: { namespace: 'gw', name: 'badkey' }, data: { 'tls.crt': b64(cert), 'tls.key': b64(keyPem(generateKey('ecdsa-p256').privateKey)) } },
      { metadata: { namespace: 'gw', name: 'nokey' }, data: { 'tls.crt': b64(cert) } },
      { metadata: { namespace: 'other', name: 'tls' }, data: { 'tls.crt': b64(cert), 'tls.key': b64(keyPem(k)) } },
    ];
    const lookup = (ns: string, n: string) => secrets.find((s) => s.metadata.namespace === ns && s.metadata.name === n);
    const ok = credentialSecret('kubernetes://tls', 'gw', lookup);
    assert.ok('secret' in ok && ok.secret.tlsCertificate && ok.secret.name === 'kubernetes://tls');
    const ca1 = credentialSecret('kubernetes://tls-cacert', 'gw', lookup);
    assert.ok('secret' in ca1 && ca1.secret.validationContext);
    const g = credentialSecret('kubernetes://generic', 'gw', lookup);
    assert.ok('secret' in g && g.secret.tlsCertificate);
    const gc = credentialSecret('kubernetes://generic-cacert', 'gw', lookup);
    assert.ok('secret' in gc && gc.secret.validationContext);
    assert.deepEqual(credentialSecret('kubernetes://badkey', 'gw', lookup), { error: 'Secret gw/badkey: data.tls.key does not match data.tls.crt' });
    assert.deepEqual(credentialSecret('kubernetes://nokey', 'gw', lookup), { error: 'Secret gw/nokey: data.tls.key (or data.key) is missing' });
    assert.deepEqual(credentialSecret('kubernetes://missing', 'gw', lookup), { error: 'Secret gw/missing not found' });
    assert.match((credentialSecret('kubernetes://other/tls', 'gw', lookup) as { error: string }).error, /may not read Secrets in namespace other/);
    assert.deepEqual(parseCredentialName('kubernetes://gw/tls', 'gw'), { namespace: 'gw', secretName: 'tls', caOnly: false });
    assert.equal(typeof parseCredentialName('file:///etc/x', 'gw'), 'string');
  });
});
