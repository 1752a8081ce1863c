import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue } from './object.js';
import { didYouMean, formatPath, parseFieldPath, validateObject } from './validate.js';

const pa = (spec: unknown, meta: Record<string, unknown> = { name: 'pa', namespace: 'ns' }) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'PeerAuthentication',
  metadata: meta,
  spec,
});

const se = (spec: Record<string, unknown>) => ({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'se', namespace: 'x' }, spec });

/** Bad objects and the exact text operators see. */
const TABLE: Array<[string, unknown, string[]]> = [
  ['not an object', 'hello', ['<unknown kind>/<no name>: (object): expected a Kubernetes object (a map with apiVersion, kind and metadata), got a string "hello"']],
  ['no kind, apiVersion or metadata', {}, [
    '<unknown kind>/<no name>: kind: required field missing',
    '<unknown kind>/<no name>: apiVersion: required field missing',
    '<unknown kind>/<no name>: metadata: required field missing',
  ]],
  ['misspelt kind', { apiVersion: 'networking.istio.io/v1', kind: 'VirtualServce', metadata: { name: 'a', namespace: 'x' } }, [
    'VirtualServce/x/a: kind: unknown kind "VirtualServce" (did you mean "VirtualService"?)',
  ]],
  ['unknown kind', { apiVersion: 'example.com/v1', kind: 'Frobnicator', metadata: { name: 'a', namespace: 'x' } }, [
    'Frobnicator/x/a: kind: unknown kind "Frobnicator"; Sextant reads Service, EndpointSlice, Pod, Namespace, Node, Secret, ConfigMap, VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, WorkloadGroup, Sidecar, EnvoyFilter, PeerAuthentication, RequestAuthentication, AuthorizationPolicy, Telemetry',
  ]],
  ['version not served', { ...pa({}), apiVersion: 'security.istio.io/v1alpha1' }, [
    'PeerAuthentication/ns/pa: apiVersion: version "v1alpha1" of PeerAuthentication is not served; use "security.istio.io/v1", "security.istio.io/v1beta1"',
  ]],
  ['wrong group', { ...pa({}), apiVersion: 'networking.istio.io/v1' }, [
    'PeerAuthentication/ns/pa: apiVersion: Sextant does not read PeerAuthentication from API group "networking.istio.io"; it reads PeerAuthentication from "security.istio.io" ("security.istio.io/v1", "security.istio.io/v1beta1")',
  ]],
  ['Gateway API Gateway: no body errors', { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'x' }, spec: { gatewayClassName: 'istio', listeners: [] } }, [
    'Gateway/x/gw: apiVersion: Sextant does not read Gateway from API group "gateway.networking.k8s.io"; it reads Gateway from "networking.istio.io" ("networking.istio.io/v1", "networking.istio.io/v1alpha3", "networking.istio.io/v1beta1")',
  ]],
  ['bad name', pa({}, { name: 'My_Policy', namespace: 'ns' }), [
    `PeerAuthentication/ns/My_Policy: metadata.name: "My_Policy" is not a valid name: use lower case letters, digits, '-' and '.', starting and ending with a letter or digit`,
  ]],
  ['missing name', pa({}, { namespace: 'ns' }), ['PeerAuthentication/ns/<no name>: metadata.name: required field missing']],
  ['bad namespace', pa({}, { name: 'a', namespace: 'Prod.ns' }), [
    `PeerAuthentication/Prod.ns/a: metadata.namespace: "Prod.ns" is not a valid name: use lower case letters, digits and '-', starting and ending with a letter or digit`,
  ]],
  ['Service name must start with a letter', { apiVersion: 'v1', kind: 'Service', metadata: { name: '1svc', namespace: 'x' } }, [
    `Service/x/1svc: metadata.name: "1svc" is not a valid name: use lower case letters, digits and '-', starting with a letter and ending with a letter or digit`,
  ]],
  ['name too long', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a'.repeat(64) } }, [
    `Namespace/${'a'.repeat(64)}: metadata.name: must be no more than 63 characters (has 64)`,
  ]],
  ['bad label value', pa({}, { name: 'a', namespace: 'ns', labels: { 'app.kubernetes.io/name': 'a b' } }), [
    `PeerAuthentication/ns/a: metadata.labels["app.kubernetes.io/name"]: "a b" is not a valid label value: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`,
  ]],
  ['labels not a map', pa({}, { name: 'a', namespace: 'ns', labels: ['x'] }), ['PeerAuthentication/ns/a: metadata.labels: expected a map, got a list']],
  ['enum typo', pa({ mtls: { mode: 'STRIKT' } }), [
    'PeerAuthentication/ns/pa: spec.mtls.mode: must be one of "UNSET", "DISABLE", "PERMISSIVE", "STRICT"; got a string "STRIKT"',
  ]],
  ['unknown field with suggestion', pa({ mtsl: { mode: 'STRICT' } }), ['PeerAuthentication/ns/pa: spec.mtsl: unknown field "mtsl" (did you mean "mtls"?)']],
  ['unknown field without suggestion', pa({ frobnicate: true }), ['PeerAuthentication/ns/pa: spec.frobnicate: unknown field "frobnicate"']],
  ['misspelt spec', { ...pa(undefined), sepc: {} }, ['PeerAuthentication/ns/pa: sepc: unknown field "sepc" (did you mean "spec"?)']],
  ['port key out of range', pa({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '70000': { mode: 'STRICT' } } }), [
    'PeerAuthentication/ns/pa: spec.portLevelMtls["70000"]: port "70000" must be a number between 1 and 65535',
  ]],
  ['portLevelMtls without selector', pa({ portLevelMtls: { '8080': { mode: 'STRICT' } } }), [
    'PeerAuthentication/ns/pa: spec.portLevelMtls: portLevelMtls requires a selector with matchLabels',
  ]],
  ['wildcard in selector', pa({ selector: { matchLabels: { app: 'a*' } } }), [
    'PeerAuthentication/ns/pa: spec.selector.matchLabels.app: wildcard "*" is not allowed in label value "a*"',
  ]],
  ['wrong type in a list', { apiVersion: 'security.istio.io/v1beta1', kind: 'AuthorizationPolicy', metadata: { name: 'ap', namespace: 'ns' }, spec: { rules: [{ from: [{ source: { principals: 'cluster.local/ns/a/sa/b' } }] }] } }, [
    'AuthorizationPolicy/ns/ap: spec.rules[0].from[0].source.principals: expected a list, got a string "cluster.local/ns/a/sa/b"',
  ]],
  ['required field in a list item', { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'ap', namespace: 'ns' }, spec: { rules: [{ when: [{ values: ['a'] }] }] } }, [
    'AuthorizationPolicy/ns/ap: spec.rules[0].when[0].key: required field missing',
  ]],
  ['CUSTOM without provider', { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'ap', namespace: 'ns' }, spec: { action: 'CUSTOM' } }, [
    'AuthorizationPolicy/ns/ap: spec.provider: action CUSTOM requires a provider',
  ]],
  ['selector and targetRef', { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'ra', namespace: 'ns' }, spec: { selector: {}, targetRef: { kind: 'Gateway', name: 'gw' } } }, [
    'RequestAuthentication/ns/ra: spec: only one of selector, targetRef or targetRefs may be set',
  ]],
  ['jwksUri scheme and missing issuer', { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'ra', namespace: 'ns' }, spec: { jwtRules: [{ jwksUri: 'ftp://x' }] } }, [
    'RequestAuthentication/ns/ra: spec.jwtRules[0].issuer: required field missing',
    'RequestAuthentication/ns/ra: spec.jwtRules[0].jwksUri: "ftp://x" must be an http:// or https:// URL',
  ]],
  ['bad duration and percentage', { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 't', namespace: 'ns' }, spec: { tracing: [{ randomSamplingPercentage: 101 }], metrics: [{ reportingInterval: '5 seconds' }] } }, [
    'Telemetry/ns/t: spec.tracing[0].randomSamplingPercentage: must be at most 100, got 101',
    'Telemetry/ns/t: spec.metrics[0].reportingInterval: "5 seconds" is not a duration: write a number with a unit, like "1s", "500ms" or "1m30s"',
  ]],
  ['two custom tag kinds', { apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: { name: 't', namespace: 'ns' }, spec: { tracing: [{ customTags: { team: { literal: { value: 'a' }, header: { name: 'x' } } } }] } }, [
    'Telemetry/ns/t: spec.tracing[0].customTags.team: only one of literal, environment, header or formatter may be set',
  ]],
  ['Service port as a word', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'x' }, spec: { ports: [{ port: 'fifty' }, { port: 70000 }, {}] } }, [
    'Service/x/reviews: spec.ports[0].port: expected a number, got a string "fifty"',
    'Service/x/reviews: spec.ports[1].port: must be at most 65535, got 70000',
    'Service/x/reviews: spec.ports[2].port: required field missing',
  ]],
  ['EndpointSlice address type', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'e', namespace: 'x' }, addressType: 'IPv5', endpoints: [{ addresses: [] }] }, [
    'EndpointSlice/x/e: addressType: must be one of "IPv4", "IPv6", "FQDN"; got a string "IPv5"',
    'EndpointSlice/x/e: endpoints[0].addresses: must have at least one item',
  ]],
  ['Secret data not base64', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'x' }, data: { 'tls.crt': 'not base64!' } }, [
    'Secret/x/s: data["tls.crt"]: must be base64 encoded (use stringData for plain text)',
  ]],
  ['ServiceEntry CIDR with DNS resolution', se({ hosts: ['a.example.com'], addresses: ['10.20.0.0/24'], resolution: 'DNS', ports: [{ number: 80, name: 'http' }] }), [
    'ServiceEntry/x/se: spec.addresses: CIDR addresses are allowed only for NONE/STATIC resolution types',
  ]],
  ['ServiceEntry address neither IP nor CIDR', se({ hosts: ['a.example.com'], addresses: ['10.20.0.0/33', 'example.com'] }), [
    'ServiceEntry/x/se: spec.addresses[0]: "10.20.0.0/33" is not an IP address or CIDR range',
    'ServiceEntry/x/se: spec.addresses[1]: "example.com" is not an IP address or CIDR range',
  ]],
];

