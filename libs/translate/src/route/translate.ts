/**
 * VirtualService HTTP rules → Envoy routes (istiod's route.TranslateRoute and
 * friends), as Envoy's proto3 JSON. Pure.
 */
import { durationMillis, type ConsistentHash, type CorsPolicy, type HTTPRouteDestination, type Destination, type Headers, type HTTPFaultInjection, type HTTPMatchRequest, type HTTPRetry, type HTTPRoute, type VirtualServiceSpecType } from '@sextant/api';
import type {
  FractionalPercentJson,
  HeaderMatcherJson,
  HeaderValueOptionJson,
  QueryParameterMatcherJson,
  RedirectActionJson,
  RetryPolicyJson,
  RouteAction_HashPolicyJson,
  RouteActionJson,
  RouteAction_RequestMirrorPolicyJson,
  RouteJson,
  RouteMatchJson,
  RuntimeFractionalPercentJson,
  StringMatcherJson,
  VirtualHostJson,
  WeightedCluster_ClusterWeightJson,
} from '@sextant/envoy';
import type { IstioConfig, ProxyView, Service } from '@sextant/model';
import { outboundClusterName, parseClusterName, PASSTHROUGH_CLUSTER } from '../names.js';
import { anyOf, TYPE, type AnyOf } from '../typed.js';

/** The header edits a Route and a weighted cluster both carry. */
type HeaderEdits = Pick<RouteJson, 'requestHeadersToAdd' | 'responseHeadersToAdd' | 'requestHeadersToRemove' | 'responseHeadersToRemove'>;


export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

/**
 * A short host name as Istio reads it in a config object of namespace `ns`:
 * `reviews` → `reviews.<ns>.svc.<suffix>`; names with a dot and `*` stay.
 */
export function resolveShortname(host: string, ns: string, domainSuffix: string): string {
  if (host.includes('.') || host === '*' || host.length === 0) return host;
  return `${host}.${ns}.svc.${domainSuffix}`;
}

/** Go duration → proto3 JSON duration (`1.5s`). */
export function protoDuration(goDuration: string | undefined): string | undefined {
  if (goDuration === undefined) return undefined;
  const ms = durationMillis(goDuration);
  if (ms === undefined) return undefined;
  return `${Number((ms / 1000).toFixed(9))}s`;
}

export interface StringMatchSpec {
  exact?: string | undefined;
  prefix?: string | undefined;
  regex?: string | undefined;
}

/** istio StringMatch → envoy.type.matcher.v3.StringMatcher. */
export function stringMatcher(m: StringMatchSpec, ignoreCase = false): StringMatcherJson | undefined {
  const out: StringMatcherJson = {};
  if (m.exact !== undefined) out.exact = m.exact;
  else if (m.prefix !== undefined) out.prefix = m.prefix;
  else if (m.regex !== undefined) out.safeRegex = { regex: m.regex };
  else return undefined;
  if (ignoreCase) out.ignoreCase = true;
  return out;
}

function isPresentMatch(m: StringMatchSpec | undefined): boolean {
  return !m || (m.exact === undefined && m.prefix === undefined && m.regex === undefined) || m.regex === '*';
}

function headerMatcher(name: string, m: StringMatchSpec | undefined): HeaderMatcherJson {
  if (isPresentMatch(m)) return { name, presentMatch: true };
  return { name, stringMatch: stringMatcher(m!) };
}

