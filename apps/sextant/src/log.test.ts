import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from './log.js';

test('a log line that would carry a private key is withheld; others pass', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = createLogger('info', sink);
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  log.info({ secret: pem }, 'oops');
  log.warn({ secret: Buffer.from(pem).toString('base64') }, 'oops again');
  log.info({ proxy: 'p1' }, 'fine');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 3);
  for (const l of lines.slice(0, 2)) {
    assert.ok(!l.includes('PRIVATE KEY') && !l.includes(Buffer.from(pem).toString('base64').slice(0, 40)), l);
    assert.match(l, /withheld/);
  }
  assert.deepEqual({ ...JSON.parse(lines[2]!), time: 0 }, { level: 'info', time: 0, proxy: 'p1', msg: 'fine' });
});
