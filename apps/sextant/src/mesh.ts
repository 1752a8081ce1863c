import { KINDS, type DestinationRuleSpecType, type ObjectKey, type TrafficPolicy, type ValidationIssue } from '@sextant/api';
import { encodedResource, TypeUrl, type ListenerJson } from '@sextant/envoy';
import { configKeysOf, edsClustersFor, hostMatches, proxyDependsOn, parseProxy, pushScope as endpointScope, resolveShortName, type IstioConfig, type ProxyView, type PushContext, type PushContextExtras, type SidecarScope } from '@sextant/model';
import { buildExtensionConfigs, buildNameTable, buildOutboundClusters, buildOutboundServiceClusters, clusterTombstones, encodeNameTable, envoyFilterClassKey, gatewayHcmKey, generateForProxy, generatorFor, hasCanonicalTags, inboundPorts, istioFilterSupportKey, isMosnProxy, markWorkloadChains, markWorkloadCluster, mosnSdsPath, mtlsInbound, NDS_TYPE_URL, sidecarGenerator, telemetryKeyFor, VIRTUAL_INBOUND, virtualInbound, withCanonicalTags, withClusterTelemetry, withListenerTelemetry, withListenerTombstones } from '@sextant/translate';
import type { BuildPart, BuiltResource, ClassGenerators, ProxyTranslator, PushScope, ResourceGenerator, TypeLayer, XdsProxy } from '@sextant/xds';

/**
 * The mesh side of generation, injected into libs/xds's ClassGenerators:
 * how a proxy is seen (parsed node, resolved against the PushContext), which
 * proxies get identical config (class keys), and libs/translate's one
 * assembly path (`generateForProxy`) for each type.
 */
export class MeshTranslator implements ProxyTranslator<PushContext, ProxyView> {
  readonly perName: ReadonlySet<string> = new Set([TypeUrl.RouteConfiguration]);
  private readonly parsed = new WeakMap<XdsProxy, ProxyView>();
  /**
   * MOSN streams: what each was sent (MOSN never deletes a listener or cluster
   * that disappears, so removed ones are re-sent as tombstones), and what its
   * routes could not express (for /debug/config_issues), by connection.
   */
  private readonly mosnListenersSent = new WeakMap<XdsProxy, Map<string, ListenerJson>>();
  private readonly mosnClustersSent = new WeakMap<XdsProxy, Set<string>>();
  private readonly mosnIssues = new Map<string, { proxyId: string; lds: ValidationIssue[]; rds: ValidationIssue[] }>();

  private setMosnIssues(proxy: XdsProxy, type: 'lds' | 'rds', issues: ValidationIssue[]): void {
    const cur = this.mosnIssues.get(proxy.connectionId) ?? { proxyId: proxy.id, lds: [], rds: [] };
    cur[type] = issues;
    this.mosnIssues.set(proxy.connectionId, cur);
  }

  /** The proxy's node as parsed once per stream (throws ProxyParseError for a node that cannot be). */
  parse(proxy: XdsProxy): ProxyView {
    let parsed = this.parsed.get(proxy);
    if (!parsed) {
      parsed = parseProxy(proxy.id, proxy.metadata, { cluster: proxy.node.cluster, extensions: proxy.node.extensions });
      this.parsed.set(proxy, parsed);
    }
    return parsed;
  }

  resolve(proxy: XdsProxy, ctx: PushContext): ProxyView {
    return ctx.resolveProxy(this.parse(proxy));
  }

