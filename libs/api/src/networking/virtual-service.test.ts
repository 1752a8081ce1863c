import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewaySpec } from './gateway.js';
import { VirtualServiceSpec, checkRe2Regex } from './virtual-service.js';

const issues = (r: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) =>
  (r.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

test('RE2 regex check: rejects what RE2 cannot run, accepts RE2 spellings', () => {
  assert.match(checkRe2Regex('foo(?=bar)')!, /lookahead/);
  assert.match(checkRe2Regex('(a)\\1')!, /backreferences/);
  assert.match(checkRe2Regex('([a-z]')!, /not a valid RE2 regex: missing \)/);
  assert.equal(checkRe2Regex('(?i)^/api/(?P<v>v[0-9]+)/.*'), undefined);
  assert.equal(checkRe2Regex('/reviews/[0-9]+'), undefined);
});

test('VirtualService: a valid spec passes; bad ones give Istio-worded reasons at the field', () => {
  assert.ok(VirtualServiceSpec.safeParse({ hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] }).success);
  const bad = VirtualServiceSpec.safeParse({
    hosts: ['reviews', 'reviews'],
    http: [
      { match: [{ uri: { regex: '(?!x)' } }], route: [{ destination: { host: 'a' }, weight: 0 }, { destination: { host: 'b' }, weight: 0 }] },
      { route: [{ destination: { host: 'a' } }], redirect: { uri: '/x' } },
      { route: [{ destination: { host: 'a' } }], bogus: 1 },
    ],
  });
  const msgs = issues(bad);
  assert.ok(msgs.some((m) => m.startsWith('http.0.match.0.uri.regex') && /lookahead/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('http.0.route') && /total destination weight = 0/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /cannot contain both route and redirect/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /bogus/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /duplicate hosts in virtual service/.test(m)), msgs.join('\n'));
  const del = issues(VirtualServiceSpec.safeParse({ gateways: ['gw'], http: [{ delegate: { name: 'x' } }] }));
  assert.ok(del.some((m) => /delegate virtual service must have no gateways/.test(m)));
  assert.ok(del.some((m) => /delegate HTTP route cannot contain delegate/.test(m)));
  assert.ok(issues(VirtualServiceSpec.safeParse({ hosts: ['*'], http: [{ route: [{ destination: { host: 'a' } }] }] })).some((m) => /wildcard host \*/.test(m)));
});

test('Gateway: servers, TLS settings and hosts are checked', () => {
  assert.ok(GatewaySpec.safeParse({ selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] }).success);
  const msgs = issues(
    GatewaySpec.safeParse({
      servers: [
        { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['a.example.com'] },
        { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['a/b/c'], tls: { mode: 'SIMPLE', credentialName: 'x' } },
        { port: { number: 8443, name: 'x', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'SIMPLE' } },
      ],
    }),
  );
  assert.ok(msgs.some((m) => /HTTPS port must have tls settings/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /TLS settings for plain text HTTP ports/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /not a valid host/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => /requires a credentialName/.test(m)), msgs.join('\n'));
  assert.ok(issues(GatewaySpec.safeParse({ servers: [] })).some((m) => /at least one server/.test(m)));
});
