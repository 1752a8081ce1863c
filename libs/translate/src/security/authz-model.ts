/**
 * One AuthorizationPolicy rule → one Envoy RBAC policy, with istiod's
 * semantics (pilot/pkg/security/authz/model): `when` conditions are folded
 * into every `from` (principals) and every `to` (permissions); values of one
 * field are OR-ed, fields are AND-ed, `not…` values become a NOT of their OR.
 *
 * A value that cannot be rendered (a bad CIDR or port, a malformed key, an
 * HTTP-only field on a TCP chain) fails closed the way istiod does: in an ALLOW
 * policy the whole rule is dropped (fewer requests allowed), in a DENY or AUDIT
 * policy only that condition is dropped (more requests denied). Pure.
 */
import { isIP } from 'node:net';
import type { RbacPermissionJson, RbacPolicyJson, RbacPrincipalJson, StringMatcherJson, ValueMatcherJson, MetadataMatcherJson } from '@sextant/envoy';
import type { AuthorizationCondition, AuthorizationRule } from '@sextant/api';

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** An error generating one value; `httpOnly` errors are expected on TCP chains and not reported. */
export class RuleError extends Error {
  constructor(
    message: string,
    readonly field: string,
    readonly httpOnly = false,
  ) {
    super(message);
  }
}

export const JWT_FILTER = 'envoy.filters.http.jwt_authn';
export const JWT_PAYLOAD = 'payload';
const URI_TEMPLATE_TYPE = 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig';

// --- string matchers (matcher/string.go) ------------------------------------

const exact = (v: string, ignoreCase = false): StringMatcherJson => ({ exact: v, ...(ignoreCase ? { ignoreCase } : {}) });
const prefix = (v: string, ignoreCase = false): StringMatcherJson => ({ prefix: v, ...(ignoreCase ? { ignoreCase } : {}) });
const suffix = (v: string, ignoreCase = false): StringMatcherJson => ({ suffix: v, ...(ignoreCase ? { ignoreCase } : {}) });
const regex = (r: string): StringMatcherJson => ({ safeRegex: { regex: r } });
const quoteMeta = (s: string) => s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');

/** Istio's `*` forms: `*` → `.+`, `*x` → suffix, `x*` → prefix, else exact; `pre` is prepended (and a suffix becomes a regex). */
export function stringMatcher(v: string, pre = ''): StringMatcherJson {
  if (v === '*') return regex('.+');
  if (v.startsWith('*')) return pre === '' ? suffix(v.slice(1)) : regex(pre + '.*' + quoteMeta(v.slice(1)));
  if (v.endsWith('*')) return prefix(pre + v.slice(0, -1));
  return exact(pre + v);
}

function orValues(ms: ValueMatcherJson[]): ValueMatcherJson {
  return ms.length === 1 ? ms[0]! : { orMatch: { valueMatchers: ms } };
}

const stringOr = (vs: string[]): ValueMatcherJson => orValues(vs.map((v) => ({ stringMatch: stringMatcher(v) })));

function headerMatcher(name: string, v: string, ignoreCase = false): Record<string, unknown> {
  if (v === '*') return { name, presentMatch: true };
  if (v.startsWith('*')) return { name, stringMatch: suffix(v.slice(1), ignoreCase) };
  if (v.endsWith('*')) return { name, stringMatch: prefix(v.slice(0, -1), ignoreCase) };
  return { name, stringMatch: exact(v, ignoreCase) };
}

/** A JWT claim path in the jwt_authn filter's metadata: a list containing the value, or the value itself. */
function jwtClaimsMatcher(claims: string[], value: ValueMatcherJson): MetadataMatcherJson {
  return {
    filter: JWT_FILTER,
    path: [JWT_PAYLOAD, ...claims].map((key) => ({ key })),
    value: { orMatch: { valueMatchers: [{ listMatch: { oneOf: value } }, value] } },
  };
}

function jwtClaimMatcher(claim: string, m: StringMatcherJson): MetadataMatcherJson {
  return { filter: JWT_FILTER, path: [{ key: JWT_PAYLOAD }, { key: claim }], value: { stringMatch: m } };
}