  classKey(typeUrl: string, view: ProxyView, ctx: PushContext, layer?: string): string | undefined {
    // MOSN proxies keep per-stream state (tombstones, route issues): built per proxy.
    if (isMosnProxy(view)) return undefined;
    if (typeUrl === TypeUrl.ClusterLoadAssignment) return ''; // the shared endpoint cache, by cluster name
    const base = proxyClassKey(view, ctx);
    if (typeUrl === TypeUrl.RouteConfiguration) return base;
    // Telemetry: clusters read which of Istio's filters the proxy can load (the upstream metadata
    // exchange); listeners also the labels and metadata istiod's tracing tags name.
    // A sidecar's layered listeners: the class's (OUTBOUND) without the canonical labels; the listeners that
    // carry istiod's per-workload canonical tracing tags are rendered again per canonical service (TAGS).
    const telemetry = typeUrl === TypeUrl.Listener ? telemetryKeyFor(ctx, view, layer !== OUTBOUND) : istioFilterSupportKey(view);
    if (layer === TAGS) return `${base}|${telemetry}`;
    // Outbound clusters and listeners read the proxy's class only; inbound ones (below) its own services too.
    // A pod of a headless Service gets no outbound listener of its own address (istiod): its listeners are its own.
    const self = typeUrl === TypeUrl.Listener ? headlessSelf(view, ctx) : '';
    if (layer === OUTBOUND) return `${base}|${telemetry}|${self}`;
    // Inbound clusters and listeners follow the proxy's own service instances (found by IP).
    if (typeUrl === TypeUrl.Cluster || typeUrl === TypeUrl.Listener) return `${base}|${instanceKey(view, ctx)}|${telemetry}|${self}`;
    return undefined;
  }

  /**
   * CDS in two layers: the outbound clusters a proxy class shares (rebuilt
   * for only the hosts a DestinationRule edit names) and the proxy's own
   * (inbound, special) clusters. A proxy some EnvoyFilter patches gets its
   * clusters built whole: a patch may add or merge across the list.
   */
  layers(typeUrl: string, view: ProxyView, ctx: PushContext): readonly TypeLayer[] | undefined {
    if (isMosnProxy(view) || envoyFilterKey(view, ctx) !== '') return undefined;
    if (typeUrl === TypeUrl.Cluster) return CDS_LAYERS;
    // LDS likewise: a sidecar's listeners but 15006 are its class's; 15006 (virtualInbound) follows its own services.
    // Only for the usual iptables sidecar with no Sidecar ingress listener bound to a port (those are named like outbound ones).
    if (typeUrl === TypeUrl.Listener && generatorFor(view) === sidecarGenerator && view.interceptionMode !== 'NONE' && inboundPorts(ctx, view).every((ip) => !ip.bindToPort)) return LDS_LAYERS;
    return undefined;
  }

  build(typeUrl: string, ctx: PushContext, view: ProxyView, names: readonly string[] | undefined, classKey: string | undefined, proxy: XdsProxy, part?: BuildPart): BuiltResource[] {
    if (part && typeUrl === TypeUrl.Cluster) {
      if (part.layer === OUTBOUND) return named(withClusterTelemetry(view, outboundClusters(ctx, view, part.only)));
      // The proxy's own: its inbound clusters differ from another workload's only in their metadata.
      return named(withClusterTelemetry(view, generatorFor(view).proxyClusters(ctx, view)).map((c) => (c.name?.startsWith('inbound|') ? markWorkloadCluster(c) : c)));
    }
    if (part && typeUrl === TypeUrl.Listener) {
      if (part.layer === INBOUND) return named(withListenerTelemetry(ctx, view, [virtualInbound(ctx, view, mtlsInbound, inboundPorts(ctx, view))]).map(markWorkloadChains));
      if (part.layer === TAGS) return named(this.taggedListeners(ctx, view, names).map((l) => withCanonicalTags(l, view)));
      return named(this.outboundListeners(ctx, view, names));
    }
    switch (typeUrl) {
      case TypeUrl.Cluster: {
        const all = named(generateForProxy(ctx, view, 'cds'));
        if (classKey !== undefined || !isMosnProxy(view)) return all;
        let sent = this.mosnClustersSent.get(proxy);
        if (!sent) this.mosnClustersSent.set(proxy, (sent = new Set()));
        const tombstones = clusterTombstones(ctx, new Set(all.map((r) => r.name)), sent);
        for (const r of all) sent.add(r.name);
        return [...all, ...named(tombstones)];
      }
      case TypeUrl.Listener: {
        const issues: ValidationIssue[] = [];
        const listeners = generateForProxy(ctx, view, 'lds', names, issues);
        if (classKey !== undefined || !isMosnProxy(view)) return named(listeners);
        this.setMosnIssues(proxy, 'lds', issues);
        let sent = this.mosnListenersSent.get(proxy);
        if (!sent) this.mosnListenersSent.set(proxy, (sent = new Map()));
        const out = withListenerTombstones(listeners, sent);
        for (const l of listeners) sent.set(l.name ?? '', l);
        return named(out);
      }
      case TypeUrl.RouteConfiguration: {
        const issues: ValidationIssue[] = [];
        const routes = generateForProxy(ctx, view, 'rds', names ?? [], issues);
        if (isMosnProxy(view)) this.setMosnIssues(proxy, 'rds', issues);
        return named(routes);
      }
      case TypeUrl.ClusterLoadAssignment:
        return generateForProxy(ctx, view, 'eds', names ?? []).map((cla) => ({ name: cla.clusterName ?? '', json: cla }));
      default:
        return [];
    }
  }

