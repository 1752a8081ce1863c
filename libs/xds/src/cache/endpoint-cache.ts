import type { EncodedResource } from '@sextant/envoy';
import type { ChangeSource } from '../server/discovery-server.js';
import type { ResourceGenerator, WatchedResource, XdsProxy } from '../types.js';
import { watchKey } from './watch-key.js';

/**
 * The endpoint cache (go-control-plane's LinearCache): one
 * ClusterLoadAssignment per cluster name, updated one at a time. `set` and
 * `delete` notify the server with the names that changed (batched per
 * microtask), and the server wakes only the streams that watch those names;
 * `fill` and `forget` are for a generator that builds assignments on demand
 * and is told what changed by the push controller (ClassGenerators). Acts as
 * the EDS ResourceGenerator; streams watching the same names share one result.
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
  private removals = 0;

  /** Sets a cluster's endpoints; equal content (same version) is a no-op. */
  set(name: string, res: EncodedResource): void {
    if (this.resources.get(name)?.version === res.version) return;
    this.resources.set(name, res);
    this.touch(name);
  }

  delete(name: string): void {
    if (!this.resources.delete(name)) return;
    this.removals++;
    this.touch(name);
  }

  /**
   * Stores an assignment built on demand (a generator filling what a watch
   * asks for), without announcing it: nothing changed for anyone watching.
   */
  fill(name: string, res: EncodedResource): void {
    this.resources.set(name, res);
    this.all = undefined;
    this.views.clear();
  }

  /** Forgets assignments a push invalidated, without announcing it (the push controller pushes them); no names: all. */
  forget(names?: Iterable<string>): void {
    if (names === undefined) this.resources.clear();
    else for (const n of names) this.resources.delete(n);
    this.removals++;
    this.all = undefined;
    this.views.clear();
  }

  /** Bumped whenever assignments may have gone (forget, delete): a names set found complete at one value stays complete while it holds. */
  get generation(): number {
    return this.removals;
  }

  names(): IterableIterator<string> {
    return this.resources.keys();
  }

  has(name: string): boolean {
    return this.resources.has(name);
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
