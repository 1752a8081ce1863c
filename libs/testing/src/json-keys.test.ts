import assert from 'node:assert/strict';
import { test } from 'node:test';
import { duplicateJsonKeys } from './json-keys.js';

test('duplicateJsonKeys finds a key twice in one object, at any depth, and nowhere else', () => {
  assert.deepEqual(duplicateJsonKeys('{"component":"ca","component":"ca","msg":"x"}'), ['component']);
  assert.deepEqual(duplicateJsonKeys('{"a":{"b":1,"b":2},"c":[{"d":1,"d":1}]}'), ['a.b', 'c[].d']);
  assert.deepEqual(duplicateJsonKeys('{"a":{"k":1},"b":{"k":1},"k":[{"k":1},{"k":1}]}'), []);
  assert.throws(() => duplicateJsonKeys('{"a":1,}'), /not strict JSON/);
  assert.throws(() => duplicateJsonKeys('{"a":1 // c\n}'), /not strict JSON/);
});