// --- addresses and ports ----------------------------------------------------

function canonicalIp(a: string): string {
  return isIP(a) === 6 ? new URL(`http://[${a}]/`).hostname.slice(1, -1) : a;
}

/** istiod's AddrStrToCidrRange: an address is /32 or /128; a CIDR keeps its address as written. */
export function cidrRange(v: string, field: string): { addressPrefix: string; prefixLen: number } {
  const [addr = '', bits, extra] = v.split('/');
  const family = isIP(addr);
  if (!family || extra !== undefined || addr.includes('%')) throw new RuleError(`"${v}" is not an IP address or CIDR`, field);
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (bits !== undefined) {
    if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) throw new RuleError(`"${v}" has an invalid prefix length`, field);
    len = Number(bits);
  }
  return { addressPrefix: canonicalIp(addr), prefixLen: len };
}

function port(v: string, field: string): number {
  if (!/^[0-9]+$/.test(v) || Number(v) > 65535) throw new RuleError(`invalid port "${v}"`, field);
  return Number(v);
}

function nameInBrackets(s: string, field: string): string {
  if (!s.startsWith('[') || !s.endsWith(']')) throw new RuleError(`expecting format [<NAME>], but found ${s}`, field);
  return s.slice(1, -1);
}

/** `[a][b]` → [a, b]; `[a.b]` → [a.b] (extractNameInNestedBrackets). */
function namesInNestedBrackets(s: string, field: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '[') return [nameInBrackets(s, field)];
    const end = s.indexOf(']', i + 1);
    const open = s.indexOf('[', i + 1);
    if (end < 0 || (open >= 0 && open < end)) return [nameInBrackets(s, field)];
    out.push(s.slice(i + 1, end));
    i = end + 1;
  }
  return out;
}

// --- generators (model/generator.go) ----------------------------------------

interface Gen {
  permission?(key: string, value: string, forTCP: boolean, field: string): RbacPermissionJson;
  principal?(key: string, value: string, forTCP: boolean, field: string): RbacPrincipalJson;
  /** Extended generators take all values at once. */
  extPermission?(key: string, values: string[], forTCP: boolean, field: string): RbacPermissionJson | undefined;
  extPrincipal?(key: string, values: string[], forTCP: boolean, field: string): RbacPrincipalJson | undefined;
}

const authenticated = (m: StringMatcherJson): RbacPrincipalJson => ({ authenticated: { principalName: m } });
const httpOnly = (key: string, forTCP: boolean, field: string) => {
  if (forTCP) throw new RuleError(`"${key}" is HTTP only`, field, true);
};

const MATCH_ANY = regex('.+');

