/**
 * RDS: route configurations for sidecars (`9080`, `<fqdn>:<port>`), gateways
 * (`http.<port>`, `https.<port>.<server>.<gw>.<ns>`) and proxyless gRPC
 * (`outbound|<port>||<fqdn>`), dispatching on the proxy kind. Pure.
 */
import type { ConsistentHash, HTTPRouteDestination, VirtualServiceSpecType } from '@sextant/api';
import type { RouteConfigurationJson, RouteJson, VirtualHostJson } from '@sextant/envoy';
import { isHttp, isSniffed, sameItems, type EgressListener, type IstioConfig, type ProxyView, type PushContext, type Service } from '@sextant/model';
import {
  buildHTTPRoutesForVirtualService,
  catchAllVirtualHost,
  defaultOutboundRoute,
  destinationServiceKey,
  type RouteOptions,
} from './translate.js';
import { mergeDelegates, resolveVirtualService, vsGateways } from './virtual-service.js';
import { hashForDestination, hashForService } from './hash.js';
import { outboundClusterName } from '../names.js';


export const MAX_DIRECT_RESPONSE_BODY = 1048576;

/** Whether a host pattern (possibly `*.x`/`*`) matches a hostname. */
export function hostMatch(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return false;
}

/** Whether an egress listener's `ns/host` list admits a service. */
export function egressAdmits(l: EgressListener, svc: Service): boolean {
  return l.hosts.some((h) => (h.namespace === '*' || h.namespace === svc.namespace) && hostMatch(h.host, svc.hostname));
}

/** The egress listener that serves a port: the one with that port, else the catch-all one (no port). */
export function egressListenerForPort(egress: EgressListener[], port: number): EgressListener | undefined {
  return egress.find((e) => e.port?.number === port) ?? egress.find((e) => !e.port);
}

/** The services a proxy sees on one outbound port (Sidecar egress listeners narrow them). */
export function servicesForPort(push: PushContext, proxy: ProxyView, port: number): Service[] {
  const scope = push.sidecarScope(proxy);
  const l = egressListenerForPort(scope.egress, port);
  const svcs = scope.services;
  return l && scope.egress.length ? svcs.filter((s) => egressAdmits(l, s)) : svcs;
}

/** Go's net.ParseIP succeeds: dotted IPv4 or an IPv6 literal. */
const isIp = (h: string) => /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(h) || (h.includes(':') && /^[0-9a-fA-F:.]+$/.test(h));

/** `host` and, when a port is given, `host:port` (istiod's appendDomainPort). */
function withPortVariant(out: string[], d: string, port: number | undefined): void {
  const v6 = d.includes(':') && !d.startsWith('[') ? `[${d}]` : d;
  out.push(v6);
  if (port !== undefined) out.push(`${v6}:${port}`);
}

/**
 * The other Host headers a service answers to from a proxy's DNS domain
 * (istiod's GenerateAltVirtualHosts): the absolute FQDN with a trailing dot,
 * then the short forms (`reviews`, `reviews.default.svc`, `reviews.default`)
 * for Kubernetes hosts, or the unique part of the name under a shared suffix.
 */
export function altVirtualHosts(hostname: string, port: number | undefined, proxyDomain: string): string[] {
  const out: string[] = [];
  if (!isIp(hostname)) out.push(`${hostname}.`);
  if (port !== undefined) out.push(`${hostname}.:${port}`);
  const pd = proxyDomain.indexOf('.svc.');
  if (pd >= 0) {
    if (!hostname.endsWith(pd > 0 ? proxyDomain.slice(pd) : proxyDomain)) return out;
    const ih = hostname.indexOf('.svc.');
    if (ih <= 0) return out;
    const dot = hostname.indexOf('.');
    if (dot + 1 >= hostname.length || dot + 1 > ih) return out;
    const short = hostname.slice(0, dot);
    const withNs = hostname.slice(0, ih);
    if (hostname.slice(dot + 1, ih) === proxyDomain.slice(0, pd)) {
      for (const d of [short, `${withNs}.svc`, withNs]) withPortVariant(out, d, port);
    } else {
      for (const d of [withNs, `${withNs}.svc`]) withPortVariant(out, d, port);
    }
    return out;
  }
  // Not a Kubernetes proxy domain: the part of the name not shared with the proxy's domain.
  const h = hostname.split('.').reverse();
  const p = proxyDomain.split('.').reverse();
  let shared = 0;
  while (shared < Math.min(h.length, p.length) && h[shared] === p[shared]) shared++;
  if (shared === 0) return out;
  const unique = h.slice(shared).reverse();
  const uniqueName = unique.join('.');
  withPortVariant(out, uniqueName, port);
  if (unique.length === 2) withPortVariant(out, `${uniqueName}.${h[shared - 1]}`, port);
  return out;
}

