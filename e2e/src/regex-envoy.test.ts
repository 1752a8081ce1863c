/**
 * Sextant's regex verdict equals Envoy's, regex by regex. For each pattern of
 * the corpus, a VirtualService carrying it as a uri and a header regex goes
 * through validateObject, and the route Sextant's translator makes from the
 * same match is put in a static bootstrap that the real Envoy checks with
 * `envoy --mode validate` (RE2 syntax and the default program-size limit of
 * 100, as it applies them to an xDS update).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ENVOY_MAX_PROGRAM_SIZE, setRegexProgramSizeLimit, validateObject } from '@sextant/api';
import { translateRouteMatch } from '@sextant/translate';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { routeConfigs } from './fixtures/dump.js';
import { startSdsStandIn, type SdsStandIn } from './fixtures/sds.js';
import { startSextant, type RunningSextant } from './sextant.js';
import { skipUnless, toolPath } from './tools.js';

const CORPUS = [
  // RE2 syntax errors that JavaScript's RegExp (without /u) accepts.
  '\\e',
  '\\Z',
  '\\cA',
  'a{1001}',
  '[[:foo:]]',
  '\\p{Foo}',
  // Valid RE2 but over Envoy's default program size.
  '[a-z]{1,200}',
  '(a|b|c|d|e|f|g|h|i|j){50}',
  '.*.*.*.*.*.*.*.*.*.*.*.*',
  // Not RE2 at all.
  'foo(?=bar)',
  '(a)\\1',
  '([a-z]',
  '*',
  'a**',
  // Valid, within the limit; several are RE2 spellings JavaScript lacks or reads differently.
  '/reviews/[0-9]+',
  '(?i)^/api/(?P<v>v[0-9]+)/.*',
  '(?<name>x)',
  'a(?i)b',
  '(?U)a+b',
  '[[:alpha:]]+',
  '\\pL+',
  '\\p{Greek}',
  '\\Qa.b\\E',
  '\\C',
  '\\x{1F600}',
  '\\Aabc\\z',
  '[a-z]{1,10}',
  'a{1000}b?',
  '^/v1/.*$',
];

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * What the real Envoy says about a bootstrap whose one route matches `regex`
 * as Sextant would send it; `errorLevel` sets `re2.max_program_size.error_level`
 * in the bootstrap's runtime (Envoy's default when undefined).
 */
async function envoyVerdict(envoy: string, regex: string, errorLevel?: number): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-regex-'));
  dirs.push(dir);
  const match = translateRouteMatch({ uri: { regex }, headers: { 'x-test': { regex } } });
  const bootstrap = {
    node: { id: 'regex-check', cluster: 'regex-check' },
    ...(errorLevel === undefined ? {} : { layered_runtime: { layers: [{ name: 'static', static_layer: { 're2.max_program_size.error_level': errorLevel } }] } }),
    static_resources: {
      listeners: [
        {
          name: 'l',
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'regex',
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                    route_config: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match, direct_response: { status: 200 } }] }] },
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  };
  const file = join(dir, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(bootstrap));
  return await new Promise((resolve, reject) => {
    const p = spawn(envoy, ['--mode', 'validate', '-c', file, '--log-level', 'error', '--disable-hot-restart'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ ok: code === 0, output });
    });
  });
}

function sextantVerdict(regex: string): { ok: boolean; reasons: string[] } {
  const res = validateObject({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'rx', namespace: 'shop' },
    spec: { hosts: ['web'], http: [{ match: [{ uri: { regex }, headers: { 'x-test': { regex } } }], route: [{ destination: { host: 'web' } }] }] },
  });
  return res.ok ? { ok: true, reasons: [] } : { ok: false, reasons: res.issues.map((i) => `${i.kind}/${i.namespace}/${i.name}: ${i.field}: ${i.reason}`) };
}

async function compare(envoy: string, errorLevel?: number): Promise<{ mismatches: string[]; envoyRejected: number }> {
  const mismatches: string[] = [];
  let envoyRejected = 0;
  for (const regex of CORPUS) {
    const [e, s] = [await envoyVerdict(envoy, regex, errorLevel), sextantVerdict(regex)];
    if (!e.ok) envoyRejected++;
    if (e.ok !== s.ok) {
      const envoySays = e.ok ? 'accepts' : `rejects (${e.output.split('\n').filter((l) => /error|regex|program/i.test(l)).slice(-2).join(' | ')})`;
      mismatches.push(`${JSON.stringify(regex)}: Envoy ${envoySays}; Sextant ${s.ok ? 'accepts' : `rejects (${s.reasons.join('; ')})`}`);
    }
    if (!s.ok) {
      // Reported against the object and both fields, never as a crash.
      assert.ok(s.reasons.some((r) => r.startsWith('VirtualService/shop/rx: spec.http[0].match[0].uri.regex: ')), s.reasons.join('\n'));
      assert.ok(s.reasons.some((r) => r.startsWith('VirtualService/shop/rx: spec.http[0].match[0].headers.x-test.regex: ')), s.reasons.join('\n'));
    }
  }
  return { mismatches, envoyRejected };
}