/** istio HTTPMatchRequest → envoy RouteMatch (istiod's TranslateRouteMatch). */
export function translateRouteMatch(match: HTTPMatchRequest | undefined, gatewaySemantics = false): RouteMatchJson {
  const out: RouteMatchJson = { prefix: '/' };
  if (!match) return out;
  const headers: HeaderMatcherJson[] = [];
  for (const [name, m] of Object.entries(match.headers ?? {})) headers.push(headerMatcher(name, m));
  for (const [name, m] of Object.entries(match.withoutHeaders ?? {})) {
    const h = headerMatcher(name, m);
    h.invertMatch = true;
    if (!isPresentMatch(m)) h.treatMissingHeaderAsEmpty = true;
    headers.push(h);
  }
  headers.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
  if (match.uri) {
    const u: StringMatchSpec = match.uri;
    delete out.prefix;
    if (u.exact !== undefined) out.path = u.exact;
    else if (u.prefix !== undefined) {
      if (gatewaySemantics && u.prefix !== '/') out.pathSeparatedPrefix = u.prefix.replace(/\/$/, '');
      else out.prefix = u.prefix;
    } else if (u.regex !== undefined) out.safeRegex = { regex: u.regex };
    else out.prefix = '/';
  }
  out.caseSensitive = !match.ignoreUriCase;
  if (match.method) headers.push(headerMatcher(':method', match.method));
  if (match.authority) headers.push(headerMatcher(':authority', match.authority));
  if (match.scheme) headers.push(headerMatcher(':scheme', match.scheme));
  if (headers.length) out.headers = headers;
  const qp: QueryParameterMatcherJson[] = [];
  for (const [name, m] of Object.entries(match.queryParams ?? {})) {
    qp.push(isPresentMatch(m) ? { name, presentMatch: true } : { name, stringMatch: stringMatcher(m) });
  }
  if (qp.length) out.queryParameters = qp;
  return out;
}

function isInternalHeader(k: string): boolean {
  return k.startsWith(':') || k.toLowerCase() === 'host';
}
function isAuthorityHeader(k: string): boolean {
  return k.toLowerCase() === ':authority' || k.toLowerCase() === 'host';
}

