import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, hostname, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `make bench`: runs every benchmark and writes one report (JSON and Markdown)
 * under bench/results/, with the machine and the inputs. Each benchmark
 * reports medians of repeated runs; ratios are taken within this one run.
 * `make bench BENCH=istiod` (or ca, webhook, abuse) runs one.
 */
interface Section {
  name: string;
  run: () => Promise<unknown>;
}

const sections: Section[] = [
  { name: 'ca', run: async () => (await import('./ca.js')).runCaBench() },
  // Sextant's daemon side by side with istiod on a local cluster (ISTIOD_BENCH_* pick the sizes).
  { name: 'istiod', run: async () => (await import('./istiod.js')).runIstiodBench() },
  { name: 'webhook', run: async () => (await import('./webhook.js')).runWebhookBench() },
  { name: 'abuse', run: async () => (await import('./abuse.js')).runAbuseBench() },
];

async function main() {
  const only = process.env.BENCH?.split(',').filter(Boolean);
  const machine = {
    host: hostname(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    ci: process.env.CI === 'true',
    // Other work on a shared machine moves every figure: record how busy it was.
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))).join(' '),
  };
  const started = new Date();
  const results: Record<string, unknown> = {};
  let failed = false;
  for (const s of sections) {
    if (only && !only.includes(s.name)) continue;
    process.stderr.write(`bench: ${s.name}...\n`);
    try {
      results[s.name] = await s.run();
    } catch (err) {
      failed = true;
      results[s.name] = { error: (err as Error).stack ?? String(err) };
    }
    process.stderr.write(`bench: ${s.name} done\n`);
  }
  const report = { started: started.toISOString(), finished: new Date().toISOString(), machine, results };
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const jsonPath = join(dir, `${stamp}.json`);
  writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.md'), toMarkdown(report));
  process.stdout.write(toMarkdown(report));
  process.stderr.write(`bench: report written to ${jsonPath}\n`);
  if (failed) process.exitCode = 1;
}

function toMarkdown(report: { started: string; machine: Record<string, unknown>; results: Record<string, unknown> }): string {
  const lines = [`# Sextant benchmark report`, '', `Started ${report.started}.`, '', '## Machine', ''];
  for (const [k, v] of Object.entries(report.machine)) lines.push(`- ${k}: ${String(v)}`);
  for (const [name, result] of Object.entries(report.results)) {
    lines.push('', `## ${name}`, '');
    const r = result as { markdown?: string };
    lines.push(typeof r?.markdown === 'string' ? r.markdown : '```json\n' + JSON.stringify(result, null, 2) + '\n```');
  }
  return lines.join('\n') + '\n';
}

await main();
// Everything a run starts is stopped by now, yet twice a harness sat idle after writing its report, its cluster
// gone: whatever handle is left must not keep `make bench` waiting. Say what it was (for the next look), then exit.
setTimeout(() => {
  process.stderr.write(`bench: still open 10 s after the report (${process.getActiveResourcesInfo().join(', ')}); exiting\n`);
  process.exit();
}, 10_000).unref();
