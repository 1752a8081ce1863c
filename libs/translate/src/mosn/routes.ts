/**
 * RDS for MOSN v1.6.1. MOSN's route converter reads header matchers only from
 * the legacy `exact_match` and `safe_regex_match` fields (a `string_match` is
 * read as an exact match on the empty string), matches hosts with their port
 * (no `ignore_port_in_host_matching`), applies Go regexps unanchored, and
 * ignores route-level header edits, host rewrites, regex rewrites and CORS,
 * and applies path rules only to requests that have a path (HTTP, not Dubbo
 * or bolt), so the catch-all prefix `/` is written as no path match.
 * A route whose match MOSN cannot express is left out for this proxy (a
 * broader match would take traffic that is not its own); a route action
 * MOSN cannot express is kept without it. Either way the VirtualService field
 * is reported for the proxy, never dropped silently.
 */
import type { ValidationIssue } from '@sextant/api';
import type { RouteConfigurationJson } from '@sextant/envoy';
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';
import { preparedVirtualServices } from '../route/sidecar.js';
import { NOT_SUPPORTED, virtualServiceOf, type Json } from './common.js';

/** RE2/Go syntax: escapes a literal. */
function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** An Envoy StringMatcher as one Go regexp with Envoy's full-match semantics; undefined if it has no MOSN form. */
function stringMatcherRegex(m: Json): string | undefined {
  const ci = m.ignoreCase ? '(?i)' : '';
  if (m.exact !== undefined) return `${ci}^${quoteMeta(m.exact)}$`;
  if (m.prefix !== undefined) return `${ci}^${quoteMeta(m.prefix)}`;
  if (m.suffix !== undefined) return `${ci}${quoteMeta(m.suffix)}$`;
  if (m.contains !== undefined) return `${ci}${quoteMeta(m.contains)}`;
  if (m.safeRegex?.regex !== undefined) return `${ci}^(?:${m.safeRegex.regex})$`;
  return undefined;
}

/** An Envoy HeaderMatcher in the fields MOSN reads; undefined when MOSN cannot express it. */
export function mosnHeaderMatcher(h: Json): Json | undefined {
  if (h.invertMatch || typeof h.name !== 'string' || h.name.startsWith(':')) return undefined;
  if (h.presentMatch === true) return { name: h.name, safeRegexMatch: { regex: '^' } };
  const m = h.stringMatch as Json | undefined;
  if (!m) return undefined;
  if (m.exact !== undefined && !m.ignoreCase) return { name: h.name, exactMatch: m.exact };
  const regex = stringMatcherRegex(m);
  return regex === undefined ? undefined : { name: h.name, safeRegexMatch: { regex } };
}

/** The route in MOSN's form, or undefined when its match cannot be expressed. */
function mosnRoute(r: Json): Json | undefined {
  const match = { ...(r.match as Json) };
  if (match.queryParameters?.length || match.dynamicMetadata?.length) return undefined;
  if (match.headers?.length) {
    const headers: Json[] = [];
    for (const h of match.headers as Json[]) {
      const mh = mosnHeaderMatcher(h);
      if (!mh) return undefined;
      headers.push(mh);
    }
    match.headers = headers;
  }
  if (match.safeRegex?.regex !== undefined) match.safeRegex = { regex: `^(?:${match.safeRegex.regex})$` };
  // MOSN applies a path rule only to requests with a path; Dubbo and bolt have none. A rule with
  // no path match (MOSN's RPC rule) matches on headers alone, which for HTTP is what prefix `/` means.
  if (match.prefix === '/') delete match.prefix;
  const out: Json = { ...r, match };
  delete out.requestHeadersToAdd;
  delete out.requestHeadersToRemove;
  delete out.responseHeadersToAdd;
  delete out.responseHeadersToRemove;
  if (out.typedPerFilterConfig) {
    const { ['envoy.filters.http.cors']: _cors, ...rest } = out.typedPerFilterConfig as Json;
    if (Object.keys(rest).length) out.typedPerFilterConfig = rest;
    else delete out.typedPerFilterConfig;
  }
  if (out.route) {
    const action: Json = { ...out.route };
    delete action.hostRewriteLiteral;
    delete action.regexRewrite;
    if (action.weightedClusters) {
      action.weightedClusters = {
        ...action.weightedClusters,
        clusters: (action.weightedClusters.clusters as Json[]).map(({ requestHeadersToAdd: _a, requestHeadersToRemove: _b, responseHeadersToAdd: _c, responseHeadersToRemove: _d, hostRewriteLiteral: _e, ...c }) => c),
      };
    }
    out.route = action;
  }
  return out;
}

