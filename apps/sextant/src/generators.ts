import type { Logger } from '@sextant/api';
import { ResourceEncoder, TypeUrl, type EncodedResource } from '@sextant/envoy';
import { parseProxy, type ProxyView, type PushContext } from '@sextant/model';
import { buildClusters, buildEndpoints, buildListeners, buildRoutes } from '@sextant/translate';
import type { PushRequest, ResourceGenerator, WatchedResource, XdsProxy } from '@sextant/xds';

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
  /** EDS is proxy-independent: one ClusterLoadAssignment per cluster name and push version. */
  private endpoints = new Map<string, EncodedResource | null>();
  private endpointsVersion = '';

  constructor(
    private readonly context: () => PushContext | undefined,
    private readonly log: Logger,
  ) {}

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

  generators(): Record<string, ResourceGenerator> {
    const wrap = (typeUrl: string, build: (push: PushContext, view: ProxyView, watch: WatchedResource, req: PushRequest) => Array<{ name?: string; clusterName?: string }>): ResourceGenerator => ({
      generate: (proxy, watch, req) => {
        const push = this.context();
        const out = new Map<string, EncodedResource>();
        if (!push) return out;
        const view = this.proxyView(proxy, push);
        for (const json of build(push, view, watch, req)) {
          const name = json.name ?? json.clusterName ?? '';
          try {
            out.set(name, this.encoder.encode(typeUrl, name, json));
          } catch (err) {
            // A resource Envoy could not parse either: leave it out, keep the rest.
            this.log.error({ proxy: proxy.id, typeUrl, resource: name, err: (err as Error).message }, 'generated resource does not encode; left out');
          }
        }
        return out;
      },
    });
    const names = (watch: WatchedResource) => [...watch.names];
    return {
      [TypeUrl.Cluster]: wrap(TypeUrl.Cluster, (push, view) => buildClusters(push, view)),
      [TypeUrl.Listener]: wrap(TypeUrl.Listener, (push, view, watch) =>
        buildListeners(push, view, watch.wildcard ? {} : { names: names(watch) }),
      ),
      [TypeUrl.RouteConfiguration]: wrap(TypeUrl.RouteConfiguration, (push, view, watch) => buildRoutes(push, view, names(watch))),
      [TypeUrl.ClusterLoadAssignment]: { generate: (proxy, watch) => this.generateEndpoints(proxy, watch) },
    };
  }

  private generateEndpoints(proxy: XdsProxy, watch: WatchedResource): ReadonlyMap<string, EncodedResource> {
    const out = new Map<string, EncodedResource>();
    const push = this.context();
    if (!push) return out;
    if (this.endpointsVersion !== push.version) {
      this.endpoints = new Map();
      this.endpointsVersion = push.version;
    }
    const view = this.proxyView(proxy, push);
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
    return out;
  }
}
