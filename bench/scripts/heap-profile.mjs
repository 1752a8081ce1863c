// Preload for a heap profile of the daemon in the side-by-side benchmark:
// `NODE_OPTIONS="--import /path/to/heap-profile.mjs"` with HEAP_PROFILE_DIR set.
// V8's sampling heap profiler runs from start-up; on SIGUSR2 (the harness sends
// it once the N proxies are connected and the daemon settled) the process
// collects garbage and writes the live sampled allocations, by allocation
// stack, as a Chrome DevTools .heapprofile (summarise with heap-summary.mjs).
import { Session } from 'node:inspector';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.HEAP_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', { samplingInterval: Number(process.env.HEAP_PROFILE_INTERVAL ?? 65536) });
  process.on('SIGUSR2', () => {
    const before = process.memoryUsage();
    session.post('HeapProfiler.collectGarbage', () => {
      const after = process.memoryUsage();
      session.post('HeapProfiler.getSamplingProfile', (err, res) => {
        if (err || !res) return;
        mkdirSync(dir, { recursive: true });
        const file = join(dir, `sextant-${process.pid}-${Date.now()}.heapprofile`);
        // Renamed into place once whole, so the harness waiting for it never reads half a file.
        // process.memoryUsage() before and after the collection: V8 heap, external and ArrayBuffer (Buffer) memory against RSS.
        writeFileSync(`${file}.memory.json`, JSON.stringify({ beforeGc: before, afterGc: after }));
        writeFileSync(`${file}.tmp`, JSON.stringify(res.profile));
        renameSync(`${file}.tmp`, file);
      });
    });
  });
}
