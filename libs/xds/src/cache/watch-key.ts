import type { WatchedResource } from '../types.js';

/** A stable key for a watch, for caches of generator output: `*` for wildcard, else the sorted names. */
export function watchKey(watch: WatchedResource): string {
  if (!watch.wildcard && watch.names.size <= 1) for (const n of watch.names) return n; // the common EDS watch: one name
  if (watch.wildcard) return watch.names.size ? `*\u0000${[...watch.names].sort().join('\u0000')}` : '*';
  return [...watch.names].sort().join('\u0000');
}
