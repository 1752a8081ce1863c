import { isDeepStrictEqual } from 'node:util';
import type { KnownKind, Logger, ObjectKey, TypedObject } from '@sextant/api';
import { keyString, silentLogger } from '@sextant/api';
import type { ConfigBatch, ConfigObject } from './types.js';


/** What one applied batch changed: every key whose visible object was added, updated or deleted. */
export interface StoreChange {
  revision: number;
  /** The source whose batch caused the change. */
  source: string;
  /** Changed keys, sorted by kind, namespace, name. */
  changed: ObjectKey[];
  /** The kinds among `changed`, for quick "does this concern me" checks. */
  kinds: ReadonlySet<string>;
}

/** A read-only view of the store at one revision; later batches never change it. */
export interface StoreView {
  readonly revision: number;
  get<K extends KnownKind>(kind: K, namespace: string | undefined, name: string): TypedObject<K> | undefined;
  get(kind: string, namespace: string | undefined, name: string): ConfigObject | undefined;
  /** Objects of a kind, sorted by namespace then name; only one namespace when given. */
  list<K extends KnownKind>(kind: K, namespace?: string): readonly TypedObject<K>[];
  list(kind: string, namespace?: string): readonly ConfigObject[];
  kinds(): string[];
  size(): number;
}

export interface ConfigStoreOptions {
  /**
   * When two sources hold the same kind/namespace/name, the one listed first
   * here is visible (the other is kept and shows up if the first deletes it).
   * Sources not listed rank after, in the order they first sent a batch.
   */
  sourcePriority?: readonly string[];
  log?: Logger;
}

function compareObjects(a: ConfigObject, b: ConfigObject): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  return an < bn ? -1 : an > bn ? 1 : a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** The namespace key of cluster-scoped objects (no namespace can be this); "" is no namespace too, as in keyString. */
const CLUSTER = '\u0000';
const namespaceKey = (namespace: string | undefined): string => namespace || CLUSTER;
type ByName = ReadonlyMap<string, ConfigObject>;

/**
 * Objects of one kind, by namespace, then name. Replaced, never mutated, once
 * a view may hold it; a change copies only the namespaces it touches, so a Pod
 * or EndpointSlice event costs its namespace's size, not the whole kind's.
 */
class KindTable {
  private sorted: ConfigObject[] | undefined;
  private sortedIn: Map<string, readonly ConfigObject[]> | undefined;
  readonly size: number;
  constructor(readonly byNamespace: ReadonlyMap<string, ByName>) {
    let n = 0;
    for (const m of byNamespace.values()) n += m.size;
    this.size = n;
  }
  get(namespace: string | undefined, name: string): ConfigObject | undefined {
    return this.byNamespace.get(namespaceKey(namespace))?.get(name);
  }
  list(namespace?: string): readonly ConfigObject[] {
    if (namespace === undefined) {
      this.sorted ??= [...this.byNamespace.values()].flatMap((m) => [...m.values()]).sort(compareObjects);
      return this.sorted;
    }
    let l = (this.sortedIn ??= new Map()).get(namespace);
    if (!l) this.sortedIn.set(namespace, (l = [...(this.byNamespace.get(namespaceKey(namespace))?.values() ?? [])].sort(compareObjects)));
    return l;
  }
  /** A table with `changes` (namespace → its new objects by name) over this one's. */
  with(changes: ReadonlyMap<string, ByName>): KindTable {
    const next = new Map(this.byNamespace);
    for (const [ns, m] of changes) {
      if (m.size > 0) next.set(ns, m);
      else next.delete(ns);
    }
    return new KindTable(next);
  }
}

const EMPTY_TABLE = new KindTable(new Map());

class View implements StoreView {
  constructor(
    readonly revision: number,
    private readonly tables: ReadonlyMap<string, KindTable>,
  ) {}
  get(kind: string, namespace: string | undefined, name: string): any {
    return this.tables.get(kind)?.get(namespace, name);
  }
  list(kind: string, namespace?: string): readonly any[] {
    return this.tables.get(kind)?.list(namespace) ?? [];
  }
  kinds(): string[] {
    return [...this.tables.keys()].filter((k) => this.tables.get(k)!.size > 0).sort();
  }
  size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }
}

/**
 * The current valid objects from every source, keyed by kind/namespace/name.
 * A plain data structure: batches are applied atomically and synchronously,
 * each change bumps the revision by one and is announced once to listeners.
 */
