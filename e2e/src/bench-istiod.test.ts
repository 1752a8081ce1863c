import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { skipUnless } from './tools.js';

/**
 * Smoke run of `make bench BENCH=istiod`'s harness (bench/src/istiod.ts), not
 * a benchmark: 10 Services × 2 replicas, 2 simulated Delta sidecars, Sextant
 * and istiod once each, one change of each kind. Asserts only that both
 * control planes became ready, every client completed CDS/EDS/LDS/RDS, and
 * every change reached every client with the changed content. Nothing timed
 * is asserted.
 */
const bench = fileURLToPath(new URL('../../bench/dist/istiod.js', import.meta.url));
const skip = skipUnless('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'pilot-discovery');

test('side-by-side benchmark harness: every change reaches every client of both control planes', { skip, timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-istiod-smoke-'));
  try {
    const out = join(dir, 'report.json');
    await new Promise<void>((resolve, reject) => {
      execFile(
        process.execPath,
        [bench],
        {
          env: {
            ...process.env,
            ISTIOD_BENCH_SERVICES: '10',
            ISTIOD_BENCH_REPLICAS: '2',
            ISTIOD_BENCH_PROXIES: '2',
            ISTIOD_BENCH_RUNS: '1',
            ISTIOD_BENCH_CHANGES: '1',
            ISTIOD_BENCH_SCOPES: 'sidecar',
            ISTIOD_BENCH_PLANES: 'sextant,istiod',
            ISTIOD_BENCH_JSON: out,
          },
          timeout: 230_000,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, _stdout, stderr) => (err ? reject(new Error(`${err.message}\n${String(stderr).slice(-4000)}`)) : resolve()),
      );
    });
    type Change = { kind: string; undelivered: number; seenToAllMs?: number; seenP50Ms?: number; seenP99Ms?: number };
    type Run = { plane: string; connectFailed: number; changes: Change[]; clientErrors: string[] };
    const report = JSON.parse(readFileSync(out, 'utf8')) as { runs: Run[]; failures: unknown[] };
    assert.deepEqual(report.failures, [], 'control-plane runs that did not complete');
    assert.deepEqual(report.runs.map((r) => r.plane).sort(), ['istiod', 'sextant']);
    for (const r of report.runs) {
      assert.equal(r.connectFailed, 0, `${r.plane}: clients that never completed CDS/EDS/LDS/RDS`);
      assert.deepEqual(r.changes.map((c) => c.kind), ['endpoint', 'virtualService', 'destinationRule'], r.plane);
      for (const c of r.changes) assert.equal(c.undelivered, 0, `${r.plane}: ${c.kind} change not delivered to ${c.undelivered} client(s)`);
      // The endpoint change is also timed per proxy from the EndpointSlice seen (issue 10's target): p50 ≤ p99 ≤ the last.
      const e = r.changes.find((c) => c.kind === 'endpoint')!;
      assert.ok(e.seenP50Ms! <= e.seenP99Ms! && e.seenP99Ms! <= e.seenToAllMs!, `${r.plane}: seen → proxy p50 ${e.seenP50Ms}, p99 ${e.seenP99Ms}, all ${e.seenToAllMs}`);
      assert.deepEqual(r.clientErrors, [], r.plane);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
