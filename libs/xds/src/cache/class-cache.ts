import type { Logger } from '@sextant/api';
import { ResourceEncoder, TypeUrl, type EncodedResource } from '@sextant/envoy';
import type { PushRequest, ResourceGenerator, WatchedResource, XdsProxy } from '../types.js';
import { EndpointCache } from './endpoint-cache.js';
import { LayeredMap } from './layered-map.js';
import { watchKey } from './watch-key.js';

/** Full pushes a unit may go unasked before it is dropped (endpoint pushes ask for none). */
const UNUSED_PUSHES = 32;

/** One resource as translation built it: its name and Envoy's JSON form. */
export interface BuiltResource {
  name: string;
  json: unknown;
}

/**
 * The mesh-specific part of generation, injected by the app: how a proxy is
 * seen, which proxies get identical config, and how resources are built.
 * libs/xds knows no config kinds; it only caches and encodes what this gives.
 */
export interface ProxyTranslator<Ctx extends object, View extends object> {
  /** The proxy as translation sees it, resolved against a context (parsed node, workload labels). */
  resolve(proxy: XdsProxy, ctx: Ctx): View;
  /**
   * Proxies whose views have equal keys for a type get identical resources of
   * that type, built and encoded once per class. Undefined: built for this
   * proxy alone. For EDS, any key means "the shared endpoint cache".
   */
  classKey(typeUrl: string, view: View, ctx: Ctx, layer?: string): string | undefined;
  /**
   * Types whose resources come in layers with their own class keys, merged in
   * this order (the first of two resources with one name wins): CDS's
   * outbound clusters are shared by a proxy class, its inbound clusters
   * follow the proxy's own services. A `partial` layer can be rebuilt for
   * some names (a push's `resources` filter), the rest kept. Undefined (or
   * absent): one layer, the type's class key.
   */
  layers?(typeUrl: string, view: View, ctx: Ctx): readonly TypeLayer[] | undefined;
  /**
   * Types built one resource per watched name (route configurations), so a
   * change can rebuild some names and keep the others.
   */
  readonly perName: ReadonlySet<string>;
  /**
   * Builds resources of a type for a view; `names`: the watched names
   * (undefined: every resource). `classKey` undefined: for `proxy` alone
   * (which may keep per-stream state, as MOSN's tombstones do); else for its
   * whole class, and `proxy` is only the one that asked first.
   */
  build(typeUrl: string, ctx: Ctx, view: View, names: readonly string[] | undefined, classKey: string | undefined, proxy: XdsProxy, part?: BuildPart): BuiltResource[];
}

/** One layer of a layered type (ProxyTranslator.layers). */
export interface TypeLayer {
  layer: string;
  /** Can be rebuilt for some names only (build with `only` returns exactly the resources whose names pass it). */
  partial: boolean;
  /** Its resources replace those of earlier layers with the same name (in their place): a per-workload rendering of some of a class's resources. */
  override?: boolean;
}

/** Which part of a layered type to build: the layer, and for a partial rebuild the names wanted (exactly those). */
export interface BuildPart {
  layer: string;
  only?: ((name: string) => boolean) | undefined;
}

interface NamedEntry {
  /** undefined: the name builds nothing (or did not encode). */
  res: EncodedResource | undefined;
  /** Cache epoch it was built in. */
  epoch: number;
}

interface Composed {
  epoch: number;
  out: ReadonlyMap<string, EncodedResource>;
}

/**
 * The class cache and the generators over it: what proxies of one class share
 * is built and encoded once, and kept across pushes until a PushRequest says
 * it may have changed (`advance`). Every resource goes through one
 * ResourceEncoder, so identical content is encoded once however many classes
 * hold it; endpoints live in one EndpointCache, shared by cluster name.
 *
 * Units: a whole watched set per (type, class, watch) for CDS and LDS, one
 * resource per (type, class, name) for `perName` types (RDS). A push that
 * concerns a type drops that type's units (for `perName` types only the names
 * its `resources` filter names); the other types carry over untouched.
 */
