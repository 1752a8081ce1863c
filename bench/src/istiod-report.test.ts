import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toMarkdown, type ChangeFigures, type IstiodBenchReport, type PlaneRun } from './istiod.js';

function change(kind: ChangeFigures['kind'], seenP50Ms?: number, seenP99Ms?: number): ChangeFigures {
  return { kind, allMs: 1, p50Ms: 1, p99Ms: 1, undelivered: 0, cpuSeconds: 0, clientCpuSeconds: 0, bytes: 0, ...(seenP50Ms === undefined ? {} : { seenP50Ms }), ...(seenP99Ms === undefined ? {} : { seenP99Ms }) } as ChangeFigures;
}

function run(plane: PlaneRun['plane'], changes: ChangeFigures[]): PlaneRun {
  return { plane, scope: 'none', proxies: 1000, run: 1, readyMs: 1, rssIdleMB: 1, rssWithNMB: 1, mbPerProxy: 1, peakRssMB: 1, connectMs: 1, connectCpuSeconds: 1, clientConnectCpuSeconds: 1, connectFailed: 0, connectFailures: [], reconnects: 0, clientErrors: [], changes } as PlaneRun;
}

function report(runs: PlaneRun[]): Omit<IstiodBenchReport, 'markdown'> {
  return {
    inputs: { services: 1000, replicas: 2, proxies: [1000], runs: 1, changes: 3, scopes: ['none'], planes: ['sextant', 'istiod'], cores: 2, istiodUnlimitedEnv: {}, cpuList: '0-1', loadAverageAtStart: '0' },
    summary: {},
    runs,
    failures: [],
    notes: [],
  } as unknown as Omit<IstiodBenchReport, 'markdown'>;
}

test('the report lists each endpoint change in the order made, per run, beside the medians', () => {
  const md = toMarkdown(
    report([
      run('sextant', [change('endpoint', 60.2, 91.4), change('endpoint', 50.1, 78.8), change('endpoint', 38, 67.6), change('virtualService')]),
      run('istiod', [change('endpoint', 229, 326), change('endpoint'), change('destinationRule')]),
    ]),
  );
  assert.match(md, /Endpoint changes one by one/);
  assert.match(md, /^- sextant, none, N = 1000, run 1: 60 \/ 91, 50 \/ 79, 38 \/ 68$/m);
  // A change without the figure (no EndpointSlice seen) shows a dash, not a number.
  assert.match(md, /^- istiod, none, N = 1000, run 1: 229 \/ 326, — \/ —$/m);
});

test('no per-change section when no run measured endpoint changes', () => {
  const md = toMarkdown(report([run('sextant', [change('virtualService')])]));
  assert.doesNotMatch(md, /Endpoint changes one by one/);
});
