import type { Logger, ValidationIssue } from '@sextant/api';
import type { ClusterJson, ListenerJson } from '@sextant/envoy';
import { encodedResource, ResourceEncoder, TypeUrl, type EncodedResource } from '@sextant/envoy';
import { parseProxy, type ProxyView, type PushContext } from '@sextant/model';
import {
  buildEndpoints,
  buildListeners,
  buildOutboundClusterSet,
  buildProxyClusters,
  buildNameTable,
  buildRoutes,
  clusterTombstones,
  encodeNameTable,
  NDS_TYPE_URL,
  isMosnProxy,
  mosnSdsPath,
  withListenerTombstones,
} from '@sextant/translate';
import { watchKey, type ResourceGenerator, type WatchedResource, type XdsProxy } from '@sextant/xds';

/**
 * Adapts the pure translation builders to the xDS server's generators: proxy
 * views are parsed once per stream and resolved once per push version, and
 * every resource goes through one ResourceEncoder, so identical content is
 * encoded once however many proxies receive it.
 */
export class TranslationGenerators {
  readonly encoder = new ResourceEncoder();
  private readonly parsed = new WeakMap<XdsProxy, ProxyView>();
  private resolved = new WeakMap<XdsProxy, ProxyView>();
  private resolvedVersion = '';
  /**
   * Per push version, what proxies of one class share (outbound clusters,
   * routes), already encoded: 1000 sidecars of one Deployment cost one build.
   */
  private shared = new Map<string, ReadonlyMap<string, EncodedResource>>();
  private sharedVersion = '';
  /** EDS is proxy-independent: one ClusterLoadAssignment per cluster name and push version. */
  private endpoints = new Map<string, EncodedResource | null>();
  /** Push versions that changed only endpoints: version → (the version before it, the clusters that changed). */
  private endpointOnlyPushes = new Map<string, { after: string; clusters: ReadonlySet<string> }>();
  /** Result per watched name set, so streams watching the same clusters share one Map (and one framed response). */
  private endpointViews = new Map<string, ReadonlyMap<string, EncodedResource>>();
  private endpointsVersion = '';
  /**
   * MOSN streams: what each was sent (MOSN never deletes a listener or cluster
   * that disappears, so removed ones are re-sent as tombstones), and what its
   * routes could not express (for /debug/config_issues), by connection.
   */
  private readonly mosnListenersSent = new WeakMap<XdsProxy, Map<string, ListenerJson>>();
  private readonly mosnClustersSent = new WeakMap<XdsProxy, Set<string>>();
  private readonly mosnIssues = new Map<string, { proxyId: string; issues: ValidationIssue[] }>();
  private routeIssues = new Map<string, ValidationIssue[]>();

  constructor(
    private readonly context: () => PushContext | undefined,
    private readonly log: Logger,
    /** Share outbound clusters and routes across proxies of one class (off only to measure what it saves). */
    private readonly shareByClass = true,
  ) {}

  /**
   * Tells that push `version` (built after `previous`) changed only the
   * endpoints of `clusters`: the other clusters' ClusterLoadAssignments carry
   * over instead of being rebuilt, so an endpoint change costs what it changed.
   */
  endpointsOnly(version: string, previous: string, clusters: ReadonlySet<string>): void {
    this.endpointOnlyPushes.set(version, { after: previous, clusters });
    if (this.endpointOnlyPushes.size > 16) this.endpointOnlyPushes.delete(this.endpointOnlyPushes.keys().next().value!);
  }

  /**
   * The endpoints of `clusters` changed in place (the endpoint index), at an
   * unchanged push version: their ClusterLoadAssignments are built again, the
   * others stay.
   */
  endpointsChanged(clusters: ReadonlySet<string>): void {
    for (const name of clusters) this.endpoints.delete(name);
    this.endpointViews = new Map();
  }

  /** Resolves every proxy again on its next generation (its Pod changed in place). */
  forgetResolvedProxies(): void {
    this.resolved = new WeakMap();
  }

  /** Forgets encoded resources no push used since the previous call (call after each push). */
  sweep(): void {
    this.encoder.sweep();
  }