export class ClassGenerators<Ctx extends object, View extends object> {
  /** The one encoder of the process. */
  readonly encoder = new ResourceEncoder();
  /** The one endpoint cache of the process (ClusterLoadAssignments by cluster name). */
  readonly endpoints = new EndpointCache();
  private readonly absentEndpoints = new Set<string>();
  /**
   * Watched EDS name sets (shared by the streams that subscribe the same
   * names, never mutated) found built or absent, at the endpoint cache's
   * generation: while it holds, nothing of the set is missing, so a push does
   * not look every watched name up again for every stream.
   */
  private endpointsComplete = new WeakMap<ReadonlySet<string>, { generation: number; size: number }>();
  /** Views resolved against the current context. */
  private resolved = new WeakMap<XdsProxy, View>();
  private resolvedCtx: Ctx | undefined;
  /** Class keys by view and type (a view belongs to one context). */
  private keys = new WeakMap<View, Map<string, string | undefined>>();
  private layerMemo = new WeakMap<View, Map<string, readonly TypeLayer[] | undefined>>();
  /** Whole-set units: type → class\0watch → resources (layered types: layer\u0002class\0watch). */
  private sets = new Map<string, Map<string, ReadonlyMap<string, EncodedResource>>>();
  /** Partial layer units: type → unit key → name filters of pushes not yet applied (rebuilt on the next request). */
  private stale = new Map<string, Map<string, Array<(name: string) => boolean>>>();
  /** Layered types: the merge of a proxy's layer units, shared by the proxies with the same units: type → unit keys → merge. */
  private merged = new Map<string, Map<string, LayeredMap<EncodedResource>>>();
  /** Per-name units: type → class → name → entry. */
  private named = new Map<string, Map<string, Map<string, NamedEntry>>>();
  /** Per-name watch results, shared by the streams of a class with the same watch: type → class\0watch. */
  private composed = new Map<string, Map<string, Composed>>();
  private epoch = 0;
  /** Epoch each unit (type, class and watch; type and class for per-name units) was last asked for: units no proxy asked for in a while go. */
  private used = new Map<string, number>();
  /** Resources built since the last advance, by type (what a push cost; debug and tests). */
  builds: Record<string, number> = {};

