import { z } from 'zod';
import { Duration, durationMillis } from '../common.js';
import { checkEnvoyRegex } from '../regex.js';

/**
 * networking.istio.io VirtualService (v1, v1beta1, v1alpha3 share one schema,
 * as in Istio). Field names are Istio's; unknown fields are errors.
 * Checks that need only this object (RE2 regexes, weights, delegate rules,
 * route/redirect exclusivity) are here, with Istio's wording where it has one.
 */

/**
 * Why `re` would not compile under RE2 (Envoy's `safe_regex`), or undefined:
 * RE2's own parser and Envoy's default program-size limit (see ../regex.ts).
 */
export function checkRe2Regex(re: string): string | undefined {
  return checkEnvoyRegex(re);
}

const re2 = z.string().superRefine((s, ctx) => {
  const why = checkRe2Regex(s);
  if (why) ctx.addIssue({ code: 'custom', message: why, input: s });
});

/** istio StringMatch: exactly one of exact, prefix, regex. */
export const StringMatch = z
  .strictObject({ exact: z.string().optional(), prefix: z.string().optional(), regex: re2.optional() })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((x) => x !== undefined).length <= 1, {
    error: 'only one of exact, prefix or regex may be set',
  });

const headerName = z
  .string()
  .min(1, { error: 'header name cannot be empty' })
  .regex(/^[-!#$%&'*+.^_`|~0-9A-Za-z]+$/, { error: (iss) => `${JSON.stringify(iss.input)} is not a valid header name` });

const headerValueMap = z.record(headerName, z.string());

export const HeaderOperations = z.strictObject({
  set: headerValueMap.optional(),
  add: headerValueMap.optional(),
  remove: z.array(headerName).optional(),
});

export const Headers = z.strictObject({
  request: HeaderOperations.optional(),
  response: HeaderOperations.optional(),
});

const PortSelector = z.strictObject({ number: z.int().min(0).max(65535).optional() });

export const Destination = z.strictObject({
  host: z.string().min(1, { error: 'destination host is required' }),
  subset: z.string().optional(),
  port: PortSelector.optional(),
});

const Percent = z.strictObject({ value: z.number().min(0).max(100).optional() });

const port = z.int().min(1, { error: 'port must be between 1 and 65535' }).max(65535, { error: 'port must be between 1 and 65535' });

export const HTTPMatchRequest = z.strictObject({
  name: z.string().optional(),
  uri: StringMatch.optional(),
  scheme: StringMatch.optional(),
  method: StringMatch.optional(),
  authority: StringMatch.optional(),
  headers: z.record(z.string(), StringMatch).optional(),
  port: port.optional(),
  sourceLabels: z.record(z.string(), z.string()).optional(),
  gateways: z.array(z.string()).optional(),
  queryParams: z.record(z.string(), StringMatch).optional(),
  ignoreUriCase: z.boolean().optional(),
  withoutHeaders: z.record(z.string(), StringMatch).optional(),
  sourceNamespace: z.string().optional(),
  statPrefix: z.string().optional(),
});

export const HTTPRouteDestination = z.strictObject({
  destination: Destination,
  weight: z.int().min(0, { error: (iss) => `weight ${String(iss.input)} < 0` }).optional(),
  headers: Headers.optional(),
});

export const RouteDestination = z.strictObject({
  destination: Destination,
  weight: z.int().min(0, { error: (iss) => `weight ${String(iss.input)} < 0` }).optional(),
});

export const HTTPRedirect = z.strictObject({
  uri: z.string().optional(),
  authority: z.string().optional(),
  port: port.optional(),
  derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
  scheme: z.string().optional(),
  redirectCode: z.int().min(300).max(399).optional(),
});

export const HTTPDirectResponse = z.strictObject({
  status: z.int().min(200).max(599),
  body: z.strictObject({ string: z.string().optional(), bytes: z.string().optional() }).optional(),
});

export const Delegate = z.strictObject({ name: z.string().min(1), namespace: z.string().optional() });

export const RegexRewrite = z.strictObject({ match: re2.optional(), rewrite: z.string().optional() });

export const HTTPRewrite = z
  .strictObject({ uri: z.string().optional(), authority: z.string().optional(), uriRegexRewrite: RegexRewrite.optional() })
  .refine((r) => !(r.uri !== undefined && r.uriRegexRewrite !== undefined), {
    error: 'rewrite may only contain one of uri or uriRegexRewrite',
  });

export const HTTPRetry = z.strictObject({
  attempts: z.int().min(0, { error: 'attempts cannot be negative' }).optional(),
  perTryTimeout: Duration.optional(),
  retryOn: z.string().optional(),
  retryRemoteLocalities: z.boolean().optional(),
  retryIgnorePreviousHosts: z.boolean().optional(),
  backoff: Duration.optional(),
});

export const HTTPFaultInjection = z.strictObject({
  delay: z
    .strictObject({
      fixedDelay: Duration.optional(),
      exponentialDelay: Duration.optional(),
      percentage: Percent.optional(),
      percent: z.int().min(0).max(100).optional(),
    })
    .refine((d) => d.fixedDelay !== undefined || d.exponentialDelay !== undefined, { error: 'delay must set fixedDelay' })
    .optional(),
  abort: z
    .strictObject({
      httpStatus: z.int().min(200).max(599).optional(),
      grpcStatus: z.string().optional(),
      http2Error: z.string().optional(),
      percentage: Percent.optional(),
    })
    .refine((a) => [a.httpStatus, a.grpcStatus, a.http2Error].filter((x) => x !== undefined).length === 1, {
      error: 'abort must set exactly one of httpStatus, grpcStatus or http2Error',
    })
    .optional(),
});

export const CorsPolicy = z.strictObject({
  allowOrigins: z.array(StringMatch).optional(),
  allowOrigin: z.array(z.string()).optional(),
  allowMethods: z.array(z.string()).optional(),
  allowHeaders: z.array(z.string()).optional(),
  exposeHeaders: z.array(z.string()).optional(),
  maxAge: Duration.optional(),
  allowCredentials: z.boolean().optional(),
  unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
});

export const HTTPMirrorPolicy = z.strictObject({ destination: Destination, percentage: Percent.optional() });

export const HTTPRoute = z
  .strictObject({
    name: z.string().optional(),
    match: z.array(HTTPMatchRequest).optional(),
    route: z.array(HTTPRouteDestination).optional(),
    redirect: HTTPRedirect.optional(),
    directResponse: HTTPDirectResponse.optional(),
    delegate: Delegate.optional(),
    rewrite: HTTPRewrite.optional(),
    timeout: Duration.optional(),
    retries: HTTPRetry.optional(),
    fault: HTTPFaultInjection.optional(),
    mirror: Destination.optional(),
    mirrors: z.array(HTTPMirrorPolicy).optional(),
    mirrorPercent: z.int().optional(),
    mirrorPercentage: Percent.optional(),
    corsPolicy: CorsPolicy.optional(),
    headers: Headers.optional(),
  })
  .superRefine((h, ctx) => {
    const bad = (message: string, path: PropertyKey[] = []) => ctx.addIssue({ code: 'custom', message, path, input: h });
    const hasRoute = (h.route?.length ?? 0) > 0;
    if (h.delegate !== undefined) {
      if (hasRoute) bad(`root HTTP route ${h.name ?? ''} must not specify route`.replace('  ', ' '), ['delegate']);
      if (h.redirect !== undefined) bad(`root HTTP route ${h.name ?? ''} must not specify redirect`.replace('  ', ' '), ['delegate']);
    } else {
      if (hasRoute && h.redirect) bad('HTTP route cannot contain both route and redirect');
      if (h.fault && h.redirect) bad('HTTP route cannot contain both fault and redirect');
      if (h.rewrite && h.redirect) bad('HTTP route rule cannot contain both rewrite and redirect');
      if (h.directResponse && h.redirect) bad('HTTP route rule cannot contain both direct_response and redirect');
      if (hasRoute && h.directResponse) bad('HTTP route cannot contain both route and direct_response');
      if (h.fault && h.directResponse) bad('HTTP route cannot contain both fault and direct_response');
      if (h.rewrite && h.directResponse) bad('HTTP route rule cannot contain both rewrite and direct_response');
      if (!hasRoute && !h.redirect && !h.directResponse) bad('HTTP route, redirect or direct_response is required');
    }
    if (h.mirror && h.mirrors) bad('HTTP route cannot contain both mirror and mirrors');
    if (h.mirrorPercent !== undefined && h.mirrorPercent > 100) bad(`mirror_percent must have a max value of 100 (it has ${h.mirrorPercent})`, ['mirrorPercent']);
    if (h.route && h.route.length > 1 && h.route.reduce((s, r) => s + (r.weight ?? 0), 0) === 0)
      bad('total destination weight = 0: give the destinations weights that add up to more than 0', ['route']);
    if (h.timeout !== undefined && (durationMillis(h.timeout) ?? 0) < 1 && h.timeout !== '0s') {
      // Istio accepts a zero timeout (disabled) and anything of at least 1ms.
      bad('timeout must be 0s or at least 1ms', ['timeout']);
    }
  });

export const L4MatchAttributes = z.strictObject({
  destinationSubnets: z.array(z.string()).optional(),
  port: port.optional(),
  sourceSubnet: z.string().optional(),
  sourceLabels: z.record(z.string(), z.string()).optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});

export const TLSMatchAttributes = z.strictObject({
  sniHosts: z.array(z.string()).min(1, { error: 'TLS match must have at least one SNI host' }),
  destinationSubnets: z.array(z.string()).optional(),
  port: port.optional(),
  sourceLabels: z.record(z.string(), z.string()).optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});

const weightsNotZero = (r: { route?: Array<{ weight?: number | undefined }> | undefined }) =>
  !(r.route && r.route.length > 1 && r.route.reduce((s, d) => s + (d.weight ?? 0), 0) === 0);
const weightsNotZeroError = { error: 'total destination weight = 0: give the destinations weights that add up to more than 0', path: ['route'] };

export const TCPRoute = z
  .strictObject({ match: z.array(L4MatchAttributes).optional(), route: z.array(RouteDestination).optional() })
  .refine(weightsNotZero, weightsNotZeroError);

export const TLSRoute = z
  .strictObject({
    match: z.array(TLSMatchAttributes).min(1, { error: 'TLS route must have at least one match condition' }),
    route: z.array(RouteDestination).optional(),
  })
  .refine(weightsNotZero, weightsNotZeroError);

const HOST = /^(\*|(\*\.)?[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?)*\.?|[0-9a-fA-F:.]+)$/;

/** Two host names overlap: equal, or one wildcard covers the other (`*.foo.com` and `*.com`). */
export function hostsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  const cover = (w: string, h: string) => w === '*' || (w.startsWith('*.') && (h.endsWith(w.slice(1)) || h === w.slice(2)));
  return cover(a, b) || cover(b, a);
}

export const VirtualServiceSpec = z
  .strictObject({
    hosts: z.array(z.string()).optional(),
    gateways: z.array(z.string()).optional(),
    http: z.array(HTTPRoute).optional(),
    tls: z.array(TLSRoute).optional(),
    tcp: z.array(TCPRoute).optional(),
    exportTo: z.array(z.string()).optional(),
  })
  .superRefine((vs, ctx) => {
    const bad = (message: string, path: PropertyKey[]) => ctx.addIssue({ code: 'custom', message, path, input: vs });
    const hosts = vs.hosts ?? [];
    if (hosts.length === 0) {
      // No hosts: a delegate VirtualService.
      if (vs.gateways?.length) bad('delegate virtual service must have no gateways specified', ['gateways']);
      if (vs.tls?.length) bad('delegate virtual service must have no tls route specified', ['tls']);
      if (vs.tcp?.length) bad('delegate virtual service must have no tcp route specified', ['tcp']);
      (vs.http ?? []).forEach((h, i) => {
        if (h.delegate) bad('delegate HTTP route cannot contain delegate', ['http', i, 'delegate']);
      });
    }
    const appliesToMesh = !vs.gateways?.length || vs.gateways.includes('mesh');
    let allValid = true;
    hosts.forEach((h, i) => {
      if (!HOST.test(h) || (h.includes('*') && !(h === '*' || (h.startsWith('*.') && !h.slice(2).includes('*'))))) {
        bad(`${JSON.stringify(h)} is not a valid host: use a DNS name, optionally with a leading "*." wildcard`, ['hosts', i]);
        allValid = false;
      } else if (h === '*' && appliesToMesh) {
        bad('wildcard host * is not allowed for virtual services bound to the mesh gateway', ['hosts', i]);
        allValid = false;
      }
    });
    if (allValid)
      for (let i = 0; i < hosts.length; i++)
        for (let j = i + 1; j < hosts.length; j++)
          if (hostsOverlap(hosts[i]!, hosts[j]!)) bad(`duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`, ['hosts', j]);
    if (!vs.http?.length && !vs.tcp?.length && !vs.tls?.length) bad('http, tcp or tls must be provided in virtual service', []);
    (vs.gateways ?? []).forEach((g, i) => {
      if (g.length === 0) bad('gateway name must not be empty', ['gateways', i]);
      else if (g.split('/').length > 2) bad(`${JSON.stringify(g)} is not a valid gateway name: use "name" or "namespace/name"`, ['gateways', i]);
    });
  });

export type StringMatch = z.infer<typeof StringMatch>;
export type Destination = z.infer<typeof Destination>;
export type HeaderOperations = z.infer<typeof HeaderOperations>;
export type Headers = z.infer<typeof Headers>;
export type HTTPMatchRequest = z.infer<typeof HTTPMatchRequest>;
export type HTTPRouteDestination = z.infer<typeof HTTPRouteDestination>;
export type RouteDestination = z.infer<typeof RouteDestination>;
export type HTTPRoute = z.infer<typeof HTTPRoute>;
export type HTTPRetry = z.infer<typeof HTTPRetry>;
export type HTTPFaultInjection = z.infer<typeof HTTPFaultInjection>;
export type CorsPolicy = z.infer<typeof CorsPolicy>;
export type TCPRoute = z.infer<typeof TCPRoute>;
export type TLSRoute = z.infer<typeof TLSRoute>;
export type L4MatchAttributes = z.infer<typeof L4MatchAttributes>;
export type TLSMatchAttributes = z.infer<typeof TLSMatchAttributes>;
export type VirtualServiceSpec = z.infer<typeof VirtualServiceSpec>;