/** Domains plus their `host:port` forms: MOSN compares the Host header with its port. */
function withPortDomains(domains: string[], port: number | undefined): string[] {
  if (port === undefined) return domains;
  const out: string[] = [];
  for (const d of domains) {
    out.push(d);
    if (d !== '*' && !/:[0-9]+$/.test(d.startsWith('[') ? d.slice(d.indexOf(']')) : d)) out.push(`${d}:${port}`);
  }
  return out;
}

/** The VirtualService fields MOSN v1.6.1 cannot express, as issues for one proxy. */
export function mosnVirtualServiceIssues(vs: IstioConfig): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const add = (field: string, effect: string) => issues.push({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name, field, reason: `${NOT_SUPPORTED}: ${effect}` });
  const dropRoute = 'the route is left out for this MOSN proxy';
  const ignored = 'ignored for this MOSN proxy, the rest of the route applies';
  ((vs.spec.http ?? []) as Json[]).forEach((http, i) => {
    ((http.match ?? []) as Json[]).forEach((m, j) => {
      const at = `spec.http[${i}].match[${j}]`;
      if (m.queryParams && Object.keys(m.queryParams).length) add(`${at}.queryParams`, dropRoute);
      if (m.withoutHeaders && Object.keys(m.withoutHeaders).length) add(`${at}.withoutHeaders`, dropRoute);
      for (const f of ['method', 'authority', 'scheme'] as const) if (m[f]) add(`${at}.${f}`, dropRoute);
      if (m.ignoreUriCase) add(`${at}.ignoreUriCase`, 'the URI is matched case-sensitively for this MOSN proxy');
    });
    if (http.headers) add(`spec.http[${i}].headers`, ignored);
    ((http.route ?? []) as Json[]).forEach((d, k) => {
      if (d.headers) add(`spec.http[${i}].route[${k}].headers`, ignored);
    });
    if (http.rewrite?.authority) add(`spec.http[${i}].rewrite.authority`, ignored);
    if (http.rewrite?.uriRegexRewrite) add(`spec.http[${i}].rewrite.uriRegexRewrite`, ignored);
    if (http.corsPolicy) add(`spec.http[${i}].corsPolicy`, ignored);
    // MOSN's route converter never reads request_mirror_policies.
    if (http.mirror) add(`spec.http[${i}].mirror`, ignored);
    if ((http.mirrors as unknown[] | undefined)?.length) add(`spec.http[${i}].mirrors`, ignored);
  });
  return issues;
}

/**
 * The MOSN form of a sidecar's route configurations. `issues` receives, once
 * per VirtualService behind these routes, what MOSN cannot express.
 */
export function mosnRoutes(push: PushContext, proxy: ProxyView, routes: RouteConfigurationJson[], issues?: ValidationIssue[]): RouteConfigurationJson[] {
  const seen = new Set<string>();
  const out = routes.map((rc) => {
    const name = rc.name ?? '';
    const colon = name.lastIndexOf(':');
    // `9080`: the vhosts carry service domains and need their `:9080` forms; `<fqdn>:<port>` has one `*` vhost.
    const port = colon < 0 && /^[0-9]+$/.test(name) ? Number(name) : undefined;
    const vhosts = ((rc.virtualHosts ?? []) as Json[]).map((vh) => {
      const routesOut: Json[] = [];
      for (const r of (vh.routes ?? []) as Json[]) {
        const ref = virtualServiceOf(r);
        if (ref) seen.add(`${ref.namespace}/${ref.name}`);
        const mr = mosnRoute(r);
        if (mr) routesOut.push(mr);
      }
      return { ...vh, domains: withPortDomains((vh.domains ?? []) as string[], port), routes: routesOut };
    });
    const { ignorePortInHostMatching: _i, ...rest } = rc as Json;
    return { ...rest, virtualHosts: vhosts } as RouteConfigurationJson;
  });
  if (issues && seen.size) {
    for (const vs of preparedVirtualServices(push, proxy, ['mesh'])) {
      if (seen.has(`${vs.namespace}/${vs.name}`)) issues.push(...mosnVirtualServiceIssues(vs));
    }
  }
  return out;
}
