/**
 * AuthorizationPolicy → Envoy RBAC and ext_authz filters, as istiod renders
 * them (pilot/pkg/security/authz/builder, pilot/pkg/model/authorization.go,
 * policyattachment.go):
 *
 * - which policies apply to a workload: the root namespace's and the
 *   workload namespace's, each without selector or with a selector whose
 *   labels the workload has; `targetRef(s)` only for Kubernetes Gateway API
 *   gateways (label `gateway.networking.k8s.io/gateway-name`), in the
 *   gateway's namespace;
 * - filters in istiod's order: CUSTOM (an RBAC filter in shadow mode, then
 *   ext_authz), then AUDIT, DENY and ALLOW RBAC filters; on HTTP chains
 *   `envoy.filters.http.rbac`, on TCP chains `envoy.filters.network.rbac`
 *   with stat prefix `tcp.`;
 * - policy names `ns[<ns>]-policy[<name>]-rule[<i>]`; a policy without
 *   rules never matches; `istio.io/dry-run: "true"` puts the policy in
 *   `shadowRules` with the stat prefix `istio_dry_run_allow_`/`_deny_`;
 * - fail closed: see authz-model.ts. What cannot be rendered is also
 *   reported by `authorizationPolicyIssues`.
 *
 * Pure.
 */
import { lookupServiceCluster } from '../cluster/lookup.js';
import type { AuthorizationPolicySpec, AuthorizationRule, ValidationIssue } from '@sextant/api';
import type { HttpExtAuthzJson, HttpFilterJson, HttpRbacJson, NetworkExtAuthzJson, NetworkFilterJson, NetworkRbacJson, RbacPolicyJson, RbacRulesJson } from '@sextant/envoy';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { POLICY_MATCH_NEVER, RuleError, generatePolicy, ruleModel, type RbacAction, type TrustDomainBundle } from './authz-model.js';

type Json = Record<string, any>;

export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';
export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';
export const HTTP_EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
export const NETWORK_EXT_AUTHZ_FILTER = 'envoy.filters.network.ext_authz';
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

const TYPE = {
  httpRbac: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  networkRbac: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
  httpExtAuthz: 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
  networkExtAuthz: 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz',
} as const;

export const STAT_PREFIX = {
  tcp: 'tcp.',
  dryRunAllow: 'istio_dry_run_allow_',
  dryRunDeny: 'istio_dry_run_deny_',
  extAuthz: 'istio_ext_authz_',
} as const;
const EXT_AUTHZ_PREFIX = 'istio-ext-authz';
const BAD_CUSTOM_SUFFIX = '-deny-due-to-bad-CUSTOM-action';

type Policy = IstioConfig<AuthorizationPolicySpec>;

export interface PoliciesForWorkload {
  custom: Policy[];
  deny: Policy[];
  allow: Policy[];
  audit: Policy[];
}

function created(p: IstioConfig): string {
  return String(p.metadata.creationTimestamp ?? '');
}

/** istiod's sortConfigByCreationTime: oldest first, then name, then namespace. */
function byCreation(a: IstioConfig, b: IstioConfig): number {
  const ca = created(a);
  const cb = created(b);
  if (ca !== cb) return ca < cb ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0;
}

function targetRefs(spec: Json): Json[] {
  const refs = (spec.targetRefs ?? []) as Json[];
  return refs.length ? refs : spec.targetRef ? [spec.targetRef as Json] : [];
}

function selected(spec: Json, labels: Record<string, string>): boolean {
  const ml = (spec.selector?.matchLabels ?? undefined) as Record<string, string> | undefined;
  if (!spec.selector) return true;
  return Object.entries(ml ?? {}).every(([k, v]) => labels[k] === v);
}

