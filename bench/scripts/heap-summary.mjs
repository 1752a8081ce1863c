// Summarises a .heapprofile (heap-profile.mjs): live sampled bytes by allocating
// function (self) and by the deepest frame of the project's own code on the stack.
// Usage: node bench/scripts/heap-summary.mjs FILE [top=30]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const self = new Map();
const own = new Map();
let total = 0;
const where = (f) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(libs|apps|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
function walk(node, ownFrame) {
  const f = node.callFrame;
  const mine = /\/(libs|apps)\/[^/]+\/dist\//.test(f.url) ? where(f) : ownFrame;
  const bytes = node.selfSize;
  if (bytes) {
    total += bytes;
    self.set(where(f), (self.get(where(f)) ?? 0) + bytes);
    own.set(mine ?? '(none)', (own.get(mine ?? '(none)') ?? 0) + bytes);
  }
  for (const c of node.children) walk(c, mine);
}
walk(profile.head, undefined);
const mb = (b) => (b / 1048576).toFixed(1).padStart(8);
const print = (title, m) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${mb(v)} MB ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
};
console.log(`live sampled: ${mb(total)} MB`);
print('by allocating function', self);
print("by the deepest frame of Sextant's own code", own);
