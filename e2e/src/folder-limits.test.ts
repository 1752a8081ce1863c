/**
 * The daemon on a config folder holding two self-referencing directory links
 * and a file over `--config-max-file-size`: it becomes ready, serves the rest
 * of the folder over xDS, logs each problem once and lists them in
 * /debug/config_issues.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { debugJson, startSextant } from './sextant.js';

const BOOKINFO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'bookinfo');
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

test('symbolic link loops and an oversized file: the daemon is ready, serves the rest and reports each problem once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-folder-limits-'));
  cpSync(BOOKINFO, join(dir, 'bookinfo'), { recursive: true });
  mkdirSync(join(dir, 'team'));
  symlinkSync('.', join(dir, 'here'));
  symlinkSync('..', join(dir, 'team', 'up'));
  const limit = 64 * 1024;
  // Valid YAML (a Service padded with comments), just over the limit.
  const big = `apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\nspec:\n  ports: [{port: 80, name: http}]\n${'# padding\n'.repeat(limit / 10 + 1)}`;
  writeFileSync(join(dir, 'team', 'big.yaml'), big);
  const sextant = await startSextant({ configDir: dir, args: ['--config-max-file-size', `${limit / 1024}Ki`], readyTimeoutMs: 30_000 });
  const client = new SotwClient(sextant.xdsAddress, { node: { id: PRODUCTPAGE } });
  try {
    client.request(TypeUrl.Cluster);
    const cds = await client.next();
    client.ack(cds);
    const names = resourceNames(cds);
    assert.ok(names.includes('outbound|9080|v2|reviews.default.svc.cluster.local'), `bookinfo is served: ${names.join(', ')}`);
    assert.ok(!names.some((n) => n.includes('big.default')), 'the oversized file was not read');

    const issues = (await debugJson(sextant.httpUrl, '/debug/config_issues')) as { files: Array<{ file: string; reason: string }> };
    assert.deepEqual(
      issues.files.map((f) => f.file),
      ['here', 'team/big.yaml', 'team/up'],
    );
    assert.match(issues.files[1]!.reason, new RegExp(`^file is ${Buffer.byteLength(big)} bytes, over the limit of ${limit} bytes`));
    // The daemon writes its log asynchronously (pino, sync: false): /ready and the debug answer can come first.
    const loopLogged = (file: string) => sextant.waitForLog((l) => l.msg === 'symbolic link loop skipped' && l.file === file, 20_000);
    await Promise.all([loopLogged('here'), loopLogged('team/up'), sextant.waitForLog((l) => l.msg === 'config file over the size limit; keeping its last valid objects', 20_000)]);
    const loops = sextant.logs.filter((l) => l.msg === 'symbolic link loop skipped').map((l) => l.file);
    assert.deepEqual(loops.sort(), ['here', 'team/up']);
    const over = sextant.logs.filter((l) => l.msg === 'config file over the size limit; keeping its last valid objects');
    assert.deepEqual(over.map((l) => [l.file, l.limit]), [['team/big.yaml', limit]]);
  } finally {
    client.close();
    assert.equal(await sextant.stop(), 0, 'SIGTERM exits 0');
    rmSync(dir, { recursive: true, force: true });
  }
});