/** ShouldAttachPolicy for a sidecar or gateway (never a waypoint). */
function attaches(p: IstioConfig, namespace: string, labels: Record<string, string>): boolean {
  const refs = targetRefs(p.spec);
  const gatewayName = labels[GATEWAY_NAME_LABEL];
  if (gatewayName === undefined) return refs.length === 0 && selected(p.spec, labels);
  // Gateway API gateway: selector policies still apply (PILOT_ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY, on by default).
  if (refs.length === 0) return selected(p.spec, labels);
  return refs.some(
    (r) =>
      p.namespace === namespace &&
      (!r.namespace || r.namespace === namespace) &&
      (r.group ?? '') === 'gateway.networking.k8s.io' &&
      r.kind === 'Gateway' &&
      r.name === gatewayName,
  );
}

/** ListAuthorizationPolicies for a workload: root namespace first, then its own, oldest first within each. */
export function authorizationPoliciesFor(push: PushContext, namespace: string, labels: Record<string, string>): PoliciesForWorkload {
  const out: PoliciesForWorkload = { custom: [], deny: [], allow: [], audit: [] };
  const root = push.mesh.rootNamespace;
  for (const ns of [...new Set([root, namespace])]) {
    for (const p of [...(push.configs('AuthorizationPolicy', ns) as Policy[])].sort(byCreation)) {
      if (!attaches(p, namespace, labels)) continue;
      switch (p.spec.action ?? 'ALLOW') {
        case 'ALLOW':
          out.allow.push(p);
          break;
        case 'DENY':
          out.deny.push(p);
          break;
        case 'AUDIT':
          out.audit.push(p);
          break;
        case 'CUSTOM':
          out.custom.push(p);
          break;
      }
    }
  }
  return out;
}

export function trustDomainBundle(push: PushContext): TrustDomainBundle {
  const aliases = ((push.mesh as Json).trustDomainAliases ?? []) as string[];
  return { trustDomains: [push.trustDomain, ...aliases.filter((a) => typeof a === 'string')] };
}

/** `istio.io/dry-run`, parsed as Go's strconv.ParseBool; anything else is not a dry run (and reported). */
export function dryRunValue(p: IstioConfig): { dryRun: boolean; invalid?: string } {
  const v = p.metadata.annotations?.[DRY_RUN_ANNOTATION];
  if (v === undefined) return { dryRun: false };
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return { dryRun: true };
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return { dryRun: false };
  return { dryRun: false, invalid: v };
}

function policyName(p: IstioConfig, rule: number, provider?: string): string {
  const pre = provider === undefined ? '' : provider ? `${EXT_AUTHZ_PREFIX}-${provider}-` : `${EXT_AUTHZ_PREFIX}-`;
  return `${pre}ns[${p.namespace}]-policy[${p.name}]-rule[${rule}]`;
}

interface Built {
  rules?: RbacRulesJson;
  shadowRules?: RbacRulesJson;
}

/**
 * Everything one policy renders to for one chain kind: its RBAC policies by
 * name, plus what it could not render (the caller decides whether to report).
 */
export function renderPolicy(p: Policy, action: RbacAction, forTCP: boolean, bundle: TrustDomainBundle, provider?: string): { policies: Map<string, RbacPolicyJson>; errors: RuleError[] } {
  const policies = new Map<string, RbacPolicyJson>();
  const errors: RuleError[] = [];
  const rules = (p.spec.rules ?? []) as AuthorizationRule[];
  rules.forEach((rule, i) => {
    const modelErrors: RuleError[] = [];
    const m = ruleModel(rule, p.namespace, `spec.rules[${i}]`, bundle, modelErrors);
    errors.push(...modelErrors);
    // An ALLOW rule with an unknown condition is dropped (never an accidental allow).
    if (modelErrors.length && action === 'ALLOW') return;
    const g = generatePolicy(m, forTCP, action, errors);
    if (g instanceof RuleError) {
      errors.push(g);
      return;
    }
    policies.set(policyName(p, i, provider), g);
  });
  if (rules.length === 0) policies.set(policyName(p, 0, provider), POLICY_MATCH_NEVER);
  return { policies, errors };
}

const rbacAction = (a: RbacAction): Partial<RbacRulesJson> => (a === 'ALLOW' ? {} : { action: a });

