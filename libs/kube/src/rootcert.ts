import type { Logger } from '@sextant/api';
import { collectionPath, isConflict, isNotFound, SupervisedInformer, type KubeClient, type KubeObject, type InformerTiming } from '@sextant/sources';
import { ReconcileQueue } from './reconcile-queue.js';

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
  const namespaces = new Map<string, KubeObject>();
  const configMaps = new Map<string, KubeObject>();

  const eligible = (ns: KubeObject | undefined) =>
    Boolean(ns?.metadata?.name) && !excluded.has(ns!.metadata!.name!) && (ns as { status?: { phase?: string } }).status?.phase !== 'Terminating';

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

  const queue = new ReconcileQueue({
    reconcile: async (ns) => {
      if (eligible(namespaces.get(ns))) await reconcile(ns);
    },
    onFailure: (ns, err, retryInMs) => log.warn({ namespace: ns, err: (err as Error).message, retryInMs }, 'could not write istio-ca-root-cert'),
    retryBaseMs: retryBase,
  });

  return {
    async start() {
      if (queue.running) return;
      queue.start();
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
              queue.add(n);
            }
          }
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
            queue.add(n);
          }
        },
      });
      cmInf.start();
      await cmInf.whenSynced();
      nsInf.start();
      await nsInf.whenSynced();
    },
    async stop() {
      if (!queue.running) return;
      await queue.stop();
      await Promise.all([nsInf?.stop(), cmInf?.stop()]);
    },
    refresh() {
      queue.add(...namespaces.keys());
    },
    idle: () => queue.idle(),
    running: () => queue.running,
  };
}
