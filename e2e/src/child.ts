import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

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
  const child: ManagedChild = {
    proc,
    output: () => out,
    signal(sig) {
      try {
        if (group) process.kill(-proc.pid!, sig);
        else proc.kill(sig);
      } catch {
        // already gone
      }
    },
  };
  running.add(child);
  proc.once('exit', () => running.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of running) c.signal('SIGKILL');
    });
  }
  return child;
}
