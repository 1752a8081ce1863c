import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { formatIssue, keyString } from '@sextant/api';
import { createFolderSource } from './folder.js';

/**
 * The corpus of broken configs in testdata/bad: each `<name>.yaml` has a
 * `<name>.expected` with the exact lines operators see for it, and
 * `served.expected` lists what is still served from the whole folder.
 * `UPDATE_GOLDEN=1` rewrites the expected files.
 */
const dir = fileURLToPath(new URL('../testdata/bad/', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

test('testdata/bad: every broken config is reported with the expected text; the valid objects beside them are served', async () => {
  const src = createFolderSource({ dir });
  await src.start();
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    assert.ok(files.length >= 6);
    const mismatches: string[] = [];
    const check = (expectedFile: string, actual: string) => {
      const path = `${dir}${expectedFile}`;
      if (update) writeFileSync(path, actual);
      const expected = existsSync(path) ? readFileSync(path, 'utf8') : '(missing)';
      if (expected !== actual) mismatches.push(`${expectedFile}:\n--- expected\n${expected}--- actual\n${actual}`);
    };
    for (const file of files) {
      const lines = [
        ...src.fileErrors().filter((e) => e.file === file).map((e) => `line ${e.line}, column ${e.column}: ${e.reason}`),
        ...src.rejected().filter((r) => r.file === file).map((r) => `line ${r.line ?? '?'}: ${formatIssue(r)}`),
      ];
      assert.ok(lines.length > 0, `${file} is in the bad corpus but nothing in it was reported`);
      check(file.replace(/\.yaml$/, '.expected'), lines.map((l) => `${l}\n`).join(''));
    }
    check('served.expected', src.objects().map((o) => `${keyString({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name })}\n`).join(''));
    assert.deepEqual(mismatches, [], `corpus output changed; if intended, regenerate with UPDATE_GOLDEN=1 node --test libs/sources/dist/corpus.test.js\n${mismatches.join('\n')}`);
  } finally {
    await src.stop();
  }
});
