import type { WatchedResource } from '../types.js';

/**
 * Keys of large name sets, by the set: the server replaces a stream's names
 * Set when its subscription changes and never mutates one it handed out, so a
 * stream watching ~9,000 EDS names is sorted once per subscription, not once
 * per push (the size is checked too, in case a caller does mutate).
 */
const memo = new WeakMap<ReadonlySet<string>, { size: number; key: string }>();

/** A stable key for a watch, for caches of generator output: `*` for wildcard, else the sorted names. */
export function watchKey(watch: WatchedResource): string {
  if (!watch.wildcard && watch.names.size <= 1) for (const n of watch.names) return n; // the common EDS watch: one name
  if (watch.wildcard && watch.names.size === 0) return '*';
  const m = memo.get(watch.names);
  if (m && m.size === watch.names.size) return watch.wildcard ? `*\u0000${m.key}` : m.key;
  const key = [...watch.names].sort().join('\u0000');
  memo.set(watch.names, { size: watch.names.size, key });
  return watch.wildcard ? `*\u0000${key}` : key;
}