/**
 * Virtual host domains for a service (istiod's generateVirtualHostDomains):
 * the FQDN, its alternative forms (`altVirtualHosts`), `*.` forms for
 * Kubernetes headless services, and the VIPs; with `:port` variants only when
 * `port` is given (proxyless gRPC: Envoy sidecars ignore the port in host
 * matching). `alt` are the alternative forms, which never shadow a known FQDN.
 */
export function virtualHostDomainsWithAlt(svc: Service, proxyDomain: string, port?: number): { domains: string[]; alt: string[] } {
  const domains: string[] = [];
  withPortVariant(domains, svc.hostname, port);
  const alt = altVirtualHosts(svc.hostname, port, proxyDomain);
  domains.push(...alt);
  if (svc.resolution === 'Passthrough' && svc.attributes.serviceRegistry === 'Kubernetes') for (const d of [...domains]) domains.push(`*.${d}`);
  for (const a of svc.addresses.length ? svc.addresses : [svc.clusterVIP]) if (a && a !== '0.0.0.0') withPortVariant(domains, a, port);
  return { domains, alt };
}

export function virtualHostDomains(svc: Service, proxyDomain: string, port?: number): string[] {
  return virtualHostDomainsWithAlt(svc, proxyDomain, port).domains;
}

function sortByName(vhs: VirtualHostJson[]): VirtualHostJson[] {
  return vhs.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
}

/** The VirtualServices a proxy applies for some gateways, resolved and with delegates merged. */
export function preparedVirtualServices(push: PushContext, proxy: ProxyView, gateways: string[]): IstioConfig[] {
  const all = push.virtualServices(proxy).map((v) => resolveVirtualService(v, push.domainSuffix));
  const merged = mergeDelegates(all, push.mesh.defaultVirtualServiceExportTo).virtualServices;
  return merged.filter((vs) => vsGateways(vs).some((g) => gateways.includes(g)));
}

function routeOptions(push: PushContext, proxy: ProxyView, listenPort: number, byHost: ReadonlyMap<string, Service>, extra: Partial<RouteOptions> = {}): RouteOptions {
  return {
    proxy,
    listenPort,
    gatewayNames: new Set(['mesh']),
    domainSuffix: push.domainSuffix,
    lookupService: (h) => byHost.get(h) ?? push.serviceByHostname(h, proxy.namespace),
    lookupHash: (d) => hashForDestination(push, proxy, d),
    ...extra,
  };
}

/**
 * Virtual hosts for sidecar-style outbound routing on one port (istiod's
 * BuildSidecarOutboundVirtualHosts): one per VirtualService host and per
 * service, first VirtualService wins a host. `withPort` adds `:port` domains.
 */
export function sidecarVirtualHosts(push: PushContext, proxy: ProxyView, port: number, opts: { grpc?: boolean; services?: Service[]; prepared?: IstioConfig[] } = {}): VirtualHostJson[] {
  const view = httpPortView(opts.services ?? servicesForPort(push, proxy, port), port);
  const { services, byHost, knownFqdn } = view;
  const vsList = (opts.prepared ?? preparedVirtualServices(push, proxy, ['mesh'])).filter((vs) =>
    ((vs.spec as VirtualServiceSpecType).hosts ?? []).some((h) => byHost.has(h.toLowerCase()) || services.some((s) => hostMatch(h.toLowerCase(), s.hostname)) || port === 80),
  );
  const ro = routeOptions(push, proxy, port, view.byExactHost, { grpc: !!opts.grpc });
  const usedNames = new Set<string>();
  const usedDomains = new Set<string>();
  const covered = new Set<string>();
  const out: VirtualHostJson[] = [];
  const withPort = opts.grpc ? port : undefined;
  const emit = (name: string, domains: string[], routes: RouteJson[], alt: string[] = []) => {
    if (usedNames.has(name)) return;
    usedNames.add(name);
    const ds = dedupeDomains(domains, alt, usedDomains, knownFqdn);
    if (ds.length) out.push(virtualServiceHost(name, ds, routes));
  };
  const roKey = routeOptionsKey(ro);
  for (const vs of vsList) {
    const routes = virtualServiceRoutes(vs, ro, roKey);
    if (!routes.length) continue;
    for (const h of (vs.spec as VirtualServiceSpecType).hosts ?? []) {
      const lh = h.toLowerCase();
      const matched = lh.includes('*') ? services.filter((s) => hostMatch(lh, s.hostname)) : byHost.has(lh) ? [byHost.get(lh)!] : [];
      if (matched.length === 0) {
        emit(`${lh}:${port}`, withPort !== undefined ? [lh, `${lh}:${port}`] : [lh], routes);
        continue;
      }
      for (const svc of matched) {
        if (covered.has(svc.hostname)) continue;
        covered.add(svc.hostname);
        const vd = domainsMemo(svc, proxy.dnsDomain, withPort);
        emit(`${svc.hostname}:${port}`, vd.domains, routes, vd.alt);
      }
    }
  }
  const defaults = defaultHosts(push, proxy, port, withPort, services, { covered, usedNames, usedDomains }, knownFqdn);
  return mergeByName(sortByName(out), defaults);
}