const G: Record<string, Gen> = {
  destIp: { permission: (_k, v, _t, f) => ({ destinationIp: cidrRange(v, f) }) },
  destPort: { permission: (_k, v, _t, f) => ({ destinationPort: port(v, f) }) },
  sni: { permission: (_k, v) => ({ requestedServerName: stringMatcher(v) }) },
  envoyFilter: {
    extPermission: (key, values, _t, f) => {
      const parts = splitFilterKey(key, f);
      const ms: ValueMatcherJson[] = values.map((v) =>
        v.startsWith('[') && v.endsWith(']') ? { listMatch: { oneOf: { stringMatch: stringMatcher(v.slice(1, -1)) } } } : { stringMatch: stringMatcher(v) },
      );
      return { metadata: { filter: parts[0], path: [{ key: parts[1] }], value: orValues(ms) } };
    },
  },
  srcIp: { principal: (_k, v, _t, f) => ({ directRemoteIp: cidrRange(v, f) }) },
  remoteIp: { principal: (_k, v, _t, f) => ({ remoteIp: cidrRange(v, f) }) },
  srcNamespace: {
    principal: (_k, v) => authenticated(regex(`.*/ns/${v.split('*').map(quoteMeta).join('.*')}/.*`)),
  },
  srcServiceAccount: {
    // Bound per policy: the namespace of a bare name is the policy's.
  },
  srcTrustDomain: {
    principal: (_k, v) => {
      if (v === '*') return authenticated(prefix('spiffe://'));
      if (!v.includes('*')) return authenticated(prefix(`spiffe://${v}/`));
      const i = v.indexOf('*');
      return authenticated(regex(`spiffe://${quoteMeta(v.slice(0, i))}[^/]*${quoteMeta(v.slice(i + 1))}/.*`));
    },
  },
  srcPrincipal: { principal: (_k, v) => authenticated(stringMatcher(v, 'spiffe://')) },
  requestPrincipal: {
    extPrincipal: (key, values, forTCP, f) => {
      httpOnly(key, forTCP, f);
      const or: RbacPrincipalJson[] = values.map((value) => {
        const idx = value.lastIndexOf('/');
        const found = idx >= 0;
        const iss = found ? value.slice(0, idx) : value;
        const sub = found ? value.slice(idx + 1) : '';
        let mi: StringMatcherJson;
        let ms: StringMatcherJson;
        if (value === '*') {
          mi = MATCH_ANY;
          ms = MATCH_ANY;
        } else if (value.startsWith('*')) {
          if (found) {
            mi = iss === '*' ? MATCH_ANY : suffix(iss.slice(1));
            ms = exact(sub);
          } else {
            mi = MATCH_ANY;
            ms = suffix(value.slice(1));
          }
        } else if (value.endsWith('*')) {
          if (found) {
            mi = exact(iss);
            ms = sub === '*' ? MATCH_ANY : prefix(sub.slice(0, -1));
          } else {
            mi = prefix(value.slice(0, -1));
            ms = MATCH_ANY;
          }
        } else {
          ms = exact(sub);
          mi = exact(iss);
        }
        return { andIds: { ids: [{ metadata: jwtClaimMatcher('iss', mi) }, { metadata: jwtClaimMatcher('sub', ms) }] } };
      });
      if (or.length === 0) return undefined;
      return or.length === 1 ? or[0]! : { orIds: { ids: or } };
    },
  },
  requestAudiences: {
    extPrincipal: (key, values, forTCP, f) => {
      httpOnly(key, forTCP, f);
      return { metadata: jwtClaimsMatcher(['aud'], stringOr(values)) };
    },
  },
  requestPresenter: {
    extPrincipal: (key, values, forTCP, f) => {
      httpOnly(key, forTCP, f);
      return { metadata: jwtClaimsMatcher(['azp'], stringOr(values)) };
    },
  },
  requestHeader: {
    principal: (key, v, forTCP, f) => {
      httpOnly(key, forTCP, f);
      return { header: headerMatcher(nameInBrackets(key.slice('request.headers'.length), f), v) } as RbacPrincipalJson;
    },
  },
  requestClaims: {
    extPrincipal: (key, values, forTCP, f) => {
      httpOnly(key, forTCP, f);
      const claims = namesInNestedBrackets(key.slice('request.auth.claims'.length), f);
      return { metadata: jwtClaimsMatcher(claims, stringOr(values)) };
    },
  },
  host: {
    permission: (key, v, forTCP, f) => {
      httpOnly(key, forTCP, f);
      return { header: headerMatcher(':authority', v, true) } as RbacPermissionJson;
    },
  },
  path: {
    permission: (key, v, forTCP, f) => {
      httpOnly(key, forTCP, f);
      if (v.includes('{*}') || v.includes('{**}')) {
        const t = v.replaceAll('{**}', '**').replaceAll('{*}', '*');
        return { uriTemplate: { name: 'uri-template', typedConfig: { '@type': URI_TEMPLATE_TYPE, pathTemplate: t } as { '@type': string } } };
      }
      return { urlPath: { path: stringMatcher(v) } };
    },
  },
  method: {
    permission: (key, v, forTCP, f) => {
      httpOnly(key, forTCP, f);
      return { header: headerMatcher(':method', v) } as RbacPermissionJson;
    },
  },
};

function splitFilterKey(key: string, field: string): [string, string] {
  const s = key.replace(/^experimental\./, '').replace(/\]$/, '');
  const i = s.indexOf('[');
  if (i < 0) throw new RuleError(`invalid key: ${key}`, field);
  return [s.slice(0, i), s.slice(i + 1)];
}