  proxyView(proxy: XdsProxy, push: PushContext): ProxyView {
    if (this.resolvedVersion !== push.version) {
      this.resolved = new WeakMap();
      this.resolvedVersion = push.version;
    }
    let view = this.resolved.get(proxy);
    if (!view) {
      let parsed = this.parsed.get(proxy);
      if (!parsed) {
        parsed = parseProxy(proxy.id, proxy.metadata);
        this.parsed.set(proxy, parsed);
      }
      view = push.resolveProxy(parsed);
      this.resolved.set(proxy, view);
    }
    return view;
  }

  /**
   * What the routes of connected MOSN proxies cannot express (kind/namespace/name,
   * field, reason), per proxy; `live` prunes closed connections.
   */
  proxyIssues(live: ReadonlySet<string>): Array<ValidationIssue & { proxy: string }> {
    const out: Array<ValidationIssue & { proxy: string }> = [];
    for (const [conn, v] of this.mosnIssues) {
      if (!live.has(conn)) this.mosnIssues.delete(conn);
      else for (const i of v.issues) out.push({ proxy: v.proxyId, ...i });
    }
    return out;
  }

  /** Encoded resources shared by every proxy of one class at one push version. */
  private sharedFor(push: PushContext, key: string, typeUrl: string, proxyId: string, build: () => Array<{ name?: string }>): ReadonlyMap<string, EncodedResource> {
    if (this.sharedVersion !== push.version) {
      this.shared = new Map();
      this.routeIssues = new Map();
      this.sharedVersion = push.version;
    }
    let out = this.shareByClass ? this.shared.get(key) : undefined;
    if (!out) {
      out = this.encodeAll(typeUrl, build(), proxyId);
      this.shared.set(key, out);
    }
    return out;
  }

  private encodeAll(typeUrl: string, resources: Array<{ name?: string; clusterName?: string }>, proxyId: string, into = new Map<string, EncodedResource>()): Map<string, EncodedResource> {
    for (const json of resources) {
      const name = json.name ?? json.clusterName ?? '';
      if (into.has(name)) continue; // the first of two resources with one name wins, as in translation
      try {
        into.set(name, this.encoder.encode(typeUrl, name, json));
      } catch (err) {
        // A resource Envoy could not parse either: leave it out, keep the rest.
        this.log.error({ proxy: proxyId, typeUrl, resource: name, err: (err as Error).message }, 'generated resource does not encode; left out');
      }
    }
    return into;
  }

  generators(): Record<string, ResourceGenerator> {
    const names = (watch: WatchedResource) => [...watch.names];
    return {
      [TypeUrl.Cluster]: {
        generate: (proxy) => {
          const push = this.context();
          if (!push) return new Map();
          const view = this.proxyView(proxy, push);
          const outbound = this.sharedFor(push, `cds|${proxyClassKey(view)}`, TypeUrl.Cluster, proxy.id, () => buildOutboundClusterSet(push, view));
          const all = this.encodeAll(TypeUrl.Cluster, buildProxyClusters(push, view), proxy.id, new Map(outbound));
          if (!isMosnProxy(view)) return all;
          let sent = this.mosnClustersSent.get(proxy);
          if (!sent) this.mosnClustersSent.set(proxy, (sent = new Set()));
          const tombstones: ClusterJson[] = clusterTombstones(push, new Set(all.keys()), sent);
          for (const n of all.keys()) sent.add(n);
          return this.encodeAll(TypeUrl.Cluster, tombstones, proxy.id, all);
        },
      },
      [TypeUrl.Listener]: {
        generate: (proxy, watch) => {
          const push = this.context();
          if (!push) return new Map();
          const view = this.proxyView(proxy, push);
          const listeners = buildListeners(push, view, watch.wildcard ? {} : { names: names(watch) });
          if (!isMosnProxy(view)) return this.encodeAll(TypeUrl.Listener, listeners, proxy.id);
          let sent = this.mosnListenersSent.get(proxy);
          if (!sent) this.mosnListenersSent.set(proxy, (sent = new Map()));
          const out = withListenerTombstones(listeners, sent);
          for (const l of listeners) sent.set(l.name ?? '', l);
          return this.encodeAll(TypeUrl.Listener, out, proxy.id);
        },
      },
      [TypeUrl.RouteConfiguration]: {
        generate: (proxy, watch) => {
          const push = this.context();
          if (!push) return new Map();
          const view = this.proxyView(proxy, push);
          const routeNames = names(watch).sort();
          const key = `rds|${proxyClassKey(view)}|${routeNames.join(',')}`;
          const routes = this.sharedFor(push, key, TypeUrl.RouteConfiguration, proxy.id, () => {
            const issues: ValidationIssue[] = [];
            const built = buildRoutes(push, view, routeNames, issues);
            this.routeIssues.set(key, issues);
            return built;
          });
          if (isMosnProxy(view)) this.mosnIssues.set(proxy.connectionId, { proxyId: proxy.id, issues: this.routeIssues.get(key) ?? [] });
          return routes;
        },
      },
      [TypeUrl.ClusterLoadAssignment]: { generate: (proxy, watch) => this.generateEndpoints(proxy, watch) },
      // NDS: the name table pilot-agent's DNS proxy answers from, one unnamed resource (as istiod sends it).
      [NDS_TYPE_URL]: {
        generate: (proxy) => {
          const push = this.context();
          if (!push) return new Map();
          const nt = buildNameTable(push, this.proxyView(proxy, push));
          return nt ? new Map([['', encodedResource(NDS_TYPE_URL, '', encodeNameTable(nt))]]) : new Map();
        },
      },
    };
  }

