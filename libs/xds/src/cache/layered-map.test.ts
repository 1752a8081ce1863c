/**
 * LayeredMap answers exactly as the eager merge it replaced: same names, in
 * the same order, with the same values, for layers that overlap and override.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LayeredMap, layeredChanges } from './layered-map.js';

/** The merge class-cache.ts used to build: the first layer with a name wins, an override layer always sets. */
function eagerMerge<V>(parts: ReadonlyMap<string, V>[], override: boolean[]): Map<string, V> {
  const out = new Map<string, V>();
  parts.forEach((p, i) => {
    for (const [n, v] of p) if (override[i] || !out.has(n)) out.set(n, v);
  });
  return out;
}

function same<V>(view: LayeredMap<V>, want: Map<string, V>, names: string[]): void {
  assert.equal(view.size, want.size);
  assert.deepEqual([...view], [...want]);
  assert.deepEqual([...view.keys()], [...want.keys()]);
  assert.deepEqual([...view.values()], [...want.values()]);
  const seen: [string, V][] = [];
  view.forEach((v, k) => seen.push([k, v]));
  assert.deepEqual(seen, [...want]);
  for (const n of names) {
    assert.equal(view.has(n), want.has(n), `has(${n})`);
    assert.equal(view.get(n), want.get(n), `get(${n})`);
  }
}

test('CDS-like layers: a large shared layer, then a small own one that repeats a name', () => {
  const outbound = new Map(Array.from({ length: 50 }, (_, i) => [`outbound|${i}`, `o${i}`] as [string, string]));
  outbound.set('BlackHoleCluster', 'shared-bh');
  const inbound = new Map([
    ['inbound|80||', 'i80'],
    ['BlackHoleCluster', 'own-bh'],
  ]);
  const view = new LayeredMap([outbound, inbound], [false, false]);
  same(view, eagerMerge([outbound, inbound], [false, false]), ['outbound|3', 'inbound|80||', 'BlackHoleCluster', 'absent']);
  assert.equal(view.get('BlackHoleCluster'), 'shared-bh', 'the first layer wins');
});

test('LDS-like layers: an override layer replaces names in place, a later plain layer adds', () => {
  const outbound = new Map([
    ['0.0.0.0_80', 'plain80'],
    ['10.0.0.1_5432', 'db'],
    ['virtualOutbound', 'vo'],
  ]);
  const tags = new Map([
    ['0.0.0.0_80', 'tagged80'],
    ['0.0.0.0_9090', 'tagged9090'],
  ]);
  const inbound = new Map([
    ['virtualInbound', 'vi'],
    ['0.0.0.0_80', 'inbound-loses'],
  ]);
  const parts = [outbound, tags, inbound];
  const override = [false, true, false];
  const view = new LayeredMap(parts, override);
  same(view, eagerMerge(parts, override), ['0.0.0.0_80', '0.0.0.0_9090', 'virtualInbound', 'db', 'nope']);
  assert.equal(view.get('0.0.0.0_80'), 'tagged80');
});

test('random layers agree with the eager merge', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let round = 0; round < 200; round++) {
    const layers = 1 + rnd(4);
    const parts: Map<string, number>[] = [];
    const override: boolean[] = [];
    for (let l = 0; l < layers; l++) {
      const m = new Map<string, number>();
      for (let k = rnd(12); k > 0; k--) m.set(`n${rnd(15)}`, round * 100 + l * 10 + k);
      parts.push(m);
      override.push(l > 0 && rnd(2) === 0);
    }
    const names = Array.from({ length: 16 }, (_, i) => `n${i}`);
    same(new LayeredMap(parts, override), eagerMerge(parts, override), names);
  }
});

test('layeredChanges: every name whose merged value differs, none from units kept, nothing across layerings', () => {
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const objs = Array.from({ length: 40 }, (_, i) => ({ v: i }));
  for (let round = 0; round < 300; round++) {
    const layers = 1 + rnd(3);
    const override = Array.from({ length: layers }, (_, l) => l > 0 && rnd(2) === 0);
    const before: Map<string, { v: number }>[] = [];
    const after: Map<string, { v: number }>[] = [];
    for (let l = 0; l < layers; l++) {
      const m = new Map<string, { v: number }>();
      for (let k = rnd(10); k > 0; k--) m.set(`n${rnd(12)}`, objs[rnd(40)]!);
      before.push(m);
      if (rnd(2) === 0) after.push(m); // the push kept this unit
      else {
        const m2 = new Map(m);
        for (let k = rnd(4); k > 0; k--) {
          if (rnd(3) === 0) m2.delete(`n${rnd(12)}`);
          else m2.set(`n${rnd(12)}`, objs[rnd(40)]!);
        }
        after.push(m2);
      }
    }
    const b = new LayeredMap(before, override);
    const a = new LayeredMap(after, override);
    const cands = layeredChanges(b, a)!;
    for (let i = 0; i < 12; i++) {
      const n = `n${i}`;
      if (b.get(n) !== a.get(n)) assert.ok(cands.has(n), `round ${round}: ${n} changed but is not a candidate`);
    }
    const kept = after.every((m, i) => m === before[i]);
    if (kept) assert.equal(cands.size, 0, 'no unit changed: no candidate');
  }
  assert.equal(layeredChanges(new LayeredMap([new Map()], [false]), new LayeredMap([new Map(), new Map()], [false, false])), undefined);
  assert.equal(layeredChanges(new LayeredMap([new Map(), new Map()], [false, true]), new LayeredMap([new Map(), new Map()], [false, false])), undefined);
  assert.equal(layeredChanges(new Map(), new LayeredMap([new Map()], [false])), undefined);
});
