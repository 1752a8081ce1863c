/**
 * Generators for tests of the ADS server itself: a static set per type, and a
 * linear endpoint cache that announces changed names (the server's
 * ChangeSource), so the incremental EDS path can be driven without the
 * daemon's translation.
 */
import type { EncodedResource } from '@sextant/envoy';
import { watchKey } from '../cache.js';
import type { ChangeSource } from '../server/discovery-server.js';
import type { ResourceGenerator, WatchedResource, XdsProxy } from '../types.js';

/**
 * A generator over a fixed, replaceable set of resources of one type (tests,
 * static bootstrap-like config). Returns the same Map until the set changes,
 * so every wildcard stream shares one framed response.
 */
export class StaticGenerator implements ResourceGenerator {
  private map: ReadonlyMap<string, EncodedResource>;
  constructor(resources: Iterable<EncodedResource> = []) {
    this.map = new Map([...resources].map((r) => [r.name, r]));
  }
  /** Replaces the whole set. */
  replace(resources: Iterable<EncodedResource>): void {
    this.map = new Map([...resources].map((r) => [r.name, r]));
  }
  set(r: EncodedResource): void {
    const m = new Map(this.map);
    m.set(r.name, r);
    this.map = m;
  }
  delete(name: string): void {
    const m = new Map(this.map);
    m.delete(name);
    this.map = m;
  }
  get resources(): ReadonlyMap<string, EncodedResource> {
    return this.map;
  }
  generate(): ReadonlyMap<string, EncodedResource> {
    return this.map;
  }
}

/**
 * Linear cache for endpoints (go-control-plane's LinearCache): one
 * ClusterLoadAssignment per cluster name, updated one at a time. A change
 * notifies the server with the names that changed (batched per microtask), and
 * the server wakes only the streams that watch those names. Acts as the EDS
 * ResourceGenerator.
 */
export class EndpointCache implements ResourceGenerator, ChangeSource {
  private resources = new Map<string, EncodedResource>();
  private listeners: ((names: ReadonlySet<string>, version: string) => void)[] = [];
  private changed = new Set<string>();
  private scheduled = false;
  private seq = 0;
  /** Results shared between streams with the same names, until the next change. */
  private views = new Map<string, ReadonlyMap<string, EncodedResource>>();
  private all: ReadonlyMap<string, EncodedResource> | undefined;

  /** Sets a cluster's endpoints; equal content (same version) is a no-op. */
  set(name: string, res: EncodedResource): void {
    if (this.resources.get(name)?.version === res.version) return;
    this.resources.set(name, res);
    this.touch(name);
  }

  delete(name: string): void {
    if (!this.resources.delete(name)) return;
    this.touch(name);
  }

  get(name: string): EncodedResource | undefined {
    return this.resources.get(name);
  }

  get size(): number {
    return this.resources.size;
  }

  /** The version of the last change notification (`endpoints-<n>`). */
  get version(): string {
    return `endpoints-${this.seq}`;
  }

  onChange(listener: (names: ReadonlySet<string>, version: string) => void): void {
    this.listeners.push(listener);
  }

  generate(_proxy: XdsProxy, watch: WatchedResource): ReadonlyMap<string, EncodedResource> {
    if (watch.wildcard) return (this.all ??= new Map(this.resources));
    const key = watchKey(watch);
    let view = this.views.get(key);
    if (!view) {
      const m = new Map<string, EncodedResource>();
      for (const n of watch.names) {
        const r = this.resources.get(n);
        if (r) m.set(n, r);
      }
      view = m;
      if (this.views.size > 10_000) this.views.clear();
      this.views.set(key, view);
    }
    return view;
  }

  private touch(name: string): void {
    this.all = undefined;
    this.views.clear();
    this.changed.add(name);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const names = this.changed;
      this.changed = new Set();
      this.seq++;
      for (const l of this.listeners) l(names, this.version);
    });
  }
}
