import type { Logger } from '@sextant/api';
import { isConflict, isNotFound, SupervisedInformer, type KubeClient, type KubeObject, type InformerTiming } from '@sextant/sources';
import { ReconcileQueue } from './reconcile-queue.js';

const group = 'admissionregistration.k8s.io';
const version = 'v1';

/** The webhook configurations the chart installs (and its RBAC lets Sextant update), by revision and release namespace. */
export function webhookConfigurationNames(revision: string, namespace: string): { validating: string[]; mutating: string[] } {
  const suffix = revision && revision !== 'default' ? `-${revision}` : '';
  return { validating: [`istio-validator${suffix}-${namespace}`], mutating: [`istio-sidecar-injector${suffix}`] };
}

export interface CaBundlePatcherOptions {
  client: KubeClient;
  /** The PEM the webhook serving certificate chains to (Sextant's root); called on every reconcile. */
  getRootPem: () => string | Promise<string>;
  log: Logger;
  /** ValidatingWebhookConfiguration names to keep current. */
  validating: string[];
  /** MutatingWebhookConfiguration names to keep current. */
  mutating: string[];
  timing?: Partial<InformerTiming> | undefined;
  /** First retry delay after a failed write (ms, default 1 s, doubling to 30 s). */
  retryMs?: number | undefined;
}

export interface CaBundlePatcher {
  /** Watches the named configurations and keeps every webhook's caBundle equal to the root; call on leadership. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The root changed (rotation): rewrite the caBundles. */
  refresh(): void;
  /** Resolves when nothing is waiting to be written. */
  idle(): Promise<void>;
  running(): boolean;
  /** Successful writes so far. */
  writes(): number;
}

interface WebhookConfiguration extends KubeObject {
  webhooks?: Array<{ name?: string; clientConfig?: { caBundle?: string; [k: string]: unknown }; [k: string]: unknown }>;
}

/**
 * Keeps the `caBundle` of Sextant's own webhook configurations equal to its
 * CA root, as istiod's webhook controllers do: at start, whenever a
 * configuration is (re)created or edited (a `helm upgrade` resets it), and
 * when the root rotates. Only the named configurations are read or written.
 */
export function createCaBundlePatcher(opts: CaBundlePatcherOptions): CaBundlePatcher {
  const log = opts.log.child({ controller: 'cabundle-patcher' });
  const retryBase = opts.retryMs ?? 1_000;
  const targets = [
    ...opts.validating.map((name) => ({ plural: 'validatingwebhookconfigurations', name })),
    ...opts.mutating.map((name) => ({ plural: 'mutatingwebhookconfigurations', name })),
  ];
  const live = new Map<string, WebhookConfiguration>();
  let informers: SupervisedInformer[] = [];
  let writes = 0;

  const keyOf = (plural: string, name: string) => `${plural}/${name}`;
  const pathOf = (key: string) => `/apis/${group}/${version}/${key}`;

  const needsUpdate = (obj: WebhookConfiguration | undefined, bundle: string) =>
    Boolean(obj?.webhooks?.some((w) => (w.clientConfig?.caBundle ?? '') !== bundle));

  const reconcile = async (key: string) => {
    const cached = live.get(key);
    if (!cached) return; // not installed (yet): the informer tells us when it appears
    const bundle = Buffer.from(await opts.getRootPem()).toString('base64');
    if (!needsUpdate(cached, bundle)) return;
    let obj: WebhookConfiguration;
    try {
      obj = await opts.client.request<WebhookConfiguration>('GET', pathOf(key), { timeoutMs: 10_000 });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (!needsUpdate(obj, bundle)) return;
    const updated: WebhookConfiguration = {
      ...obj,
      webhooks: (obj.webhooks ?? []).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: bundle } })),
    };
    await opts.client.request('PUT', pathOf(key), { body: updated, timeoutMs: 10_000 });
    writes++;
    log.info({ configuration: key, webhooks: updated.webhooks?.map((w) => w.name) }, 'webhook caBundle set to the CA root');
  };

  const queue = new ReconcileQueue({
    reconcile,
    onFailure: (key, err, retryInMs) => log.warn({ configuration: key, err: (err as Error).message, retryInMs }, 'could not update webhook caBundle'),
    retryBaseMs: retryBase,
    retryImmediately: isConflict,
  });

  return {
    async start() {
      if (queue.running) return;
      queue.start();
      live.clear();
      informers = targets.map(
        (t) =>
          new SupervisedInformer({
            client: opts.client,
            group,
            version,
            plural: t.plural,
            name: `${t.plural}/${t.name} (cabundle-patcher)`,
            log,
            selectors: { fieldSelector: `metadata.name=${t.name}` },
            timing: opts.timing,
            onChanges: (changes) => {
              const key = keyOf(t.plural, t.name);
              for (const c of changes) {
                if (c.type === 'delete') live.delete(key);
                else live.set(key, c.object as WebhookConfiguration);
              }
              queue.add(key);
            },
          }),
      );
      for (const inf of informers) inf.start();
      await Promise.all(informers.map((i) => i.whenSynced()));
    },
    async stop() {
      if (!queue.running) return;
      await queue.stop();
      await Promise.all(informers.map((i) => i.stop()));
      informers = [];
    },
    refresh() {
      queue.add(...targets.map((t) => keyOf(t.plural, t.name)));
    },
    idle: () => queue.idle(),
    running: () => queue.running,
    writes: () => writes,
  };
}