function serviceAccountGen(policyNamespace: string): Gen {
  return {
    principal: (_k, value) => {
      const i = value.indexOf('/');
      const ns = i >= 0 ? value.slice(0, i) : policyNamespace;
      const sa = i >= 0 ? value.slice(i + 1) : value;
      return authenticated(regex(`spiffe://.+/ns/${quoteMeta(ns)}/(.+/|)sa/${quoteMeta(sa)}(/.+)?`));
    },
  };
}

// --- the model --------------------------------------------------------------

interface Cond {
  key: string;
  gen: Gen;
  values: string[];
  notValues: string[];
  /** Where the values come from in the policy (`spec.rules[0].from[1].source.principals`). */
  field: string;
  notField: string;
}

type CondList = Cond[];

/** The `when` keys Istio documents, and where each goes (permission or principal). */
function whenGenerator(key: string, policyNamespace: string): { gen: Gen; side: 'permission' | 'principal' } | undefined {
  switch (key) {
    case 'destination.ip':
      return { gen: G.destIp!, side: 'permission' };
    case 'destination.port':
      return { gen: G.destPort!, side: 'permission' };
    case 'connection.sni':
      return { gen: G.sni!, side: 'permission' };
    case 'source.ip':
      return { gen: G.srcIp!, side: 'principal' };
    case 'remote.ip':
      return { gen: G.remoteIp!, side: 'principal' };
    case 'source.namespace':
      return { gen: G.srcNamespace!, side: 'principal' };
    case 'source.trustDomain':
      return { gen: G.srcTrustDomain!, side: 'principal' };
    case 'source.serviceAccount':
      return { gen: serviceAccountGen(policyNamespace), side: 'principal' };
    case 'source.principal':
      return { gen: G.srcPrincipal!, side: 'principal' };
    case 'request.auth.principal':
      return { gen: G.requestPrincipal!, side: 'principal' };
    case 'request.auth.audiences':
      return { gen: G.requestAudiences!, side: 'principal' };
    case 'request.auth.presenter':
      return { gen: G.requestPresenter!, side: 'principal' };
  }
  if (key.startsWith('experimental.envoy.filters.')) return { gen: G.envoyFilter!, side: 'permission' };
  if (key.startsWith('request.headers')) return { gen: G.requestHeader!, side: 'principal' };
  if (key.startsWith('request.auth.claims')) return { gen: G.requestClaims!, side: 'principal' };
  return undefined;
}

export interface RuleModel {
  permissions: CondList[];
  principals: CondList[];
}

/** Trust domains a principal is rewritten into (istiod's trustdomain.Bundle). */
export interface TrustDomainBundle {
  trustDomains: string[];
}

function patternMatch(a: string, list: string[]): boolean {
  const pre = (x: string, p: string) => p.endsWith('*') && x.startsWith(p.slice(0, -1));
  const suf = (x: string, p: string) => p.startsWith('*') && x.endsWith(p.slice(1));
  return list.some((s) => a === s || s === '*' || pre(a, s) || pre(s, a) || suf(a, s) || suf(s, a));
}

/** ReplaceTrustDomainAliases: a `td/ns/x/sa/y` principal of the mesh's trust domain (or cluster.local) is allowed from every alias. */
export function replaceTrustDomainAliases(bundle: TrustDomainBundle, principals: string[]): string[] {
  const out: string[] = [];
  for (const p of principals) {
    const parts = p.split('/');
    if (parts.length !== 5 || parts[0] === '*') {
      out.push(p);
      continue;
    }
    const td = parts[0]!;
    if (!patternMatch(td, bundle.trustDomains) && td !== 'cluster.local') {
      out.push(p);
      continue;
    }
    const mine: string[] = [];
    for (const t of bundle.trustDomains) {
      const np = t.startsWith('*') && td.endsWith(t.slice(1)) ? p : `${t}/${parts.slice(1).join('/')}`;
      if (!mine.includes(np)) mine.push(np);
    }
    out.push(...mine);
  }
  return out;
}