function buildAction(policies: Policy[], action: RbacAction, forTCP: boolean, bundle: TrustDomainBundle): Built | undefined {
  if (!policies.length) return undefined;
  const enforce: Record<string, RbacPolicyJson> = {};
  const shadow: Record<string, RbacPolicyJson> = {};
  let hasEnforce = false;
  let hasShadow = false;
  for (const p of policies) {
    const dry = dryRunValue(p).dryRun;
    if (dry) hasShadow = true;
    else hasEnforce = true;
    for (const [name, pol] of renderPolicy(p, action, forTCP, bundle).policies) (dry ? shadow : enforce)[name] = pol;
  }
  const out: Built = {};
  if (hasEnforce) out.rules = { ...rbacAction(action), policies: enforce };
  if (hasShadow) out.shadowRules = { ...rbacAction(action), policies: shadow };
  return out;
}

/**
 * istiod's shadowRuleStatPrefix(shadowRules): by the shadow rules' action; with
 * no shadow rules Go reads the default action (ALLOW) of a nil message, so
 * every filter without a dry-run policy carries `istio_dry_run_allow_`.
 */
function shadowStatPrefix(b: Built, action: RbacAction): string | undefined {
  const a = b.shadowRules ? action : 'ALLOW';
  return a === 'ALLOW' ? STAT_PREFIX.dryRunAllow : a === 'DENY' ? STAT_PREFIX.dryRunDeny : undefined;
}

const typed = <T extends object>(type: string, cfg: T) => ({ '@type': type, ...cfg }) as { '@type': string };

function httpRbac(b: Built, action: RbacAction): HttpFilterJson {
  const cfg: HttpRbacJson = {};
  if (b.rules) cfg.rules = b.rules;
  if (b.shadowRules) cfg.shadowRules = b.shadowRules;
  const sp = shadowStatPrefix(b, action);
  if (sp) cfg.shadowRulesStatPrefix = sp;
  return { name: HTTP_RBAC_FILTER, typedConfig: typed(TYPE.httpRbac, cfg) };
}

function networkRbac(b: Built, action: RbacAction): NetworkFilterJson {
  const cfg: NetworkRbacJson = { statPrefix: STAT_PREFIX.tcp };
  if (b.rules) cfg.rules = b.rules;
  if (b.shadowRules) cfg.shadowRules = b.shadowRules;
  const sp = shadowStatPrefix(b, action);
  if (sp) cfg.shadowRulesStatPrefix = sp;
  return { name: NETWORK_RBAC_FILTER, typedConfig: typed(TYPE.networkRbac, cfg) };
}

// --- CUSTOM (ext_authz) -----------------------------------------------------

interface ExtAuthzProvider {
  http?: HttpExtAuthzJson;
  tcp?: NetworkExtAuthzJson;
  error?: string;
}

const PROVIDER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function headersMatcher(headers: string[] | undefined): Json | undefined {
  if (!headers?.length) return undefined;
  return {
    patterns: headers.map((h) => (h.startsWith('*') ? { suffix: h.slice(1), ignoreCase: true } : h.endsWith('*') ? { prefix: h.slice(0, -1), ignoreCase: true } : { exact: h, ignoreCase: true })),
  };
}

function filterEnabledMetadata(filter: string, provider: string): Json {
  return {
    filter,
    path: [{ key: `${STAT_PREFIX.extAuthz}shadow_effective_policy_id` }],
    value: { stringMatch: { prefix: `${EXT_AUTHZ_PREFIX}-${provider}` } },
  };
}

const timeoutOf = (t: unknown) => (typeof t === 'string' && t ? t : '600s');

