/**
 * Walks generated config the way Envoy would for one HTTP request: listener
 * (by port and address) → filter chain → HCM → route configuration → virtual
 * host (by Host) → route (by path, headers, query) → action. For behaviour
 * tests and debugging; it follows Envoy's documented matching order for the
 * fields Sextant emits.
 */
import type { DirectResponseActionJson, ListenerJson, RedirectActionJson, RouteConfigurationJson, RouteJson, RouteMatchJson, StringMatcherJson, VirtualHostJson } from '@sextant/envoy';
import { TYPE, unpackAny } from '../typed.js';

export interface WalkRequest {
  port: number;
  /** Destination address (for `<VIP>_<port>` listeners); default 0.0.0.0. */
  address?: string;
  host: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  sni?: string;
}

export interface WalkResult {
  listener: string;
  routeConfig?: string;
  virtualHost?: string;
  route?: RouteJson;
  /** The cluster, or the weighted clusters, or a redirect / direct response. */
  cluster?: string;
  weightedClusters?: Array<{ name?: string; weight?: number }>;
  redirect?: RedirectActionJson;
  directResponse?: DirectResponseActionJson;
  tcpCluster?: string;
}

function strMatch(m: StringMatcherJson | undefined, v: string | undefined): boolean {
  if (v === undefined || !m) return false;
  const ic = !!m.ignoreCase;
  const val = ic ? v.toLowerCase() : v;
  if (m.exact !== undefined) return val === (ic ? m.exact.toLowerCase() : m.exact);
  if (m.prefix !== undefined) return val.startsWith(ic ? m.prefix.toLowerCase() : m.prefix);
  if (m.suffix !== undefined) return val.endsWith(m.suffix);
  if (m.safeRegex) return new RegExp(`^(?:${m.safeRegex.regex})$`).test(v);
  return false;
}

function domainMatch(pattern: string, host: string): number {
  // Envoy's precedence: exact > suffix wildcard (longest) > prefix wildcard > '*'.
  const h = host.toLowerCase().replace(/:[0-9]+$/, '');
  const p = pattern.toLowerCase();
  if (p === h) return 4000;
  if (p.startsWith('*') && p !== '*' && h.endsWith(p.slice(1))) return 2000 + p.length;
  if (p.endsWith('*') && p !== '*' && h.startsWith(p.slice(0, -1))) return 1000 + p.length;
  if (p === '*') return 1;
  return 0;
}

export function routeMatches(match: RouteMatchJson, req: WalkRequest): boolean {
  const path = req.path.split('?')[0]!;
  const cs = match.caseSensitive !== false;
  const cmpPath = (a: string) => (cs ? a : a.toLowerCase());
  if (match.prefix !== undefined && !cmpPath(path).startsWith(cmpPath(match.prefix))) return false;
  if (match.path !== undefined && cmpPath(path) !== cmpPath(match.path)) return false;
  if (match.pathSeparatedPrefix !== undefined && !(path === match.pathSeparatedPrefix || path.startsWith(`${match.pathSeparatedPrefix}/`))) return false;
  if (match.safeRegex && !new RegExp(`^(?:${match.safeRegex.regex})$`).test(path)) return false;
  const headers: Record<string, string> = { ':method': req.method ?? 'GET', ':authority': req.host, ':path': req.path, ':scheme': 'http' };
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  for (const h of match.headers ?? []) {
    const v = headers[(h.name ?? '').toLowerCase()];
    let ok: boolean;
    if (h.presentMatch) ok = v !== undefined;
    else if (h.stringMatch) ok = strMatch(h.stringMatch, v ?? (h.treatMissingHeaderAsEmpty ? '' : undefined));
    else ok = v !== undefined;
    if (h.invertMatch) ok = !ok;
    if (!ok) return false;
  }
  const query = new URLSearchParams(req.path.includes('?') ? req.path.slice(req.path.indexOf('?') + 1) : '');
  for (const q of match.queryParameters ?? []) {
    const v = query.get(q.name ?? '') ?? undefined;
    if (q.presentMatch ? v === undefined : !strMatch(q.stringMatch, v)) return false;
  }
  return true;
}

/** Routes one request through listeners and route configurations; undefined when nothing takes it. */
export function walkRequest(listeners: ListenerJson[], routeConfigs: RouteConfigurationJson[], req: WalkRequest): WalkResult | undefined {
  const addr = req.address ?? '0.0.0.0';
  const candidates = listeners.filter((l) => l.address?.socketAddress?.portValue === req.port);
  const listener =
    candidates.find((l) => l.address?.socketAddress?.address === addr) ?? candidates.find((l) => l.address?.socketAddress?.address === '0.0.0.0') ?? candidates[0];
  if (!listener) return undefined;
  const name = listener.name ?? '';
  const chain = (listener.filterChains ?? []).find((c) => {
    const m = c.filterChainMatch ?? {};
    if (m.serverNames && !(req.sni && m.serverNames.some((s) => domainMatch(s, req.sni!) > 1))) return false;
    if (m.applicationProtocols && !m.applicationProtocols.includes('http/1.1')) return false;
    if (m.destinationPort && m.destinationPort !== req.port) return false;
    return true;
  });
  if (!chain) return { listener: name };
  const filter = chain.filters?.[0];
  const tcp = unpackAny(filter?.typedConfig, TYPE.tcpProxy);
  if (tcp) {
    const res: WalkResult = { listener: name, ...(tcp.weightedClusters ? { weightedClusters: tcp.weightedClusters.clusters ?? [] } : {}) };
    if (tcp.cluster !== undefined) res.tcpCluster = tcp.cluster;
    return res;
  }
  const hcm = unpackAny(filter?.typedConfig, TYPE.hcm) ?? {};
  const rc = hcm.routeConfig ?? routeConfigs.find((r) => r.name === hcm.rds?.routeConfigName);
  const res: WalkResult = { listener: name };
  const rcName = rc?.name ?? hcm.rds?.routeConfigName;
  if (rcName !== undefined) res.routeConfig = rcName;
  if (!rc) return res;
  let best: VirtualHostJson | undefined;
  let bestScore = 0;
  for (const vh of rc.virtualHosts ?? []) {
    for (const d of vh.domains ?? []) {
      const s = rc.ignorePortInHostMatching ? domainMatch(d, req.host) : domainMatch(d, d.includes(':') ? req.host : req.host.replace(/:[0-9]+$/, ''));
      if (s > bestScore) {
        bestScore = s;
        best = vh;
      }
    }
  }
  if (!best) return res;
  if (best.name !== undefined) res.virtualHost = best.name;
  const route = (best.routes ?? []).find((r) => routeMatches(r.match ?? {}, req));
  if (!route) return res;
  res.route = route;
  if (route.route?.cluster) res.cluster = route.route.cluster;
  if (route.route?.weightedClusters) res.weightedClusters = route.route.weightedClusters.clusters;
  if (route.redirect) res.redirect = route.redirect;
  if (route.directResponse) res.directResponse = route.directResponse;
  return res;
}
