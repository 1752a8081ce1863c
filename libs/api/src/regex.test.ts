import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENVOY_MAX_PROGRAM_SIZE, checkEnvoyRegex, compileRe2, re2Available, regexProgramSizeLimit, setRegexProgramSizeLimit } from './regex.js';
import { validateObject } from './validate.js';

test('the RE2 binding is built and loads (make re2)', () => {
  assert.ok(re2Available(), 'libs/api/build/re2.node is missing: run `make re2`');
});

test("RE2's own parser: errors JavaScript's RegExp would not raise, and RE2 spellings JavaScript lacks", () => {
  // [pattern, RE2's message] — RE2 is the judge, its wording is passed on.
  const errors: Array<[string, RegExp]> = [
    ['\\e', /invalid escape sequence: \\e/],
    ['\\Z', /invalid escape sequence: \\Z/],
    ['\\cA', /invalid escape sequence: \\c/],
    ['a{1001}', /invalid repetition size: \{1001\}/],
    ['[[:foo:]]', /invalid character class range: \[:foo:\]/],
    ['\\p{Foo}', /invalid character class range: \\p\{Foo\}/],
  ];
  for (const [re, why] of errors) {
    const r = compileRe2(re);
    assert.equal(r.ok, false, re);
    assert.match(checkEnvoyRegex(re)!, why);
  }
  for (const re of ['(?i)^/api/(?P<v>v[0-9]+)/.*', 'a(?i)b', '[[:alpha:]]+', '\\Qa.b\\E', '\\C', '(?U)a+'])
    assert.equal(checkEnvoyRegex(re), undefined, re);
});

test("program size: what Envoy's default error level (100) lets through and what it refuses", () => {
  const small = compileRe2('[a-z]{1,10}');
  assert.ok(small.ok && small.programSize <= ENVOY_MAX_PROGRAM_SIZE);
  for (const re of ['[a-z]{1,200}', '(a|b|c|d|e|f|g|h|i|j){50}']) {
    const r = compileRe2(re);
    assert.ok(r.ok && r.programSize > ENVOY_MAX_PROGRAM_SIZE, `${re}: ${JSON.stringify(r)}`);
    assert.match(checkEnvoyRegex(re)!, new RegExp(`RE2 program size ${r.ok ? r.programSize : 0} is over the limit of 100`));
    assert.equal(checkEnvoyRegex(re, { maxProgramSize: r.ok ? r.programSize : 0 }), undefined);
  }
});

test('every VirtualService field Envoy compiles as a regex is checked and reported at its path', () => {
  const bad = '[a-z]{1,200}';
  const res = validateObject({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'rx', namespace: 'shop' },
    spec: {
      hosts: ['web'],
      http: [
        {
          match: [
            {
              uri: { regex: bad },
              scheme: { regex: bad },
              method: { regex: bad },
              authority: { regex: bad },
              headers: { 'x-a': { regex: bad } },
              withoutHeaders: { 'x-b': { regex: bad } },
              queryParams: { q: { regex: bad } },
            },
          ],
          rewrite: { uriRegexRewrite: { match: bad, rewrite: '/' } },
          corsPolicy: { allowOrigins: [{ regex: bad }] },
          route: [{ destination: { host: 'web' } }],
        },
      ],
    },
  });
  assert.equal(res.ok, false);
  const fields = res.ok ? [] : res.issues.map((i) => `${i.kind}/${i.namespace}/${i.name} ${i.field}`).sort();
  const at = (f: string) => `VirtualService/shop/rx spec.http[0].${f}`;
  assert.deepEqual(
    fields,
    [
      'corsPolicy.allowOrigins[0].regex',
      'match[0].authority.regex',
      'match[0].headers.x-a.regex',
      'match[0].method.regex',
      'match[0].queryParams.q.regex',
      'match[0].scheme.regex',
      'match[0].uri.regex',
      'match[0].withoutHeaders.x-b.regex',
      'rewrite.uriRegexRewrite.match',
    ]
      .map(at)
      .sort(),
  );
});

test('the process-wide limit (--regex-max-program-size) moves the line, e.g. to the 32768 of pilot-agent bootstraps', () => {
  assert.equal(regexProgramSizeLimit(), ENVOY_MAX_PROGRAM_SIZE);
  try {
    setRegexProgramSizeLimit(32768);
    assert.equal(checkEnvoyRegex('[a-z]{1,200}'), undefined);
    assert.match(checkEnvoyRegex('\\e')!, /invalid escape sequence/, 'syntax errors stay errors');
  } finally {
    setRegexProgramSizeLimit(ENVOY_MAX_PROGRAM_SIZE);
  }
  assert.throws(() => setRegexProgramSizeLimit(0), RangeError);
});