  /**
   * The class's listeners but 15006 and those with canonical tracing tags:
   * every workload gets those rendered for its canonical service (TAGS), so
   * the class's own copies (with its first workload's tags) would be encoded
   * for no one. They are remembered for the TAGS layer, per context.
   */
  private outboundListeners(ctx: PushContext, view: ProxyView, names: readonly string[] | undefined): ListenerJson[] {
    const ls = generateForProxy(ctx, view, 'lds', names).filter((l) => l.name !== VIRTUAL_INBOUND);
    const tagged = ls.filter(hasCanonicalTags);
    let m = this.tagged.get(ctx);
    if (!m) this.tagged.set(ctx, (m = new Map()));
    m.set(this.taggedKey(ctx, view, names), tagged);
    if (tagged.length === 0) return ls;
    const rendered = new Set(tagged);
    return ls.filter((l) => !rendered.has(l));
  }

  private taggedListeners(ctx: PushContext, view: ProxyView, names: readonly string[] | undefined): ListenerJson[] {
    const key = this.taggedKey(ctx, view, names);
    // Found unless the class's listeners were built in an earlier context (kept by the class cache): build them once here.
    if (!this.tagged.get(ctx)?.has(key)) this.outboundListeners(ctx, view, names);
    return this.tagged.get(ctx)!.get(key)!;
  }

  private readonly tagged = new WeakMap<PushContext, Map<string, ListenerJson[]>>();
  private taggedKey(ctx: PushContext, view: ProxyView, names: readonly string[] | undefined): string {
    return `${this.classKey(TypeUrl.Listener, view, ctx, OUTBOUND)}\u0000${names === undefined ? '*' : names.join(',')}`;
  }

  /**
   * What the listeners and routes of connected MOSN proxies cannot express (kind/namespace/name,
   * field, reason), per proxy; `live` prunes closed connections.
   */
  proxyIssues(live: ReadonlySet<string>): Array<ValidationIssue & { proxy: string }> {
    const out: Array<ValidationIssue & { proxy: string }> = [];
    for (const [conn, v] of this.mosnIssues) {
      if (!live.has(conn)) this.mosnIssues.delete(conn);
      else for (const i of [...v.lds, ...v.rds]) out.push({ proxy: v.proxyId, ...i });
    }
    return out;
  }
}

/** NDS: the name table pilot-agent's DNS proxy answers from, one unnamed resource (as istiod sends it), per proxy. */
export function nameTableGenerator(gens: ClassGenerators<PushContext, ProxyView>, context: () => PushContext | undefined): Record<string, ResourceGenerator> {
  return {
    [NDS_TYPE_URL]: {
      generate: (proxy) => {
        const push = context();
        if (!push) return new Map();
        const nt = buildNameTable(push, gens.view(proxy, push));
        return nt ? new Map([['', encodedResource(NDS_TYPE_URL, '', encodeNameTable(nt))]]) : new Map();
      },
    },
  };
}

/**
 * ECDS (istiod's EcdsGenerator): the EXTENSION_CONFIG patches of the
 * EnvoyFilters selecting the proxy, by the names it asked for. Built per
 * request (a handful of patches), encoded by the shared encoder; in Delta a
 * config that goes away is not sent as removed (istiod's neverRemoveDelta).
 */
