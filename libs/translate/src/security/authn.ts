/**
 * RequestAuthentication → `envoy.filters.http.jwt_authn`, as istiod renders it
 * (pilot/pkg/security/authn/policy_applier.go, with PILOT_JWT_ENABLE_REMOTE_JWKS
 * at its default: JWKS are fetched by the control plane and inlined):
 *
 * - the rules of every RequestAuthentication that applies to the workload
 *   (root namespace and own namespace, selector or Gateway API targetRef as
 *   for AuthorizationPolicy), sorted by issuer, become providers
 *   `origins-<i>`;
 * - one requirement for `/`: a token, when present, must be valid for one
 *   provider (a missing token passes; AuthorizationPolicy decides);
 * - the payload goes to the filter's dynamic metadata under `payload`, which
 *   AuthorizationPolicy `requestPrincipals` and `request.auth.*` read;
 * - JWKS: the rule's inline `jwks`, else what the control plane fetched
 *   (`push.jwks`); when it could not be fetched, a public-only key whose
 *   private half was discarded, so every token is rejected (istiod's
 *   PublicOnlyJwks): fail closed.
 *
 * Pure.
 */
import type { JWTRule, RequestAuthenticationSpec, ValidationIssue } from '@sextant/api';
import type { HttpFilterJson, JwtAuthenticationJson, JwtProviderJson, JwtRequirementJson } from '@sextant/envoy';
import { jwksKey, type IstioConfig, type ProxyView, type PushContext } from '@sextant/model';

type Json = Record<string, any>;

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
const JWT_AUTHN_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/**
 * istiod's PublicOnlyJwks: an RSA public key whose private key was thrown
 * away. Served for a `jwksUri` that could not be fetched, so no token verifies.
 */
export const PUBLIC_ONLY_JWKS = `{
  "keys": [
    {
      "kty": "RSA",
      "e": "AQAB",
      "n": "0xObjM0UvS_oaazjpEYlAbwctEJ4L8pH3OuTb7qth7gUwqet-EzQB4dgFdvSdMgrLnSncQGRjpEYz3F3viIbH-3EN3TxSlPNviHxeOdyiBVfumN8dMxbLvVJUpfNOnvmMxJcl-8NNjAwcOjk4otSALaYgYYyOPyvKtgVdrQr-FoubWX4yrjxW-MJ2-7OBeepUUNOsVwGV23YX03sVkkyvY3otRflkBcY3_HKpBxJl9wk2GyOShN4_PNUF9-vwfnvOXMbCDX-w4PTef4geeb_GiT40YCKHTKMSPVanGRn5GExIWmki-mmqh94-mPTJyBR74ShspL3BxPZitDL574T1w"
    }
  ]
}`;

type RequestAuthentication = IstioConfig<RequestAuthenticationSpec>;

function byCreation(a: IstioConfig, b: IstioConfig): number {
  const ca = String(a.metadata.creationTimestamp ?? '');
  const cb = String(b.metadata.creationTimestamp ?? '');
  if (ca !== cb) return ca < cb ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0;
}

function attaches(p: IstioConfig, namespace: string, labels: Record<string, string>): boolean {
  const spec = p.spec as Json;
  const refs = ((spec.targetRefs ?? []) as Json[]).length ? (spec.targetRefs as Json[]) : spec.targetRef ? [spec.targetRef as Json] : [];
  const selected = !spec.selector || Object.entries((spec.selector.matchLabels ?? {}) as Record<string, string>).every(([k, v]) => labels[k] === v);
  const gatewayName = labels[GATEWAY_NAME_LABEL];
  if (gatewayName === undefined) return refs.length === 0 && selected;
  if (refs.length === 0) return selected;
  return refs.some((r) => p.namespace === namespace && (!r.namespace || r.namespace === namespace) && (r.group ?? '') === 'gateway.networking.k8s.io' && r.kind === 'Gateway' && r.name === gatewayName);
}

/** The RequestAuthentications that apply to a workload: root namespace first, then its own, oldest first. */
export function requestAuthenticationsFor(push: PushContext, namespace: string, labels: Record<string, string>): RequestAuthentication[] {
  const out: RequestAuthentication[] = [];
  for (const ns of [...new Set([push.mesh.rootNamespace, namespace])]) {
    for (const p of [...(push.configs('RequestAuthentication', ns) as RequestAuthentication[])].sort(byCreation)) if (attaches(p, namespace, labels)) out.push(p);
  }
  return out;
}

/** The JWT rules of a workload, sorted by issuer (stable), as istiod processes them. */
export function jwtRulesFor(push: PushContext, namespace: string, labels: Record<string, string>): JWTRule[] {
  const rules = requestAuthenticationsFor(push, namespace, labels).flatMap((p) => (p.spec.jwtRules ?? []) as JWTRule[]);
  return rules.map((r, i) => [r, i] as const).sort(([a, i], [b, j]) => (a.issuer < b.issuer ? -1 : a.issuer > b.issuer ? 1 : i - j)).map(([r]) => r);
}

const jwksUriOf = (r: JWTRule) => r.jwksUri ?? r.jwks_uri;

/** The JWKS inlined for a rule: its own `jwks`, the fetched one, or the public-only key (fetch failed or not done). */
export function jwksFor(push: PushContext, r: JWTRule): string {
  if (r.jwks) return r.jwks;
  return push.jwks.get(jwksKey(jwksUriOf(r), r.issuer)) ?? PUBLIC_ONLY_JWKS;
}

/** istiod's buildSpaceDelimitedClaims: the rule's claims plus `permission` and `scope`, sorted and unique. */
function spaceDelimitedClaims(list: string[] | undefined): string[] {
  if (!list) return ['permission', 'scope'];
  return [...new Set([...list, 'permission', 'scope'])].sort();
}