  private generateEndpoints(proxy: XdsProxy, watch: WatchedResource): ReadonlyMap<string, EncodedResource> {
    const out = new Map<string, EncodedResource>();
    const push = this.context();
    if (!push) return out;
    if (this.endpointsVersion !== push.version) {
      const onlyEndpoints = this.endpointOnlyPushes.get(push.version);
      if (onlyEndpoints && onlyEndpoints.after === this.endpointsVersion) {
        for (const name of onlyEndpoints.clusters) this.endpoints.delete(name);
      } else {
        this.endpoints = new Map();
      }
      this.endpointViews = new Map();
      this.endpointsVersion = push.version;
    }
    const key = watchKey(watch);
    const seen = this.endpointViews.get(key);
    if (seen && !isMosnProxy(this.proxyView(proxy, push))) return seen;
    const view = this.proxyView(proxy, push);
    // MOSN gets one locality group per cluster: its own assignments, not the shared ones.
    if (isMosnProxy(view)) return this.encodeAll(TypeUrl.ClusterLoadAssignment, buildEndpoints(push, view, [...watch.names]), proxy.id);
    const missing = [...watch.names].filter((n) => !this.endpoints.has(n));
    if (missing.length) {
      const built = new Map(buildEndpoints(push, view, missing).map((cla) => [cla.clusterName ?? '', cla]));
      for (const name of missing) {
        const cla = built.get(name);
        try {
          this.endpoints.set(name, cla ? this.encoder.encode(TypeUrl.ClusterLoadAssignment, name, cla) : null);
        } catch (err) {
          this.log.error({ proxy: proxy.id, resource: name, err: (err as Error).message }, 'endpoints do not encode; left out');
          this.endpoints.set(name, null);
        }
      }
    }
    for (const name of watch.names) {
      const res = this.endpoints.get(name);
      if (res) out.set(name, res);
    }
    this.endpointViews.set(key, out);
    return out;
  }
}

/**
 * What outbound clusters and routes depend on, and nothing per pod: proxies
 * with the same key get the same CDS outbound set and RDS. Pod name and IPs
 * are left out (only the IP family matters: it picks the DNS lookup family);
 * inbound config, which does depend on them, is built per proxy.
 */
export function proxyClassKey(v: ProxyView): string {
  const v6 = v.ipAddresses.filter((ip) => ip.includes(':')).length;
  const family = v6 === 0 ? 'v4' : v6 === v.ipAddresses.length ? 'v6' : 'dual';
  const labels = Object.keys(v.labels).sort().map((k) => [k, v.labels[k]]);
  const agentless = v.metadata.raw['SEXTANT_AGENTLESS'] ?? v.metadata.raw['ISTIO_META_SEXTANT_AGENTLESS'] ?? null;
  // Locality is left out too: it shapes EDS priorities, not outbound clusters or routes,
  // and the replicas of a Deployment spread over zones.
  // MOSN proxies get their own form of the same config (and dial SDS at their own socket path).
  const dataPlane = isMosnProxy(v) ? ['mosn', mosnSdsPath(v)] : null;
  return JSON.stringify([v.type, v.generator, v.namespace, v.dnsDomain, labels, v.interceptionMode, v.istioVersion, v.serviceAccount, v.clusterId, v.network, family, agentless, dataPlane]);
}
