/** The conformance checker must reject what the standard forbids (certificates made by openssl, not by this package). */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkSvidChain } from './svid-check.js';
import { OPENSSL, run } from '@sextant/testing/ca';

let dir: string;
let root: string;
const ID = 'spiffe://cluster.local/ns/a/sa/b';

async function leaf(name: string, ext: string, subj = '/'): Promise<string> {
  await writeFile(join(dir, `${name}.cnf`), `[x]\n${ext}\n`);
  const r1 = await run(OPENSSL, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], { cwd: dir });
  assert.equal(r1.code, 0, r1.stderr);
  const r2 = await run(OPENSSL, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-days', '1', '-out', `${name}.pem`, '-extfile', `${name}.cnf`, '-extensions', 'x'], { cwd: dir });
  assert.equal(r2.code, 0, r2.stderr);
  return (await readFile(join(dir, `${name}.pem`), 'utf8')) + root;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sextant-svid-'));
  const r = await run(OPENSSL, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-days', '30', '-subj', '/O=t',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  root = await readFile(join(dir, 'root.pem'), 'utf8');
});
after(() => rm(dir, { recursive: true, force: true }));

const GOOD = `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:${ID}`;

describe('X.509-SVID checker', () => {
  test('accepts a conforming SVID', async () => {
    assert.deepEqual(checkSvidChain(await leaf('good', GOOD), { expectedId: ID }).violations, []);
  });
  const bad: [string, string, RegExp, string?][] = [
    ['two URIs', GOOD.replace(`URI:${ID}`, `URI:${ID},URI:spiffe://cluster.local/ns/x/sa/y`), /2 URI SANs/],
    ['no URI', GOOD.replace(`URI:${ID}`, 'DNS:a.example'), /0 URI SANs/],
    ['CA leaf', GOOD.replace('CA:FALSE', 'CA:TRUE'), /cA is true/],
    ['certSign leaf', GOOD.replace('digitalSignature', 'digitalSignature,keyCertSign'), /keyCertSign/],
    ['non-critical key usage', GOOD.replace('keyUsage=critical,', 'keyUsage='), /keyUsage is not critical/],
    ['no clientAuth', GOOD.replace(',clientAuth', ''), /lacks clientAuth/],
    ['non-critical SAN with empty subject', GOOD.replace('subjectAltName=critical,', 'subjectAltName='), /not critical/],
    ['not a SPIFFE ID', GOOD.replace(ID, 'https://cluster.local/x'), /not a SPIFFE ID/],
    ['wrong identity', GOOD.replace(ID, 'spiffe://cluster.local/ns/a/sa/c'), /expected spiffe/],
  ];
  for (const [name, ext, re] of bad) {
    test(`rejects: ${name}`, async () => {
      const r = checkSvidChain(await leaf(name.replace(/\W/g, '_'), ext), { expectedId: ID });
      assert.ok(!r.ok);
      assert.ok(r.violations.some((v) => re.test(v)), r.violations.join('; '));
    });
  }
  test('rejects a chain in the wrong order', async () => {
    const chain = await leaf('order', GOOD);
    const [l, r] = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)!;
    assert.ok(!checkSvidChain([r!, l!]).ok);
  });
});
