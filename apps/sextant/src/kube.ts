import { validateObject, type Logger } from '@sextant/api';
import { TokenReviewAuthenticator, type CaStore, type TokenReviewer as CaTokenReviewer } from '@sextant/ca';
import {
  createCaBundlePatcher,
  createLeaderElector,
  createRootCertPublisher,
  createSecretCaStore,
  createStatusWriter,
  createTokenReviewer,
  webhookConfigurationNames,
  type CaBundlePatcher,
  type LeaderElector,
  type RootCertPublisher,
} from '@sextant/kube';
import { KubeClient, createKubeSource, type KubeSource } from '@sextant/sources';
import type { DiscoveryConfig } from './flags.js';
import type { SecureExtras } from './secure.js';

export interface KubeMode {
  source: KubeSource;
  client: KubeClient;
  elector: LeaderElector;
  secureExtras: SecureExtras;
  /** Starts the singleton writers once the CA exists (root-cert ConfigMaps, only while leader). */
  startWriters(getRootPem: () => string, onRootChange: (listener: () => void) => void): void;
  /** A proxy rejects config built from this object (message) or no longer does (undefined): its status, written by the leader. */
  setRejection(object: { kind: string; namespace: string; name: string }, message: string | undefined): void;
  /** An EnvoyFilter's PatchesApplied condition (undefined: none), written by the leader. */
  setPatchesApplied(object: { namespace: string; name: string }, condition: { status: 'True' | 'False'; reason: string; message: string } | undefined): void;
  stop(): Promise<void>;
}

/**
 * Kubernetes mode: informers as a config source, TokenReview for the CA and
 * secure ADS, and a Lease-elected leader that alone writes the
 * `istio-ca-root-cert` ConfigMaps. Every replica serves xDS and the CA.
 */
export async function startKubeMode(cfg: DiscoveryConfig, log: Logger): Promise<KubeMode> {
  const client = new KubeClient(cfg.kubeconfig ? { kubeconfigPath: cfg.kubeconfig } : { inCluster: cfg.inCluster });
  // Rejected Istio objects get an IST0106 status (written by the leader only); it is cleared when they become valid.
  const status = createStatusWriter({ client, log: log.child({ component: 'status' }) });
  const source = createKubeSource({
    client,
    log: log.child({ source: 'kubernetes' }),
    validate: (raw) => {
      const r = validateObject(raw);
      status.observe(raw, r.ok ? [] : r.issues);
      return r.ok ? { ok: true, object: r.object } : { ok: false, issues: r.issues };
    },
  });
  const reviewer = createTokenReviewer(client);
  // The CA's TokenReviewer shape: authenticated or not, with the username.
  const caReviewer: CaTokenReviewer = {
    async review(token) {
      try {
        const t = await reviewer.review(token);
        return { authenticated: true, username: t.username, audiences: t.audiences };
      } catch (err) {
        return { authenticated: false, error: (err as Error).message };
      }
    },
  };
  let publisher: RootCertPublisher | undefined;
  let caBundle: CaBundlePatcher | undefined;
  const startLeading = () => {
    void publisher?.start().catch((err: Error) => log.error({ err: err.message }, 'root cert publisher failed to start'));
    void caBundle?.start().catch((err: Error) => log.error({ err: err.message }, 'webhook caBundle patcher failed to start'));
    status.start();
  };
  const elector = createLeaderElector({
    client,
    namespace: cfg.namespace,
    // The chart's Role lets Sextant update only this Lease (per revision).
    name: cfg.revision && cfg.revision !== 'default' ? `sextant-leader-${cfg.revision}` : 'sextant-leader',
    identity: cfg.podName,
    log: log.child({ component: 'leader' }),
    onStartedLeading: startLeading,
    onStoppedLeading: () => {
      void publisher?.stop();
      void caBundle?.stop();
      void status.stop();
    },
  });
  // Elect at once: with no CA Secret yet, only the leader may create it, and the CA opens before the writers start.
  if (cfg.leaderElection) elector.start();
  const secretStore = cfg.caDir ? undefined : createSecretCaStore({ client, namespace: cfg.namespace, log: log.child({ component: 'ca-store' }) });
  // A replica that is not the leader waits for the leader's CA material instead of failing at start.
  const caStore: CaStore | undefined = secretStore && {
    description: secretStore.description,
    async load() {
      for (let waited = 0; ; waited++) {
        const m = await secretStore.load();
        if (m || !cfg.leaderElection || elector.isLeader()) return m;
        if (waited === 0) log.info({ store: secretStore.description }, 'no CA material yet; waiting for the leader to create it');
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    save: (files) => secretStore.save(files),
    ...(secretStore.watch ? { watch: (onChange: () => void) => secretStore.watch!(onChange) } : {}),
  };
  return {
    source,
    client,
    elector,
    secureExtras: {
      authenticators: [new TokenReviewAuthenticator(caReviewer, cfg.trustDomain)],
      // Without leader election (a single replica) this replica is the writer.
      isWriter: () => !cfg.leaderElection || elector.isLeader(),
      // --ca-dir wins; otherwise the CA lives in Secrets as istiod keeps it (cacerts, istio-ca-secret).
      ...(caStore ? { caStore } : {}),
    },
    setRejection: (object, message) => status.setRejection(object, message),
    setPatchesApplied: (object, condition) => status.setPatchesApplied(object, condition),
    startWriters(getRootPem, onRootChange) {
      publisher = createRootCertPublisher({ client, getRootPem, log: log.child({ component: 'root-cert' }) });
      caBundle = createCaBundlePatcher({ client, getRootPem, log: log.child({ component: 'cabundle' }), ...webhookConfigurationNames(cfg.revision, cfg.namespace) });
      onRootChange(() => {
        publisher?.refresh();
        caBundle?.refresh();
      });
      if (!cfg.leaderElection || elector.isLeader()) startLeading();
    },
    async stop() {
      await status.stop();
      await caBundle?.stop();
      await publisher?.stop();
      await elector.stop();
    },
  };
}