test('a ServiceEntry with a CIDR address and STATIC (or NONE) resolution is valid, as in Istio', () => {
  for (const resolution of ['STATIC', 'NONE', undefined]) {
    const res = validateObject(se({ hosts: ['partners.internal'], addresses: ['10.20.0.0/24', '2001:db8::/64', '10.30.0.1'], resolution, endpoints: [{ address: '10.20.0.5' }], ports: [{ number: 7443, name: 'tcp', protocol: 'TCP' }] }));
    assert.ok(res.ok, JSON.stringify(res.ok ? '' : res.issues.map(formatIssue)));
  }
});

for (const [name, raw, expected] of TABLE) {
  test(`validation message: ${name}`, () => {
    const res = validateObject(raw);
    assert.equal(res.ok, false, 'expected the object to be rejected');
    if (!res.ok) assert.deepEqual(res.issues.map(formatIssue), expected);
  });
}

test('a valid object comes back typed, with namespace defaulting and versions', () => {
  const res = validateObject(
    { apiVersion: 'security.istio.io/v1beta1', kind: 'PeerAuthentication', metadata: { name: 'default', labels: { a: 'b' }, managedFields: [] }, spec: { mtls: { mode: 'STRICT' } } },
    { defaultNamespace: 'default' },
  );
  assert.ok(res.ok);
  assert.deepEqual(res.object, {
    kind: 'PeerAuthentication',
    group: 'security.istio.io',
    version: 'v1beta1',
    metadata: { name: 'default', namespace: 'default', labels: { a: 'b' } },
    body: { spec: { mtls: { mode: 'STRICT' } } },
  });
  assert.deepEqual(res.warnings, []);
});