/** A service's `fqdn` or `fqdn:port` on the port: an alternative domain equal to one is dropped (istiod's dedupeDomains). */
interface KnownFqdn {
  has(domain: string): boolean;
}

/** The services with an HTTP (or sniffed) port, by lower-case hostname, and their FQDN forms on that port. */
interface HttpPortView {
  services: Service[];
  byHost: ReadonlyMap<string, Service>;
  byExactHost: ReadonlyMap<string, Service>;
  knownFqdn: KnownFqdn;
}

/**
 * Kept per list of services (a sidecar scope's, shared by every proxy class
 * of a push that sees the same services) and port: route configurations of
 * one port are built once per class, each walking the same 1,000s of services.
 */
const httpPortViews = new WeakMap<readonly Service[], Map<number, HttpPortView>>();

function httpPortView(all: readonly Service[], port: number): HttpPortView {
  let byPort = httpPortViews.get(all);
  if (!byPort) httpPortViews.set(all, (byPort = new Map()));
  let view = byPort.get(port);
  if (view) return view;
  const services = all.filter((s) => s.ports.some((p) => p.port === port && (isHttp(p.protocol) || isSniffed(p.protocol))));
  const hostnames = new Set(services.map((s) => s.hostname));
  const suffix = `:${port}`;
  view = {
    services,
    byHost: new Map(services.map((s) => [s.hostname.toLowerCase(), s])),
    byExactHost: new Map(services.map((s) => [s.hostname, s])),
    knownFqdn: { has: (d) => hostnames.has(d) || (d.endsWith(suffix) && hostnames.has(d.slice(0, -suffix.length))) },
  };
  byPort.set(port, view);
  return view;
}

/** What the VirtualServices of a route configuration took before the services' default virtual hosts: hosts, names, domains. */
interface Taken {
  covered: Set<string>;
  usedNames: Set<string>;
  usedDomains: Set<string>;
}

/**
 * The default virtual hosts of a port's services (those no VirtualService
 * took), sorted by name, with what they were built from. They read the
 * services, what the VirtualServices took, the proxy's namespace, labels and
 * DNS domain, and the DestinationRules (consistent hashes); a push that
 * changes none of these (a VirtualService edit that keeps its hosts) gets the
 * previous list instead of a walk of every service with a DestinationRule
 * lookup each, once per class.
 */
interface DefaultHostsEntry {
  services: readonly Service[];
  all: readonly Service[];
  destinationRules: readonly IstioConfig[];
  taken: string;
  hosts: VirtualHostJson[];
}