function expandTrustDomainAliases(bundle: TrustDomainBundle, values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) for (const x of bundle.trustDomains.includes(v) ? bundle.trustDomains : [v]) if (!out.includes(x)) out.push(x);
  return out;
}

/**
 * The model of one rule. An unknown `when` key is an error the caller reports;
 * the rule is then dropped (ALLOW) or rendered without that condition (DENY, AUDIT).
 */
export function ruleModel(rule: AuthorizationRule, policyNamespace: string, base: string, bundle: TrustDomainBundle, errors: RuleError[]): RuleModel {
  const basePermission: CondList = [];
  const basePrincipal: CondList = [];
  (rule.when ?? []).forEach((w: AuthorizationCondition, i) => {
    const field = `${base}.when[${i}]`;
    const g = whenGenerator(w.key, policyNamespace);
    if (!g) {
      errors.push(new RuleError(`unknown attribute "${w.key}"`, `${field}.key`));
      return;
    }
    const c: Cond = { key: w.key, gen: g.gen, values: w.values ?? [], notValues: w.notValues ?? [], field: `${field}.values`, notField: `${field}.notValues` };
    (g.side === 'permission' ? basePermission : basePrincipal).push(c);
  });
  const front = (list: CondList, key: string, gen: Gen, values: string[] | undefined, notValues: string[] | undefined, field: string, name: string, notName: string) => {
    if (!values?.length && !notValues?.length) return;
    list.unshift({ key, gen, values: values ?? [], notValues: notValues ?? [], field: `${field}.${name}`, notField: `${field}.${notName}` });
  };
  const principals: CondList[] = [];
  (rule.from ?? []).forEach((from, i) => {
    const merged = [...basePrincipal];
    const s = from.source;
    const f = `${base}.from[${i}].source`;
    if (s) {
      front(merged, 'source.ip', G.srcIp!, s.ipBlocks, s.notIpBlocks, f, 'ipBlocks', 'notIpBlocks');
      front(merged, 'remote.ip', G.remoteIp!, s.remoteIpBlocks, s.notRemoteIpBlocks, f, 'remoteIpBlocks', 'notRemoteIpBlocks');
      front(merged, 'source.namespace', G.srcNamespace!, s.namespaces, s.notNamespaces, f, 'namespaces', 'notNamespaces');
      front(merged, 'source.trustDomain', G.srcTrustDomain!, s.trustDomains, s.notTrustDomains, f, 'trustDomains', 'notTrustDomains');
      front(merged, 'source.serviceAccount', serviceAccountGen(policyNamespace), s.serviceAccounts, s.notServiceAccounts, f, 'serviceAccounts', 'notServiceAccounts');
      front(merged, 'request.auth.principal', G.requestPrincipal!, s.requestPrincipals, s.notRequestPrincipals, f, 'requestPrincipals', 'notRequestPrincipals');
      front(merged, 'source.principal', G.srcPrincipal!, s.principals, s.notPrincipals, f, 'principals', 'notPrincipals');
    }
    principals.push(merged);
  });
  if (!rule.from?.length) principals.push(basePrincipal);
  const permissions: CondList[] = [];
  (rule.to ?? []).forEach((to, i) => {
    const merged = [...basePermission];
    const o = to.operation;
    const f = `${base}.to[${i}].operation`;
    if (o) {
      front(merged, 'destination.port', G.destPort!, o.ports, o.notPorts, f, 'ports', 'notPorts');
      front(merged, 'path-matcher', G.path!, o.paths, o.notPaths, f, 'paths', 'notPaths');
      front(merged, ':method', G.method!, o.methods, o.notMethods, f, 'methods', 'notMethods');
      front(merged, ':authority', G.host!, o.hosts, o.notHosts, f, 'hosts', 'notHosts');
    }
    permissions.push(merged);
  });
  if (!rule.to?.length) permissions.push(basePermission);
  // MigrateTrustDomain: copies, so a shared base condition is rewritten once per list it sits in.
  for (const list of principals) {
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      if (c.key === 'source.principal') list[i] = { ...c, values: replaceTrustDomainAliases(bundle, c.values), notValues: replaceTrustDomainAliases(bundle, c.notValues) };
      else if (c.key === 'source.trustDomain') list[i] = { ...c, values: expandTrustDomainAliases(bundle, c.values), notValues: expandTrustDomainAliases(bundle, c.notValues) };
    }
  }
  return { permissions, principals };
}