test('an Istio object without spec gets an empty spec; cluster-scoped kinds drop a namespace', () => {
  const a = validateObject({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-all', namespace: 'x' } });
  assert.ok(a.ok);
  assert.deepEqual(a.object.body, { spec: {} });
  const n = validateObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', namespace: 'x' } }, { defaultNamespace: 'default' });
  assert.ok(n.ok);
  assert.equal(n.object.metadata.namespace, undefined);
});

test('core kinds keep fields Sextant does not model', () => {
  const res = validateObject({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'reviews', namespace: 'x' },
    spec: { ports: [{ port: 9080, name: 'http' }], selector: { app: 'reviews' }, somethingNew: 1 },
    status: {},
  });
  assert.ok(res.ok);
  assert.deepEqual((res.object.body as { spec: unknown }).spec, { ports: [{ port: 9080, name: 'http' }], selector: { app: 'reviews' }, somethingNew: 1 });
});

test('unknownFields: warn accepts the object without the unknown field and reports it', () => {
  const res = validateObject(pa({ mtls: { mdoe: 'STRICT' }, selector: { matchLabels: { app: 'a' } } }), { unknownFields: 'warn' });
  assert.ok(res.ok);
  assert.deepEqual(res.object.body, { spec: { mtls: {}, selector: { matchLabels: { app: 'a' } } } });
  assert.deepEqual(res.warnings.map(formatIssue), ['PeerAuthentication/ns/pa: spec.mtls.mdoe: unknown field "mdoe" (did you mean "mode"?); ignored']);
  // Other errors still reject.
  const bad = validateObject(pa({ mtls: { mode: 'NOPE' }, x: 1 }), { unknownFields: 'warn' });
  assert.equal(bad.ok, false);
});

test('a rejected object with a name reports its key', () => {
  const res = validateObject(pa({ mtls: { mode: 1 } }));
  assert.ok(!res.ok);
  assert.deepEqual(res.key, { kind: 'PeerAuthentication', namespace: 'ns', name: 'pa' });
});

test('formatPath and didYouMean', () => {
  assert.equal(formatPath(['spec', 'http', 0, 'route', 1, 'weight']), 'spec.http[0].route[1].weight');
  assert.equal(formatPath(['metadata', 'labels', 'app.kubernetes.io/name']), 'metadata.labels["app.kubernetes.io/name"]');
  assert.equal(formatPath([]), '(object)');
  for (const p of [['spec', 'http', 0, 'route', 1, 'weight'], ['metadata', 'labels', 'app.kubernetes.io/name'], ['data', 'a "quoted" key'], []])
    assert.deepEqual(parseFieldPath(formatPath(p)), p);
  assert.equal(didYouMean('hots', ['hosts', 'http', 'gateways']), 'hosts');
  assert.equal(didYouMean('gatways', ['hosts', 'http', 'gateways']), 'gateways');
  assert.equal(didYouMean('zzz', ['hosts', 'http']), undefined);
});

test('validateObject never throws on hostile input', () => {
  const hostile: unknown[] = [null, 1, [], { kind: 5 }, { kind: 'Service', apiVersion: 3, metadata: 'x' }, { kind: 'Service', apiVersion: 'v1', metadata: { name: 7 } },
    { kind: 'VirtualService', apiVersion: 'networking.istio.io/v1', metadata: { name: 'a' }, spec: [] }, { kind: 'Telemetry', apiVersion: 'telemetry.istio.io/v1', metadata: { name: 'a' }, spec: { tracing: 'x' } }];
  for (const h of hostile) {
    const res = validateObject(h);
    assert.equal(res.ok, false);
    if (!res.ok) assert.ok(res.issues.length > 0 && res.issues.every((i) => i.reason.length > 0 && i.field.length > 0));
  }
});

test('null map entries mean "not set", as for the API server', () => {
  const res = validateObject({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'loki', namespace: 'x', annotations: null, creationTimestamp: null },
    spec: { selector: null, ports: [{ port: 80, name: null }] },
  });
  assert.ok(res.ok);
  assert.deepEqual(res.object.metadata, { name: 'loki', namespace: 'x' });
  assert.deepEqual(res.object.body, { spec: { ports: [{ port: 80 }] } });
  const t = validateObject({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 't', namespace: 'x' }, spec: { tracing: [{ randomSamplingPercentage: null }] } });
  assert.ok(t.ok);
  assert.deepEqual(t.object.body, { spec: { tracing: [{}] } });
});

