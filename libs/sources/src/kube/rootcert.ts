import type { Logger } from '@sextant/api';
import { collectionPath, isConflict, isNotFound, type KubeClient, type KubeObject } from './client.js';
import { SupervisedInformer, type InformerTiming } from './informer.js';

export const rootCertConfigMapName = 'istio-ca-root-cert';
export const rootCertKey = 'root-cert.pem';

/** Namespaces that never get the root certificate (Istio skips the same). */
export const defaultExcludedNamespaces = ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage'];

export interface RootCertPublisherOptions {
  client: KubeClient;
  /** The PEM of the mesh root(s) to publish; called on every reconcile. */
  getRootPem: () => string | Promise<string>;
  log: Logger;
  excludedNamespaces?: string[] | undefined;
  timing?: Partial<InformerTiming> | undefined;
  /** Delay before retrying a namespace whose write failed (ms, default 1 s, doubling to 30 s). */
  retryMs?: number | undefined;
}

export interface RootCertPublisher {
  /** Starts watching namespaces and the ConfigMaps and keeps them current; call when this replica becomes leader. */
  start(): Promise<void>;
  /** Stops writing (when leadership is lost or on shutdown). */
  stop(): Promise<void>;
  /** The root changed: rewrite every namespace's ConfigMap. */
  refresh(): void;
  /** Resolves when no namespace is waiting to be written (for tests and readiness). */
  idle(): Promise<void>;
  running(): boolean;
}

/**
 * Keeps `istio-ca-root-cert` (key `root-cert.pem`) in every namespace, as
 * istiod's namespace controller does: new namespaces get it, edits and
 * deletions are repaired, a root rotation is written everywhere. It writes
 * only while started, so the caller starts it on leadership.
 */
export function createRootCertPublisher(opts: RootCertPublisherOptions): RootCertPublisher {
  const log = opts.log.child({ controller: 'root-cert-publisher' });
  const excluded = new Set(opts.excludedNamespaces ?? defaultExcludedNamespaces);
  const retryBase = opts.retryMs ?? 1_000;
  let nsInf: SupervisedInformer | undefined;
  let cmInf: SupervisedInformer | undefined;
  let active = false;
  const dirty = new Set<string>();
  const failures = new Map<string, number>();
  const retryTimers = new Set<NodeJS.Timeout>();
  let working: Promise<void> | undefined;
  let idleWaiters: Array<() => void> = [];
  const namespaces = new Map<string, KubeObject>();
  const configMaps = new Map<string, KubeObject>();

  const eligible = (ns: KubeObject | undefined) =>
    Boolean(ns?.metadata?.name) && !excluded.has(ns!.metadata!.name!) && (ns as { status?: { phase?: string } }).status?.phase !== 'Terminating';

  const kick = () => {
    if (!active || working) return;
    working = work().finally(() => {
      working = undefined;
      if (dirty.size && active) kick();
      else if (!dirty.size && !retryTimers.size) for (const w of idleWaiters.splice(0)) w();
    });
  };

  const work = async () => {
    while (active && dirty.size) {
      const ns = dirty.values().next().value as string;
      dirty.delete(ns);
      if (!eligible(namespaces.get(ns))) continue;
      try {
        await reconcile(ns);
        failures.delete(ns);
      } catch (err) {
        const n = (failures.get(ns) ?? 0) + 1;
        failures.set(ns, n);
        const delay = Math.min(30_000, retryBase * 2 ** (n - 1)) * (0.5 + Math.random() * 0.5);
        log.warn({ namespace: ns, err: (err as Error).message, retryInMs: Math.round(delay) }, 'could not write istio-ca-root-cert');
        const t = setTimeout(() => {
          retryTimers.delete(t);
          dirty.add(ns);
          kick();
        }, delay);
        retryTimers.add(t);
      }
    }
  };

  const reconcile = async (ns: string) => {
    const root = await opts.getRootPem();
    const path = collectionPath('', 'v1', 'configmaps', ns);
    const current = configMaps.get(ns);
    if (current && (current as { data?: Record<string, string> }).data?.[rootCertKey] === root) return;
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: rootCertConfigMapName, namespace: ns, labels: { 'istio.io/config': 'true' } },
      data: { [rootCertKey]: root },
    };
    if (!current) {
      try {
        await opts.client.request('POST', path, { body });
        log.info({ namespace: ns }, 'created istio-ca-root-cert');
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        // It exists but our informer has not seen it yet: fall through to an update.
      }
    }
    try {
      const live = await opts.client.request<KubeObject & { data?: Record<string, string> }>('GET', `${path}/${rootCertConfigMapName}`);
      if (live.data?.[rootCertKey] === root) return;
      await opts.client.request('PUT', `${path}/${rootCertConfigMapName}`, {
        body: { ...live, data: { ...live.data, [rootCertKey]: root } },
      });
      log.info({ namespace: ns }, 'updated istio-ca-root-cert');
    } catch (err) {
      if (isNotFound(err)) {
        await opts.client.request('POST', path, { body });
        log.info({ namespace: ns }, 'created istio-ca-root-cert');
      } else throw err;
    }
  };

  return {
    async start() {
      if (active) return;
      active = true;
      namespaces.clear();
      configMaps.clear();
      nsInf = new SupervisedInformer({
        client: opts.client,
        group: '',
        version: 'v1',
        plural: 'namespaces',
        name: 'Namespace/v1 (root-cert-publisher)',
        log,
        timing: opts.timing,
        onChanges: (changes) => {
          for (const c of changes) {
            const n = c.object.metadata?.name ?? '';
            if (c.type === 'delete') namespaces.delete(n);
            else {
              namespaces.set(n, c.object);
              dirty.add(n);
            }
          }
          kick();
        },
      });
      cmInf = new SupervisedInformer({
        client: opts.client,
        group: '',
        version: 'v1',
        plural: 'configmaps',
        name: 'ConfigMap/v1 (root-cert-publisher)',
        log,
        selectors: { fieldSelector: `metadata.name=${rootCertConfigMapName}` },
        timing: opts.timing,
        onChanges: (changes) => {
          for (const c of changes) {
            const n = c.object.metadata?.namespace ?? '';
            if (c.type === 'delete') configMaps.delete(n);
            else configMaps.set(n, c.object);
            dirty.add(n);
          }
          kick();
        },
      });
      cmInf.start();
      await cmInf.whenSynced();
      nsInf.start();
      await nsInf.whenSynced();
      kick();
    },
    async stop() {
      if (!active) return;
      active = false;
      for (const t of retryTimers) clearTimeout(t);
      retryTimers.clear();
      await Promise.all([nsInf?.stop(), cmInf?.stop()]);
      await working;
      dirty.clear();
      for (const w of idleWaiters.splice(0)) w();
    },
    refresh() {
      for (const n of namespaces.keys()) dirty.add(n);
      kick();
    },
    idle() {
      if (!dirty.size && !working && !retryTimers.size) return Promise.resolve();
      return new Promise((r) => idleWaiters.push(r));
    },
    running: () => active,
  };
}
