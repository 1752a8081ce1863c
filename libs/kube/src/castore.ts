import type { Logger } from '@sextant/api';
import { collectionPath, isConflict, isNotFound, SupervisedInformer, type KubeClient, type KubeObject, type InformerTiming } from '@sextant/sources';

/** Secret data key → PEM/JSON text (the shape of `@sextant/ca`'s CaFiles). */
export type SecretCaFiles = Record<string, string>;
export interface SecretCaMaterial {
  files: SecretCaFiles;
  origin: 'self-signed' | 'plugged';
}

export interface SecretCaStoreOptions {
  client: KubeClient;
  /** Where the CA Secrets live (Istio: istio-system). */
  namespace: string;
  log: Logger;
  /** Operator-provided CA (Istio's plug-in CA Secret). */
  pluggedSecret?: string | undefined;
  /** Sextant's own self-signed root (Istio's name). */
  selfSignedSecret?: string | undefined;
  timing?: Partial<InformerTiming> | undefined;
}

/**
 * `@sextant/ca`'s `CaStore` over Secrets, as istiod keeps them: `cacerts`
 * (plugged in by the operator, used as is, never written) wins over
 * `istio-ca-secret` (self-signed, created and rotated by the elected writer).
 */
export class SecretCaStore {
  readonly description: string;
  private readonly plugged: string;
  private readonly selfSigned: string;

  constructor(private readonly opts: SecretCaStoreOptions) {
    this.plugged = opts.pluggedSecret ?? 'cacerts';
    this.selfSigned = opts.selfSignedSecret ?? 'istio-ca-secret';
    this.description = `Secret ${opts.namespace}/${this.plugged} or ${opts.namespace}/${this.selfSigned}`;
  }

  private path(name?: string): string {
    const p = collectionPath('', 'v1', 'secrets', this.opts.namespace);
    return name ? `${p}/${name}` : p;
  }

  private async read(name: string): Promise<(KubeObject & { data?: Record<string, string> }) | undefined> {
    try {
      return await this.opts.client.request('GET', this.path(name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new Error(`${this.description}: cannot read Secret ${this.opts.namespace}/${name}: ${(err as Error).message}`);
    }
  }

  async load(): Promise<SecretCaMaterial | undefined> {
    for (const [name, origin] of [
      [this.plugged, 'plugged'],
      [this.selfSigned, 'self-signed'],
    ] as const) {
      const s = await this.read(name);
      if (!s?.data || !Object.keys(s.data).length) continue;
      const files: SecretCaFiles = {};
      for (const [k, v] of Object.entries(s.data)) files[k] = Buffer.from(v, 'base64').toString('utf8');
      return { files, origin };
    }
    return undefined;
  }

  async save(files: SecretCaFiles): Promise<void> {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(files)) data[k] = Buffer.from(v, 'utf8').toString('base64');
    const body = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'istio.io/ca-root',
      metadata: { name: this.selfSigned, namespace: this.opts.namespace },
      data,
    };
    const current = await this.read(this.selfSigned);
    try {
      if (!current) await this.opts.client.request('POST', this.path(), { body });
      else await this.opts.client.request('PUT', this.path(this.selfSigned), { body: { ...current, type: current.type ?? body.type, data } });
    } catch (err) {
      if (isConflict(err)) throw new Error(`${this.description}: another writer changed ${this.selfSigned} concurrently; reload and retry`);
      throw err;
    }
  }

  /** Calls onChange when either Secret changes; returns a stop function. */
  watch(onChange: () => void): () => void {
    const names = new Set([this.plugged, this.selfSigned]);
    let initial = true;
    const inf = new SupervisedInformer({
      client: this.opts.client,
      group: '',
      version: 'v1',
      plural: 'secrets',
      namespace: this.opts.namespace,
      name: `Secret/v1 ${this.opts.namespace} (ca store)`,
      log: this.opts.log,
      timing: this.opts.timing,
      onChanges: (changes) => {
        if (initial) return;
        if (changes.some((c) => names.has(c.object.metadata?.name ?? ''))) onChange();
      },
      onListed: () => {
        initial = false;
      },
    });
    inf.start();
    return () => void inf.stop();
  }
}

export function createSecretCaStore(opts: SecretCaStoreOptions): SecretCaStore {
  return new SecretCaStore(opts);
}
