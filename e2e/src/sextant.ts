import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sextantBin = join(repoRoot, 'apps', 'sextant', 'bin', 'sextant.js');

export interface RunningSextant {
  /** 127.0.0.1:<port> of the plaintext ADS server. */
  xdsAddress: string;
  /** 127.0.0.1:<port> of the TLS server (ADS + CSR API). */
  secureAddress: string;
  /** http://127.0.0.1:<port> of /ready and /debug/*. */
  httpUrl: string;
  monitoringUrl: string;
  webhookUrl: string;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** The same lines as printed (JSON.parse hides a key written twice). */
  lines: string[];
  /** Resolves with the first log line matching, or rejects after the deadline. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends SIGTERM and resolves with the exit code (SIGKILL after the deadline). */
  stop(timeoutMs?: number): Promise<number | null>;
  process: ChildProcess;
}

export interface StartSextantOptions {
  configDir?: string;
  kubeconfig?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Working directory of the daemon (default: the test's). */
  cwd?: string;
  /** How long to wait for /ready. */
  readyTimeoutMs?: number;
  /** The Node.js binary to run the daemon with (default: the one running the test). */
  node?: string;
}

/**
 * Runs `sextant discovery` the way a user does, on 127.0.0.1 with every port
 * chosen by the kernel, and waits until it is ready. The chosen ports come from
 * the `listening` log lines the daemon prints.
 */
export async function startSextant(opts: StartSextantOptions): Promise<RunningSextant> {
  const args = [sextantBin, 'discovery', '--listen-address', '127.0.0.1'];
  for (const p of ['xds-port', 'secure-port', 'monitoring-port', 'http-port', 'webhook-port']) args.push(`--${p}`, '0');
  if (opts.configDir) args.push('--config-dir', opts.configDir);
  if (opts.kubeconfig) args.push('--kubeconfig', opts.kubeconfig);
  args.push(...(opts.args ?? []));
  const child = spawn(opts.node ?? process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const logs: Array<Record<string, unknown>> = [];
  const lines: string[] = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void; fail: () => void }> = [];
  const rl = createInterface({ input: child.stderr! });
  rl.on('line', (text) => {
    lines.push(text);
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { msg: text, level: 'raw' };
    }
    logs.push(line);
    if (process.env.SEXTANT_TEST_LOGS) process.stderr.write(text + '\n');
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  // 'exit', or 'error' from a spawn that failed (Node then never emits 'exit'):
  // every wait below ends on either, so a Sextant that is gone is an error, never a hang.
  let exited = false;
  let ending = '';
  let endedResolve!: (code: number | null) => void;
  const ended = new Promise<number | null>((r) => (endedResolve = r));
  const finish = (why: string, code: number | null) => {
    if (exited) return;
    exited = true;
    ending = why;
    endedResolve(code);
    for (const w of waiters.splice(0)) w.fail();
  };
  child.once('exit', (code, sig) => finish(`exited (${sig ?? `code ${code}`})`, code));
  child.on('error', (err) => {
    if (child.pid === undefined || child.exitCode !== null) finish(`did not start (${err.message})`, child.exitCode);
  });
  const gone = () => new Error(`sextant ${ending}; last lines:\n${lines.slice(-15).join('\n')}`);

  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    if (exited) return Promise.reject(gone());
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`sextant: no matching log line within ${timeoutMs} ms; last lines:\n${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const w = {
        match,
        resolve: (l: Record<string, unknown>) => (clearTimeout(timer), resolve(l)),
        fail: () => (clearTimeout(timer), reject(gone())),
      };
      waiters.push(w);
    });
  };
  const stop = async (timeoutMs = 10_000) => {
    if (exited) return child.exitCode;
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let giveUp: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        ended,
        new Promise<never>((_, reject) => {
          giveUp = setTimeout(() => reject(new Error(`sextant (pid ${child.pid}) did not exit within ${timeoutMs + 5000} ms of SIGTERM (SIGKILL at ${timeoutMs} ms)`)), timeoutMs + 5000);
        }),
      ]);
    } finally {
      clearTimeout(kill);
      clearTimeout(giveUp);
    }
  };

  try {
    // A loaded machine can take longer than 20 s to bind all five ports (seen in a cold run at load 20:
    // the xDS port at 1.3 s, the next one not within 20 s). The wait ends as soon as the lines appear,
    // and at once if the daemon exits, so a generous bound costs nothing when all is well.
    const addr = async (server: string) => String((await waitForLog((l) => l.msg === 'listening' && l.server === server, Math.max(90_000, opts.readyTimeoutMs ?? 0))).address);
    const [xds, secure, http, monitoring, webhook] = await Promise.all(['xds', 'secure', 'http', 'monitoring', 'webhook'].map(addr));
    const running: RunningSextant = {
      xdsAddress: xds!,
      secureAddress: secure!,
      httpUrl: `http://${http}`,
      monitoringUrl: `http://${monitoring}`,
      webhookUrl: `https://${webhook}`,
      logs,
      lines,
      waitForLog,
      stop,
      process: child,
    };
    await waitForReady(running.httpUrl, opts.readyTimeoutMs ?? 30_000, () => (exited ? gone() : undefined));
    return running;
  } catch (err) {
    await stop(2000);
    throw err;
  }
}

/** Polls /ready until 200 (deadline; each request bounded); `gone` returns an error to stop early, e.g. when the daemon has exited. */
export async function waitForReady(httpUrl: string, timeoutMs: number, gone?: () => Error | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const err = gone?.();
    if (err) throw err;
    try {
      const res = await fetch(`${httpUrl}/ready`, { signal: AbortSignal.timeout(5000) });
      if (res.status === 200) return;
      last = `${res.status} ${await res.text()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sextant not ready within ${timeoutMs} ms: ${last}`);
}

/** GETs a debug endpoint as JSON. */
export async function debugJson(httpUrl: string, path: string): Promise<unknown> {
  const res = await fetch(`${httpUrl}${path}`);
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
