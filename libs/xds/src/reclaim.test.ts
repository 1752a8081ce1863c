/**
 * The memory reclaimer (reclaim.ts): when it runs (after a quiet spell
 * following limit hits, never more often than its interval), and that what
 * it runs gives freed malloc memory back to the kernel, which `free` alone
 * does not.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { release } from './receive.js';
import { MemoryReclaimer, majorGc, mallocTrim, minorGc, type ReclaimResult } from './reclaim.js';
import { waitFor } from '@sextant/testing/xds-harness';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MemoryReclaimer', () => {
  test('runs once a burst of hits has been quiet for afterMs, and not again within the interval', async () => {
    const runs: ReclaimResult[] = [];
    let gcs = 0;
    let trims = 0;
    const r = new MemoryReclaimer({ afterMs: 80, minIntervalMs: 400, gc: () => gcs++, trim: () => trims++, onReclaim: (x) => runs.push(x) });
    try {
      assert.ok(r.enabled);
      // A burst: each hit postpones the reclaim.
      for (let i = 0; i < 5; i++) {
        r.noteLimitHit();
        await sleep(30);
      }
      assert.equal(runs.length, 0, 'not while the hits keep coming');
      await waitFor(() => runs.length === 1, 'the reclaim after the burst', 2000);
      assert.equal(runs[0]!.hits, 5);
      assert.deepEqual([gcs, trims], [1, 1]);
      // Another hit at once: the next reclaim waits for the interval, not only for the quiet spell.
      r.noteLimitHit();
      await waitFor(() => runs.length === 2, 'the second reclaim', 2000);
      // By the reclaimer's own start times (a wall-clock reading after a loaded machine's settle time would add noise of its own).
      const gap = runs[1]!.at - runs[0]!.at;
      assert.ok(gap >= 400, `the second reclaim came ${gap} ms after the first (interval 400 ms)`);
      assert.equal(runs[1]!.hits, 1);
    } finally {
      r.close();
    }
  });

  test('a push burst past afterPushedBytes reclaims once the queue stays drained; smaller ones do not', async () => {
    const runs: ReclaimResult[] = [];
    let full = 0;
    let young = 0;
    const r = new MemoryReclaimer({ afterMs: 60, afterPushedBytes: 1000, minIntervalMs: 0, minRssGrowth: 0, gc: () => young++, fullGc: () => full++, trim: () => 0, onReclaim: (x) => runs.push(x) });
    try {
      r.notePushed(400);
      r.notePushed(900);
      await sleep(150);
      assert.equal(runs.length, 0, 'under afterPushedBytes since start: no reclaim');
      // Drains keep coming (the queue is busy again and again): each postpones it.
      for (let i = 0; i < 4; i++) {
        r.notePushed(1500 + i * 100);
        await sleep(25);
      }
      assert.equal(runs.length, 0, 'not while the drains keep coming');
      await waitFor(() => runs.length === 1, 'the reclaim after the push burst', 2000);
      assert.equal(runs[0]!.pushedBytes, 1800);
      assert.equal(runs[0]!.hits, 0);
      assert.deepEqual([full, young], [1, 0], 'a full GC after a push burst');
      // Counted from the last reclaim: 1800 → 2500 is under the threshold.
      r.notePushed(2500);
      await sleep(150);
      assert.equal(runs.length, 1);
      r.notePushed(2900);
      await waitFor(() => runs.length === 2, 'the second reclaim', 2000);
      assert.equal(runs[1]!.pushedBytes, 1100);
    } finally {
      r.close();
    }
  });

  test('a push burst reclaims only once the transport has taken every write, then stays quiet for afterMs', async () => {
    const runs: ReclaimResult[] = [];
    let inFlight = true;
    let flushedAt = 0;
    const r = new MemoryReclaimer({ afterMs: 60, afterPushedBytes: 1000, minIntervalMs: 0, minRssGrowth: 0, gc: null, fullGc: () => {}, trim: () => 0, busy: () => inFlight, onReclaim: (x) => runs.push(x) });
    try {
      r.notePushed(5000);
      // The queue drained, but the clients are still being sent its responses: no full GC pause in the middle of that.
      await sleep(300);
      assert.equal(runs.length, 0, 'not while writes are in flight');
      inFlight = false;
      flushedAt = Date.now();
      await waitFor(() => runs.length === 1, 'the reclaim once flushed', 2000);
      const after = runs[0]!.at - flushedAt;
      assert.ok(after >= 0, `the reclaim ran ${after} ms after the last write was taken`);
    } finally {
      r.close();
    }
  });

  test('a push burst that left RSS under minRssGrowth × what the last reclaim left is not worth a full GC; one past it is', async () => {
    const runs: ReclaimResult[] = [];
    let rss = 1000;
    let full = 0;
    const r = new MemoryReclaimer({ afterMs: 40, afterPushedBytes: 100, minIntervalMs: 0, minRssGrowth: 1.25, rss: () => rss, gc: null, fullGc: () => { full++; rss = 1100; }, trim: () => 0, onReclaim: (x) => runs.push(x) });
    try {
      rss = 1200;
      r.notePushed(500);
      await sleep(200);
      assert.equal(runs.length, 0, 'RSS 1.2× the start: no reclaim');
      rss = 1300;
      r.notePushed(600);
      await waitFor(() => runs.length === 1, 'the reclaim once RSS is 1.3× the start', 2000);
      assert.deepEqual([runs[0]!.rssBefore, runs[0]!.rssAfter, full], [1300, 1100, 1]);
      // Measured from what that reclaim left (1100): 1300 is under 1.25×.
      r.notePushed(700);
      await sleep(200);
      assert.equal(runs.length, 1);
      // Limit hits are reclaimed whatever RSS says (a young GC and the trim).
      r.noteLimitHit();
      await waitFor(() => runs.length === 2, 'the reclaim after a limit hit', 2000);
    } finally {
      r.close();
    }
  });

  test('afterMs 0 turns it off: hits schedule nothing', async () => {
    let calls = 0;
    const r = new MemoryReclaimer({ afterMs: 0, gc: () => calls++, trim: () => calls++ });
    assert.equal(r.enabled, false);
    r.noteLimitHit();
    await sleep(50);
    assert.equal(calls, 0);
    assert.equal(r.runs, 0);
  });

  test('the full GC a push burst gets collects old-generation garbage (a young GC does not)', () => {
    const full = majorGc()!;
    full();
    // Objects that survive two young GCs are promoted, then dropped: only a full GC frees them.
    let old: unknown[] | null = Array.from({ length: 300_000 }, (_, i) => ({ i, s: `x${i}` }));
    minorGc()!();
    minorGc()!();
    const held = process.memoryUsage().heapUsed;
    old = null;
    minorGc()!();
    const afterYoung = process.memoryUsage().heapUsed;
    full();
    const afterFull = process.memoryUsage().heapUsed;
    assert.equal(old, null);
    assert.ok(held - afterYoung < 5 * MB, `a young GC freed ${((held - afterYoung) / MB).toFixed(1)} MB of promoted garbage`);
    assert.ok(held - afterFull > 10 * MB, `the full GC freed only ${((held - afterFull) / MB).toFixed(1)} MB`);
  });

  test('GC and malloc_trim are available here (Linux, glibc)', () => {
    assert.equal(typeof minorGc(), 'function');
    assert.equal(typeof majorGc(), 'function');
    if (process.platform === 'linux') assert.equal(typeof mallocTrim(), 'function');
  });

  test('a reclaim returns freed malloc memory that free() left in the arena', { skip: mallocTrim() === null ? 'no malloc_trim here' : false }, async () => {
    // 64 MB of 64 KiB buffers (below glibc's mmap threshold: they live in the main arena) interleaved with 4 KiB
    // ones that stay (too many for glibc's free lists to serve: they come from the arena's top, between the large
    // ones): once the large ones are freed, the arena cannot shrink past the small ones.
    const keep: Buffer[] = [];
    let large: Buffer[] = [];
    for (let i = 0; i < 1024; i++) {
      large.push(Buffer.allocUnsafeSlow(64 * 1024).fill(1));
      keep.push(Buffer.allocUnsafeSlow(4096).fill(2));
    }
    for (const b of large) release(b.buffer);
    large = [];
    // A GC alone: what free() gives back goes here (V8 frees the collected buffers' memory on a background
    // thread, so look once it has had the time the reclaimer gives it).
    const gcOnly = await new MemoryReclaimer({ afterMs: 1, trim: null }).reclaim();
    assert.equal(gcOnly.trimmed, false);
    await sleep(100);
    // What is left is free pages between live chunks: only the trim returns them.
    const r = await new MemoryReclaimer({ afterMs: 1 }).reclaim();
    assert.ok(r.trimmed);
    assert.ok(
      r.rssBefore - r.rssAfter > 32 * MB,
      `the trim returned ${((r.rssBefore - r.rssAfter) / MB).toFixed(1)} MB of the 64 MB freed (a GC alone had returned ${((gcOnly.rssBefore - gcOnly.rssAfter) / MB).toFixed(1)} MB)`,
    );
    assert.equal(keep.length, 1024);
  });
});
