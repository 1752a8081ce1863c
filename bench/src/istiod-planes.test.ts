import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuList, sextantNodeOptions } from './istiod-planes.js';

test("the daemon's V8 helper threads are sized as the chart sizes them for the cores given (istiod gets GOMAXPROCS)", () => {
  assert.equal(sextantNodeOptions(2), '--v8-pool-size=1');
  assert.equal(sextantNodeOptions(1), '--v8-pool-size=1', 'never none: V8 needs one for GC and the optimizing compiler');
  assert.equal(sextantNodeOptions(8, '--import ./cpu-profile.mjs'), '--v8-pool-size=7 --import ./cpu-profile.mjs', 'extra options come after');
  assert.equal(cpuList(2), '0-1');
});
