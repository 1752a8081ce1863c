/**
 * Generators for tests of the ADS server itself: a static set per type, and
 * the endpoint cache (@sextant/xds's cache/endpoint-cache.ts), which announces changed names
 * (the server's ChangeSource), so the incremental EDS path can be driven
 * without the daemon's translation.
 */
import type { EncodedResource } from '@sextant/envoy';
import type { ResourceGenerator } from '@sextant/xds';

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

export { EndpointCache } from '@sextant/xds';
