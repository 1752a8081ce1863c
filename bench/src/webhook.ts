/**
 * Webhook abuse benchmark, on the daemon's real path: `sextant discovery` runs
 * as its own process (Bookinfo from examples/, every port on 127.0.0.1:0), and
 * this process plays both the attacker and the victims.
 *
 *  - attacker: the audit's hostile AdmissionReview (a VirtualService with
 *    100,000 unknown fields, 1.5 MB) POSTed to /validate over TLS, one after
 *    another (or several at once), for a fixed time;
 *  - victims: back-to-back probes of an xDS round trip (a new ADS stream asks
 *    for CDS and waits for the answer) and of GET /ready.
 * Reported: probe latency (p50, p99, max) with no attack and under attack, the
 * hostile review's own answer time, and whether every probe under attack was
 * answered within the 50 ms bound (docs/config-validation.md).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient } from '@sextant/testing/xds-client';
import { hostileReview, postReview } from './webhook-attacker.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const productpage = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';
const BOUND_MS = 50;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const stats = (xs: number[]) => ({
  n: xs.length,
  p50Ms: round(pct(xs, 50)),
  p99Ms: round(pct(xs, 99)),
  maxMs: round(Math.max(...xs)),
  overBound: xs.filter((x) => x > BOUND_MS).length,
});

interface Daemon {
  xds: string;
  http: string;
  monitoring: string;
  webhook: string;
  root: string;
  rootFile: string;
  stop(): Promise<void>;
}

async function startDaemon(): Promise<Daemon> {
  const caDir = mkdtempSync(join(tmpdir(), 'sextant-bench-webhook-'));
  const args = [join(repo, 'apps', 'sextant', 'bin', 'sextant.js'), 'discovery', '--listen-address', '127.0.0.1', '--config-dir', join(repo, 'examples', 'bookinfo'), '--ca-dir', caDir];
  for (const p of ['xds-port', 'secure-port', 'monitoring-port', 'http-port', 'webhook-port']) args.push(`--${p}`, '0');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const addresses = new Map<string, string>();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sextant did not log its listening addresses within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`sextant exited with ${code} before listening`)));
    createInterface({ input: child.stderr! }).on('line', (text) => {
      try {
        const l = JSON.parse(text) as { msg?: string; server?: string; address?: string };
        if (l.msg === 'listening' && l.server && l.address) addresses.set(l.server, l.address);
      } catch {
        /* not a log line */
      }
      if (['xds', 'http', 'monitoring', 'webhook'].every((s) => addresses.has(s))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const d: Daemon = {
    xds: addresses.get('xds')!,
    http: `http://${addresses.get('http')}`,
    monitoring: `http://${addresses.get('monitoring')}`,
    webhook: `https://${addresses.get('webhook')}`,
    root: readFileSync(join(caDir, 'root-cert.pem'), 'utf8'),
    rootFile: join(caDir, 'root-cert.pem'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      rmSync(caDir, { recursive: true, force: true });
    },
  };
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(`${d.http}/ready`).then((r) => r.status === 200, () => false);
    if (ok) return d;
    await new Promise((r) => setTimeout(r, 100));
  }
  await d.stop();
  throw new Error('sextant not ready within 60 s');
}

async function xdsProbe(d: Daemon): Promise<number> {
  const t = performance.now();
  const c = new SotwClient(d.xds, { node: { id: productpage }, timeoutMs: 60_000 });
  try {
    c.request(TypeUrl.Cluster);
    await c.next();
    return performance.now() - t;
  } finally {
    c.close();
  }
}

async function readyProbe(d: Daemon): Promise<number> {
  const t = performance.now();
  const res = await fetch(`${d.http}/ready`);
  await res.text();
  if (res.status !== 200) throw new Error(`/ready answered ${res.status}`);
  return performance.now() - t;
}

/**
 * The daemon's own event-loop delay since the last scrape (prom-client's
 * default metrics reset their histogram on every scrape), in ms.
 */
async function eventLoopDelay(d: Daemon): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`${d.monitoring}/metrics`)).text();
  const get = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
  return { p99Ms: round(get('nodejs_eventloop_lag_p99_seconds')), maxMs: round(get('nodejs_eventloop_lag_max_seconds')) };
}

