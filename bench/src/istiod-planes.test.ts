import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuList, sextantNode, sextantNodeOptions } from './istiod-planes.js';

test("the daemon's V8 helper threads are sized as the chart sizes them for the cores given (istiod gets GOMAXPROCS)", () => {
  assert.equal(sextantNodeOptions(2), '--v8-pool-size=1');
  assert.equal(sextantNodeOptions(1), '--v8-pool-size=1', 'never none: V8 needs one for GC and the optimizing compiler');
  assert.equal(sextantNodeOptions(8, '--import ./cpu-profile.mjs'), '--v8-pool-size=7 --import ./cpu-profile.mjs', 'extra options come after');
  assert.equal(cpuList(2), '0-1');
});

test('the daemon runs on the Node.js binary ISTIOD_BENCH_SEXTANT_NODE names, and the report can say which version it is', () => {
  assert.deepEqual(sextantNode({ ISTIOD_BENCH_SEXTANT_NODE: process.execPath }), { path: process.execPath, version: process.version });
  // Another binary is asked for its version (here the same Node through a path that is not process.execPath).
  const link = join(mkdtempSync(join(tmpdir(), 'sextant-node-')), 'node');
  symlinkSync(process.execPath, link);
  assert.deepEqual(sextantNode({ ISTIOD_BENCH_SEXTANT_NODE: link }), { path: link, version: process.version });
  assert.throws(() => sextantNode({ ISTIOD_BENCH_SEXTANT_NODE: '/nonexistent/node' }), /ISTIOD_BENCH_SEXTANT_NODE=\/nonexistent\/node: `--version` failed/);
});
