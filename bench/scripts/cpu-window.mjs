// Where the daemon's CPU went during the changes of a side-by-side run: a CPU profile taken with
// cpu-profile.mjs (it carries a clock anchor) sliced by the change windows ISTIOD_BENCH_MARKS wrote.
//   node bench/scripts/cpu-window.mjs <profile.cpuprofile> <marks.jsonl> [kind|all] [top]
// Prints busy and idle time in the windows, then the top functions by self and by inclusive time.
import { readFileSync } from 'node:fs';

const [file, marksFile, kind = 'endpoint', topArg = '30'] = process.argv.slice(2);
if (!file || !marksFile) {
  console.error('usage: cpu-window.mjs <profile.cpuprofile> <marks.jsonl> [kind|all] [top]');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8'));
if (!p.anchor) throw new Error('the profile has no clock anchor (take it with bench/scripts/cpu-profile.mjs)');
const marks = readFileSync(marksFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.plane.startsWith('sextant') && (kind === 'all' || m.kind === kind));
// Profile timestamps are the monotonic clock in µs; marks are epoch ms.
const offsetUs = p.anchor.epochMs * 1000 - p.anchor.monotonicUs;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*\/(libs|apps|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
const self = new Map();
const inclusive = new Map();
let busy = 0;
let idle = 0;
let t = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i];
  const ms = (t + offsetUs) / 1000;
  if (!marks.some((m) => ms >= m.t0 && ms <= m.t1)) continue;
  const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
  const leaf = byId.get(p.samples[i]);
  if (leaf.callFrame.functionName === '(idle)') {
    idle += dt;
    continue;
  }
  busy += dt;
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
  const seen = new Set();
  for (let id = leaf.id; id !== undefined; id = parent.get(id)) {
    const k = label(byId.get(id));
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  }
}
const top = Number(topArg);
const show = (m) => {
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * v) / busy).toFixed(1).padStart(5)}% ${v.toFixed(0).padStart(6)} ms  ${k}`);
};
console.log(`${marks.length} windows (${kind}), ${marks.reduce((s, m) => s + m.t1 - m.t0, 0).toFixed(0)} ms wall: ${busy.toFixed(0)} ms busy, ${idle.toFixed(0)} ms idle on the main thread`);
console.log('--- self');
show(self);
console.log('--- inclusive');
show(inclusive);
