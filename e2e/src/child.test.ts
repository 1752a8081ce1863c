/**
 * The fixtures' waits on child processes are bounded: a process that never
 * started (Node emits 'error' and never 'exit' for a spawn that fails
 * asynchronously), one that exits at once, and one that ignores SIGTERM all
 * end a test with a clear error instead of hanging it. No tools needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnManaged } from './child.js';
import { startSextant } from './sextant.js';

describe('bounded waits on child processes', { timeout: 90_000 }, () => {
  test('a spawn that fails ends the managed child; stop() returns at once', { timeout: 5000 }, async () => {
    const child = spawnManaged('/nonexistent/sextant-test-binary', []);
    const end = await child.ended;
    assert.match(end.error?.message ?? '', /ENOENT/);
    assert.ok(child.isEnded());
    assert.equal((await child.stop()).error, end.error);
    assert.match(child.output(), /spawn \/nonexistent\/sextant-test-binary/);
  });

  test('stop() kills a process that ignores SIGTERM, after the grace period', { timeout: 10_000 }, async () => {
    const child = spawnManaged(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)"]);
    await new Promise<void>((r) => child.proc.stdout!.once('data', () => r()));
    const t = Date.now();
    const end = await child.stop(300);
    assert.equal(end.signal, 'SIGKILL');
    assert.ok(Date.now() - t < 5000);
  });

  test('startSextant rejects with the reason when the daemon cannot start, instead of waiting forever', { timeout: 10_000 }, async () => {
    const gone = join(mkdtempSync(join(tmpdir(), 'sextant-child-')), 'removed');
    rmSync(gone.slice(0, gone.lastIndexOf('/')), { recursive: true });
    await assert.rejects(startSextant({ cwd: gone }), /sextant did not start \(spawn .* ENOENT\)/);
  });

  // The reason, not a duration: on a loaded machine the daemon's own start can take longer than a log wait.
  test('startSextant rejects with the exit, not a log-wait timeout, when the daemon exits before it listens', { timeout: 60_000 }, async () => {
    await assert.rejects(startSextant({ args: ['--no-such-flag'] }), /^Error: sextant exited \(code \d+\); last lines:/);
  });
});
