import { lstatSync, realpathSync } from 'node:fs';
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger, ObjectKey, ValidationIssue } from '@sextant/api';
import { keyString, parseFieldPath, silentLogger, validateObject } from '@sextant/api';
import { watch, type FSWatcher } from 'chokidar';
import { Composer, LineCounter, Parser, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import type { ConfigBatch, ConfigEvent, ConfigObject, ConfigSource } from './types.js';

/**
 * The folder source: every `.yaml`, `.yml` and `.json` file below a directory
 * (recursively; names starting with '.' are skipped, which also skips the
 * `..data` links of a mounted ConfigMap — but changes to those are watched,
 * so the ConfigMap's atomic updates are seen through the visible links).
 *
 * - A multi-document file yields every document; `List` kinds are expanded.
 * - An invalid object is logged, kept in `rejected()` and skipped. If it had a
 *   valid version, that version keeps being served.
 * - A file that no longer parses as YAML keeps serving all its last valid objects.
 * - Deleting a file deletes its objects; an object moving between files is
 *   an update (never a delete and an add).
 * - The same kind/namespace/name in two files: the first file in path order
 *   wins and the other definition is reported as a duplicate.
 * - Namespaced objects without a namespace go to `default`.
 * - Bursts of file events are debounced, so one save is one batch.
 * - A file larger than `maxFileBytes` is not read: it is reported in
 *   `fileErrors()` and its last valid objects keep serving.
 * - A symbolic link to a directory that contains it (a loop) is not followed,
 *   neither by the reader nor by the watcher; it is logged once and listed in
 *   `fileErrors()` while it exists.
 */

export interface FolderSourceOptions {
  dir: string;
  log?: Logger;
  /** Source name in batches; default `folder`. */
  name?: string;
  /** Quiet time after the last file event before a batch is built; default 100 ms. */
  debounceMs?: number;
  /** Longest a steady stream of events can delay a batch; default 1000 ms. */
  maxDelayMs?: number;
  /** Largest config file read, in bytes (`--config-max-file-size`); default DEFAULT_MAX_FILE_BYTES. */
  maxFileBytes?: number;
}

/**
 * 4 MiB: well above any real config file (Kubernetes caps one object at
 * about 1.5 MiB in etcd), well below what stalls the daemon (a 50 MB file
 * took 33 s and 1.45 GB to parse).
 */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;

/** A rejected object, with the file that holds it (path relative to the folder). */
export interface RejectedObject extends ValidationIssue {
  key: ObjectKey;
  file: string;
  /** 1-based line of the offending field in the file, when it can be found. */
  line?: number;
}

/**
 * A file that cannot be read as YAML/JSON or is over the size limit (its
 * last valid objects keep being served), or a symbolic link loop.
 */
export interface FileError {
  file: string;
  line?: number;
  column?: number;
  reason: string;
}

export interface FolderSource extends ConfigSource {
  rejected(): ReadonlyArray<RejectedObject>;
  fileErrors(): ReadonlyArray<FileError>;
  /** The objects currently served, sorted by kind/namespace/name. */
  objects(): ConfigObject[];
  /** Re-reads every file now (also done on every watcher event for the files it names). */
  rescan(): Promise<void>;
}

const CONFIG_FILE = /\.(ya?ml|json)$/i;
const DEFAULT_NAMESPACE = 'default';

interface FileState {
  /** What was parsed; undefined when the file was not read (over the size limit). */
  content: string | undefined;
  /** Objects this file serves (valid ones, plus the last valid version of objects now invalid), by key string. */
  objects: Map<string, ConfigObject>;
  /** Keys this file defines but that failed validation, with their issues. */
  invalid: Map<string, { key: ObjectKey; issues: LocatedIssue[] }>;
  /** Objects too broken to have a key. */
  unkeyed: LocatedIssue[];
  parseError?: FileError;
}

type LocatedIssue = ValidationIssue & { line?: number | undefined };

interface Served {
  object: ConfigObject;
  file: string;
}

function keyOf(o: ConfigObject): ObjectKey {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
}

/** True when `dir` is `ancestor` or lies below it (real paths). */
function within(dir: string, ancestor: string): boolean {
  return dir === ancestor || dir.startsWith(ancestor.endsWith(sep) ? ancestor : ancestor + sep);
}

/**
 * Whether the symbolic link at `path` closes a loop: it resolves to nothing
 * (ELOOP, e.g. a link to itself) or to a directory that contains the link.
 * Synchronous because the watcher's `ignored` callback is; only links pay
 * for more than one lstat.
 */
function isLoopLink(path: string): boolean {
  try {
    if (!lstatSync(path).isSymbolicLink()) return false;
  } catch {
    return false;
  }
  try {
    return within(realpathSync(dirname(path)), realpathSync(path));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ELOOP';
  }
}

interface Listing {
  files: string[];
  /** Symbolic link loops found, by path relative to the root. */
  loops: Map<string, FileError>;
}

const MAX_DEPTH = 32;

async function listFiles(root: string): Promise<Listing> {
  const files: string[] = [];
  const loops = new Map<string, FileError>();
  const rel = (path: string) => relative(root, path).split(sep).join('/');
  // `stack` holds the real paths of the directories being walked, so a link back into any of them is a loop.
  const walk = async (dir: string, stack: string[]): Promise<void> => {
    if (stack.length > MAX_DEPTH) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      let real = join(stack[stack.length - 1]!, e.name);
      if (e.isSymbolicLink()) {
        try {
          real = await realpath(path);
          const s = await stat(real);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ELOOP')
            loops.set(rel(path), { file: rel(path), reason: 'symbolic link loop: the link never resolves (ELOOP); skipped' });
          continue;
        }
        if (isDir && stack.some((d) => within(d, real))) {
          const target = within(real, root) ? rel(real) || '.' : real;
          loops.set(rel(path), { file: rel(path), reason: `symbolic link loop: the link points to ${JSON.stringify(target)}, which contains it; not followed` });
          continue;
        }
      }
      if (isDir) await walk(path, [...stack, real]);
      else if (isFile && CONFIG_FILE.test(e.name)) files.push(rel(path));
    }
  };
  await walk(root, [await realpath(root).catch(() => root)]);
  return { files: files.sort(), loops };
}

