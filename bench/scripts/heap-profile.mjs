// Preload for a heap profile of the daemon in the side-by-side benchmark:
// `NODE_OPTIONS="--import /path/to/heap-profile.mjs"` with HEAP_PROFILE_DIR set.
// V8's sampling heap profiler runs from start-up; on SIGUSR2 (the harness sends
// it once the N proxies are connected and the daemon settled) the process
// collects garbage and writes the live sampled allocations, by allocation
// stack, as a Chrome DevTools .heapprofile (summarise with heap-summary.mjs).
import { Session } from 'node:inspector';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';
import { join } from 'node:path';

const dir = process.env.HEAP_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', { samplingInterval: Number(process.env.HEAP_PROFILE_INTERVAL ?? 65536) });
  process.on('SIGUSR2', async () => {
    const before = process.memoryUsage();
    const settle = () => new Promise((r) => setTimeout(r, 200));
    // What a young-generation GC and glibc's malloc_trim give back (the daemon's reclaimer), then a full GC, then the trim again.
    let trim;
    let minor;
    try {
      trim = createRequire(import.meta.url)('koffi').load('libc.so.6').func('int malloc_trim(size_t pad)');
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc');
      minor = () => gc({ type: 'minor' });
    } catch {
      trim = undefined;
    }
    let afterMinorTrim;
    if (trim && minor) {
      minor();
      await settle();
      trim(0);
      afterMinorTrim = process.memoryUsage();
    }
    session.post('HeapProfiler.collectGarbage', async () => {
      const after = process.memoryUsage();
      let afterTrim;
      if (trim) {
        await settle();
        trim(0);
        afterTrim = process.memoryUsage();
      }
      session.post('HeapProfiler.getSamplingProfile', (err, res) => {
        if (err || !res) return;
        mkdirSync(dir, { recursive: true });
        const file = join(dir, `sextant-${process.pid}-${Date.now()}.heapprofile`);
        // Renamed into place once whole, so the harness waiting for it never reads half a file.
        // process.memoryUsage() before and after each step: V8 heap, external and ArrayBuffer (Buffer) memory against RSS.
        writeFileSync(`${file}.memory.json`, JSON.stringify({ beforeGc: before, afterMinorTrim, afterGc: after, afterTrim }));
        writeFileSync(`${file}.tmp`, JSON.stringify(res.profile));
        renameSync(`${file}.tmp`, file);
      });
    });
  });
}