  constructor(
    private readonly translator: ProxyTranslator<Ctx, View>,
    private readonly context: () => Ctx | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * A new push: drops what `req` says may have changed, keeps the rest. Call
   * once per push, before the server pushes it. An endpoints-only push
   * forgets only the clusters it names.
   */
  advance(req: PushRequest): void {
    this.builds = {};
    this.encoder.sweep();
    if (!req.full) {
      if (req.edsUpdates) this.forgetEndpoints(req.edsUpdates);
      else this.forgetEndpoints(undefined);
      return;
    }
    // Only full pushes ask for units: counting endpoint pushes too dropped every class's units after 32 endpoint
    // changes, and the next edit then built each class whole again instead of what the edit changed.
    this.epoch++;
    this.evictUnused();
    // A full push may come at an unchanged context (a workload changed in place): resolve proxies again.
    this.resolved = new WeakMap();
    if (!req.types) {
      this.sets.clear();
      this.stale.clear();
      this.merged.clear();
      this.named.clear();
      this.composed.clear();
      this.forgetEndpoints(undefined);
      return;
    }
    for (const typeUrl of req.types) {
      const only = testedOnce(req.resources?.get(typeUrl));
      if (typeUrl === TypeUrl.ClusterLoadAssignment) {
        if (!only) this.forgetEndpoints(undefined);
        else this.forgetEndpoints([...this.endpointNames()].filter(only));
        continue;
      }
      this.merged.delete(typeUrl);
      const sets = this.sets.get(typeUrl);
      const stale = this.stale.get(typeUrl);
      if (sets && only && stale) {
        // Partial layer units keep what the push did not name; the rest go.
        for (const k of sets.keys()) {
          const filters = stale.get(k);
          if (filters) filters.push(only);
          else sets.delete(k);
        }
      } else {
        this.sets.delete(typeUrl);
        this.stale.delete(typeUrl);
      }
      const byClass = this.named.get(typeUrl);
      if (!byClass) continue;
      if (!only) {
        this.named.delete(typeUrl);
        this.composed.delete(typeUrl);
        continue;
      }
      for (const names of byClass.values()) for (const n of names.keys()) if (only(n)) names.delete(n);
    }
  }

  /** The proxy as the translator sees it, resolved once per context. */
  view(proxy: XdsProxy, ctx: Ctx): View {
    if (this.resolvedCtx !== ctx) {
      this.resolved = new WeakMap();
      this.resolvedCtx = ctx;
    }
    let v = this.resolved.get(proxy);
    if (!v) {
      v = this.translator.resolve(proxy, ctx);
      this.resolved.set(proxy, v);
    }
    return v;
  }

  private classKey(typeUrl: string, view: View, ctx: Ctx, layer?: string): string | undefined {
    let m = this.keys.get(view);
    if (!m) this.keys.set(view, (m = new Map()));
    const memo = layer === undefined ? typeUrl : `${typeUrl}\u0002${layer}`;
    if (m.has(memo)) return m.get(memo);
    const k = this.translator.classKey(typeUrl, view, ctx, layer);
    m.set(memo, k);
    return k;
  }

  /** Layers of a type for a view, resolved once per view. */
  private layersOf(typeUrl: string, view: View, ctx: Ctx): readonly TypeLayer[] | undefined {
    if (!this.translator.layers) return undefined;
    let m = this.layerMemo.get(view);
    if (!m) this.layerMemo.set(view, (m = new Map()));
    if (m.has(typeUrl)) return m.get(typeUrl);
    const l = this.translator.layers(typeUrl, view, ctx);
    m.set(typeUrl, l);
    return l;
  }

  /** The xDS server's generators for the types the translator builds. */
  generators(types: readonly string[]): Record<string, ResourceGenerator> {
    const out: Record<string, ResourceGenerator> = {};
    for (const typeUrl of types) {
      out[typeUrl] = {
        generate: (proxy, watch) => {
          const ctx = this.context();
          if (!ctx) return new Map();
          return typeUrl === TypeUrl.ClusterLoadAssignment ? this.generateEndpoints(proxy, watch, ctx) : this.generate(typeUrl, proxy, watch, ctx);
        },
      };
    }
    return out;
  }

  /** Encoded units held (debug output). */
  get size(): number {
    let n = 0;
    for (const m of this.sets.values()) n += m.size;
    for (const m of this.named.values()) for (const c of m.values()) n += c.size;
    return n + this.endpoints.size;
  }

  private generate(typeUrl: string, proxy: XdsProxy, watch: WatchedResource, ctx: Ctx): ReadonlyMap<string, EncodedResource> {
    const view = this.view(proxy, ctx);
    const cls = this.classKey(typeUrl, view, ctx);
    const names = watch.wildcard ? undefined : [...watch.names].sort();
    let out: ReadonlyMap<string, EncodedResource>;
    if (cls === undefined) {
      out = this.encodeAll(typeUrl, this.count(typeUrl, this.translator.build(typeUrl, ctx, view, names, undefined, proxy)), proxy.id);
    } else if (this.translator.perName.has(typeUrl) && names) {
      out = this.generateNamed(typeUrl, cls, names, watch, view, ctx, proxy);
    } else if (this.layersOf(typeUrl, view, ctx)) {
      out = this.generateLayered(typeUrl, this.layersOf(typeUrl, view, ctx)!, names, watch, view, ctx, proxy);
    } else {
      let byClass = this.sets.get(typeUrl);
      if (!byClass) this.sets.set(typeUrl, (byClass = new Map()));
      const key = `${cls}\u0000${watchKey(watch)}`;
      this.used.set(`${typeUrl}\u0001${cls}\u0001${watchKey(watch)}`, this.epoch);
      let set = byClass.get(key);
      if (!set) {
        set = this.encodeAll(typeUrl, this.count(typeUrl, this.translator.build(typeUrl, ctx, view, names, cls, proxy)), proxy.id);
        byClass.set(key, set);
      }
      out = set;
    }
    return out;
  }

  /**
   * Layered units: each layer's unit by its own class key (a partial one
   * rebuilt only for the names pushes named since), merged in layer order;
   * proxies with the same units share the merge.
   */
  private generateLayered(typeUrl: string, layers: readonly TypeLayer[], names: string[] | undefined, watch: WatchedResource, view: View, ctx: Ctx, proxy: XdsProxy): ReadonlyMap<string, EncodedResource> {
    let byClass = this.sets.get(typeUrl);
    if (!byClass) this.sets.set(typeUrl, (byClass = new Map()));
    let stale = this.stale.get(typeUrl);
    if (!stale) this.stale.set(typeUrl, (stale = new Map()));
    const wk = watchKey(watch);
    const parts: ReadonlyMap<string, EncodedResource>[] = [];
    const keys: string[] = [];
    for (const { layer, partial } of layers) {
      const cls = `${layer}\u0002${this.classKey(typeUrl, view, ctx, layer) ?? proxy.connectionId}`;
      const key = `${cls}\u0000${wk}`;
      this.used.set(`${typeUrl}\u0001${cls}\u0001${wk}`, this.epoch);
      let set = byClass.get(key);
      const filters = stale.get(key);
      if (set && filters && filters.length > 0) {
        const only = filters.length === 1 ? filters[0]! : (n: string) => filters.some((f) => f(n));
        const rebuilt = this.encodeAll(typeUrl, this.count(typeUrl, this.translator.build(typeUrl, ctx, view, names, cls, proxy, { layer, only })), proxy.id);
        const next = new Map<string, EncodedResource>();
        for (const [n, r] of set) if (!only(n)) next.set(n, r);
        for (const [n, r] of rebuilt) if (!next.has(n)) next.set(n, r);
        set = next;
        byClass.set(key, set);
        stale.set(key, []);
      }
      if (!set) {
        set = this.encodeAll(typeUrl, this.count(typeUrl, this.translator.build(typeUrl, ctx, view, names, cls, proxy, { layer })), proxy.id);
        byClass.set(key, set);
        if (partial) stale.set(key, []);
        else stale.delete(key);
      }
      parts.push(set);
      keys.push(key);
    }
    if (parts.length === 1) return parts[0]!;
    let byKeys = this.merged.get(typeUrl);
    if (!byKeys) this.merged.set(typeUrl, (byKeys = new Map()));
    const mk = keys.join('\u0003');
    const prev = byKeys.get(mk);
    if (prev && prev.parts.every((p, i) => p === parts[i])) return prev;
    // A view over the units, not a copy: a proxy's own layer is small, the class's shared one is not.
    const out = new LayeredMap(parts, layers.map((l) => l.override === true));
    byKeys.set(mk, out);
    return out;
  }

  /** Per-name units: only the names not cached (or dropped by the last push) are built, in one call. */
  private generateNamed(typeUrl: string, cls: string, names: string[], watch: WatchedResource, view: View, ctx: Ctx, proxy: XdsProxy): ReadonlyMap<string, EncodedResource> {
    let byClass = this.named.get(typeUrl);
    if (!byClass) this.named.set(typeUrl, (byClass = new Map()));
    let entries = byClass.get(cls);
    if (!entries) byClass.set(cls, (entries = new Map()));
    this.used.set(`${typeUrl}\u0001${cls}`, this.epoch);
    const missing = names.filter((n) => !entries.has(n));
    if (missing.length) {
      const built = this.encodeAll(typeUrl, this.count(typeUrl, this.translator.build(typeUrl, ctx, view, missing, cls, proxy)), proxy.id);
      for (const n of missing) entries.set(n, { res: built.get(n), epoch: this.epoch });
      // A builder may answer under other names (a gateway's); keep those too, they were asked for.
      for (const [n, r] of built) if (!entries.has(n)) entries.set(n, { res: r, epoch: this.epoch });
    }
    // Streams of a class with the same watch share one Map (the server frames it once), across pushes while nothing in it changed.
    let byWatch = this.composed.get(typeUrl);
    if (!byWatch) this.composed.set(typeUrl, (byWatch = new Map()));
    const key = `${cls}\u0000${watchKey(watch)}`;
    const prev = byWatch.get(key);
    if (prev && names.every((n) => (entries.get(n)?.epoch ?? Infinity) <= prev.epoch)) return prev.out;
    const out = new Map<string, EncodedResource>();
    for (const n of names) {
      const r = entries.get(n)?.res;
      if (r) out.set(n, r);
    }
    byWatch.set(key, { epoch: this.epoch, out });
    return out;
  }

  private generateEndpoints(proxy: XdsProxy, watch: WatchedResource, ctx: Ctx): ReadonlyMap<string, EncodedResource> {
    const view = this.view(proxy, ctx);
    const cls = this.classKey(TypeUrl.ClusterLoadAssignment, view, ctx);
    // Proxies with their own form of endpoints (MOSN: one locality group per cluster) get their own assignments.
    if (cls === undefined) {
      return this.encodeAll(TypeUrl.ClusterLoadAssignment, this.count(TypeUrl.ClusterLoadAssignment, this.translator.build(TypeUrl.ClusterLoadAssignment, ctx, view, [...watch.names], undefined, proxy)), proxy.id);
    }
    const complete = this.endpointsComplete.get(watch.names);
    if (complete && complete.generation === this.endpoints.generation && complete.size === watch.names.size) return this.endpoints.generate(proxy, watch);
    const missing: string[] = [];
    for (const n of watch.names) if (!this.endpoints.has(n) && !this.absentEndpoints.has(n)) missing.push(n);
    if (missing.length) {
      const built = new Map(this.count(TypeUrl.ClusterLoadAssignment, this.translator.build(TypeUrl.ClusterLoadAssignment, ctx, view, missing, cls, proxy)).map((b) => [b.name, b.json]));
      for (const name of missing) {
        const json = built.get(name);
        if (json === undefined) {
          this.absentEndpoints.add(name);
          continue;
        }
        try {
          this.endpoints.fill(name, this.encoder.encode(TypeUrl.ClusterLoadAssignment, name, json));
        } catch (err) {
          this.log.error({ proxy: proxy.id, resource: name, err: (err as Error).message }, 'endpoints do not encode; left out');
          this.absentEndpoints.add(name);
        }
      }
    }
    this.endpointsComplete.set(watch.names, { generation: this.endpoints.generation, size: watch.names.size });
    return this.endpoints.generate(proxy, watch);
  }

  /**
   * Units of classes no proxy asked for in the last UNUSED_PUSHES full pushes
   * (their proxies left) go; a class still connected but not pushed that long
   * only rebuilds on its next request.
   */
  private evictUnused(): void {
    const before = this.epoch - UNUSED_PUSHES;
    for (const [k, at] of this.used) {
      if (at >= before) continue;
      this.used.delete(k);
      const [typeUrl, cls, watch] = k.split('\u0001') as [string, string, string | undefined];
      if (watch !== undefined) {
        this.sets.get(typeUrl)?.delete(`${cls}\u0000${watch}`);
        this.stale.get(typeUrl)?.delete(`${cls}\u0000${watch}`);
        this.merged.delete(typeUrl); // rebuilt on demand from the units left
      } else {
        this.named.get(typeUrl)?.delete(cls);
        const composed = this.composed.get(typeUrl);
        if (composed) for (const c of composed.keys()) if (c.startsWith(`${cls}\u0000`)) composed.delete(c);
      }
    }
  }

  private *endpointNames(): Iterable<string> {
    yield* this.absentEndpoints;
    for (const n of this.endpoints.names()) yield n;
  }

  private forgetEndpoints(names: Iterable<string> | undefined): void {
    if (names === undefined) {
      this.absentEndpoints.clear();
      this.endpoints.forget();
      return;
    }
    const list = [...names];
    for (const n of list) this.absentEndpoints.delete(n);
    this.endpoints.forget(list);
  }

  private count<T>(typeUrl: string, built: T[]): T[] {
    this.builds[typeUrl] = (this.builds[typeUrl] ?? 0) + built.length;
    return built;
  }

  private encodeAll(typeUrl: string, resources: BuiltResource[], proxyId: string, into = new Map<string, EncodedResource>()): Map<string, EncodedResource> {
    for (const { name, json } of resources) {
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
}

/**
 * A push's name filter, asked about each name once: the class units of a
 * type are rebuilt class by class, each testing the same names (9,000
 * cluster names in each of 50 classes for a DestinationRule edit at S = 1000,
 * each a split of the name before).
 */
function testedOnce(filter: ((name: string) => boolean) | undefined): ((name: string) => boolean) | undefined {
  if (!filter) return undefined;
  const answers = new Map<string, boolean>();
  return (name) => {
    let yes = answers.get(name);
    if (yes === undefined) answers.set(name, (yes = filter(name)));
    return yes;
  };
}