function defaultHosts(push: PushContext, proxy: ProxyView, port: number, withPort: number | undefined, services: Service[], taken: Taken, knownFqdn: KnownFqdn): VirtualHostJson[] {
  const key = JSON.stringify([proxy.namespace, proxy.labels, proxy.dnsDomain, port, withPort ?? null, push.domainSuffix, push.mesh.rootNamespace, push.mesh.defaultDestinationRuleExportTo ?? null]);
  const takenKey = [taken.covered, taken.usedNames, taken.usedDomains].map((set) => [...set].join('\u0001')).join('\u0000');
  const all = push.allServices();
  const destinationRules = push.configs('DestinationRule');
  const hit = defaultHostsByView.get(key);
  if (hit && hit.taken === takenKey && sameItems(hit.services, services) && sameItems(hit.all, all) && sameItems(hit.destinationRules, destinationRules)) {
    // Equal items: hold this push's arrays, not the build's.
    hit.all = all;
    hit.destinationRules = destinationRules;
    return hit.hosts;
  }
  const { covered, usedNames, usedDomains } = taken;
  const out: VirtualHostJson[] = [];
  for (const svc of services) {
    if (covered.has(svc.hostname)) continue;
    const name = `${svc.hostname}:${port}`;
    if (usedNames.has(name)) continue;
    usedNames.add(name);
    const vd = domainsMemo(svc, proxy.dnsDomain, withPort);
    const sp = svc.ports.find((p) => p.port === port)!;
    // istiod builds the default route without the proxy (BuildDefaultHTTPOutboundRoute): max_grpc_timeout even for proxyless gRPC.
    const hash = hashForService(push, proxy, svc, sp);
    if (keepsEveryDomain(vd, usedDomains, knownFqdn)) {
      // The usual case: nothing taken before. The virtual host is the one the class before found, without building its content key again.
      for (const l of vd.lower) usedDomains.add(l);
      // Keyed by port too: Envoy sidecars' domains carry none, so one ServiceDomains serves every port.
      const hk = hash === undefined ? `${port}` : `${port}\u0000${JSON.stringify(hash)}`;
      let vh = (vd.whole ??= new Map()).get(hk);
      if (!vh) vd.whole.set(hk, (vh = defaultVirtualHost(svc.hostname, port, vd.domains, hash)));
      out.push(vh);
      continue;
    }
    const ds = dedupeDomains(vd.domains, vd.alt, usedDomains, knownFqdn);
    if (ds.length) out.push(defaultVirtualHost(svc.hostname, port, ds, hash));
  }
  const hosts = sortByName(out);
  defaultHostsByView.set(key, { services, all, destinationRules, taken: takenKey, hosts });
  return hosts;
}

