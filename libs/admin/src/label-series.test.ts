import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { LabelCounter, LabelHistogram } from './label-series.js';

/** The same observations through prom-client's own metrics and through the series handles: the same text. */
test('series metrics expose what prom-client\'s own would, and reset with the registry', async () => {
  const buckets = [0.01, 0.1, 1, 3];
  const theirs = new Registry();
  const ours = new Registry();
  const h1 = new Histogram({ name: 'h', help: 'a histogram', labelNames: ['type'], buckets, registers: [theirs] });
  const c1 = new Counter({ name: 'c', help: 'a counter', labelNames: ['type'], registers: [theirs] });
  const h2 = new LabelHistogram('h', 'a histogram', 'type', buckets, ours);
  const c2 = new LabelCounter('c', 'a counter', 'type', ours);
  const cds = h2.labels('cds');
  const eds = h2.labels('eds');
  // On a bound, between bounds, past the last, and zero.
  for (const [type, v] of [['cds', 0.01], ['cds', 0.05], ['eds', 2], ['eds', 7], ['cds', 0]] as const) {
    h1.observe({ type }, v);
    (type === 'cds' ? cds : eds).observe(v);
  }
  c1.inc({ type: 'cds' }, 3);
  c1.inc({ type: 'eds' });
  c2.labels('cds').inc(3);
  c2.labels('eds').inc();
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.match(await ours.metrics(), /h_bucket\{le="0.01",type="cds"\} 2/);
  theirs.resetMetrics();
  ours.resetMetrics();
  cds.observe(0.5); // a handle held across the reset still records
  h1.observe({ type: 'cds' }, 0.5);
  const json = (await ours.getMetricsAsJSON()).find((m) => m.name === 'h')!.values as Array<{ metricName?: string; labels: Record<string, unknown>; value: number }>;
  assert.equal(json.find((v) => v.metricName === 'h_count' && v.labels.type === 'cds')!.value, 1);
  assert.throws(() => c2.labels('x').inc(-1), /only goes up/);
  assert.throws(() => cds.observe(Number.NaN), /not a finite number/);
});