test('for every regex of the corpus, Sextant accepts exactly what Envoy accepts (default program-size limit)', { skip: skipUnless('envoy') }, async () => {
  const { mismatches, envoyRejected } = await compare(toolPath('envoy')!);
  assert.deepEqual(mismatches, []);
  // The corpus really holds both kinds (so agreement is not vacuous).
  assert.ok(envoyRejected >= 10 && envoyRejected <= CORPUS.length - 10, `Envoy rejected ${envoyRejected} of ${CORPUS.length}`);
});

test('with the limit raised in both (Envoy runtime, --regex-max-program-size), they still agree', { skip: skipUnless('envoy') }, async () => {
  const level = 1000;
  setRegexProgramSizeLimit(level);
  try {
    const { mismatches } = await compare(toolPath('envoy')!, level);
    assert.deepEqual(mismatches, []);
  } finally {
    setRegexProgramSizeLimit(ENVOY_MAX_PROGRAM_SIZE);
  }
});

type Json = Record<string, any>;
const BOOKINFO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'bookinfo');
const PRODUCTPAGE = 'sidecar~10.244.1.10~productpage-v1-5586c4d4ff-h8lqw.default~default.svc.cluster.local';

const regexRoutes = (envoyDump: Awaited<ReturnType<RunningEnvoy['configDump']>>, vhName: string): string[] => {
  const rc = routeConfigs(envoyDump).get('9080')?.config;
  const vh = ((rc?.virtual_hosts ?? []) as Json[]).find((v) => v.name === vhName);
  return ((vh?.routes ?? []) as Json[]).flatMap((r) => (r.match?.safe_regex ? [String(r.match.safe_regex.regex)] : []));
};

test('the daemon and a real Envoy: a regex Envoy would refuse is reported and never sent, so later edits still reach Envoy without a NACK', { skip: skipUnless('envoy') }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-regex-daemon-'));
  dirs.push(dir);
  cpSync(BOOKINFO, dir, { recursive: true });
  let sextant: RunningSextant | undefined;
  let envoy: RunningEnvoy | undefined;
  let sds: SdsStandIn | undefined;
  try {
    sextant = await startSextant({ configDir: dir, env: {} });
    sds = await startSdsStandIn('spiffe://cluster.local/ns/default/sa/bookinfo-productpage');
    envoy = await startEnvoy({
      adsAddress: sextant.xdsAddress,
      nodeId: PRODUCTPAGE,
      metadata: { NAMESPACE: 'default', INTERCEPTION_MODE: 'REDIRECT', LABELS: { app: 'productpage', version: 'v1' } },
      bootstrapExtra: sds.bootstrapExtra(sextant.xdsAddress),
    });
    await envoy.waitForListener('0.0.0.0_9080');
    const rejectedUpdates = (stats: Record<string, number | string>) =>
      Object.entries(stats).filter(([k, v]) => k.endsWith('.update_rejected') && Number(v) > 0).map(([k, v]) => `${k}=${v}`);

    // The details VirtualService gains a route whose regex is over Envoy's program-size limit.
    const bad = '/details/[a-z]{1,200}';
    const istio = join(dir, 'istio.yaml');
    const original = readFileSync(istio, 'utf8');
    const detailsRoute = '  http:\n    - route:\n        - destination:\n            host: details\n            subset: v1\n';
    assert.ok(original.includes(detailsRoute), 'examples/bookinfo/istio.yaml still has the details route this test edits');
    const withBad = original.replace(detailsRoute, `  http:\n    - match:\n        - uri:\n            regex: '${bad}'\n      route:\n        - destination:\n            host: details\n            subset: v1\n    - route:\n        - destination:\n            host: details\n            subset: v1\n`);
    writeFileSync(istio, withBad);
    const warned = await sextant.waitForLog((l) => l.kind === 'VirtualService' && l.namespace === 'default' && l.name === 'details');
    assert.equal(warned.field, 'spec.http[0].match[0].uri.regex');
    assert.match(String(warned.reason), /RE2 program size \d+ is over the limit of 100/);

    // A valid regex edit elsewhere in the same route configuration (9080) reaches Envoy, and Envoy rejected nothing.
    const good = '/reviews/[0-9]+';
    const reviewsHttp = /(name: reviews\n  namespace: default\nspec:\n  hosts:\n    - reviews\n  http:\n)/;
    assert.match(withBad, reviewsHttp);
    writeFileSync(istio, withBad.replace(reviewsHttp, `$1    - match:\n        - uri:\n            regex: '${good}'\n      route:\n        - destination:\n            host: reviews\n            subset: v3\n`));
    const deadline = Date.now() + 30_000;
    let dump = await envoy.configDump();
    while (!regexRoutes(dump, 'reviews.default.svc.cluster.local:9080').includes(good)) {
      assert.deepEqual(rejectedUpdates(await envoy.stats()), [], 'Envoy NACKed an update');
      assert.ok(Date.now() < deadline, `the valid reviews regex route did not reach Envoy within 30 s; Envoy output:\n${envoy.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
      dump = await envoy.configDump();
    }
    assert.deepEqual(rejectedUpdates(await envoy.stats()), []);
    // The details virtual host is its last valid version: no regex route.
    assert.deepEqual(regexRoutes(dump, 'details.default.svc.cluster.local:9080'), []);
  } finally {
    await envoy?.stop();
    await sextant?.stop();
    await sds?.stop();
  }
});
