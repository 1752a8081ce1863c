import { validateObject, type Logger } from '@sextant/api';
import { TokenReviewAuthenticator, type TokenReviewer as CaTokenReviewer } from '@sextant/ca';
import {
  KubeClient,
  createKubeSource,
  createLeaderElector,
  createRootCertPublisher,
  createSecretCaStore,
  createTokenReviewer,
  type KubeSource,
  type LeaderElector,
  type RootCertPublisher,
} from '@sextant/sources';
import type { DiscoveryConfig } from './flags.js';
import type { SecureExtras } from './secure.js';

export interface KubeMode {
  source: KubeSource;
  client: KubeClient;
  elector: LeaderElector;
  secureExtras: SecureExtras;
  /** Starts the singleton writers once the CA exists (root-cert ConfigMaps, only while leader). */
  startWriters(getRootPem: () => string, onRootChange: (listener: () => void) => void): void;
  stop(): Promise<void>;
}

/**
 * Kubernetes mode: informers as a config source, TokenReview for the CA and
 * secure ADS, and a Lease-elected leader that alone writes the
 * `istio-ca-root-cert` ConfigMaps. Every replica serves xDS and the CA.
 */
export async function startKubeMode(cfg: DiscoveryConfig, log: Logger): Promise<KubeMode> {
  const client = new KubeClient(cfg.kubeconfig ? { kubeconfigPath: cfg.kubeconfig } : { inCluster: cfg.inCluster });
  const source = createKubeSource({
    client,
    log: log.child({ source: 'kubernetes' }),
    validate: (raw) => {
      const r = validateObject(raw);
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
  const elector = createLeaderElector({
    client,
    namespace: cfg.namespace,
    name: 'istio-namespace-controller-election',
    identity: cfg.podName,
    log: log.child({ component: 'leader' }),
    onStartedLeading: () => void publisher?.start().catch((err: Error) => log.error({ err: err.message }, 'root cert publisher failed to start')),
    onStoppedLeading: () => void publisher?.stop(),
  });
  return {
    source,
    client,
    elector,
    secureExtras: {
      authenticators: [new TokenReviewAuthenticator(caReviewer, cfg.trustDomain)],
      // Without leader election (a single replica) this replica is the writer.
      isWriter: () => !cfg.leaderElection || elector.isLeader(),
      // --ca-dir wins; otherwise the CA lives in Secrets as istiod keeps it (cacerts, istio-ca-secret).
      ...(cfg.caDir ? {} : { caStore: createSecretCaStore({ client, namespace: cfg.namespace, log: log.child({ component: 'ca-store' }) }) }),
    },
    startWriters(getRootPem, onRootChange) {
      publisher = createRootCertPublisher({ client, getRootPem, log: log.child({ component: 'root-cert' }) });
      onRootChange(() => publisher?.refresh());
      if (cfg.leaderElection) elector.start();
      else void publisher.start().catch((err: Error) => log.error({ err: err.message }, 'root cert publisher failed to start'));
    },
    async stop() {
      await publisher?.stop();
      await elector.stop();
    },
  };
}
