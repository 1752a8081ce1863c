import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { sextantBin, startSextant, type RunningSextant } from './sextant.js';

/**
 * `sextant compare` end to end without istiod: two Sextant daemons stand in
 * for "istiod" and "Sextant", one serving a changed copy of the config, so the
 * command's fetch, diff, grouping, expected-differences and exit status are
 * checked against a known difference. The parity suite runs it against the
 * real istiod.
 */
const bookinfo = fileURLToPath(new URL('../../examples/bookinfo', import.meta.url));
const node = 'sidecar~10.0.0.1~productpage-v1-6b746f74dc-9stvs.default~default.svc.cluster.local';

function compare(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [sextantBin, 'compare', ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('sextant compare', () => {
  let dir: string;
  let reference: RunningSextant;
  let same: RunningSextant;
  let changed: RunningSextant;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sextant-compare-'));
    cpSync(bookinfo, join(dir, 'changed'), { recursive: true });
    appendFileSync(
      join(dir, 'changed', 'istio.yaml'),
      '\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: details-limits, namespace: default}\nspec:\n  host: details\n  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 7}}\n',
    );
    // One at a time: three cold starts at once can outlast the start-up deadline on a loaded machine.
    reference = await startSextant({ configDir: bookinfo });
    same = await startSextant({ configDir: bookinfo });
    changed = await startSextant({ configDir: join(dir, 'changed') });
  });

  after(async () => {
    await Promise.all([reference?.stop(), same?.stop(), changed?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('identical control planes: exit 0, "identical"', async () => {
    const out = await compare(['--istiod', reference.xdsAddress, '--sextant', same.xdsAddress, '--node', node, '--metadata', '{"NAMESPACE":"default"}']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`proxy ${node.replace(/[.~]/g, '\\$&')}: identical`));
  });

  test('a difference is printed grouped by generalised path, with both values, and exits 1', async () => {
    const out = await compare(['--istiod', reference.xdsAddress, '--sextant', changed.xdsAddress, '--node', node]);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stdout, /UNEXPECTED cds\/\*\/circuitBreakers\/thresholds\[\*\]\/maxConnections \[changed\]: 2/);
    assert.match(out.stdout, /cds\/outbound\|9080\|\|details\.default\.svc\.cluster\.local\/circuitBreakers\/thresholds\[0\]\/maxConnections\n\s+istiod: {2}4294967295\n\s+Sextant: 7/);
  });

  test('--expected explains it: exit 0, reported under its feature', async () => {
    const expected = join(dir, 'expected.yaml');
    writeFileSync(expected, '- id: details-limits\n  feature: traffic\n  paths: ["cds/*details*/circuitBreakers"]\n  kind: changed\n  reason: test\n  traffic: connection limit\n');
    const out = await compare(['--istiod', reference.xdsAddress, '--sextant', changed.xdsAddress, '--node', node, '--expected', expected, '-o', 'json']);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    const json = JSON.parse(out.stdout) as { expected: Record<string, number>; unexpectedCount: number };
    assert.deepEqual(json.expected, { 'details-limits': 2 });
    assert.equal(json.unexpectedCount, 0);
  });

  test('usage errors exit 2 and say what is missing', async () => {
    const out = await compare(['--istiod', reference.xdsAddress, '--node', node]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /--sextant HOST:PORT is required/);
    const both = await compare(['--istiod', 'a:1', '--sextant', 'b:1']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --node NODE_ID .* or --pod/);
  });
});
