import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient } from '@sextant/testing/xds-client';
import { sextantBin, startSextant } from './sextant.js';

/**
 * The metrics Istio's control-plane Grafana dashboard queries, read from the
 * dashboard JSON of the pinned Istio module (the version scripts/install-istio.sh
 * builds, in the Go module cache after `make tools`), must be exported by the
 * real daemon's /metrics with istiod's type, buckets and the labels the
 * queries use; and they must move on the daemon's real path.
 */
const repo = join(sextantBin, '..', '..', '..', '..');
const istioVersion = /^ISTIO_VERSION=\$\{ISTIO_VERSION:-([^}]+)\}/m.exec(readFileSync(join(repo, 'scripts', 'install-istio.sh'), 'utf8'))?.[1];

function goModCache(): string {
  if (process.env.GOMODCACHE) return process.env.GOMODCACHE;
  try {
    return execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).trim();
  } catch {
    return join(process.env.GOPATH ?? join(homedir(), 'go'), 'pkg', 'mod');
  }
}
const istioDir = istioVersion ? join(goModCache(), 'istio.io', `istio@${istioVersion}`) : '';
const dashboardFile = join(istioDir, 'manifests', 'addons', 'dashboards', 'pilot-dashboard.gen.json');
const skip = existsSync(dashboardFile) ? false : `Istio module ${istioVersion} not in the Go module cache (run make tools)`;
if (skip && process.env.CI === 'true') throw new Error(skip);

/** Series that Prometheus gets from elsewhere, not from istiod's /metrics. */
const notFromIstiod: Array<[RegExp, string]> = [
  [/^container_/, 'cAdvisor (kubelet) container metrics'],
  [/^envoy_/, "the proxies' own Envoy stats"],
  [/^go_/, "the Go runtime's; Sextant runs on Node and exports process_* and nodejs_* instead"],
];
/** Labels Prometheus attaches from the scrape target, not the exporter. */
const targetLabels = new Set(['app', 'pod', 'namespace', 'instance', 'job']);

const promqlWords = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'by', 'without', 'rate', 'irate', 'increase', 'histogram_quantile', 'topk', 'bottomk',
  'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'delta', 'deriv', 'abs', 'label_replace',
]);

interface Use {
  metric: string;
  labels: Set<string>;
}

/** Metric names and the labels each query uses (matchers and by/without), from every `expr` in the dashboard. */
function dashboardUses(json: unknown): Map<string, Set<string>> {
  const exprs: string[] = [];
  const walk = (o: unknown) => {
    if (Array.isArray(o)) o.forEach(walk);
    else if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) k === 'expr' && typeof v === 'string' ? exprs.push(v) : walk(v);
  };
  walk(json);
  const uses = new Map<string, Set<string>>();
  for (const expr of exprs) {
    const grouping = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
    const found: Use[] = [];
    const noStrings = expr.replace(/\[[^\]]*\]/g, '');
    for (const m of noStrings.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?/g)) {
      const name = m[1]!;
      if (promqlWords.has(name) || grouping.includes(name) || /^\d/.test(name)) continue;
      // Label names inside a matcher are not metrics: skip names that sit inside braces.
      const before = noStrings.slice(0, m.index);
      if (before.lastIndexOf('{') > before.lastIndexOf('}')) continue;
      if (before.endsWith('"') || /=\s*"?$/.test(before)) continue;
      const labels = new Set<string>(grouping);
      for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.add(lm[1]!);
      found.push({ metric: name, labels });
    }
    for (const f of found) {
      const base = f.metric.replace(/_(bucket|sum|count)$/, '');
      const key = f.metric.endsWith('_bucket') ? base : f.metric;
      const set = uses.get(key) ?? new Set<string>();
      for (const l of f.labels) set.add(l);
      uses.set(key, set);
    }
  }
  return uses;
}

interface IstioMetric {
  type: 'counter' | 'gauge' | 'histogram';
  buckets?: number[];
}