/** meshConfig.extensionProviders → ext_authz configs by name (processExtensionProvider). */
export function extensionProviders(push: PushContext): Map<string, ExtAuthzProvider> {
  const out = new Map<string, ExtAuthzProvider>();
  const list = ((push.mesh as Json).extensionProviders ?? []) as Json[];
  list.forEach((cfg, i) => {
    const errs: string[] = [];
    const name = String(cfg?.name ?? '');
    if (!name) errs.push(`extension provider name must not be empty, found empty at index: ${i}`);
    else if (out.has(name)) errs.push(`extension provider name must be unique, found duplicate: ${name}`);
    if (name && !PROVIDER_NAME.test(name)) errs.push(`invalid provider name "${name}": lowercase letters, digits and '-' only, at most 63`);
    const h = cfg?.envoyExtAuthzHttp as Json | undefined;
    const g = cfg?.envoyExtAuthzGrpc as Json | undefined;
    if (!h && !g) return;
    const p = (h ?? g)!;
    const port = Number(p.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) errs.push(`port must be in the range [1, 65535], found: ${p.port}`);
    const found = lookupServiceCluster(push, String(p.service ?? ''), port);
    if (typeof found === 'string') errs.push(found);
    let status: Json | undefined;
    if (p.statusOnError !== undefined && p.statusOnError !== '') {
      const code = Number(p.statusOnError);
      if (!Number.isInteger(code) || code < 100 || code > 599) errs.push(`unsupported statusOnError ${p.statusOnError}`);
      else status = { code };
    }
    const body = p.includeRequestBodyInCheck as Json | undefined;
    const withBody = body ? { maxRequestBytes: body.maxRequestBytes, allowPartialMessage: body.allowPartialMessage, packAsBytes: body.packAsBytes } : undefined;
    let built: ExtAuthzProvider = {};
    if (h) {
      if (h.pathPrefix && !String(h.pathPrefix).startsWith('/')) errs.push(`pathPrefix must begin with \`/\`, found: "${h.pathPrefix}"`);
      for (const f of ['includeRequestHeadersInCheck', 'includeHeadersInCheck', 'headersToDownstreamOnDeny', 'headersToDownstreamOnAllow', 'headersToUpstreamOnAllow'])
        if (((h[f] ?? []) as string[]).includes('*')) errs.push(`a single wildcard ("*") is not supported, change it to either prefix or suffix match: ${f}`);
      if (!errs.length && typeof found !== 'string') {
        const service: Json = { serverUri: { uri: `http://${found.hostname}`, cluster: found.cluster, timeout: timeoutOf(h.timeout) } };
        if (h.pathPrefix) service.pathPrefix = h.pathPrefix;
        const extra = Object.keys((h.includeAdditionalHeadersInCheck ?? {}) as Record<string, string>).sort();
        if (extra.length) service.authorizationRequest = { headersToAdd: extra.map((k) => ({ key: k, value: h.includeAdditionalHeadersInCheck[k] })) };
        if (h.headersToUpstreamOnAllow?.length || h.headersToDownstreamOnDeny?.length || h.headersToDownstreamOnAllow?.length) {
          const r: Json = {};
          const up = headersMatcher(h.headersToUpstreamOnAllow);
          const deny = headersMatcher(h.headersToDownstreamOnDeny);
          const allow = headersMatcher(h.headersToDownstreamOnAllow);
          if (up) r.allowedUpstreamHeaders = up;
          if (deny) r.allowedClientHeaders = deny;
          if (allow) r.allowedClientHeadersOnSuccess = allow;
          service.authorizationResponse = r;
        }
        const http: Json = { httpService: service, transportApiVersion: 'V3' };
        if (status) http.statusOnError = status;
        if (h.failOpen) http.failureModeAllow = true;
        const allowed = headersMatcher(h.includeRequestHeadersInCheck) ?? headersMatcher(h.includeHeadersInCheck);
        if (allowed) http.allowedHeaders = allowed;
        if (withBody) http.withRequestBody = withBody;
        built = { http: http as HttpExtAuthzJson };
      }
    } else if (!errs.length && typeof found !== 'string') {
      const grpc = { envoyGrpc: { clusterName: found.cluster, authority: found.hostname }, timeout: timeoutOf(g!.timeout) };
      const http: Json = { grpcService: grpc, transportApiVersion: 'V3' };
      if (status) http.statusOnError = status;
      if (g!.failOpen) http.failureModeAllow = true;
      if (withBody) http.withRequestBody = withBody;
      const tcp: Json = { statPrefix: STAT_PREFIX.tcp, grpcService: grpc, transportApiVersion: 'V3' };
      if (g!.failOpen) tcp.failureModeAllow = true;
      built = { http: http as HttpExtAuthzJson, tcp: tcp as NetworkExtAuthzJson };
    }
    if (errs.length) built = { error: errs.join('; ') };
    out.set(name, built);
  });
  return out;
}