/** Two lists sorted by name (no name in both) as one sorted list, a new array. */
function mergeByName(a: VirtualHostJson[], b: readonly VirtualHostJson[]): VirtualHostJson[] {
  const out: VirtualHostJson[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push((a[i]!.name ?? '') < (b[j]!.name ?? '') ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/**
 * A VirtualService's routes as one sidecar route configuration renders them,
 * kept with what building them read through the route options: the services
 * and consistent hashes of their destinations, and the proxy when a match
 * names source labels or a namespace. The next class or push whose options
 * read the same gets the same array (so the same virtual hosts, which the
 * encoder finds by identity) instead of a new build. The VirtualService is
 * the resolved object (one per stored object, toIstioConfig), so an edit is
 * a new key. Entries are never mutated.
 */
interface RoutesEntry {
  key: string;
  services: Map<string, string>;
  hashes: Array<[HTTPRouteDestination, string]>;
  proxy: string | undefined;
  routes: RouteJson[];
}
const routesByVirtualService = new WeakMap<IstioConfig, RoutesEntry[]>();
/** Renderings kept per VirtualService: one per port and option set, and per class that sees other hashes or services. */
const ROUTES_PER_VIRTUAL_SERVICE = 8;

const hashKey = (ch: ConsistentHash | undefined) => (ch === undefined ? '' : JSON.stringify(ch));
const proxyKey = (p: ProxyView) => `${p.namespace}\u0000${JSON.stringify(p.labels)}`;

function routeOptionsKey(ro: RouteOptions): string {
  return `${ro.listenPort}\u0000${ro.grpc ? 1 : 0}\u0000${ro.isTLS ? 1 : 0}\u0000${[...ro.gatewayNames].join(',')}\u0000${ro.domainSuffix}`;
}

function stillReads(e: RoutesEntry, ro: RouteOptions): boolean {
  if (e.proxy !== undefined && e.proxy !== proxyKey(ro.proxy)) return false;
  for (const [host, k] of e.services) if (destinationServiceKey(ro.lookupService(host)) !== k) return false;
  for (const [d, k] of e.hashes) if (hashKey(ro.lookupHash?.(d)) !== k) return false;
  return true;
}

function virtualServiceRoutes(vs: IstioConfig, ro: RouteOptions, roKey = routeOptionsKey(ro)): RouteJson[] {
  let entries = routesByVirtualService.get(vs);
  if (!entries) routesByVirtualService.set(vs, (entries = []));
  for (const e of entries) if (e.key === roKey && stillReads(e, ro)) return e.routes;
  const e: RoutesEntry = { key: roKey, services: new Map(), hashes: [], proxy: undefined, routes: [] };
  const recording: RouteOptions = {
    ...ro,
    get proxy() {
      e.proxy = proxyKey(ro.proxy);
      return ro.proxy;
    },
    lookupService: (host) => {
      const svc = ro.lookupService(host);
      e.services.set(host, destinationServiceKey(svc));
      return svc;
    },
    lookupHash: (d) => {
      const ch = ro.lookupHash?.(d);
      e.hashes.push([d, hashKey(ch)]);
      return ch;
    },
  };
  e.routes = buildHTTPRoutesForVirtualService(vs, recording);
  entries.push(e);
  if (entries.length > ROUTES_PER_VIRTUAL_SERVICE) entries.shift();
  return e.routes;
}

/** A VirtualService's virtual host, one object per (routes array, name, domains): shared by the classes that render it alike. */
const hostsByRoutes = new WeakMap<RouteJson[], Map<string, VirtualHostJson>>();
function virtualServiceHost(name: string, domains: string[], routes: RouteJson[]): VirtualHostJson {
  let byKey = hostsByRoutes.get(routes);
  if (!byKey) hostsByRoutes.set(routes, (byKey = new Map()));
  const key = `${name}\u0000${domains.join('\u0001')}`;
  let vh = byKey.get(key);
  if (!vh) byKey.set(key, (vh = { name, domains, routes, includeRequestAttemptCount: true }));
  return vh;
}

/** Domains not yet taken by an earlier virtual host (recorded as taken), and no alternative form equal to a known FQDN. */
function dedupeDomains(domains: readonly string[], alt: readonly string[], usedDomains: Set<string>, knownFqdn: KnownFqdn): string[] {
  const ds: string[] = [];
  for (const d of domains) {
    const l = d.toLowerCase();
    if (usedDomains.has(l) || (alt.includes(d) && knownFqdn.has(d))) continue;
    usedDomains.add(l);
    ds.push(d);
  }
  return ds;
}

/**
 * A service's virtual host domains from one DNS domain and port form, with
 * what dedupeDomains needs to see that it would keep them all: them lower-cased
 * (none twice). `whole`: its default virtual hosts with every domain kept, by
 * port and consistent hash, for the other classes of the push.
 */
interface ServiceDomains {
  domains: string[];
  alt: string[];
  lower: string[];
  distinct: boolean;
  whole?: Map<string, VirtualHostJson>;
}

/** Whether dedupeDomains would keep every domain: none taken yet, none twice, no alternative form equal to a known FQDN. */
function keepsEveryDomain(vd: ServiceDomains, usedDomains: ReadonlySet<string>, knownFqdn: KnownFqdn): boolean {
  if (!vd.distinct) return false;
  for (const l of vd.lower) if (usedDomains.has(l)) return false;
  for (const a of vd.alt) if (knownFqdn.has(a)) return false;
  return true;
}

/** A service's domains depend on the service and the proxy's DNS domain only: once per (service object, domain, port form). */
const domainsByService = new WeakMap<Service, Map<string, ServiceDomains>>();
function domainsMemo(svc: Service, proxyDomain: string, port: number | undefined): ServiceDomains {
  let m = domainsByService.get(svc);
  if (!m) domainsByService.set(svc, (m = new Map()));
  const k = port === undefined ? proxyDomain : `${proxyDomain}\u0000${port}`;
  let d = m.get(k);
  if (!d) {
    const { domains, alt } = virtualHostDomainsWithAlt(svc, proxyDomain, port);
    const lower = domains.map((x) => x.toLowerCase());
    m.set(k, (d = { domains, alt, lower, distinct: new Set(lower).size === lower.length }));
  }
  return d;
}

/**
 * The virtual host of a service no VirtualService routes (its default route),
 * one object per content: its content is a function of the key's parts alone
 * (host, port, domains after dedupe, consistent hash), so every
 * route configuration and class that holds it, in this push and later ones,
 * shares the one object, and the encoder keys it by identity instead of
 * serializing it (docs/scale.md). Never mutated (EnvoyFilter patches copy).
 */
function defaultVirtualHost(hostname: string, port: number, domains: readonly string[], hash: ConsistentHash | undefined): VirtualHostJson {
  const key = `${hostname}\u0000${port}\u0000${hash === undefined ? '' : JSON.stringify(hash)}\u0000${domains.join('\u0001')}`;
  let vh = defaultVhosts.get(key);
  if (!vh) {
    const route = defaultOutboundRoute(outboundClusterName(hostname, port), `${hostname}:${port}/*`, false, hash);
    vh = { name: `${hostname}:${port}`, domains: [...domains], routes: [route], includeRequestAttemptCount: true };
    defaultVhosts.set(key, vh);
  }
  return vh;
}

/**
 * A map of two generations, bounded: when the current one holds `limit`
 * entries it becomes the previous one (the older previous one is dropped);
 * an entry found in the previous generation moves to the current one.
 */
export class TwoGenerationMap<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string): V | undefined {
    let v = this.current.get(key);
    if (v === undefined) {
      v = this.previous.get(key);
      if (v !== undefined) {
        this.previous.delete(key);
        this.set(key, v);
      }
    }
    return v;
  }
  set(key: string, v: V): void {
    if (this.current.size >= this.limit) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, v);
  }
  get size(): number {
    return this.current.size + this.previous.size;
  }
}