/** istiod's metric definitions (monitoring.NewSum/NewGauge/NewDerivedGauge/NewDistribution) in the module's Go sources. */
function istioDefinitions(): Map<string, IstioMetric> {
  const out = new Map<string, IstioMetric>();
  const files: string[] = [];
  const visit = (dir: string) => {
    for (const e of readdirSync(dir)) {
      if (e === 'testdata' || e === 'vendor' || e.startsWith('.')) continue;
      const p = join(dir, e);
      const st = statSync(p);
      if (st.isDirectory()) visit(p);
      else if (e.endsWith('.go') && !e.endsWith('_test.go')) files.push(p);
    }
  };
  for (const d of ['pilot', 'pkg', 'security']) visit(join(istioDir, d));
  const def = /monitoring\.New(Sum|Gauge|DerivedGauge|Distribution)\(\s*"([a-z0-9_]+)",([\s\S]*?)\n\s*\)/g;
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    if (!src.includes('monitoring.New')) continue;
    for (const m of src.matchAll(def)) {
      const kind = m[1]!;
      const type = kind === 'Sum' ? 'counter' : kind === 'Distribution' ? 'histogram' : 'gauge';
      const b = /\[\]float64\{([^}]*)\}/.exec(m[3]!);
      out.set(m[2]!, { type, ...(b ? { buckets: b[1]!.split(',').map((x) => Number(x.trim())).filter((x) => !Number.isNaN(x)) } : {}) });
    }
  }
  return out;
}