/** Reads a file unless it is larger than `max` bytes (counted on the bytes read, so a growing file cannot slip past). */
async function readBounded(path: string, max: number): Promise<{ content: string } | { size: number }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size > max) return { size };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, max + 1 - total));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) return { size: Math.max(total, (await fh.stat()).size) };
    }
    return { content: Buffer.concat(chunks, total).toString('utf8') };
  } finally {
    await fh.close();
  }
}

function tooLarge(file: string, size: number, max: number): FileError {
  return { file, reason: `file is ${size} bytes, over the limit of ${max} bytes (--config-max-file-size); not read` };
}

/** One object read from a file, and how to find the line of a field in it. */
interface Item {
  value: unknown;
  lineOf(field: string): number | undefined;
}

function locator(doc: Document, lines: LineCounter, prefix: (string | number)[]): (field: string) => number | undefined {
  const nodeAt = (path: (string | number)[]): unknown => (path.length === 0 ? doc.contents : doc.getIn(path, true));
  return (field) => {
    const path = [...prefix, ...parseFieldPath(field)];
    // The field's key where it is written, else the deepest node that exists on the path.
    for (let n = path.length; n >= 0; n--) {
      if (n > 0) {
        const parent = nodeAt(path.slice(0, n - 1));
        const last = path[n - 1];
        if (isMap(parent)) {
          const pair = parent.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === last);
          if (pair && isNode(pair.key) && pair.key.range) return lines.linePos(pair.key.range[0]).line;
        } else if (isSeq(parent) && typeof last === 'number') {
          const item = parent.items[last];
          if (isNode(item) && item.range) return lines.linePos(item.range[0]).line;
        }
        continue;
      }
      const node = nodeAt([]);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
}

/**
 * Hands the event loop back every few milliseconds of parsing or validating,
 * so a large file (within the size limit) never holds up `/ready`, xDS
 * requests or pushes for longer than one slice.
 */
class Slicer {
  private start = performance.now();
  constructor(private readonly sliceMs = 10) {}
  async maybeYield(): Promise<void> {
    if (performance.now() - this.start < this.sliceMs) return;
    await nextTurn();
    this.start = performance.now();
  }
}

/** The objects of a file (documents, with `List` kinds expanded), or a parse error. Parses one document at a time. */
async function parseFile(file: string, content: string, slicer = new Slicer()): Promise<{ items: Item[] } | { error: FileError }> {
  try {
    const lines = new LineCounter();
    const composer = new Composer({ merge: true });
    const items: Item[] = [];
    for (const doc of composer.compose(new Parser(lines.addNewLine).parse(content))) {
      const err = doc.errors[0];
      if (err) {
        const pos = lines.linePos(err.pos[0]);
        const reason = err.message.split('\n')[0]!.replace(/:$/, '').replace(/ at line \d+, column \d+$/, '');
        return { error: { file, line: pos.line, column: pos.col, reason } };
      }
      const value: unknown = doc.toJS({ maxAliasCount: 100 });
      await slicer.maybeYield();
      if (value === null || value === undefined) continue;
      const o = value as { kind?: unknown; items?: unknown };
      if (typeof o === 'object' && typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) {
        o.items.forEach((item, i) => {
          if (item !== null && item !== undefined) items.push({ value: item, lineOf: locator(doc, lines, ['items', i]) });
        });
      } else items.push({ value, lineOf: locator(doc, lines, []) });
    }
    return { items };
  } catch (err) {
    return { error: { file, reason: err instanceof Error ? err.message : String(err) } };
  }
}

/**
 * Reads config documents once, the way the folder source does (folders
 * recursively, multi-document YAML/JSON, `List` kinds expanded), for offline
 * tools such as `sextant translate`. Files that do not parse are reported.
 */
export async function readConfigDocuments(
  paths: string[],
  opts: { maxFileBytes?: number } = {},
): Promise<{ documents: unknown[]; errors: FileError[] }> {
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const documents: unknown[] = [];
  const errors: FileError[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    let files = [abs];
    if ((await stat(abs)).isDirectory()) {
      const listing = await listFiles(abs);
      files = listing.files.map((f) => join(abs, f));
      errors.push(...[...listing.loops.values()].map((e) => ({ ...e, file: join(abs, e.file) })));
    }
    for (const file of files) {
      const read = await readBounded(file, max);
      if (!('content' in read)) {
        errors.push(tooLarge(file, read.size, max));
        continue;
      }
      const parsed = await parseFile(file, read.content);
      if ('error' in parsed) errors.push(parsed.error);
      else documents.push(...parsed.items.map((i) => i.value));
    }
  }
  return { documents, errors };
}

export function createFolderSource(opts: FolderSourceOptions): FolderSource {
  const root = resolve(opts.dir);
  const name = opts.name ?? 'folder';
  const log = (opts.log ?? silentLogger).child({ source: name, dir: root });
  const debounceMs = opts.debounceMs ?? 100;
  const maxDelayMs = opts.maxDelayMs ?? 1000;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;

  const files = new Map<string, FileState>();
  /** Symbolic link loops currently present, by relative path; each is logged when first seen. */
  let loops = new Map<string, FileError>();
  let served = new Map<string, Served>();
  let duplicates: RejectedObject[] = [];
  const listeners = new Set<(b: ConfigBatch) => void>();
  let synced = false;
  let stopped = false;
  let watcher: FSWatcher | undefined;

  // Debounced, serialized processing.
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let firstPendingAt = 0;
  let chain: Promise<void> = Promise.resolve();

  const emit = (events: ConfigEvent[], force: boolean) => {
    if (events.length === 0 && !force) return;
    const batch: ConfigBatch = { source: name, events };
    for (const l of [...listeners]) {
      try {
        l(batch);
      } catch (err) {
        log.error({ err }, 'batch listener failed');
      }
    }
  };

  const logIssues = (file: string, issues: LocatedIssue[]) => {
    for (const i of issues)
      log.warn({ kind: i.kind, namespace: i.namespace, name: i.name, field: i.field, reason: i.reason, file, line: i.line }, 'invalid object rejected');
  };

  /** Re-reads the given files (all when `only` is undefined) and emits one batch of what changed. */
  const reconcile = async (only: Set<string> | undefined, force: boolean): Promise<void> => {
    const listing = await listFiles(root);
    const listed = listing.files;
    const listedSet = new Set(listed);
    for (const [path, loop] of listing.loops) if (!loops.has(path)) log.warn({ file: path, reason: loop.reason }, 'symbolic link loop skipped');
    loops = listing.loops;
    // An event on anything that is not a listed file (a directory, a swapped `..data` link) rereads everything;
    // unchanged contents produce no events.
    const all = only === undefined || [...only].some((p) => !listedSet.has(p) && !files.has(p));
    const toRead = all ? listed : listed.filter((f) => !files.has(f) || only.has(f));
    let changedFiles = 0;
    for (const file of toRead) {
      let read: Awaited<ReturnType<typeof readBounded>>;
      try {
        read = await readBounded(join(root, file), maxFileBytes);
      } catch (err) {
        // Gone between listing and reading: the next event removes it.
        log.debug({ file, err: String(err) }, 'file vanished while reading');
        continue;
      }
      const old = files.get(file);
      if (!('content' in read)) {
        // Too large: not parsed; its last valid objects keep serving. Logged once per size seen.
        const error = tooLarge(file, read.size, maxFileBytes);
        if (old?.parseError?.reason === error.reason) continue;
        log.error({ file, size: read.size, limit: maxFileBytes }, 'config file over the size limit; keeping its last valid objects');
        files.set(file, { content: undefined, objects: old?.objects ?? new Map(), invalid: old?.invalid ?? new Map(), unkeyed: old?.unkeyed ?? [], parseError: error });
        changedFiles++;
        continue;
      }
      const content = read.content;
      if (old && old.content === content) continue;
      changedFiles++;
      const slicer = new Slicer();
      const parsed = await parseFile(file, content, slicer);
      if ('error' in parsed) {
        log.error({ file, line: parsed.error.line, column: parsed.error.column, reason: parsed.error.reason }, 'file is not valid YAML; keeping its last valid objects');
        files.set(file, {
          content,
          objects: old?.objects ?? new Map(),
          invalid: old?.invalid ?? new Map(),
          unkeyed: old?.unkeyed ?? [],
          parseError: parsed.error,
        });
        continue;
      }
      const state: FileState = { content, objects: new Map(), invalid: new Map(), unkeyed: [] };
      for (const item of parsed.items) {
        await slicer.maybeYield();
        const res = validateObject(item.value, { defaultNamespace: DEFAULT_NAMESPACE });
        if (res.ok) {
          const ks = keyString(keyOf(res.object));
          if (state.objects.has(ks) && !state.invalid.has(ks)) {
            const issue: LocatedIssue = {
              ...keyOf(res.object),
              field: 'metadata.name',
              reason: `duplicate: ${ks} is defined earlier in the same file; this definition is ignored`,
              line: item.lineOf('metadata.name'),
            };
            state.unkeyed.push(issue);
            logIssues(file, [issue]);
          } else {
            state.objects.set(ks, res.object);
            state.invalid.delete(ks);
          }
        } else {
          const located: LocatedIssue[] = res.issues.map((i) => ({ ...i, line: item.lineOf(i.field) }));
          logIssues(file, located);
          if (res.key) {
            const ks = keyString(res.key);
            if (state.objects.has(ks) && !state.invalid.has(ks)) continue; // an earlier valid definition in this file stands
            state.invalid.set(ks, { key: res.key, issues: located });
            const last = old?.objects.get(ks);
            if (last) state.objects.set(ks, last);
          } else state.unkeyed.push(...located);
        }
      }
      files.set(file, state);
    }
    for (const file of [...files.keys()]) {
      if (!listedSet.has(file)) {
        files.delete(file);
        changedFiles++;
      }
    }
    if (changedFiles === 0 && !force) return;

    // Resolve which file serves each key: first file in path order wins.
    const next = new Map<string, Served>();
    const dups: RejectedObject[] = [];
    const order = [...files.keys()].sort();
    for (const file of order) {
      for (const [ks, object] of files.get(file)!.objects) {
        const winner = next.get(ks);
        if (!winner) next.set(ks, { object, file });
        else
          dups.push({
            ...keyOf(object),
            key: keyOf(object),
            file,
            field: 'metadata.name',
            reason: `duplicate: ${ks} is already defined in ${winner.file}; this definition is ignored`,
          });
      }
    }
    // An object that moved into a file where it is invalid keeps its last valid version there.
    for (const file of order) {
      const state = files.get(file)!;
      for (const [ks] of state.invalid) {
        const prev = served.get(ks);
        if (!next.has(ks) && prev) {
          next.set(ks, { object: prev.object, file });
          state.objects.set(ks, prev.object);
        }
      }
    }
    const oldDupKeys = new Set(duplicates.map((d) => `${d.file}|${keyString(d.key)}`));
    for (const d of dups) if (!oldDupKeys.has(`${d.file}|${keyString(d.key)}`)) logIssues(d.file, [d]);
    duplicates = dups;

    const events: ConfigEvent[] = [];
    const keys = [...new Set([...served.keys(), ...next.keys()])].sort();
    for (const ks of keys) {
      const before = served.get(ks);
      const after = next.get(ks);
      if (before && !after) events.push({ type: 'delete', object: before.object });
      else if (!before && after) events.push({ type: 'add', object: after.object });
      else if (before && after && (before.file !== after.file || !isDeepStrictEqual(before.object, after.object)))
        events.push({ type: 'update', object: after.object, old: before.object });
    }
    served = next;
    if (events.length > 0) log.info({ events: events.length, objects: served.size }, 'config folder changed');
    emit(events, force);
  };

  const enqueue = (only: Set<string> | undefined, force: boolean): Promise<void> => {
    chain = chain.then(() => (stopped ? undefined : reconcile(only, force))).catch((err) => log.error({ err }, 'config folder processing failed'));
    return chain;
  };

  const flush = () => {
    timer = undefined;
    const only = new Set(pending);
    pending.clear();
    void enqueue(only, false);
  };

  const onFsEvent = (path: string) => {
    if (stopped) return;
    const rel = relative(root, path).split(sep).join('/');
    pending.add(rel);
    const now = Date.now();
    if (timer === undefined) firstPendingAt = now;
    else clearTimeout(timer);
    const wait = Math.max(0, Math.min(debounceMs, firstPendingAt + maxDelayMs - now));
    timer = setTimeout(flush, wait);
  };

  return {
    name,
    async start() {
      if (watcher) return;
      const info = await stat(root).catch(() => undefined);
      if (!info?.isDirectory()) throw new Error(`config folder ${root} does not exist or is not a directory`);
      watcher = watch(root, {
        ignoreInitial: true,
        persistent: true,
        depth: MAX_DEPTH,
        // Hidden entries are skipped, except the `..data`-style links a mounted ConfigMap swaps atomically.
        // A link back into its own ancestors is not followed (the watcher would walk it until the depth limit, exponentially).
        ignored: (path: string) => path !== root && ((basename(path).startsWith('.') && !basename(path).startsWith('..')) || isLoopLink(path)),
      });
      watcher.on('all', (_event, path) => onFsEvent(path));
      watcher.on('error', (err) => log.error({ err: String(err) }, 'config folder watch error'));
      await new Promise<void>((res) => watcher!.once('ready', () => res()));
      await enqueue(undefined, true);
      synced = true;
    },
    hasSynced: () => synced,
    onBatch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    rejected() {
      const out: RejectedObject[] = [];
      for (const [file, state] of [...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const at = (i: LocatedIssue, key: ObjectKey): RejectedObject => {
          const { line, ...rest } = i;
          return line === undefined ? { ...rest, key, file } : { ...rest, key, file, line };
        };
        for (const { key, issues } of state.invalid.values()) for (const i of issues) out.push(at(i, key));
        for (const i of state.unkeyed) out.push(at(i, { kind: i.kind, namespace: i.namespace, name: i.name }));
      }
      return [...out, ...duplicates];
    },
    fileErrors() {
      const errors = [...[...files.values()].flatMap((s) => (s.parseError ? [s.parseError] : [])), ...loops.values()];
      return errors.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    },
    objects() {
      return [...served.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => s.object);
    },
    rescan() {
      return enqueue(undefined, false);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await watcher?.close();
      await chain;
    },
  };
}
