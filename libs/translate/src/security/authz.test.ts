import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { parseProxy, PushContext } from '@sextant/model';
import { buildListeners } from '../generator/index.js';
import { buildGatewayListeners } from '../listener/gateway.js';
import { parseObjects } from '../translate.js';
import { authorizationPoliciesFor, authorizationPolicyIssues, authzHttpFilters, authzNetworkFilters } from './authz.js';

type Json = Record<string, any>;

const ap = (name: string, ns: string, spec: Json, annotations?: Record<string, string>, creationTimestamp?: string) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}), ...(creationTimestamp ? { creationTimestamp } : {}) },
  spec,
});

function build(extra: Json[], meshConfig?: Json) {
  const raw = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'tcp-db', port: 5432 }] } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } }, spec: { serviceAccountName: 'web', containers: [{ name: 'a', image: 'x' }] }, status: { podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }], phase: 'Running' } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }, { name: 'tcp-db', port: 5432 }],
      endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'authz', namespace: 'ext' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'authz' }, ports: [{ name: 'http', port: 8000 }, { name: 'grpc', port: 9000 }] } },
    ...extra,
  ];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  return PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't', meshConfig: meshConfig as any });
}
const webProxy = (push: PushContext) => push.resolveProxy(parseProxy('sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local', { LABELS: { app: 'web' } }));
const cfg = (f: { typedConfig?: unknown }) => f.typedConfig as Json;

test('policy selection: root namespace and own namespace, selector by labels, targetRef only for Gateway API gateways', () => {
  const push = build([
    ap('mesh', 'istio-system', { action: 'DENY', rules: [{}] }),
    ap('mesh-selected', 'istio-system', { selector: { matchLabels: { app: 'web' } }, rules: [{}] }),
    ap('ns', 'shop', { action: 'AUDIT', rules: [{}] }),
    ap('other-app', 'shop', { selector: { matchLabels: { app: 'db' } }, action: 'DENY' }),
    ap('other-ns', 'bank', { action: 'DENY' }),
    ap('target', 'shop', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], action: 'DENY' }),
    ap('custom', 'shop', { action: 'CUSTOM', provider: { name: 'ext' } }),
  ]);
  const names = (l: Json[]) => l.map((p) => `${p.namespace}/${p.name}`);
  const p = authorizationPoliciesFor(push, 'shop', { app: 'web' });
  assert.deepEqual(names(p.deny), ['istio-system/mesh']);
  assert.deepEqual(names(p.allow), ['istio-system/mesh-selected']);
  assert.deepEqual(names(p.audit), ['shop/ns']);
  assert.deepEqual(names(p.custom), ['shop/custom']);
  const gw = authorizationPoliciesFor(push, 'shop', { 'gateway.networking.k8s.io/gateway-name': 'gw' });
  assert.deepEqual(names(gw.deny), ['istio-system/mesh', 'shop/target']);
});