export function extensionConfigGenerator(gens: ClassGenerators<PushContext, ProxyView>, context: () => PushContext | undefined): Record<string, ResourceGenerator> {
  return {
    [TypeUrl.ExtensionConfiguration]: {
      neverRemoveDelta: true,
      generate: (proxy, watch) => {
        const push = context();
        const out = new Map<string, ReturnType<typeof gens.encoder.encode>>();
        if (!push || watch.names.size === 0) return out;
        for (const ec of buildExtensionConfigs(push, gens.view(proxy, push), [...watch.names].sort())) {
          const name = ec.name ?? '';
          out.set(name, gens.encoder.encode(TypeUrl.ExtensionConfiguration, name, ec));
        }
        return out;
      },
    },
  };
}

const OUTBOUND = 'outbound';
const INBOUND = 'inbound';
/** A sidecar's listeners that carry istiod's per-workload canonical tracing tags, rendered for its canonical service. */
const TAGS = 'tags';
const CDS_LAYERS: readonly TypeLayer[] = [
  { layer: OUTBOUND, partial: true },
  { layer: INBOUND, partial: false },
];
const LDS_LAYERS: readonly TypeLayer[] = [
  { layer: OUTBOUND, partial: false },
  // No name in both OUTBOUND and TAGS: the class's part of a whole response stays shareable (LayeredMap.split).
  { layer: TAGS, partial: false },
  { layer: INBOUND, partial: false },
];

/**
 * A proxy's shared (outbound) clusters; `only` (a filter by the host of
 * `outbound|port|subset|host`, as a DestinationRule edit gives) limits them
 * to the service ports whose clusters it names, so an edit builds the
 * clusters of its hosts and no others.
 */
function outboundClusters(ctx: PushContext, view: ProxyView, only: ((name: string) => boolean) | undefined) {
  const g = generatorFor(view);
  if (!only) return g.sharedClusters(ctx, view);
  if (g.sharedClusters !== buildOutboundServiceClusters) return g.sharedClusters(ctx, view).filter((c) => only(c.name ?? ''));
  const out = [];
  for (const svc of ctx.servicesForProxy(view)) {
    for (const port of svc.ports) {
      if (!only(`outbound|${port.port}||${svc.hostname}`)) continue;
      for (const c of buildOutboundClusters(ctx, view, svc, port)) if (only(c.name ?? '')) out.push(c);
    }
  }
  return out;
}

const named = (resources: Array<{ name?: string | undefined }>): BuiltResource[] => resources.map((r) => ({ name: r.name ?? '', json: r }));

/** Label keys some config selects proxies by, per context: only these labels make proxies differ. */
const selectorKeysByCtx = new WeakMap<PushContext, ReadonlySet<string>>();
/** Kinds whose label maps select workloads as endpoints (or are workloads), not proxies' config. */
const NOT_PROXY_SELECTORS = new Set(['Service', 'EndpointSlice', 'Pod', 'Node', 'Namespace', 'ServiceAccount', 'Secret', 'ConfigMap', 'WorkloadEntry', 'WorkloadGroup', 'ServiceEntry']);
const SELECTOR_FIELDS = new Set(['selector', 'workloadSelector', 'sourceLabels', 'matchLabels', 'labels']);

function selectorKeys(ctx: PushContext): ReadonlySet<string> {
  let keys = selectorKeysByCtx.get(ctx);
  if (keys) return keys;
  const out = new Set<string>();
  const walk = (v: unknown, underSelector: boolean): void => {
    if (Array.isArray(v)) for (const x of v) walk(x, underSelector);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (underSelector && typeof x === 'string') out.add(k);
        walk(x, SELECTOR_FIELDS.has(k));
      }
    }
  };
  for (const info of KINDS) {
    if (NOT_PROXY_SELECTORS.has(info.kind)) continue;
    for (const c of ctx.configs(info.kind)) walk(c.spec, false);
  }
  keys = out;
  selectorKeysByCtx.set(ctx, keys);
  return keys;
}

/**
 * What a proxy's shared config (outbound clusters, listeners, routes) depends
 * on, and nothing else: proxies with the same key get the same resources.
 * Translation reads the proxy's type, generator, namespace and DNS domain,
 * interception mode, IP family (the DNS lookup family and bind addresses),
 * agentless and MOSN metadata, and its labels only through selectors (Sidecar,
 * DestinationRule and EnvoyFilter workload selectors, Gateway selectors,
 * sourceLabels, policy selectors): so only the labels some config selects by
 * are part of the key; EnvoyFilters also select by targetRefs and proxy
 * metadata, so the patches that select the proxy are part of it too. Pod
 * name, IPs, service account and locality are not.
 */