interface Exposition {
  types: Map<string, string>;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** Prometheus text exposition (what /metrics serves): TYPE lines and samples. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

const value = (e: Exposition, name: string, labels: Record<string, string> = {}) =>
  e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

async function scrape(url: string): Promise<Exposition> {
  return parseExposition(await (await fetch(`${url}/metrics`)).text());
}

const productpage = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

test("Istio's control-plane dashboard metrics are exported with istiod's names, types, buckets and labels, and move on the real path", { skip }, async () => {
  const uses = dashboardUses(JSON.parse(readFileSync(dashboardFile, 'utf8')));
  const defs = istioDefinitions();
  // The brief's metrics and istiod's CA metrics (all citadel_server_*), with the labels istiod gives them.
  const required = new Map<string, Set<string>>([
    ['pilot_proxy_convergence_time', new Set()],
    ['pilot_xds_pushes', new Set(['type'])],
    ['pilot_xds', new Set(['version'])],
    ['pilot_push_triggers', new Set(['type'])],
    ['pilot_total_xds_rejects', new Set(['type'])],
    ['pilot_xds_push_time', new Set(['type'])],
    ['pilot_xds_expired_nonce', new Set()],
    ['pilot_pushcontext_init_seconds', new Set()],
    ...[...defs.keys()].filter((n) => n.startsWith('citadel_server_')).map((n): [string, Set<string>] => [n, new Set(n === 'citadel_server_csr_sign_err_count' ? ['error'] : [])]),
  ]);
  assert.ok(uses.size >= 10, `the dashboard's queries name metrics (found ${[...uses.keys()].join(', ')})`);
  assert.ok([...required.keys()].filter((n) => n.startsWith('citadel_server_')).length >= 8, "istiod's citadel_server_* definitions were found in the module");
  const checked = new Map<string, Set<string>>(required);
  for (const [metric, labels] of uses) {
    if (notFromIstiod.some(([re]) => re.test(metric))) continue;
    const set = checked.get(metric) ?? new Set<string>();
    for (const l of labels) if (l !== 'le' && !targetLabels.has(l)) set.add(l);
    checked.set(metric, set);
  }
  if (process.env.SEXTANT_TEST_DEBUG) console.log([...checked].map(([k, v]) => `${k}{${[...v]}}`).join(" "));
  for (const must of ['pilot_xds_pushes', 'pilot_total_xds_rejects', 'pilot_xds', 'pilot_push_triggers', 'istio_build', 'pilot_xds_push_time', 'pilot_k8s_cfg_events']) {
    assert.ok(checked.has(must), `${must} is checked`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'sextant-metrics-'));
  cpSync(join(repo, 'examples', 'bookinfo'), dir, { recursive: true });
  const caDir = mkdtempSync(join(tmpdir(), 'sextant-metrics-ca-'));
  const sextant = await startSextant({ configDir: dir, args: ['--debounce-after', '50ms', '--ca-dir', caDir] });
  const client = new SotwClient(sextant.xdsAddress, { node: { id: productpage, metadata: { ISTIO_VERSION: '1.31-dev' } } });
  try {
    const before = await scrape(sextant.monitoringUrl);
    // A proxy connects and takes clusters and listeners; it NACKs one listener response, and sends one stale nonce.
    client.request(TypeUrl.Cluster);
    const cds = await client.next();
    client.ack(cds);
    client.request(TypeUrl.Listener);
    const lds = await client.next();
    client.nack(lds, 'Error adding/updating listener(s) 0.0.0.0_9080: test rejection');
    client.request(TypeUrl.Cluster, { versionInfo: cds.versionInfo, responseNonce: 'not-a-nonce-we-sent' });
    // A config change pushes to it: convergence and a config trigger.
    writeFileSync(
      join(dir, 'extra.yaml'),
      'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: default}\nspec: {host: ratings, trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}}\n',
    );
    // The validation webhook: one object passes, one fails.
    const root = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    assert.equal(await review(sextant.webhookUrl, root, { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }), true);
    assert.equal(await review(sextant.webhookUrl, root, { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' }, weight: 'fifty' }] }] }), false);
    const pushed = await client.next(10_000);
    assert.equal(pushed.typeUrl, TypeUrl.Cluster);

    let after = await scrape(sextant.monitoringUrl);
    for (let i = 0; i < 100 && value(after, 'pilot_proxy_convergence_time_count') === value(before, 'pilot_proxy_convergence_time_count'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await scrape(sextant.monitoringUrl);
    }

    for (const [metric, labels] of checked) {
      const def = defs.get(metric);
      assert.ok(def, `${metric}: istiod defines it in the pinned module`);
      assert.equal(after.types.get(metric), def.type, `${metric}: Sextant exports it as istiod's ${def.type}`);
      if (def.type === 'histogram') {
        const les = [...new Set(after.samples.filter((s) => s.name === `${metric}_bucket`).map((s) => s.labels.le!))].filter((l) => l !== '+Inf').map(Number);
        if (les.length) assert.deepEqual(les.sort((a, b) => a - b), def.buckets, `${metric}: istiod's buckets`);
      }
      const series = after.samples.filter((s) => s.name === metric || s.name === `${metric}_count` || s.name === `${metric}_bucket`);
      for (const s of series) for (const l of labels) assert.ok(l in s.labels, `${metric}: label ${l} the dashboard queries is on ${JSON.stringify(s.labels)}`);
    }

    // The values are real: they moved with what the proxy and the config did.
    assert.equal(value(after, 'istio_build', { component: 'pilot' }), 1);
    assert.equal(value(after, 'pilot_xds', { version: '1.31-dev' }), 1, 'one connected proxy, by its ISTIO_VERSION');
    assert.ok(value(after, 'pilot_xds_pushes', { type: 'cds' }) >= 2, 'CDS pushes counted');
    assert.ok(value(after, 'pilot_xds_pushes', { type: 'lds' }) >= 1, 'LDS pushes counted');
    assert.ok(value(after, 'pilot_xds_push_time_count', { type: 'cds' }) >= 2);
    assert.ok(value(after, 'pilot_xds_config_size_bytes_sum', { type: 'cds' }) > 1000, 'config sizes observed');
    assert.equal(value(after, 'pilot_total_xds_rejects', { type: 'lds' }) - value(before, 'pilot_total_xds_rejects', { type: 'lds' }), 1, 'the NACK counted under type=lds');
    assert.equal(value(after, 'pilot_xds_expired_nonce') - value(before, 'pilot_xds_expired_nonce'), 1, 'the stale nonce counted');
    assert.ok(value(after, 'pilot_push_triggers', { type: 'config' }) > value(before, 'pilot_push_triggers', { type: 'config' }), 'a config trigger');
    assert.ok(value(after, 'pilot_proxy_convergence_time_count') > value(before, 'pilot_proxy_convergence_time_count'), 'convergence observed for the push');
    assert.ok(value(after, 'pilot_k8s_cfg_events', { type: 'DestinationRule', event: 'add' }) >= 1, 'the config event counted');
    assert.ok(value(after, 'pilot_services') >= 4);
    assert.equal(value(after, 'galley_validation_passed') - value(before, 'galley_validation_passed'), 1, 'the valid object counted');
    assert.equal(value(after, 'galley_validation_failed') - value(before, 'galley_validation_failed'), 1, 'the invalid object counted');
    assert.ok(value(after, 'citadel_server_root_cert_expiry_timestamp') > Date.now() / 1000, 'root expiry is the real root');
    assert.ok(value(after, 'citadel_server_cert_chain_expiry_seconds') > 0, 'signing chain expiry is real');
  } finally {
    client.close();
    await sextant.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(caDir, { recursive: true, force: true });
  }
});

/** One AdmissionReview for a VirtualService to the daemon's /validate (TLS, Sextant's root). */
function review(webhookUrl: string, root: string, spec: Record<string, unknown>): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${webhookUrl}/validate`);
    const req = httpsRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: root, servername: 'localhost', headers: { 'content-type': 'application/json' } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve((JSON.parse(body) as { response: { allowed: boolean } }).response.allowed));
      },
    );
    req.on('error', reject);
    const object = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x', namespace: 'default' }, spec };
    req.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, operation: 'CREATE', namespace: 'default', name: 'x', object } }));
  });
}
