#!/usr/bin/env node
// Writes crds/ from the zod schemas in libs/api (run after `npx tsc -b libs/api`).
//   node libs/api/scripts/gen-crds.mjs          regenerate crds/
//   node libs/api/scripts/gen-crds.mjs --check  exit 1 when crds/ is out of date
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CRD_HEADER, renderCrdFiles } from '../dist/crd.js';

const dir = fileURLToPath(new URL('../../../crds/', import.meta.url));
const check = process.argv.includes('--check');
const files = renderCrdFiles();
const wanted = new Set(files.map((f) => f.file));
const stale = [];
mkdirSync(dir, { recursive: true });
for (const { file, content } of files) {
  const path = join(dir, file);
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (current === content) continue;
  stale.push(file);
  if (!check) writeFileSync(path, content);
}
for (const file of readdirSync(dir)) {
  if (!file.endsWith('.yaml') || wanted.has(file)) continue;
  if (!readFileSync(join(dir, file), 'utf8').startsWith(CRD_HEADER)) continue;
  stale.push(file);
  if (!check) rmSync(join(dir, file));
}
if (check && stale.length > 0) {
  console.error(`crds/ is out of date (${stale.join(', ')}); regenerate with: npx tsc -b libs/api && node libs/api/scripts/gen-crds.mjs`);
  process.exit(1);
}
console.log(check ? `crds/ is up to date (${files.length} CRDs)` : `crds/: ${files.length} CRDs, ${stale.length} changed`);