export function proxyClassKey(v: ProxyView, ctx: PushContext): string {
  // Asked for every type and layer of every proxy on each push (and EnvoyFilter selection is not cheap): once per view and context.
  let byView = classKeys.get(ctx);
  if (!byView) classKeys.set(ctx, (byView = new WeakMap()));
  let key = byView.get(v);
  if (key === undefined) byView.set(v, (key = computeClassKey(v, ctx)));
  return key;
}

const classKeys = new WeakMap<PushContext, WeakMap<ProxyView, string>>();

function computeClassKey(v: ProxyView, ctx: PushContext): string {
  const v6 = v.ipAddresses.filter((ip) => ip.includes(':')).length;
  const family = v6 === 0 ? 'v4' : v6 === v.ipAddresses.length ? 'v6' : 'dual';
  const keys = selectorKeys(ctx);
  const labels = Object.keys(v.labels)
    .filter((k) => keys.has(k))
    .sort()
    .map((k) => [k, v.labels[k]]);
  const agentless = v.metadata.raw['SEXTANT_AGENTLESS'] ?? v.metadata.raw['ISTIO_META_SEXTANT_AGENTLESS'] ?? null;
  const dataPlane = isMosnProxy(v) ? ['mosn', mosnSdsPath(v)] : null;
  // Gateways: what their HCMs read of the node (HTTP10, IDLE_TIMEOUT, ProxyConfig proxyHeaders and gatewayTopology).
  const gatewayHcm = gatewayHcmKey(ctx, v);
  return JSON.stringify([v.type, v.generator, v.namespace, v.dnsDomain, labels, v.interceptionMode, v.istioVersion, v.clusterId, v.network, family, agentless, dataPlane, envoyFilterKey(v, ctx), gatewayHcm]);
}

/** The EnvoyFilter patches that select a proxy, as a key; once per view and context (class key and CDS layers both ask). */
function envoyFilterKey(v: ProxyView, ctx: PushContext): string {
  let byView = filterKeys.get(ctx);
  if (!byView) filterKeys.set(ctx, (byView = new WeakMap()));
  let key = byView.get(v);
  if (key === undefined) byView.set(v, (key = envoyFilterClassKey(ctx, v)));
  return key;
}

const filterKeys = new WeakMap<PushContext, WeakMap<ProxyView, string>>();

/** The proxy's first address when it is an endpoint of a Passthrough (headless) service, else ''. */
function headlessSelf(v: ProxyView, ctx: PushContext): string {
  return ctx.serviceInstancesForProxy(v).some((si) => si.service.resolution === 'Passthrough') ? (v.ipAddresses[0] ?? '') : '';
}

/** The proxy's own service instances, as inbound clusters and listeners read them (ports, not addresses). */
function instanceKey(v: ProxyView, ctx: PushContext): string {
  const parts = new Set<string>();
  for (const si of ctx.serviceInstancesForProxy(v)) parts.add(`${si.service.namespace}/${si.service.hostname}|${si.servicePort.name}|${si.servicePort.port}|${si.servicePort.protocol}|${si.endpoint.endpointPort}`);
  return [...parts].sort().join(',');
}

// ---- what a change touches ----

/**
 * The xDS types each config kind can alter in Sextant's translation (Istio's
 * skipped{Cds,Lds,Rds}Configs, read the other way round); a kind not listed
 * can alter every type. Clusters and endpoints never read VirtualServices;
 * routes and listeners name subset clusters only through VirtualServices.
 */
const TYPES_BY_KIND: Record<string, readonly string[]> = {
  VirtualService: [TypeUrl.RouteConfiguration],
  // Routes carry the rule's consistent hash (hash_policy), as istiod's do; meshScope drops routes when no rule of the host sets one.
  DestinationRule: [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration],
};

