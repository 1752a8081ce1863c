import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson, expectGolden, lineDiff } from './golden.js';

test('canonicalJson sorts keys at every level', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: undefined } }), '{\n  "a": {\n    "d": [\n      {\n        "y": 2,\n        "z": 1\n      }\n    ]\n  },\n  "b": 1\n}\n');
});

test('expectGolden writes on update, passes on equal, fails with the regenerate command and a diff', () => {
  const dir = mkdtempSync(join(tmpdir(), 'golden-'));
  expectGolden(dir, 'c1', 'cds', { name: 'x', n: 1 }, { update: true });
  assert.match(readFileSync(join(dir, 'c1', 'cds.json'), 'utf8'), /"name": "x"/);
  expectGolden(dir, 'c1', 'cds', { n: 1, name: 'x' }, { update: false });
  assert.throws(
    () => expectGolden(dir, 'c1', 'cds', { name: 'y', n: 1 }, { update: false, testFile: 'libs/x/dist/a.test.js' }),
    (e: Error) => e.message.includes('UPDATE_GOLDEN=1 node --test libs/x/dist/a.test.js') && e.message.includes('-   "name": "x"') && e.message.includes('+   "name": "y"'),
  );
  assert.throws(() => expectGolden(dir, 'missing', 'cds', {}, { update: false }), /does not exist/);
  writeFileSync(join(dir, 'c1', 'cds.json'), 'garbage');
  assert.throws(() => expectGolden(dir, 'c1', 'cds', {}, { update: false }), /differs/);
});

test('lineDiff shows only the changed region', () => {
  const d = lineDiff('a\nb\nc\nd\ne\nf\ng', 'a\nb\nc\nX\ne\nf\ng', 1);
  assert.equal(d, '@@ line 4 @@\n  c\n- d\n+ X\n  e');
});