/** Default virtual hosts by content; 2 × 50,000 is one per service port and namespace visibility for meshes far past S = 1000. */
const defaultVhosts = new TwoGenerationMap<VirtualHostJson>(50_000);

/** Default virtual host lists per (proxy namespace, labels, DNS domain, port form): about one per class and port (defaultHosts). */
const defaultHostsByView = new TwoGenerationMap<DefaultHostsEntry>(1_000);

/**
 * What one RDS generation for one proxy computes once and reuses across its
 * route names: the prepared (resolved, delegate-merged) VirtualServices and
 * the virtual hosts of each port. Entries are never mutated after caching.
 */
export interface SidecarRouteCache {
  prepared?: IstioConfig[];
  vhostsByPort: Map<number, VirtualHostJson[]>;
}

/** A sidecar outbound route configuration: `9080` or, for sniffed ports, `<fqdn>:<port>`. */
export function buildSidecarOutboundRouteConfig(push: PushContext, proxy: ProxyView, routeName: string, cache?: SidecarRouteCache): RouteConfigurationJson | undefined {
  const colon = routeName.lastIndexOf(':');
  const sniffed = colon > 0;
  const port = Number(sniffed ? routeName.slice(colon + 1) : routeName);
  if (!Number.isInteger(port) || port <= 0) return undefined;
  let vhosts: VirtualHostJson[];
  if (cache) {
    let v = cache.vhostsByPort.get(port);
    if (!v) {
      cache.prepared ??= preparedVirtualServices(push, proxy, ['mesh']);
      v = sidecarVirtualHosts(push, proxy, port, { prepared: cache.prepared });
      cache.vhostsByPort.set(port, v);
    }
    vhosts = v;
  } else vhosts = sidecarVirtualHosts(push, proxy, port);
  if (sniffed) {
    const host = routeName.slice(0, colon);
    vhosts = vhosts.filter((v) => v.domains?.includes(routeName) || v.domains?.includes(host) || v.name === routeName);
    // A copy (same key order): the cached virtual host stays as it was.
    if (vhosts.length === 1) vhosts[0] = { ...vhosts[0]!, domains: ['*'] };
  } else {
    vhosts = [...vhosts, catchAllVirtualHost(push.sidecarScope(proxy).outboundTrafficPolicy)];
  }
  return {
    name: routeName,
    virtualHosts: vhosts,
    validateClusters: false,
    maxDirectResponseBodySizeBytes: MAX_DIRECT_RESPONSE_BODY,
    ignorePortInHostMatching: true,
  };
}

/** Sidecar RDS: the named outbound route configurations, sharing the virtual hosts of a port between names. */
export function buildSidecarRoutes(push: PushContext, proxy: ProxyView, routeNames: string[]): RouteConfigurationJson[] {
  const out: RouteConfigurationJson[] = [];
  const cache: SidecarRouteCache = { vhostsByPort: new Map() };
  for (const name of routeNames) {
    const rc = buildSidecarOutboundRouteConfig(push, proxy, name, cache);
    if (rc) out.push(rc);
  }
  return out;
}