type Side = 'permission' | 'principal';

/**
 * One condition's matchers. Errors follow checkError: in ALLOW they abort the
 * rule (rethrown); in DENY/LOG the failing value is skipped (recorded).
 */
function condMatchers<T>(c: Cond, side: Side, forTCP: boolean, action: RbacAction, errors: RuleError[]): T[] {
  const out: T[] = [];
  const attempt = <R>(fn: () => R, field: string): R | undefined => {
    try {
      return fn();
    } catch (e) {
      const err = e instanceof RuleError ? e : new RuleError((e as Error).message, field);
      if (action === 'ALLOW') throw err;
      errors.push(err);
      return undefined;
    }
  };
  const one = (v: string, field: string): T | undefined =>
    attempt(() => {
      const fn = side === 'permission' ? c.gen.permission : c.gen.principal;
      if (!fn) throw new RuleError(`"${c.key}" cannot be used here`, field);
      return fn(c.key, v, forTCP, field) as T;
    }, field);
  const ext = (vs: string[], field: string): T | undefined =>
    attempt(() => {
      const fn = side === 'permission' ? c.gen.extPermission : c.gen.extPrincipal;
      if (!fn) throw new RuleError(`"${c.key}" cannot be used here`, field);
      return fn(c.key, vs, forTCP, field) as T | undefined;
    }, field);
  const or = (xs: T[]): T => (side === 'permission' ? ({ orRules: { rules: xs } } as T) : ({ orIds: { ids: xs } } as T));
  const not = (x: T): T => (side === 'permission' ? ({ notRule: x } as T) : ({ notId: x } as T));
  const isExt = side === 'permission' ? !!c.gen.extPermission : !!c.gen.extPrincipal;
  if (isExt) {
    if (c.values.length) {
      const m = ext(c.values, c.field);
      if (m) out.push(m);
    }
    if (c.notValues.length) {
      const m = ext(c.notValues, c.notField);
      if (m) out.push(not(m));
    }
    return out;
  }
  const vs = c.values.map((v) => one(v, c.field)).filter((x): x is NonNullable<typeof x> => x !== undefined);
  if (vs.length) out.push(or(vs));
  const nvs = c.notValues.map((v) => one(v, c.notField)).filter((x): x is NonNullable<typeof x> => x !== undefined);
  if (nvs.length) out.push(not(or(nvs)));
  return out;
}

/**
 * The RBAC policy of a rule for one chain kind, or a RuleError when an ALLOW
 * rule must be dropped. `errors` collects what DENY/AUDIT rules dropped.
 */
export function generatePolicy(m: RuleModel, forTCP: boolean, action: RbacAction, errors: RuleError[]): RbacPolicyJson | RuleError {
  try {
    const permissions: RbacPermissionJson[] = m.permissions.map((list) => {
      const and = list.flatMap((c) => condMatchers<RbacPermissionJson>(c, 'permission', forTCP, action, errors));
      return { andRules: { rules: and.length ? and : [{ any: true }] } };
    });
    const principals: RbacPrincipalJson[] = m.principals.map((list) => {
      const and = list.flatMap((c) => condMatchers<RbacPrincipalJson>(c, 'principal', forTCP, action, errors));
      return { andIds: { ids: and.length ? and : [{ any: true }] } };
    });
    return { permissions, principals };
  } catch (e) {
    return e instanceof RuleError ? e : new RuleError((e as Error).message, '');
  }
}

/** A policy that never matches: istiod's rendering of a policy without rules. */
export const POLICY_MATCH_NEVER: RbacPolicyJson = {
  permissions: [{ notRule: { any: true } }],
  principals: [{ notId: { any: true } }],
};