/** The jwt_authn config for a list of rules (convertToEnvoyJwtConfig), or undefined when there are none. */
export function jwtAuthentication(push: PushContext, rules: JWTRule[], clearRouteCache: boolean): JwtAuthenticationJson | undefined {
  if (!rules.length) return undefined;
  const providers: Record<string, JwtProviderJson> = {};
  const inner: JwtRequirementJson[] = [];
  const outer: JwtRequirementJson[] = [];
  rules.forEach((r, i) => {
    const p: JwtProviderJson = { issuer: r.issuer };
    if (r.audiences?.length) p.audiences = r.audiences;
    if (r.forwardOriginalToken) p.forward = true;
    if (r.outputPayloadToHeader) p.forwardPayloadHeader = r.outputPayloadToHeader;
    p.payloadInMetadata = 'payload';
    p.normalizePayloadInMetadata = { spaceDelimitedClaims: spaceDelimitedClaims(r.spaceDelimitedClaims) };
    if (clearRouteCache) p.clearRouteCache = true;
    if (r.outputClaimToHeaders?.length) p.claimToHeaders = r.outputClaimToHeaders.map((c) => ({ headerName: c.header, claimName: c.claim }));
    if (r.fromHeaders?.length) p.fromHeaders = r.fromHeaders.map((h) => ({ name: h.name, ...(h.prefix ? { valuePrefix: h.prefix } : {}) }));
    if (r.fromParams?.length) p.fromParams = r.fromParams;
    if (r.fromCookies?.length) p.fromCookies = r.fromCookies;
    p.localJwks = { inlineString: jwksFor(push, r) };
    const name = `origins-${i}`;
    providers[name] = p;
    inner.push({ requiresAny: { requirements: [{ providerName: name }, { allowMissing: {} }] } });
    outer.push({ providerName: name });
  });
  const requires: JwtRequirementJson = inner.length === 1 ? inner[0]! : { requiresAny: { requirements: [...outer, { requiresAll: { requirements: inner } }] } };
  return { rules: [{ match: { prefix: '/' }, requires }], providers, bypassCorsPreflight: true };
}

const filterCache = new WeakMap<PushContext, Map<string, HttpFilterJson | null>>();

/** The jwt_authn filter of a sidecar's inbound HCMs or a gateway's HCMs, or undefined. Gateways clear the route cache. */
export function jwtAuthnFilter(push: PushContext, proxy: ProxyView): HttpFilterJson | undefined {
  let m = filterCache.get(push);
  if (!m) filterCache.set(push, (m = new Map()));
  const key = `${proxy.type}\u0000${proxy.namespace}\u0000${JSON.stringify(Object.entries(proxy.labels).sort())}`;
  let f = m.get(key);
  if (f === undefined) {
    const cfg = jwtAuthentication(push, jwtRulesFor(push, proxy.namespace, proxy.labels), proxy.type !== 'sidecar');
    f = cfg ? { name: JWT_AUTHN_FILTER, typedConfig: { '@type': JWT_AUTHN_TYPE, ...cfg } as { '@type': string } } : null;
    m.set(key, f);
  }
  return f ?? undefined;
}

/** The JWKS the control plane must fetch: key → what to fetch (a jwksUri, or an issuer's OpenID discovery). */
export function jwksToFetch(push: PushContext): Map<string, { jwksUri?: string; issuer: string; timeoutMs: number }> {
  const out = new Map<string, { jwksUri?: string; issuer: string; timeoutMs: number }>();
  for (const p of push.configs('RequestAuthentication') as RequestAuthentication[]) {
    for (const r of (p.spec.jwtRules ?? []) as JWTRule[]) {
      if (r.jwks) continue;
      const uri = jwksUriOf(r);
      const key = jwksKey(uri, r.issuer);
      if (!out.has(key)) out.set(key, { ...(uri ? { jwksUri: uri } : {}), issuer: r.issuer, timeoutMs: durationMs(r.timeout) ?? 5000 });
    }
  }
  return out;
}

function durationMs(d: string | undefined): number | undefined {
  if (!d) return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(d);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/**
 * RequestAuthentication problems that make it fail closed: a JWKS that was
 * not fetched (every token for that issuer is rejected) or an inline `jwks`
 * that is not a JWKS.
 */
export function requestAuthenticationIssues(push: PushContext): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const p of push.configs('RequestAuthentication') as RequestAuthentication[]) {
    ((p.spec.jwtRules ?? []) as JWTRule[]).forEach((r, i) => {
      const ref = { kind: 'RequestAuthentication', namespace: p.namespace, name: p.name };
      if (r.jwks) {
        if (!isJwks(r.jwks)) out.push({ ...ref, field: `spec.jwtRules[${i}].jwks`, reason: 'not a JSON Web Key Set; tokens for this issuer are rejected' });
        return;
      }
      if (!push.jwks.has(jwksKey(jwksUriOf(r), r.issuer))) {
        const what = jwksUriOf(r) ? `jwksUri ${jwksUriOf(r)}` : `the OpenID discovery of issuer ${r.issuer}`;
        out.push({ ...ref, field: `spec.jwtRules[${i}].${jwksUriOf(r) ? 'jwksUri' : 'issuer'}`, reason: `JWKS from ${what} could not be fetched (yet); tokens for this issuer are rejected until it is` });
      }
    });
  }
  return out;
}

/** A JSON object with a non-empty `keys` array (istiod's validateJWKSFormat, loosely). */
export function isJwks(text: string): boolean {
  try {
    const j = JSON.parse(text) as Json;
    return !!j && typeof j === 'object' && Array.isArray(j.keys) && j.keys.length > 0;
  } catch {
    return false;
  }
}