export class ConfigStore implements StoreView {
  private rev = 0;
  private tables = new Map<string, KindTable>();
  /** source → key string → object, everything each source currently holds. */
  private readonly bySource = new Map<string, Map<string, ConfigObject>>();
  private readonly priority: string[];
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private readonly log: Logger;
  private current: View;

  constructor(opts: ConfigStoreOptions = {}) {
    this.priority = [...(opts.sourcePriority ?? [])];
    this.log = opts.log ?? silentLogger;
    this.current = new View(0, this.tables);
  }

  get revision(): number {
    return this.rev;
  }

  /**
   * Applies one batch atomically. Returns what changed, or undefined when the
   * batch changed nothing visible (the revision then stays).
   */
  apply(batch: ConfigBatch): StoreChange | undefined {
    if (!this.priority.includes(batch.source)) this.priority.push(batch.source);
    let held = this.bySource.get(batch.source);
    if (!held) this.bySource.set(batch.source, (held = new Map()));
    const touched = new Map<string, ObjectKey>();
    for (const ev of batch.events) {
      const o = ev.object;
      const key: ObjectKey = { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
      const ks = keyString(key);
      if (ev.type === 'delete') held.delete(ks);
      else held.set(ks, o);
      touched.set(ks, key);
    }
    return this.commit(batch.source, touched);
  }

  /** Forgets everything a source holds (e.g. a source that was removed). */
  removeSource(source: string): StoreChange | undefined {
    const held = this.bySource.get(source);
    if (!held) return undefined;
    const touched = new Map<string, ObjectKey>();
    for (const o of held.values()) touched.set(keyString({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name }), { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
    this.bySource.delete(source);
    return this.commit(source, touched);
  }

  private visible(ks: string): ConfigObject | undefined {
    for (const s of this.priority) {
      const o = this.bySource.get(s)?.get(ks);
      if (o) return o;
    }
    return undefined;
  }

  private commit(source: string, touched: Map<string, ObjectKey>): StoreChange | undefined {
    const changed: ObjectKey[] = [];
    // kind → namespace → that namespace's objects after the batch (copied from the current table once).
    const newTables = new Map<string, Map<string, Map<string, ConfigObject>>>();
    for (const [ks, key] of touched) {
      const next = this.visible(ks);
      const table = this.tables.get(key.kind);
      const prev = table?.get(key.namespace, key.name);
      if (prev === next || (prev && next && isDeepStrictEqual(prev, next))) continue;
      let byNs = newTables.get(key.kind);
      if (!byNs) newTables.set(key.kind, (byNs = new Map()));
      const ns = namespaceKey(key.namespace);
      let t = byNs.get(ns);
      if (!t) byNs.set(ns, (t = new Map(table?.byNamespace.get(ns))));
      if (next) t.set(key.name, next);
      else t.delete(key.name);
      changed.push(key);
    }
    if (changed.length === 0) return undefined;
    const tables = new Map(this.tables);
    for (const [kind, byNs] of newTables) tables.set(kind, (this.tables.get(kind) ?? EMPTY_TABLE).with(byNs));
    this.tables = tables;
    this.rev += 1;
    this.current = new View(this.rev, tables);
    changed.sort((a, b) => {
      const x = keyString(a);
      const y = keyString(b);
      return x < y ? -1 : x > y ? 1 : 0;
    });
    const change: StoreChange = { revision: this.rev, source, changed, kinds: new Set(changed.map((k) => k.kind)) };
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.log.error({ err, revision: this.rev }, 'config store listener failed');
      }
    }
    return change;
  }

  /** Registers a change listener; returns an unsubscribe function. */
  onChange(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An immutable view of the current revision (cheap: tables are shared copy-on-write). */
  snapshot(): StoreView {
    return this.current;
  }

  get<K extends KnownKind>(kind: K, namespace: string | undefined, name: string): TypedObject<K> | undefined;
  get(kind: string, namespace: string | undefined, name: string): ConfigObject | undefined;
  get(kind: string, namespace: string | undefined, name: string): ConfigObject | undefined {
    return this.current.get(kind, namespace, name);
  }

  list<K extends KnownKind>(kind: K, namespace?: string): readonly TypedObject<K>[];
  list(kind: string, namespace?: string): readonly ConfigObject[];
  list(kind: string, namespace?: string): readonly ConfigObject[] {
    return this.current.list(kind, namespace);
  }

  kinds(): string[] {
    return this.current.kinds();
  }

  size(): number {
    return this.current.size();
  }
}
