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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ENVOY_MAX_PROGRAM_SIZE, setRegexProgramSizeLimit, validateObject } from '@sextant/api';
import { translateRouteMatch } from '@sextant/translate';
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
