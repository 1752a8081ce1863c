/**
 * The merge of a layered type's units, as a read-only view instead of a copy.
 *
 * A sidecar's CDS is its class's outbound clusters (~9,000 at S = 1000,
 * shared) and its own inbound clusters (a few); its merged output differs
 * from every other proxy's only by those few. Copying the shared part into a
 * Map per proxy cost a Map of every cluster per proxy (memory) and a copy of
 * it per proxy on every push that rebuilt a layer (a DestinationRule edit).
 * The view holds the layers and answers as that copy would: the first layer
 * with a name wins, except that a name in an `override` layer takes the last
 * such layer's resource, in the place the name first appears.
 */
export class LayeredMap<V> implements ReadonlyMap<string, V> {
  readonly size: number;
  private readonly overrides: ReadonlyMap<string, V>[];

  constructor(
    readonly parts: readonly ReadonlyMap<string, V>[],
    readonly override: readonly boolean[],
  ) {
    this.overrides = parts.filter((_, i) => override[i] === true).reverse();
    let size = parts[0]?.size ?? 0;
    // Names a later layer adds: each is looked up in the layers before it (the later layers are the small ones).
    for (let i = 1; i < parts.length; i++) for (const n of parts[i]!.keys()) if (!this.inFirst(n, i)) size++;
    this.size = size;
  }

  /**
   * With no override layer: the first layer, and what the later layers add
   * (their names the layers before lack), in merge order. A whole response is
   * then the first layer's resources, shareable by every proxy of the class,
   * followed by the proxy's own few.
   */
  split(): { first: ReadonlyMap<string, V>; rest: V[] } | undefined {
    if (this.overrides.length > 0 || this.parts.length === 0) return undefined;
    const rest: V[] = [];
    for (let i = 1; i < this.parts.length; i++) for (const [n, v] of this.parts[i]!) if (!this.inFirst(n, i)) rest.push(v);
    return { first: this.parts[0]!, rest };
  }

  /** Whether one of the first `count` layers has `name`. */
  private inFirst(name: string, count: number): boolean {
    for (let i = 0; i < count; i++) if (this.parts[i]!.has(name)) return true;
    return false;
  }

  get(name: string): V | undefined {
    for (const o of this.overrides) {
      const v = o.get(name);
      if (v !== undefined) return v;
    }
    for (const p of this.parts) {
      const v = p.get(name);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.inFirst(name, this.parts.length);
  }

  /** Each name once, in merge order, with the resource the merge would hold. */
  private *walk<T>(f: (name: string, value: V) => T): Generator<T, undefined, unknown> {
    for (let i = 0; i < this.parts.length; i++) {
      for (const [n, v] of this.parts[i]!) {
        if (i > 0 && this.inFirst(n, i)) continue;
        yield f(n, this.overrides.length ? this.get(n)! : v);
      }
    }
    return undefined;
  }

  entries(): MapIterator<[string, V]> {
    return this.walk((n, v): [string, V] => [n, v]);
  }

  keys(): MapIterator<string> {
    return this.walk((n) => n);
  }

  values(): MapIterator<V> {
    return this.walk((_, v) => v);
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    for (const [n, v] of this.entries()) fn.call(thisArg, v, n, this);
  }
}

/** Per pair of layer units (older, newer): the names whose resource differs (by identity), shared by every proxy of a class. */
const unitChanges = new WeakMap<ReadonlyMap<string, unknown>, WeakMap<ReadonlyMap<string, unknown>, readonly string[]>>();

function unitChanged(before: ReadonlyMap<string, unknown>, after: ReadonlyMap<string, unknown>): readonly string[] {
  let byAfter = unitChanges.get(before);
  if (!byAfter) unitChanges.set(before, (byAfter = new WeakMap()));
  let names = byAfter.get(after);
  if (!names) {
    const out: string[] = [];
    for (const [n, v] of after) if (before.get(n) !== v) out.push(n);
    for (const n of before.keys()) if (!after.has(n)) out.push(n);
    byAfter.set(after, (names = out));
  }
  return names;
}

/**
 * The names whose merged resource may differ between two views of the same
 * layers (what a stream was sent, and a proxy's output after a push): those
 * that differ in some layer. A layer unit kept by the push contributes none,
 * and a rebuilt class unit is compared with its predecessor once for all the
 * proxies of the class, so a push that changed a few clusters costs each
 * proxy those few, not a walk of every cluster it has. Undefined when the two
 * are not views of the same layering.
 */
export function layeredChanges<V>(before: ReadonlyMap<string, V>, after: ReadonlyMap<string, V>): Set<string> | undefined {
  if (!(before instanceof LayeredMap) || !(after instanceof LayeredMap)) return undefined;
  const b = before.parts;
  const a = after.parts;
  if (b.length !== a.length || before.override.some((o, i) => o !== after.override[i])) return undefined;
  const names = new Set<string>();
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) for (const n of unitChanged(b[i]!, a[i]!)) names.add(n);
  return names;
}