test('HTTP RBAC: AUDIT, DENY then ALLOW filters; istiod names and matchers; the config encodes as Envoy protos', () => {
  const push = build([
    ap('allow-get', 'shop', {
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/shop/sa/client', '*-admin'], namespaces: ['shop'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/api/*', '/items/{*}/view'], notPaths: ['*.secret'], hosts: ['web.shop'] } }],
          when: [{ key: 'request.headers[x-user]', values: ['alice', 'bo*'] }, { key: 'request.auth.claims[groups][admin]', values: ['true'] }],
        },
      ],
    }),
    ap('deny-ip', 'shop', { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '192.168.1.1'], notRemoteIpBlocks: ['2001:DB8::1'] } }] }] }),
    ap('audit', 'shop', { action: 'AUDIT', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] }),
  ]);
  const f = authzHttpFilters(push, webProxy(push));
  assert.deepEqual(f.custom, []);
  assert.deepEqual(f.local.map((x) => [x.name, cfg(x).rules.action ?? 'ALLOW']), [
    ['envoy.filters.http.rbac', 'LOG'],
    ['envoy.filters.http.rbac', 'DENY'],
    ['envoy.filters.http.rbac', 'ALLOW'],
  ]);
  const allow = cfg(f.local[2]!).rules.policies['ns[shop]-policy[allow-get]-rule[0]'];
  assert.deepEqual(allow.principals, [
    {
      andIds: {
        ids: [
          { orIds: { ids: [{ authenticated: { principalName: { exact: 'spiffe://cluster.local/ns/shop/sa/client' } } }, { authenticated: { principalName: { safeRegex: { regex: 'spiffe://.*-admin' } } } }] } },
          { orIds: { ids: [{ authenticated: { principalName: { safeRegex: { regex: '.*/ns/shop/.*' } } } }] } },
          { orIds: { ids: [{ header: { name: 'x-user', stringMatch: { exact: 'alice' } } }, { header: { name: 'x-user', stringMatch: { prefix: 'bo' } } }] } },
          {
            metadata: {
              filter: 'envoy.filters.http.jwt_authn',
              path: [{ key: 'payload' }, { key: 'groups' }, { key: 'admin' }],
              value: { orMatch: { valueMatchers: [{ listMatch: { oneOf: { stringMatch: { exact: 'true' } } } }, { stringMatch: { exact: 'true' } }] } },
            },
          },
        ],
      },
    },
  ]);
  assert.deepEqual(allow.permissions, [
    {
      andRules: {
        rules: [
          { orRules: { rules: [{ header: { name: ':authority', stringMatch: { exact: 'web.shop', ignoreCase: true } } }] } },
          { orRules: { rules: [{ header: { name: ':method', stringMatch: { exact: 'GET' } } }] } },
          {
            orRules: {
              rules: [
                { urlPath: { path: { prefix: '/api/' } } },
                { uriTemplate: { name: 'uri-template', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig', pathTemplate: '/items/*/view' } } },
              ],
            },
          },
          { notRule: { orRules: { rules: [{ urlPath: { path: { suffix: '.secret' } } }] } } },
        ],
      },
    },
  ]);
  const deny = cfg(f.local[1]!).rules.policies['ns[shop]-policy[deny-ip]-rule[0]'];
  assert.deepEqual(deny.principals[0].andIds.ids, [
    { notId: { orIds: { ids: [{ remoteIp: { addressPrefix: '2001:db8::1', prefixLen: 128 } }] } } },
    { orIds: { ids: [{ directRemoteIp: { addressPrefix: '10.0.0.0', prefixLen: 8 } }, { directRemoteIp: { addressPrefix: '192.168.1.1', prefixLen: 32 } }] } },
  ]);
  // Every filter is valid Envoy config (the encoder parses it with Envoy's protos, Any types included).
  const listeners = buildListeners(push, webProxy(push));
  for (const l of listeners) encodeJson(TypeUrl.Listener, l);
  const inbound = listeners.find((l) => l.name === 'virtualInbound')!;
  const http = inbound.filterChains!.find((c) => c.name === '0.0.0.0_8080')!;
  const hf = (cfg(http.filters![0]!).httpFilters as Json[]).map((x) => x.name);
  assert.deepEqual(hf, ['envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.fault', 'envoy.filters.http.cors', 'envoy.filters.http.router']);
});

test('TCP chains: HTTP-only fields drop an ALLOW rule and widen a DENY rule; network RBAC has stat prefix tcp.', () => {
  const push = build([
    ap('allow', 'shop', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }, { from: [{ source: { namespaces: ['shop'] } }] }] }),
    ap('deny', 'shop', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bad'] } }], to: [{ operation: { paths: ['/admin'] } }] }] }),
  ]);
  const f = authzNetworkFilters(push, webProxy(push));
  assert.deepEqual(f.map((x) => x.name), ['envoy.filters.network.rbac', 'envoy.filters.network.rbac']);
  const [deny, allow] = f.map(cfg);
  assert.equal(deny!.statPrefix, 'tcp.');
  assert.deepEqual(Object.keys(allow!.rules.policies), ['ns[shop]-policy[allow]-rule[1]']);
  assert.deepEqual(deny!.rules.policies['ns[shop]-policy[deny]-rule[0]'].permissions, [{ andRules: { rules: [{ any: true }] } }]);
  const inbound = buildListeners(push, webProxy(push)).find((l) => l.name === 'virtualInbound')!;
  const tcp = inbound.filterChains!.find((c) => c.name === '0.0.0.0_5432')!;
  assert.deepEqual(tcp.filters!.map((x) => x.name), ['envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
  // HTTP-only fields on TCP are expected, not reported.
  assert.deepEqual(authorizationPolicyIssues(push), []);
});

test('dry-run goes to shadow rules with istiod stat prefixes; a policy without rules never matches', () => {
  const push = build([
    ap('dry', 'shop', { action: 'DENY', rules: [{}] }, { 'istio.io/dry-run': 'true' }),
    ap('none', 'shop', {}),
  ]);
  const [deny, allow] = authzHttpFilters(push, webProxy(push)).local.map(cfg);
  assert.equal(deny!.rules, undefined);
  assert.equal(deny!.shadowRulesStatPrefix, 'istio_dry_run_deny_');
  assert.deepEqual(Object.keys(deny!.shadowRules.policies), ['ns[shop]-policy[dry]-rule[0]']);
  assert.deepEqual(allow!.rules.policies['ns[shop]-policy[none]-rule[0]'], { permissions: [{ notRule: { any: true } }], principals: [{ notId: { any: true } }] });
});

test('fail closed: values that cannot be rendered drop ALLOW rules, widen DENY rules, and are reported', () => {
  const push = build([
    ap('allow-bad', 'shop', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.300'] } }] }, { when: [{ key: 'source.nope', values: ['x'] }] }, { to: [{ operation: { methods: ['GET'] } }] }] }),
    ap('deny-bad', 'shop', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['http'], methods: ['POST'] } }] }] }, { 'istio.io/dry-run': 'maybe' }),
  ]);
  const [deny, allow] = authzHttpFilters(push, webProxy(push)).local.map(cfg);
  assert.deepEqual(Object.keys(allow!.rules.policies), ['ns[shop]-policy[allow-bad]-rule[2]']);
  // The bad port is dropped; the method still narrows the (enforced) DENY rule.
  assert.deepEqual(deny!.rules.policies['ns[shop]-policy[deny-bad]-rule[0]'].permissions, [{ andRules: { rules: [{ orRules: { rules: [{ header: { name: ':method', stringMatch: { exact: 'POST' } } }] } }] } }]);
  const issues = authorizationPolicyIssues(push).map((i) => `${i.namespace}/${i.name} ${i.field}: ${i.reason}`);
  assert.deepEqual(issues, [
    'shop/allow-bad spec.rules[0].from[0].source.ipBlocks: "10.0.0.300" is not an IP address or CIDR; the rule is dropped (it allows nothing)',
    'shop/allow-bad spec.rules[1].when[0].key: unknown attribute "source.nope"; the rule is dropped (it allows nothing)',
    'shop/deny-bad metadata.annotations["istio.io/dry-run"]: "maybe" is not a boolean; the policy is enforced (not a dry run)',
    'shop/deny-bad spec.rules[0].to[0].operation.ports: invalid port "http"; the condition is dropped (the rule matches more requests)',
  ]);
});

test('CUSTOM: shadow RBAC + ext_authz for a known provider; a missing provider denies what the policy selects', () => {
  const mesh = { extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: 'authz.ext.svc.cluster.local', port: 8000, includeRequestHeadersInCheck: ['x-ext-authz'] } }] };
  const policy = ap('custom', 'shop', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] });
  let push = build([policy], mesh);
  const f = authzHttpFilters(push, webProxy(push)).custom;
  assert.deepEqual(f.map((x) => x.name), ['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz']);
  assert.deepEqual(Object.keys(cfg(f[0]!).shadowRules.policies), ['istio-ext-authz-ext-ns[shop]-policy[custom]-rule[0]']);
  assert.equal(cfg(f[0]!).shadowRulesStatPrefix, 'istio_ext_authz_');
  assert.deepEqual(cfg(f[1]!).httpService.serverUri, { uri: 'http://authz.ext.svc.cluster.local', cluster: 'outbound|8000||authz.ext.svc.cluster.local', timeout: '600s' });
  assert.deepEqual(cfg(f[1]!).filterEnabledMetadata.value, { stringMatch: { prefix: 'istio-ext-authz-ext' } });
  for (const l of buildListeners(push, webProxy(push))) encodeJson(TypeUrl.Listener, l);
  // An HTTP provider does nothing on TCP chains.
  assert.deepEqual(authzNetworkFilters(push, webProxy(push)), []);
  push = build([policy]);
  const bad = authzHttpFilters(push, webProxy(push)).custom;
  assert.deepEqual(bad.map((x) => [x.name, cfg(x).rules.action]), [['envoy.filters.http.rbac', 'DENY']]);
  assert.deepEqual(Object.keys(cfg(bad[0]!).rules.policies), ['istio-ext-authz-ext-ns[shop]-policy[custom]-rule[0]-deny-due-to-bad-CUSTOM-action']);
  assert.match(authorizationPolicyIssues(push)[0]!.reason, /no extension provider "ext"/);
});

test('gateways: RBAC on HTTP chains before the other filters, network RBAC on TCP servers', () => {
  const push = build([
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'gw-0', namespace: 'istio-system', labels: { istio: 'ingressgateway' } }, spec: { containers: [{ name: 'a', image: 'x' }] }, status: { podIP: '10.1.0.9', phase: 'Running' } },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'istio-system' }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }, { port: { number: 5432, name: 'tcp', protocol: 'TCP' }, hosts: ['*'] }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'db', namespace: 'istio-system' }, spec: { hosts: ['*'], gateways: ['gw'], tcp: [{ route: [{ destination: { host: 'web.shop.svc.cluster.local', port: { number: 5432 } } }] }] } },
    ap('gw-deny', 'istio-system', { selector: { matchLabels: { istio: 'ingressgateway' } }, action: 'DENY', rules: [{ from: [{ source: { remoteIpBlocks: ['1.2.3.4'] } }] }] }),
  ]);
  const gw = push.resolveProxy(parseProxy('router~10.1.0.9~gw-0.istio-system~istio-system.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } }));
  const ls = buildGatewayListeners(push, gw);
  for (const l of ls) encodeJson(TypeUrl.Listener, l);
  const http = ls.find((l) => l.name === '0.0.0.0_80')!;
  assert.deepEqual((cfg(http.filterChains![0]!.filters![0]!).httpFilters as Json[]).map((x) => x.name), ['envoy.filters.http.rbac', 'envoy.filters.http.fault', 'envoy.filters.http.cors', 'envoy.filters.http.router']);
  const tcp = ls.find((l) => l.name === '0.0.0.0_5432')!;
  assert.deepEqual(tcp.filterChains![0]!.filters!.map((x) => x.name), ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
});
