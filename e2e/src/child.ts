import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** How a managed child ended: its exit code or signal, or the error that kept it from starting. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process never started (spawn ENOENT, EACCES, EAGAIN...): Node then emits 'error' and never 'exit'. */
  error?: Error;
}

/**
 * A process an e2e fixture starts (Envoy, MOSN, pilot-agent, istiod): killed
 * if the test process exits first, its output kept (bounded) for the error
 * messages that explain a failed start.
 */
export interface ManagedChild {
  proc: ChildProcess;
  /** The last megabyte or so of stdout and stderr, interleaved. */
  output(): string;
  /** Sends a signal to the child, or to its whole process group when started with `group`. */
  signal(sig: NodeJS.Signals): void;
  /**
   * Resolves once the process has ended or failed to start. Waiting on
   * 'exit' alone can hang forever: a spawn that fails asynchronously emits
   * 'error' and never 'exit'.
   */
  ended: Promise<ChildEnd>;
  /** Whether `ended` has resolved. */
  isEnded(): boolean;
  /**
   * SIGTERM, SIGKILL after `graceMs`, then waits at most `killWaitMs` more;
   * rejects with a clear error (and the output tail) if the process still has
   * not ended. Resolves at once when it already ended.
   */
  stop(graceMs?: number, killWaitMs?: number): Promise<ChildEnd>;
}

const running = new Set<ManagedChild>();
let exitHook = false;

/**
 * `group` starts the child in its own process group (for launchers such as
 * pilot-agent that start children of their own), so that a signal reaches all
 * of them. SEXTANT_TEST_LOGS=1 echoes the output to stderr as it comes.
 */
export function spawnManaged(cmd: string, args: readonly string[], opts: SpawnOptions & { group?: boolean } = {}): ManagedChild {
  const { group, ...spawnOpts } = opts;
  const proc = spawn(cmd, [...args], { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'], detached: group === true });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
    if (process.env.SEXTANT_TEST_LOGS) process.stderr.write(d);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  let endedNow = false;
  const ended = new Promise<ChildEnd>((resolve) => {
    const finish = (end: ChildEnd) => {
      if (endedNow) return;
      endedNow = true;
      running.delete(child);
      resolve(end);
    };
    proc.once('exit', (code, signal) => finish({ code, signal }));
    // Without a listener a spawn failure is an uncaught exception; with one, it ends the child.
    proc.on('error', (error) => {
      if (proc.pid === undefined || proc.exitCode !== null) {
        out += `\n[spawn ${cmd}: ${error.message}]\n`;
        finish({ code: proc.exitCode, signal: null, error });
      }
    });
  });
  const signal = (sig: NodeJS.Signals) => {
    // A group may outlive its leader (Envoy under pilot-agent): signal it even then.
    if (proc.pid === undefined || (endedNow && !group)) return;
    try {
      if (group) process.kill(-proc.pid, sig);
      else proc.kill(sig);
    } catch {
      // already gone
    }
  };
  const child: ManagedChild = {
    proc,
    output: () => out,
    signal,
    ended,
    isEnded: () => endedNow,
    async stop(graceMs = 3000, killWaitMs = 5000) {
      if (endedNow) return ended;
      signal('SIGTERM');
      const kill = setTimeout(() => signal('SIGKILL'), graceMs);
      let giveUp: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          ended,
          new Promise<never>((_, reject) => {
            giveUp = setTimeout(
              () => reject(new Error(`${cmd} (pid ${proc.pid}) did not end within ${graceMs + killWaitMs} ms of SIGTERM (SIGKILL at ${graceMs} ms)\n${out.slice(-3000)}`)),
              graceMs + killWaitMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(kill);
        clearTimeout(giveUp);
      }
    },
  };
  running.add(child);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of running) c.signal('SIGKILL');
    });
  }
  return child;
}

/** "code 1", "signal SIGKILL" or "not started: spawn ip ENOENT", for error messages. */
export function describeEnd(end: ChildEnd): string {
  if (end.error) return `not started: ${end.error.message}`;
  return end.signal ? `signal ${end.signal}` : `code ${end.code}`;
}