/**
 * Whether VirtualServices reach listeners: sidecar listeners read their `tcp`
 * rules (tcp_proxy targets), gateway listeners their `tls` and gateway-bound
 * rules; a delegate (no hosts) is read through its parents.
 */
function virtualServicesReachListeners(vss: readonly IstioConfig[]): boolean {
  return vss.some((vs) => {
    const hosts = (vs.spec.hosts ?? []) as string[];
    const tcp = (vs.spec.tcp ?? []) as unknown[];
    const tls = (vs.spec.tls ?? []) as unknown[];
    const gateways = (vs.spec.gateways ?? []) as string[];
    return hosts.length === 0 || tcp.length > 0 || tls.length > 0 || gateways.some((g) => g !== 'mesh');
  });
}

/** Route configuration names a VirtualService change can alter: those of its hosts' ports (sidecar and gRPC names), everything else. */
function routeNameFilter(ports: ReadonlySet<number> | undefined): ((name: string) => boolean) | undefined {
  if (!ports) return undefined;
  return (name) => {
    let m = /^(?:[^:]+:)?(\d+)$/.exec(name);
    if (!m) m = /^outbound\|(\d+)\|/.exec(name);
    if (!m) return true; // gateway names (http.80, https.443.…) and anything else: rebuilt
    return ports.has(Number(m[1]));
  };
}

function configsOf(ctx: PushContext, kind: string, keys: readonly ObjectKey[]): IstioConfig[] {
  const want = new Set(keys.filter((k) => k.kind === kind).map((k) => `${k.namespace}/${k.name}`));
  if (want.size === 0) return [];
  return ctx.configs(kind).filter((c) => want.has(`${c.namespace}/${c.name}`));
}

/** Ports of the services a VirtualService's hosts name, in either context; undefined: could be any (a delegate, an unknown host). */
function virtualServicePorts(previous: PushContext, next: PushContext, changed: readonly ObjectKey[]): Set<number> | undefined {
  const ports = new Set<number>([80]); // a VirtualService for a host no service has lands on port 80
  const vss = [...configsOf(previous, 'VirtualService', changed), ...configsOf(next, 'VirtualService', changed)];
  for (const vs of vss) {
    const hosts = (vs.spec.hosts ?? []) as string[];
    if (hosts.length === 0) return undefined; // a delegate: its parents' hosts
    for (const h of hosts) {
      const host = resolveShortName(h, vs.namespace, next.domainSuffix);
      for (const ctx of [previous, next]) for (const s of ctx.allServices()) if (hostMatches(host, s.hostname) || hostMatches(s.hostname, host)) for (const p of s.ports) ports.add(p.port);
    }
  }
  return ports;
}

/** The hosts of the changed DestinationRules, as they were and as they are (FQDNs). */
function destinationRuleHosts(previous: PushContext, next: PushContext, changed: readonly ObjectKey[]): string[] {
  return [...configsOf(previous, 'DestinationRule', changed), ...configsOf(next, 'DestinationRule', changed)].map((dr) => resolveShortName(String(dr.spec.host ?? ''), dr.namespace, next.domainSuffix));
}

function hasConsistentHash(tp: TrafficPolicy | undefined): boolean {
  return tp?.loadBalancer?.consistentHash !== undefined || (tp?.portLevelSettings ?? []).some((p) => p.loadBalancer?.consistentHash !== undefined);
}

/**
 * Whether any DestinationRule of the edited rules' hosts (matching either way,
 * in either context, so a rule that starts or stops shadowing another counts)
 * sets a consistent hash anywhere: only then can routes differ.
 */
function destinationRulesHash(previous: PushContext, next: PushContext, changed: readonly ObjectKey[]): boolean {
  const hosts = destinationRuleHosts(previous, next, changed);
  for (const ctx of [previous, next])
    for (const dr of ctx.configs('DestinationRule')) {
      const spec = dr.spec as DestinationRuleSpecType;
      if (!hasConsistentHash(spec.trafficPolicy) && !(spec.subsets ?? []).some((s) => hasConsistentHash(s.trafficPolicy))) continue;
      const host = resolveShortName(String(spec.host ?? ''), dr.namespace, next.domainSuffix);
      if (hosts.some((h) => hostMatches(h, host) || hostMatches(host, h))) return true;
    }
  return false;
}

