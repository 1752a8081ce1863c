/**
 * Where CA material lives. The layout is Istio's `cacerts`: four PEM files.
 * Kubernetes mode implements `CaStore` over the `istio-ca-secret` (self-signed)
 * and `cacerts` (plugged-in) Secrets in libs/sources; `FileCaStore` is the
 * `--ca-dir DIR` implementation.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CA_FILES = ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem'] as const;
/** Extra keys Sextant keeps next to a self-signed root to carry rotation state. */
export const STATE_FILE = 'sextant-ca.json';
export const NEXT_CERT = 'next-ca-cert.pem';
export const NEXT_KEY = 'next-ca-key.pem';

/** File name (or Secret data key) → PEM/JSON text. */
export type CaFiles = Record<string, string>;

export interface CaMaterial {
  files: CaFiles;
  /**
   * 'self-signed': created and rotated by Sextant (the istio-ca-secret, or a
   * --ca-dir holding sextant-ca.json). 'plugged': provided by the operator
   * (the cacerts Secret, or a --ca-dir without sextant-ca.json); used as is and
   * reloaded when it changes, never rotated or overwritten by Sextant.
   */
  origin: 'self-signed' | 'plugged';
}

export interface CaStore {
  /** For logs and errors, e.g. `ca-dir /etc/sextant/ca` or `Secret istio-system/cacerts`. */
  readonly description: string;
  /** The current material, or undefined when there is none yet. */
  load(): Promise<CaMaterial | undefined>;
  /** Persists self-signed material (all keys in `files`). Only called by the elected writer. */
  save(files: CaFiles): Promise<void>;
  /** Calls `onChange` when the material may have changed outside this process. Returns a stop function. */
  watch?(onChange: () => void): () => void;
}

/** An in-memory store, for tests and for running without persistence. */
export class MemoryCaStore implements CaStore {
  readonly description = 'memory';
  private listeners = new Set<() => void>();
  constructor(public material?: CaMaterial) {}
  async load(): Promise<CaMaterial | undefined> {
    return this.material ? { origin: this.material.origin, files: { ...this.material.files } } : undefined;
  }
  async save(files: CaFiles): Promise<void> {
    this.material = { origin: 'self-signed', files: { ...files } };
  }
  /** Replaces the material as an operator would, and notifies watchers. */
  replace(material: CaMaterial): void {
    this.material = material;
    for (const l of this.listeners) l();
  }
  watch(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }
}

/** `--ca-dir DIR`: the four cacerts files, plus sextant-ca.json when the root is Sextant's own. */
export class FileCaStore implements CaStore {
  readonly description: string;
  constructor(
    readonly dir: string,
    private debounceMs = 200,
  ) {
    this.description = `ca-dir ${dir}`;
  }

  async load(): Promise<CaMaterial | undefined> {
    const files: CaFiles = {};
    for (const f of [...CA_FILES, STATE_FILE, NEXT_CERT, NEXT_KEY]) {
      try {
        files[f] = await readFile(join(this.dir, f), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.description}: cannot read ${f}: ${(e as Error).message}`);
      }
    }
    if (!files['ca-cert.pem'] && !files['ca-key.pem'] && !files['root-cert.pem']) return undefined;
    return { files, origin: files[STATE_FILE] ? 'self-signed' : 'plugged' };
  }

  async save(files: CaFiles): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // The state file goes last: a crash mid-save leaves a directory that still loads.
    const names = Object.keys(files).sort((a, b) => (a === STATE_FILE ? 1 : b === STATE_FILE ? -1 : a.localeCompare(b)));
    for (const f of names) {
      const tmp = join(this.dir, `.${f}.tmp-${process.pid}`);
      await writeFile(tmp, files[f]!, { mode: f.includes('key') ? 0o600 : 0o644 });
      await rename(tmp, join(this.dir, f));
    }
  }

  watch(onChange: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.dir, { persistent: false }, (_ev, file) => {
        if (file && String(file).startsWith('.')) return;
        clearTimeout(timer);
        timer = setTimeout(onChange, this.debounceMs);
        timer.unref();
      });
      watcher.on('error', () => {});
    } catch {
      // The directory may not exist yet; nothing to watch.
    }
    return () => {
      clearTimeout(timer);
      watcher?.close();
    };
  }
}