test('an object with thousands of unknown fields: the first 100 are reported with suggestions, the rest counted in one issue', () => {
  const extra = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`f${i}`, i]));
  const res = validateObject(pa({ mtsl: { mode: 'STRICT' }, ...extra }));
  assert.ok(!res.ok);
  assert.equal(res.issues.length, 101);
  assert.equal(formatIssue(res.issues[0]!), 'PeerAuthentication/ns/pa: spec.mtsl: unknown field "mtsl" (did you mean "mtls"?)');
  assert.equal(res.issues[100]!.field, '(object)');
  assert.match(res.issues[100]!.reason, /^4901 more problems not listed \(at most 100 are listed per object\)$/);
  // In warn mode every unknown field is still dropped; the warnings are capped the same way.
  const warned = validateObject(pa({ mtls: { mode: 'STRICT' }, ...extra }), { unknownFields: 'warn' });
  assert.ok(warned.ok);
  assert.deepEqual(Object.keys((warned.object.body as { spec: object }).spec), ['mtls']);
  assert.equal(warned.warnings.length, 101);
  assert.match(warned.warnings[100]!.reason, /^4900 more unknown fields ignored \(at most 100/);
});

test('didYouMean stays exact within its bound and ignores words no field name is that long', () => {
  assert.equal(didYouMean('destinaton', ['destination', 'weight']), 'destination');
  assert.equal(didYouMean('wieght', ['destination', 'weight']), 'weight');
  assert.equal(didYouMean('HOSTS', ['hosts']), 'hosts');
  assert.equal(didYouMean('x'.repeat(65), ['x'.repeat(64)]), undefined);
  assert.equal(didYouMean('abcdefghi', ['abcdwxyzi']), undefined);
});