function headerOptions(m: Record<string, string> | undefined, append: boolean): { opts: HeaderValueOptionJson[]; authority: string } {
  let authority = '';
  const opts: HeaderValueOptionJson[] = [];
  for (const key of Object.keys(m ?? {}).sort()) {
    const value = m![key]!;
    if (isAuthorityHeader(key)) authority = value;
    if (isInternalHeader(key)) continue;
    opts.push({ header: { key, value }, appendAction: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  return { opts, authority };
}

export interface HeaderOps {
  requestHeadersToAdd: HeaderValueOptionJson[];
  responseHeadersToAdd: HeaderValueOptionJson[];
  requestHeadersToRemove: string[];
  responseHeadersToRemove: string[];
  authority: string;
}

/** istio Headers → Envoy header manipulation (set = overwrite, add = append). */
export function translateHeaders(h: Headers | undefined): HeaderOps {
  const reqSet = headerOptions(h?.request?.set, false);
  const reqAdd = headerOptions(h?.request?.add, true);
  const respSet = headerOptions(h?.response?.set, false);
  const respAdd = headerOptions(h?.response?.add, true);
  return {
    requestHeadersToAdd: [...reqSet.opts, ...reqAdd.opts],
    responseHeadersToAdd: [...respSet.opts, ...respAdd.opts],
    requestHeadersToRemove: (h?.request?.remove ?? []).filter((k) => !isInternalHeader(k)),
    responseHeadersToRemove: (h?.response?.remove ?? []).filter((k) => !isInternalHeader(k)),
    authority: reqSet.authority || reqAdd.authority,
  };
}

function applyHeaderOps(target: HeaderEdits, ops: HeaderOps, append: boolean): void {
  const put = <K extends keyof HeaderEdits>(k: K, v: NonNullable<HeaderEdits[K]>) => {
    if (v.length === 0) return;
    const prev = target[k];
    target[k] = (append && prev ? [...prev, ...v] : v) as HeaderEdits[K];
  };
  put('requestHeadersToAdd', ops.requestHeadersToAdd);
  put('responseHeadersToAdd', ops.responseHeadersToAdd);
  put('requestHeadersToRemove', ops.requestHeadersToRemove);
  put('responseHeadersToRemove', ops.responseHeadersToRemove);
}

function percentFraction(value: number): FractionalPercentJson {
  return { numerator: Math.trunc(value * 10000), denominator: 'MILLION' };
}

const GRPC_STATUS: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

/** istio HTTPFaultInjection → envoy.extensions.filters.http.fault.v3.HTTPFault (per-route config). */
export function translateFault(f: HTTPFaultInjection | undefined): AnyOf<typeof TYPE.fault> | undefined {
  if (!f) return undefined;
  const out = anyOf(TYPE.fault, {});
  if (f.delay?.fixedDelay) {
    out.delay = {
      fixedDelay: protoDuration(f.delay.fixedDelay),
      percentage: f.delay.percentage ? percentFraction(f.delay.percentage.value ?? 0) : { numerator: f.delay.percent ?? 0, denominator: 'HUNDRED' },
    };
  }
  if (f.abort && (f.abort.httpStatus !== undefined || f.abort.grpcStatus !== undefined)) {
    const abort: NonNullable<typeof out.abort> = {};
    if (f.abort.percentage) abort.percentage = percentFraction(f.abort.percentage.value ?? 0);
    if (f.abort.httpStatus !== undefined) abort.httpStatus = f.abort.httpStatus;
    else abort.grpcStatus = GRPC_STATUS[String(f.abort.grpcStatus).toUpperCase()] ?? Number(f.abort.grpcStatus) ?? 2;
    out.abort = abort;
  }
  if (!out.delay && !out.abort) return undefined;
  return out;
}

/** istio CorsPolicy → envoy.extensions.filters.http.cors.v3.CorsPolicy (per-route config). */
export function translateCors(c: CorsPolicy | undefined): AnyOf<typeof TYPE.cors> | undefined {
  if (!c) return undefined;
  const out = anyOf(TYPE.cors, {});
  out.forwardNotMatchingPreflights = c.unmatchedPreflights !== 'IGNORE';
  if (c.allowOrigins) out.allowOriginStringMatch = c.allowOrigins.map((m) => stringMatcher(m)).filter((m): m is StringMatcherJson => !!m);
  else if (c.allowOrigin) out.allowOriginStringMatch = c.allowOrigin.map((o) => ({ exact: o }));
  out.filterEnabled = { defaultValue: { numerator: 100, denominator: 'HUNDRED' } };
  if (c.allowCredentials !== undefined) out.allowCredentials = c.allowCredentials;
  if (c.allowHeaders) out.allowHeaders = c.allowHeaders.join(',');
  if (c.allowMethods) out.allowMethods = c.allowMethods.join(',');
  if (c.exposeHeaders) out.exposeHeaders = c.exposeHeaders.join(',');
  if (c.maxAge) out.maxAge = String(Math.floor((durationMillis(c.maxAge) ?? 0) / 1000));
  return out;
}

/** The status codes Go's http.StatusText knows: istiod reads only those numbers in `retryOn` as codes. */
const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451,
  500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

function parseRetryOn(retryOn: string): { retryOn: string; codes: number[] } {
  const on: string[] = [];
  const codes: number[] = [];
  for (const raw of retryOn.split(',')) {
    const p = raw.trim();
    if (!p) continue;
    if (/^[+-]?[0-9]+$/.test(p) && KNOWN_STATUS.has(Number(p))) codes.push(Number(p));
    else on.push(p);
  }
  return { retryOn: on.join(','), codes };
}

/** `envoy.retry_host_predicates.previous_hosts`: a retry picks another host than the ones already tried. */
export function previousHostsPredicate(): NonNullable<RetryPolicyJson['retryHostPredicate']> {
  return [{ name: 'envoy.retry_host_predicates.previous_hosts', typedConfig: anyOf(TYPE.previousHosts, {}) }];
}

/**
 * istio HTTPRetry → envoy RetryPolicy (istiod's retry.ConvertPolicy), with
 * istiod's defaults when unset. Undefined = no retries. With consistent
 * hashing the previous_hosts predicate is left out by default: a retry must
 * stay on the hashed host.
 */
export function translateRetry(r: HTTPRetry | undefined, consistentHash = false): RetryPolicyJson | undefined {
  const base: RetryPolicyJson & { retryOn: string } = { retryOn: DEFAULT_RETRY_ON, numRetries: 2, hostSelectionRetryMaxAttempts: '5' };
  if (!consistentHash) base.retryHostPredicate = previousHostsPredicate();
  if (!r) return base;
  if (!r.attempts || r.attempts <= 0) return undefined;
  base.numRetries = r.attempts;
  if (r.retryOn) {
    const p = parseRetryOn(r.retryOn);
    base.retryOn = p.retryOn;
    if (p.codes.length) {
      base.retriableStatusCodes = p.codes;
      if (!base.retryOn.includes('retriable-status-codes')) base.retryOn = `${base.retryOn},retriable-status-codes`;
    }
  }
  if (r.perTryTimeout) base.perTryTimeout = protoDuration(r.perTryTimeout);
  if (r.retryIgnorePreviousHosts !== undefined) {
    if (r.retryIgnorePreviousHosts) base.retryHostPredicate = previousHostsPredicate();
    else delete base.retryHostPredicate;
  }
  if (r.retryRemoteLocalities) {
    base.retryPriority = { name: 'envoy.retry_priorities.previous_priorities', typedConfig: anyOf(TYPE.previousPriorities, { updateFrequency: 2 }) };
  }
  if (r.backoff) base.retryBackOff = { baseInterval: protoDuration(r.backoff) };
  return base;
}

/** istio ConsistentHashLB → the route's hash policy (istiod's consistentHashToHashPolicy). */
export function consistentHashToHashPolicy(ch: ConsistentHash | undefined): RouteAction_HashPolicyJson | undefined {
  if (!ch) return undefined;
  if (ch.httpHeaderName !== undefined) return { header: { headerName: ch.httpHeaderName } };
  if (ch.httpCookie) {
    const cookie: NonNullable<RouteAction_HashPolicyJson['cookie']> = { name: ch.httpCookie.name };
    if (ch.httpCookie.ttl !== undefined) cookie.ttl = protoDuration(ch.httpCookie.ttl);
    if (ch.httpCookie.path) cookie.path = ch.httpCookie.path;
    if (ch.httpCookie.attributes?.length) cookie.attributes = ch.httpCookie.attributes.map((a) => (a.value ? { name: a.name, value: a.value } : { name: a.name }));
    return { cookie };
  }
  if (ch.useSourceIp !== undefined) return { connectionProperties: { sourceIp: ch.useSourceIp } };
  if (ch.httpQueryParameterName !== undefined) return { queryParameter: { name: ch.httpQueryParameterName } };
  return undefined;
}

/** What route translation needs to know about where it runs. */
export interface RouteOptions {
  proxy: ProxyView;
  /** The listener port the routes are built for (0 = any). */
  listenPort: number;
  /** Gateways the proxy is: `mesh` for sidecars, `ns/name` for routers. */
  gatewayNames: Set<string>;
  /** True on HTTPS gateway servers (redirect scheme defaults). */
  isTLS?: boolean;
  /** Proxyless gRPC: timeouts become max stream duration. */
  grpc?: boolean;
  domainSuffix: string;
  lookupService(host: string): Service | undefined;
  /** The consistent hash of the DestinationRule behind a route destination (istiod's HashForHTTPDestination). */
  lookupHash?: (dest: HTTPRouteDestination) => ConsistentHash | undefined;
}

/** The cluster a destination goes to (istiod's GetDestinationCluster). */
export function destinationCluster(dest: Destination, service: Service | undefined, listenPort: number): string {
  if (!dest.host) return 'UnknownService';
  let host: string = dest.host;
  if (service?.attributes.externalName) host = service.attributes.externalName;
  let port = listenPort;
  if (dest.port?.number) port = dest.port.number;
  else if (service && service.ports.length === 1) port = service.ports[0]!.port;
  return outboundClusterName(host, port, dest.subset ?? '');
}

/**
 * What destinationCluster reads of a service, as a string: routes kept by
 * their inputs (sidecar.ts `virtualServiceRoutes`) stay valid while it is the
 * same for every host they looked up. Keep the two in step.
 */
export function destinationServiceKey(service: Service | undefined): string {
  if (!service) return '';
  return `+${service.attributes.externalName ?? ''}\u0000${service.ports.length === 1 ? service.ports[0]!.port : ''}`;
}

function labelsSubset(want: Record<string, string> | undefined, have: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(want ?? {})) if (have[k] !== v) return false;
  return true;
}

function sourceMatches(match: HTTPMatchRequest | undefined, opts: RouteOptions): boolean {
  if (!match) return true;
  if (match.gateways?.length) return match.gateways.some((g) => opts.gatewayNames.has(g));
  // The proxy is read only for a source match: routes kept by what they read (sidecar.ts) are shared by proxies otherwise.
  if (match.sourceLabels && !labelsSubset(match.sourceLabels, opts.proxy.labels)) return false;
  return !match.sourceNamespace || match.sourceNamespace === opts.proxy.namespace;
}

function setTimeout(action: RouteActionJson, timeout: string | undefined, grpc: boolean): void {
  const t = protoDuration(timeout) ?? '0s';
  action.timeout = t;
  if (grpc) action.maxStreamDuration = { maxStreamDuration: t };
  else action.maxGrpcTimeout = t;
}

function mirrorFraction(value: number | undefined): RuntimeFractionalPercentJson | undefined {
  if (value === undefined) return { defaultValue: { numerator: 100, denominator: 'HUNDRED' } };
  if (value <= 0) return undefined;
  return { defaultValue: percentFraction(value) };
}

/** The operation name istiod puts in the route decorator. */
function routeOperation(route: RouteJson, vsName: string, port: number): string {
  const m = route.match ?? {};
  let path = '/*';
  if (m.prefix !== undefined) path = `${m.prefix}*`;
  else if (m.path !== undefined) path = m.path;
  else if (m.safeRegex?.regex !== undefined) path = m.safeRegex.regex;
  const c = route.route?.cluster;
  const parsed = c ? parseClusterName(c) : undefined;
  if (parsed) return `${parsed.host}:${parsed.port}${path}`;
  return `${vsName}:${port}${path}`;
}

/** One HTTP rule and one of its matches → one Envoy route; undefined when it does not apply here. */
export function translateRoute(vs: IstioConfig, http: HTTPRoute, match: HTTPMatchRequest | undefined, opts: RouteOptions): RouteJson | undefined {
  if (match?.port && match.port !== opts.listenPort && opts.listenPort !== 0) return undefined;
  if (!sourceMatches(match, opts)) return undefined;
  const gatewaySemantics = false;
  let name: string = http.name ?? '';
  if (match?.name) name = `${name}.${match.name}`;
  const out: RouteJson = {};
  if (name) out.name = name;
  out.match = translateRouteMatch(match, gatewaySemantics);
  out.metadata = {
    filterMetadata: { istio: { config: `/apis/networking.istio.io/v1/namespaces/${vs.namespace}/virtual-service/${vs.name}` } },
  };
  if (match?.statPrefix) out.statPrefix = match.statPrefix;
  const ops = translateHeaders(http.headers);
  applyHeaderOps(out, ops, false);
  let authority = ops.authority;

  if (http.redirect) {
    const r = http.redirect;
    const red: RedirectActionJson = {};
    if (r.authority) red.hostRedirect = r.authority;
    if (r.uri) red.pathRedirect = r.uri;
    if (r.scheme) red.schemeRedirect = r.scheme;
    let port: number | undefined;
    if (r.port !== undefined) port = r.port;
    else if (r.derivePort === 'FROM_REQUEST_PORT') port = opts.listenPort;
    if (port !== undefined) {
      const scheme = r.scheme || (opts.isTLS ? 'https' : 'http');
      if (!((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https'))) red.portRedirect = port;
    }
    const codes: Record<number, RedirectActionJson['responseCode']> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };
    const code = codes[r.redirectCode ?? 301];
    if (!code) return undefined;
    if (code !== 'MOVED_PERMANENTLY') red.responseCode = code;
    out.redirect = red;
  } else if (http.directResponse) {
    const dr: NonNullable<RouteJson['directResponse']> = { status: http.directResponse.status };
    if (http.directResponse.body?.string !== undefined) dr.body = { inlineString: http.directResponse.body.string };
    else if (http.directResponse.body?.bytes !== undefined) dr.body = { inlineBytes: http.directResponse.body.bytes };
    out.directResponse = dr;
  } else {
    const action: RouteActionJson = {};
    setTimeout(action, http.timeout, !!opts.grpc);
    if (http.rewrite) {
      if (http.rewrite.uriRegexRewrite) {
        action.regexRewrite = { pattern: { regex: http.rewrite.uriRegexRewrite.match ?? '' }, substitution: http.rewrite.uriRegexRewrite.rewrite ?? '' };
      } else if (http.rewrite.uri) action.prefixRewrite = http.rewrite.uri;
      if (http.rewrite.authority) authority = http.rewrite.authority;
    }
    if (authority) action.hostRewriteLiteral = authority;
    const mirrors: RouteAction_RequestMirrorPolicyJson[] = [];
    if (http.mirror) {
      const frac = http.mirrorPercentage
        ? mirrorFraction(http.mirrorPercentage.value ?? 0)
        : http.mirrorPercent !== undefined
          ? http.mirrorPercent > 0
            ? { defaultValue: { numerator: http.mirrorPercent, denominator: 'HUNDRED' as const } }
            : undefined
          : mirrorFraction(undefined);
      if (frac) mirrors.push({ cluster: destinationCluster(http.mirror, opts.lookupService(http.mirror.host), opts.listenPort), runtimeFraction: frac, traceSampled: false, disableShadowHostSuffixAppend: true });
    }
    for (const m of http.mirrors ?? []) {
      const frac = mirrorFraction(m.percentage ? (m.percentage.value ?? 0) : undefined);
      if (frac && m.destination)
        mirrors.push({ cluster: destinationCluster(m.destination, opts.lookupService(m.destination.host), opts.listenPort), runtimeFraction: frac, traceSampled: false, disableShadowHostSuffixAppend: true });
    }
    if (mirrors.length) action.requestMirrorPolicies = mirrors;
    const dests = http.route ?? [];
    // Each destination's hash policy in order (istiod appends one per destination with a consistent hash).
    const hashPolicies: RouteAction_HashPolicyJson[] = [];
    const addHash = (d: HTTPRouteDestination): boolean => {
      const ch = opts.lookupHash?.(d);
      const hp = consistentHashToHashPolicy(ch);
      if (hp) hashPolicies.push(hp);
      return ch !== undefined;
    };
    let consistentHash = false;
    if (dests.length === 1) {
      const d = dests[0]!;
      action.cluster = destinationCluster(d.destination, opts.lookupService(d.destination.host), opts.listenPort);
      if (d.headers) {
        const dops = translateHeaders(d.headers);
        applyHeaderOps(out, dops, true);
        if (dops.authority && !action.hostRewriteLiteral) action.hostRewriteLiteral = dops.authority;
      }
      consistentHash = addHash(d);
    } else {
      const clusters: WeightedCluster_ClusterWeightJson[] = [];
      for (const d of dests) {
        if (!d.weight) continue;
        const cw: WeightedCluster_ClusterWeightJson = { name: destinationCluster(d.destination, opts.lookupService(d.destination.host), opts.listenPort), weight: d.weight };
        if (d.headers) {
          const dops = translateHeaders(d.headers);
          applyHeaderOps(cw, dops, false);
          if (dops.authority) cw.hostRewriteLiteral = dops.authority;
        }
        addHash(d);
        clusters.push(cw);
      }
      // Envoy no longer needs total_weight (deprecated): the weights are relative, as Istio's are.
      action.weightedClusters = { clusters };
    }
    if (hashPolicies.length) action.hashPolicy = hashPolicies;
    // Only a single destination's consistent hash keeps retries on the same host (istiod).
    const retry = translateRetry(http.retries, consistentHash);
    if (retry) action.retryPolicy = retry;
    // Field order as in Envoy's RouteAction does not matter in JSON; keep `cluster`/`weightedClusters` first for readability.
    out.route = action;
  }
  out.decorator = { operation: routeOperation(out, vs.name, opts.listenPort) };
  const perFilter: NonNullable<RouteJson['typedPerFilterConfig']> = {};
  const fault = translateFault(http.fault);
  if (fault) perFilter['envoy.filters.http.fault'] = fault;
  const cors = translateCors(http.corsPolicy);
  if (cors) perFilter['envoy.filters.http.cors'] = cors;
  if (Object.keys(perFilter).length) out.typedPerFilterConfig = perFilter;
  return out;
}

/** True for a route that matches every request (prefix `/`, no header or query matches). */
export function isCatchAllRoute(r: RouteJson): boolean {
  const m: RouteMatchJson = r.match ?? {};
  const all = m.prefix === '/' || m.pathSeparatedPrefix === '/' || m.safeRegex?.regex === '.*';
  return all && !m.headers?.length && !m.queryParameters?.length && !m.dynamicMetadata?.length;
}

/** All routes of one VirtualService (istiod's BuildHTTPRoutesForVirtualService): stops after the first catch-all. */
export function buildHTTPRoutesForVirtualService(vs: IstioConfig, opts: RouteOptions): RouteJson[] {
  const out: RouteJson[] = [];
  let catchAll = false;
  for (const http of (vs.spec as VirtualServiceSpecType).http ?? []) {
    if (!http.match?.length) {
      const r = translateRoute(vs, http, undefined, opts);
      if (r) out.push(r);
      catchAll = true;
    } else {
      for (const m of http.match) {
        const r = translateRoute(vs, http, m, opts);
        if (r) {
          out.push(r);
          if (isCatchAllRoute(r)) {
            catchAll = true;
            break;
          }
        }
      }
    }
    if (catchAll) break;
  }
  return out;
}

/** The route for a service with no VirtualService (istiod's BuildDefaultHTTPOutboundRoute). */
export function defaultOutboundRoute(cluster: string, operation: string, grpc = false, hash?: ConsistentHash): RouteJson {
  const action: RouteActionJson = { cluster };
  setTimeout(action, undefined, grpc);
  // istiod builds the default route's retry policy before it knows the hash: previous_hosts stays.
  action.retryPolicy = translateRetry(undefined, false);
  const hp = consistentHashToHashPolicy(hash);
  if (hp) action.hashPolicy = [hp];
  return { name: 'default', match: { prefix: '/' }, decorator: { operation }, route: action };
}

/** The `allow_any` / `block_all` virtual host at the end of every sidecar outbound route config. */
export function catchAllVirtualHost(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY'): VirtualHostJson {
  if (policy === 'ALLOW_ANY') {
    return {
      name: 'allow_any',
      domains: ['*'],
      routes: [{ name: 'allow_any', match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: '0s', maxGrpcTimeout: '0s' } }],
      includeRequestAttemptCount: true,
    };
  }
  return {
    name: 'block_all',
    domains: ['*'],
    routes: [{ name: 'block_all', match: { prefix: '/' }, directResponse: { status: 502 } }],
    includeRequestAttemptCount: true,
  };
}