/** Probes xDS and /ready back to back while `busy()` holds. */
async function probeWhile(d: Daemon, busy: () => boolean): Promise<{ xds: number[]; ready: number[] }> {
  const xds: number[] = [];
  const ready: number[] = [];
  const loop = async (run: () => Promise<number>, into: number[]) => {
    while (busy()) {
      into.push(await run());
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await Promise.all([loop(() => xdsProbe(d), xds), loop(() => readyProbe(d), ready)]);
  return { xds, ready };
}

export async function runWebhookBench(opts: { seconds?: number; concurrency?: number; fields?: number } = {}) {
  const seconds = opts.seconds ?? 15;
  const concurrency = opts.concurrency ?? 2;
  const fields = opts.fields ?? 100_000;
  const d = await startDaemon();
  try {
    // Warm-up: class cache, TLS, the worker pool.
    for (let i = 0; i < 5; i++) await xdsProbe(d);
    await postReview(d.webhook, d.root, hostileReview(10));

    await eventLoopDelay(d);
    // As long idle as under attack: on a shared machine the idle tail is the baseline to compare with.
    const idleUntil = performance.now() + seconds * 1000;
    const idle = await probeWhile(d, () => performance.now() < idleUntil);
    const idleLoop = await eventLoopDelay(d);

    const attacker = spawn(process.execPath, [fileURLToPath(new URL('./webhook-attacker.js', import.meta.url)), d.webhook, d.rootFile, String(seconds), String(concurrency), String(fields)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: attacker.stdout! })[Symbol.asyncIterator]();
    if ((await lines.next()).value !== 'ready') throw new Error('the attacker did not start');
    let attacking = true;
    attacker.stdin!.write('go\n');
    const report = lines.next().finally(() => (attacking = false));
    const underAttack = await probeWhile(d, () => attacking);
    const attackLoop = await eventLoopDelay(d);
    const { bytes, reviews } = JSON.parse(String((await report).value)) as { bytes: number; reviews: Array<{ status: number; ms: number }> };

    const statuses: Record<string, number> = {};
    for (const r of reviews) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const result = {
      description: 'xDS and /ready latency on `sextant discovery` while hostile AdmissionReviews are POSTed to /validate back to back (attacker in its own process)',
      inputs: { reviewBytes: bytes, unknownFields: fields, concurrentAttackers: concurrency, secondsUnderAttack: seconds, boundMs: BOUND_MS },
      idle: { xds: stats(idle.xds), ready: stats(idle.ready), daemonEventLoopDelay: idleLoop },
      underAttack: { xds: stats(underAttack.xds), ready: stats(underAttack.ready), daemonEventLoopDelay: attackLoop },
      hostileReviews: { statuses, ...stats(reviews.map((r) => r.ms)) },
      probesWithinBound: Math.max(...underAttack.xds, ...underAttack.ready) <= BOUND_MS,
      eventLoopWithinBound: attackLoop.maxMs <= BOUND_MS,
    };
    const row = (name: string, s: ReturnType<typeof stats>) => `| ${name} | ${s.n} | ${s.p50Ms} | ${s.p99Ms} | ${s.maxMs} | ${s.overBound} (${round((100 * s.overBound) / s.n)}%) |`;
    const markdown = [
      result.description + '.',
      '',
      `Inputs: ${bytes} bytes per review (${fields} unknown fields), ${concurrency} attackers back to back for ${seconds} s.`,
      '',
      `| probe | n | p50 ms | p99 ms | max ms | over ${BOUND_MS} ms |`,
      '|---|---|---|---|---|---|',
      row('xDS round trip, idle', result.idle.xds),
      row('/ready, idle', result.idle.ready),
      row('xDS round trip, under attack', result.underAttack.xds),
      row('/ready, under attack', result.underAttack.ready),
      row('hostile review answer', result.hostileReviews),
      '',
      `Daemon event-loop delay (prom-client, 10 ms resolution): idle p99 ${idleLoop.p99Ms} ms, max ${idleLoop.maxMs} ms; under attack p99 ${attackLoop.p99Ms} ms, max ${attackLoop.maxMs} ms.`,
      `Statuses of the hostile reviews: ${JSON.stringify(statuses)}. Event loop never blocked over ${BOUND_MS} ms: ${result.eventLoopWithinBound ? 'yes' : 'no'}; every probe under attack within ${BOUND_MS} ms: ${result.probesWithinBound ? 'yes' : 'no'}.`,
    ].join('\n');
    return { ...result, markdown };
  } finally {
    await d.stop();
  }
}

// Run directly: node bench/dist/webhook.js
if (import.meta.url === `file://${process.argv[1]}`) {
  runWebhookBench().then((r) => console.log(JSON.stringify({ ...r, markdown: undefined }, null, 2) + '\n' + r.markdown));
}