/** EDS names a DestinationRule change can alter: the clusters of its hosts. */
function destinationRuleClusters(previous: PushContext, next: PushContext, changed: readonly ObjectKey[]): (name: string) => boolean {
  const hosts = destinationRuleHosts(previous, next, changed);
  return (name) => {
    const host = name.split('|')[3];
    return host === undefined || hosts.some((h) => hostMatches(h, host));
  };
}

/**
 * Whether a proxy depends on the changed configs (Istio's
 * proxy_dependencies.go): a VirtualService it can see, a DestinationRule for
 * a host it can see, a Sidecar of its namespace (or the root namespace's).
 * Anything else reaches every proxy.
 */
export function dependsOn(view: ProxyView, previous: PushContext, next: PushContext, changed: readonly ObjectKey[], rootNamespace: string): boolean {
  if (view.type !== 'sidecar') return true;
  const scopes = [next.sidecarScope(view), previous.sidecarScope(view)];
  for (const k of changed) {
    switch (k.kind) {
      case 'VirtualService':
        if (scopes.some((s) => virtualServiceKeys(s).has(`${k.namespace}/${k.name}`))) return true;
        break;
      case 'DestinationRule': {
        const hosts = destinationRuleHosts(previous, next, [k]);
        if (hosts.some((h) => scopes.some((s) => s.services.some((svc) => hostMatches(h, svc.hostname))))) return true;
        break;
      }
      case 'Sidecar':
        if (k.namespace === view.namespace || k.namespace === rootNamespace) return true;
        break;
      default:
        return true;
    }
  }
  return false;
}

const vsKeys = new WeakMap<SidecarScope, Set<string>>();
function virtualServiceKeys(scope: SidecarScope): Set<string> {
  let s = vsKeys.get(scope);
  if (!s) vsKeys.set(scope, (s = new Set(scope.virtualServices.map((v) => `${v.namespace}/${v.name}`))));
  return s;
}

/**
 * What a change touches: endpoints-only changes as libs/model's pushScope
 * decides (the clusters whose endpoints moved); config changes as full
 * pushes naming the types their kinds can alter, the route configurations of
 * a VirtualService's ports, and the proxies that depend on them.
 */
export function meshScope(previous: PushContext, next: PushContext & Pick<PushContextExtras, 'endpointUpdate'>, changed: readonly ObjectKey[], gens: ClassGenerators<PushContext, ProxyView>): PushScope {
  const eds = endpointScope(previous, next, [...changed], next.endpointUpdate);
  if (!eds.full) return { full: false, edsClusters: eds.edsClusters ?? new Set() };
  const types = new Set<string>();
  let hashed: boolean | undefined;
  for (const k of changed) {
    const t = TYPES_BY_KIND[k.kind];
    if (!t) {
      // Every type, to the proxies that depend on the change (libs/model's proxy dependencies).
      const keys = configKeysOf(changed, [next, previous]);
      return { full: true, affects: (proxy) => proxyDependsOn(next, gens.view(proxy, next), keys, previous) };
    }
    for (const x of t) {
      // A DestinationRule reaches routes only through a consistent hash (route/hash.ts).
      if (x === TypeUrl.RouteConfiguration && k.kind === 'DestinationRule' && !(hashed ??= destinationRulesHash(previous, next, changed))) continue;
      types.add(x);
    }
  }
  if (types.has(TypeUrl.RouteConfiguration) && virtualServicesReachListeners([...configsOf(previous, 'VirtualService', changed), ...configsOf(next, 'VirtualService', changed)])) types.add(TypeUrl.Listener);
  const resources = new Map<string, (name: string) => boolean>();
  const only = changed.every((k) => k.kind === 'VirtualService') ? routeNameFilter(virtualServicePorts(previous, next, changed)) : undefined;
  if (only) resources.set(TypeUrl.RouteConfiguration, only);
  if (changed.every((k) => k.kind === 'DestinationRule')) {
    // Clusters and endpoints of the edited rules' hosts; the class cache rebuilds only those outbound clusters.
    const clusters = destinationRuleClusters(previous, next, changed);
    resources.set(TypeUrl.Cluster, clusters);
    resources.set(TypeUrl.ClusterLoadAssignment, clusters);
  }
  const root = next.mesh.rootNamespace ?? 'istio-system';
  return { full: true, types, resources, affects: (proxy) => dependsOn(gens.view(proxy, next), previous, next, changed, root) };
}