/** A CUSTOM policy that cannot reach its provider denies what it would have sent to it. */
function badCustomDeny(policies: Record<string, RbacPolicyJson>): RbacRulesJson {
  const renamed: Record<string, RbacPolicyJson> = {};
  for (const [k, v] of Object.entries(policies)) renamed[k + BAD_CUSTOM_SUFFIX] = v;
  return { action: 'DENY', policies: renamed };
}

function customFilters(push: PushContext, policies: Policy[], forTCP: boolean, bundle: TrustDomainBundle): Array<HttpFilterJson | NetworkFilterJson> {
  if (!policies.length) return [];
  const byProvider = new Map<string, { enforce: Record<string, RbacPolicyJson>; shadow: Record<string, RbacPolicyJson> }>();
  for (const p of policies) {
    const provider = String(p.spec.provider?.name ?? '');
    let e = byProvider.get(provider);
    if (!e) byProvider.set(provider, (e = { enforce: {}, shadow: {} }));
    const dry = dryRunValue(p).dryRun;
    // CUSTOM rules are built as DENY: a rule that cannot be rendered widens what goes to the provider.
    for (const [name, pol] of renderPolicy(p, 'DENY', forTCP, bundle, provider).policies) (dry ? e.shadow : e.enforce)[name] = pol;
  }
  const providers = extensionProviders(push);
  const names = [...byProvider.keys()].sort();
  const out: Array<HttpFilterJson | NetworkFilterJson> = [];
  const rbacType = forTCP ? TYPE.networkRbac : TYPE.httpRbac;
  const rbacName = forTCP ? NETWORK_RBAC_FILTER : HTTP_RBAC_FILTER;
  const denyAll = (rules: RbacRulesJson): HttpFilterJson | NetworkFilterJson => ({ name: rbacName, typedConfig: typed(rbacType, forTCP ? { rules, statPrefix: STAT_PREFIX.tcp } : { rules }) });
  // istiod without PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS: several providers on one workload deny.
  if (names.length > 1) return names.map((n) => denyAll(badCustomDeny(byProvider.get(n)!.enforce)));
  for (const n of names) {
    const { enforce, shadow } = byProvider.get(n)!;
    const prov = providers.get(n);
    if (!prov || prov.error) {
      out.push(denyAll(badCustomDeny(enforce)));
      continue;
    }
    const ext = forTCP ? prov.tcp : prov.http;
    if (!ext) continue; // an HTTP provider on a TCP chain: ignored, as in istiod
    const rbac: Json = { shadowRules: { action: 'DENY', policies: enforce }, shadowRulesStatPrefix: STAT_PREFIX.extAuthz };
    if (Object.keys(shadow).length) rbac.rules = { action: 'DENY', policies: shadow };
    if (forTCP) rbac.statPrefix = STAT_PREFIX.tcp;
    out.push({ name: rbacName, typedConfig: typed(rbacType, rbac) });
    out.push({
      name: forTCP ? NETWORK_EXT_AUTHZ_FILTER : HTTP_EXT_AUTHZ_FILTER,
      typedConfig: typed(forTCP ? TYPE.networkExtAuthz : TYPE.httpExtAuthz, { ...ext, filterEnabledMetadata: filterEnabledMetadata(rbacName, n) }),
    });
  }
  return out;
}

// --- entry points -----------------------------------------------------------

export interface AuthzFilters {
  /** CUSTOM: RBAC in shadow mode + ext_authz, before authentication. */
  custom: HttpFilterJson[];
  /** AUDIT, DENY, ALLOW RBAC filters, after authentication. */
  local: HttpFilterJson[];
}

const cache = new WeakMap<PushContext, Map<string, { http?: AuthzFilters; tcp?: NetworkFilterJson[] }>>();

function cached(push: PushContext, proxy: ProxyView) {
  let m = cache.get(push);
  if (!m) cache.set(push, (m = new Map()));
  const key = `${proxy.namespace}\u0000${JSON.stringify(Object.entries(proxy.labels).sort())}`;
  let e = m.get(key);
  if (!e) m.set(key, (e = {}));
  return e;
}

