import type { EncodedResource } from '@sextant/envoy';
import type { ResourceGenerator, WatchedResource } from '../types.js';

/** A stable key for a watch: `*` for wildcard, else the sorted names. */
export function watchKey(watch: WatchedResource): string {
  if (!watch.wildcard && watch.names.size <= 1) for (const n of watch.names) return n; // the common EDS watch: one name
  if (watch.wildcard) return watch.names.size ? `*\u0000${[...watch.names].sort().join('\u0000')}` : '*';
  return [...watch.names].sort().join('\u0000');
}


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

