// Preload for a CPU profile of a process whose NODE_OPTIONS cannot carry --cpu-prof
// (Node refuses it there): `NODE_OPTIONS="--import /path/to/cpu-profile.mjs"` with
// CPU_PROFILE_DIR set. The profile (Chrome DevTools .cpuprofile) is written on exit, with a clock
// anchor so that cpu-window.mjs can slice it by the benchmark's change windows (ISTIOD_BENCH_MARKS);
// named <CPU_PROFILE_NAME, default sextant>-<pid>-<time>.cpuprofile.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: Number(process.env.CPU_PROFILE_INTERVAL_US ?? 1000) });
  session.post('Profiler.start');
  // V8's profile timestamps are the monotonic clock in µs (as process.hrtime): this maps them to epoch ms.
  const anchor = { epochMs: Date.now(), monotonicUs: Number(process.hrtime.bigint() / 1000n) };
  process.on('exit', () => {
    // A same-thread inspector session answers synchronously, so this runs to the end before the process does.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.env.CPU_PROFILE_NAME ?? 'sextant'}-${process.pid}-${Date.now()}.cpuprofile`), JSON.stringify({ ...res.profile, anchor }));
    });
  });
}

// GC_LOG_FILE: one JSON line per garbage collection (epoch ms at its start, duration, V8's kind and flags), to
// tell which collections a change window pays for (cpu-window.mjs shows only their total).
const gcLog = process.env.GC_LOG_FILE;
if (gcLog) {
  const { PerformanceObserver, performance } = await import('node:perf_hooks');
  const { appendFileSync } = await import('node:fs');
  const kinds = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  let lines = [];
  const flush = () => {
    if (lines.length) appendFileSync(gcLog, lines.join(''));
    lines = [];
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = e.detail ?? {};
      lines.push(JSON.stringify({ t: performance.timeOrigin + e.startTime, ms: Math.round(e.duration * 10) / 10, kind: kinds[d.kind] ?? d.kind, flags: d.flags }) + '\n');
    }
    if (lines.length > 200) flush();
  }).observe({ entryTypes: ['gc'] });
  setInterval(flush, 2000).unref();
  process.on('exit', flush);
}