/** The HTTP authorization filters of a sidecar's inbound chains or a gateway's HTTP chains. */
export function authzHttpFilters(push: PushContext, proxy: ProxyView): AuthzFilters {
  const c = cached(push, proxy);
  if (c.http) return c.http;
  const pol = authorizationPoliciesFor(push, proxy.namespace, proxy.labels);
  const bundle = trustDomainBundle(push);
  const local: HttpFilterJson[] = [];
  for (const [list, action] of [
    [pol.audit, 'LOG'],
    [pol.deny, 'DENY'],
    [pol.allow, 'ALLOW'],
  ] as const) {
    const b = buildAction(list, action, false, bundle);
    if (b) local.push(httpRbac(b, action));
  }
  c.http = { custom: customFilters(push, pol.custom, false, bundle) as HttpFilterJson[], local };
  return c.http;
}

/** The network authorization filters of a TCP chain (before tcp_proxy): CUSTOM first, then AUDIT, DENY, ALLOW. */
export function authzNetworkFilters(push: PushContext, proxy: ProxyView): NetworkFilterJson[] {
  const c = cached(push, proxy);
  if (c.tcp) return c.tcp;
  const pol = authorizationPoliciesFor(push, proxy.namespace, proxy.labels);
  const bundle = trustDomainBundle(push);
  const out = customFilters(push, pol.custom, true, bundle) as NetworkFilterJson[];
  for (const [list, action] of [
    [pol.audit, 'LOG'],
    [pol.deny, 'DENY'],
    [pol.allow, 'ALLOW'],
  ] as const) {
    const b = buildAction(list, action, true, bundle);
    if (b) out.push(networkRbac(b, action));
  }
  c.tcp = out;
  return out;
}

/**
 * What each AuthorizationPolicy cannot render (kind/namespace/name, field,
 * reason), whatever proxy it applies to: bad addresses, ports, keys, unknown
 * `when` attributes, an unparsable dry-run annotation, a CUSTOM provider that
 * is missing or broken. HTTP-only fields on TCP chains are expected and not
 * reported. Each reason says how the rule fails closed.
 */
export function authorizationPolicyIssues(push: PushContext): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const bundle = trustDomainBundle(push);
  let providers: Map<string, ExtAuthzProvider> | undefined;
  for (const p of push.configs('AuthorizationPolicy') as Policy[]) {
    const action = p.spec.action ?? 'ALLOW';
    const ref = { kind: 'AuthorizationPolicy', namespace: p.namespace, name: p.name };
    const dr = dryRunValue(p);
    if (dr.invalid !== undefined) out.push({ ...ref, field: `metadata.annotations["${DRY_RUN_ANNOTATION}"]`, reason: `"${dr.invalid}" is not a boolean; the policy is enforced (not a dry run)` });
    const rbacAct: RbacAction = action === 'ALLOW' ? 'ALLOW' : action === 'AUDIT' ? 'LOG' : 'DENY';
    const { errors } = renderPolicy(p, rbacAct, false, bundle);
    const effect = action === 'ALLOW' ? 'the rule is dropped (it allows nothing)' : action === 'CUSTOM' ? 'the condition is dropped (more requests go to the provider)' : 'the condition is dropped (the rule matches more requests)';
    for (const e of errors) if (!e.httpOnly) out.push({ ...ref, field: e.field, reason: `${e.message}; ${effect}` });
    if (action === 'CUSTOM') {
      providers ??= extensionProviders(push);
      const name = String(p.spec.provider?.name ?? '');
      const prov = providers.get(name);
      if (!prov) out.push({ ...ref, field: 'spec.provider.name', reason: `no extension provider "${name}" in meshConfig.extensionProviders; the requests it selects are denied` });
      else if (prov.error) out.push({ ...ref, field: 'spec.provider.name', reason: `extension provider "${name}" is invalid (${prov.error}); the requests it selects are denied` });
    }
  }
  return out;
}