/** The hostnames of the services (`namespace/hostname` keys) that are Passthrough (headless) in `ctx`. */
function headlessServices(ctx: PushContext, keys: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const key of keys) {
    const svc = ctx.serviceByKey(key);
    if (svc?.resolution === 'Passthrough') out.add(svc.hostname);
  }
  return out;
}

/**
 * The addresses the connected proxies run at (the node ID's and INSTANCE_IPS),
 * counted per stream: the endpoint path asks whether a changed workload's
 * address has a proxy with a lookup, not a walk over every connected proxy
 * (a scale-up's new pod gets its address in an event of its own).
 */
export class ProxyAddresses {
  private readonly streams = new Map<string, number>();
  /** `translator`: whose parse of each node (cached per stream) gives the addresses its views have. */
  constructor(private readonly translator: Pick<MeshTranslator, 'parse'>) {}
  add(proxy: XdsProxy): void {
    for (const ip of this.addressesOf(proxy)) this.streams.set(ip, (this.streams.get(ip) ?? 0) + 1);
  }
  delete(proxy: XdsProxy): void {
    for (const ip of this.addressesOf(proxy)) {
      const n = (this.streams.get(ip) ?? 0) - 1;
      if (n > 0) this.streams.set(ip, n);
      else this.streams.delete(ip);
    }
  }
  has(address: string): boolean {
    return this.streams.has(address);
  }
  /** None when the node cannot be parsed (such a proxy is served nothing). */
  private addressesOf(proxy: XdsProxy): readonly string[] {
    try {
      return this.translator.parse(proxy).ipAddresses;
    } catch {
      return [];
    }
  }
}

/**
 * The endpoint path (no context built): EDS for the clusters of the services
 * whose endpoints changed in place, to the streams that watch them; for
 * headless services also clusters, listeners and name tables, to the proxies
 * that see them (istiod's full push on a headless endpoint change); and for
 * workloads whose own view changed (labels, identity, the services they
 * serve), their proxies' clusters, listeners and routes again (class caches
 * keep what other proxies share: a changed proxy lands in another class).
 */
export function endpointScopes(ctx: PushContext, services: ReadonlySet<string>, addresses: ReadonlySet<string>, gens: ClassGenerators<PushContext, ProxyView>, connectedAt?: (address: string) => boolean): PushScope[] {
  const out: PushScope[] = [];
  if (services.size > 0) out.push({ full: false, edsClusters: edsClustersFor(services, ctx) });
  const headless = headlessServices(ctx, services);
  if (headless.size > 0) {
    // istiod's HeadlessEndpointUpdate: the pods of a Passthrough service are per-pod listeners, auto-mTLS
    // (every endpoint in the mesh or not) and name-table entries, to every proxy that sees the service.
    const types = [TypeUrl.Cluster, TypeUrl.Listener, NDS_TYPE_URL];
    out.push({
      full: true,
      types: new Set(types),
      // Of the (shared, outbound) clusters only the services' own are rebuilt.
      resources: new Map([[TypeUrl.Cluster, (name: string) => headless.has(name.slice(name.lastIndexOf('|') + 1))]]),
      affects: (proxy) => {
        const scope = ctx.sidecarScope(gens.view(proxy, ctx));
        for (const h of headless) if (scope.hasService(h)) return true;
        return false;
      },
    });
  }
  if (addresses.size > 0) {
    const types = [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration];
    const affects = (proxy: XdsProxy) => gens.view(proxy, ctx).ipAddresses.some((ip) => addresses.has(ip));
    // A workload no connected proxy runs at (a new pod: its sidecar connects after, and is resolved then) needs no
    // push; pushed to no one, it would still drop the class caches every proxy shares.
    if (!connectedAt || [...addresses].some(connectedAt)) out.push({ full: true, types: new Set(types), resources: new Map(types.map((t) => [t, () => false])), affects });
  }
  return out;
}
