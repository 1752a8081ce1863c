import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeJson, TypeUrl } from '@sextant/envoy';
import { jwksKey, parseProxy, PushContext } from '@sextant/model';
import { buildListeners } from '../generator/index.js';
import { parseObjects } from '../translate.js';
import { PUBLIC_ONLY_JWKS, jwksToFetch, jwtAuthnFilter, jwtRulesFor, requestAuthenticationIssues } from './authn.js';
import { securityHttpFilters } from './filters.js';

type Json = Record<string, any>;

const JWKS = '{"keys":[{"kty":"RSA","e":"AQAB","n":"abc","kid":"k"}]}';
const ra = (name: string, ns: string, spec: Json) => ({ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name, namespace: ns }, spec });

function build(extra: Json[], jwks?: Map<string, string>) {
  const raw = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'a', image: 'x' }] }, status: { podIP: '10.1.0.5', phase: 'Running' } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
    },
    ...extra,
  ];
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  return PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't', jwks });
}
const web = (push: PushContext) => push.resolveProxy(parseProxy('sidecar~10.1.0.5~web-0.shop~shop.svc.cluster.local', { LABELS: { app: 'web' } }));
const cfg = (f: { typedConfig?: unknown } | undefined) => f?.typedConfig as Json;

test('rules of the root and own namespace, selected by labels, sorted by issuer; one provider per rule', () => {
  const push = build([
    ra('mesh', 'istio-system', { jwtRules: [{ issuer: 'z-mesh', jwks: JWKS }] }),
    ra('web', 'shop', { selector: { matchLabels: { app: 'web' } }, jwtRules: [{ issuer: 'b', jwks: JWKS, fromHeaders: [{ name: 'x-token', prefix: 'Bearer ' }], fromParams: ['t'], fromCookies: ['c'], outputPayloadToHeader: 'x-payload', forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }], audiences: ['web'], spaceDelimitedClaims: ['roles'] }] }),
    ra('other', 'shop', { selector: { matchLabels: { app: 'db' } }, jwtRules: [{ issuer: 'a-other', jwks: JWKS }] }),
    ra('bank', 'bank', { jwtRules: [{ issuer: 'a-bank', jwks: JWKS }] }),
  ]);
  assert.deepEqual(jwtRulesFor(push, 'shop', { app: 'web' }).map((r) => r.issuer), ['b', 'z-mesh']);
  const f = cfg(jwtAuthnFilter(push, web(push)));
  assert.equal(f.providers['origins-0'].clearRouteCache, undefined, 'sidecars do not clear the route cache');
  assert.deepEqual(f.providers['origins-0'], {
    issuer: 'b',
    audiences: ['web'],
    forward: true,
    forwardPayloadHeader: 'x-payload',
    payloadInMetadata: 'payload',
    normalizePayloadInMetadata: { spaceDelimitedClaims: ['permission', 'roles', 'scope'] },
    claimToHeaders: [{ headerName: 'x-sub', claimName: 'sub' }],
    fromHeaders: [{ name: 'x-token', valuePrefix: 'Bearer ' }],
    fromParams: ['t'],
    fromCookies: ['c'],
    localJwks: { inlineString: JWKS },
  });
  // Two providers: any one of them, or all of them each allowing a missing token.
  assert.deepEqual(f.rules, [
    {
      match: { prefix: '/' },
      requires: {
        requiresAny: {
          requirements: [
            { providerName: 'origins-0' },
            { providerName: 'origins-1' },
            { requiresAll: { requirements: [0, 1].map((i) => ({ requiresAny: { requirements: [{ providerName: `origins-${i}` }, { allowMissing: {} }] } })) } },
          ],
        },
      },
    },
  ]);
  assert.equal(f.bypassCorsPreflight, true);
  for (const l of buildListeners(push, web(push))) encodeJson(TypeUrl.Listener, l);
});

test('jwksUri: the fetched JWKS when the push has it, else the public-only key (fail closed) and an issue', () => {
  const spec = { jwtRules: [{ issuer: 'https://idp', jwksUri: 'https://idp/keys' }, { issuer: 'https://oidc' }] };
  let push = build([ra('jwt', 'shop', spec)]);
  assert.deepEqual([...jwksToFetch(push)], [
    ['https://idp/keys', { jwksUri: 'https://idp/keys', issuer: 'https://idp', timeoutMs: 5000 }],
    ['openid:https://oidc', { issuer: 'https://oidc', timeoutMs: 5000 }],
  ]);
  let f = cfg(jwtAuthnFilter(push, web(push)));
  assert.equal(f.providers['origins-0'].localJwks.inlineString, PUBLIC_ONLY_JWKS);
  assert.deepEqual(requestAuthenticationIssues(push).map((i) => i.field), ['spec.jwtRules[0].jwksUri', 'spec.jwtRules[1].issuer']);
  push = build([ra('jwt', 'shop', spec)], new Map([[jwksKey('https://idp/keys', 'https://idp'), JWKS], [jwksKey(undefined, 'https://oidc'), JWKS]]));
  f = cfg(jwtAuthnFilter(push, web(push)));
  assert.equal(f.providers['origins-0'].localJwks.inlineString, JWKS);
  assert.equal(f.providers['origins-1'].localJwks.inlineString, JWKS);
  assert.deepEqual(requestAuthenticationIssues(push), []);
});

test('filter order on the inbound HCM: CUSTOM, jwt_authn, then RBAC; gateways clear the route cache', () => {
  const push = build([
    ra('jwt', 'shop', { jwtRules: [{ issuer: 'x', jwks: JWKS }] }),
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { rules: [{ from: [{ source: { requestPrincipals: ['x/*'] } }] }] } },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'c', namespace: 'shop' }, spec: { action: 'CUSTOM', provider: { name: 'none' }, rules: [{}] } },
  ]);
  assert.deepEqual(securityHttpFilters(push, web(push)).map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.jwt_authn', 'envoy.filters.http.rbac']);
  const gw = push.resolveProxy(parseProxy('router~10.1.0.5~web-0.shop~shop.svc.cluster.local', { LABELS: { app: 'web' } }));
  assert.equal(cfg(jwtAuthnFilter(push, gw)).providers['origins-0'].clearRouteCache, true);
});

test('an inline jwks that is not a JWKS is reported', () => {
  const push = build([ra('bad', 'shop', { jwtRules: [{ issuer: 'x', jwks: 'nope' }] })]);
  assert.deepEqual(requestAuthenticationIssues(push).map((i) => `${i.name} ${i.field}`), ['bad spec.jwtRules[0].jwks']);
});
