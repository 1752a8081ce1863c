import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import type { Logger } from '@sextant/api';
import { createWebhookServer, recordWebhookResult, type Metrics } from '@sextant/admin';
import type { CertificateAuthority } from '@sextant/ca';
import type { StoreView } from '@sextant/sources';
import type { DiscoveryConfig } from './flags.js';

const CERT_TTL_SECONDS = 30 * 86400;

/**
 * The webhook server on --webhook-port: /validate and /inject over TLS, with a
 * serving certificate from Sextant's CA (for the webhook Service's DNS names
 * and 127.0.0.1), re-issued at half-life and when the CA changes. The chart's
 * webhook configurations carry the CA root as caBundle.
 */
export async function startWebhookServer(cfg: DiscoveryConfig, log: Logger, ca: CertificateAuthority, store: () => StoreView, metrics?: Metrics) {
  const names = [...new Set([...cfg.dnsNames, `sextant.${cfg.namespace}.svc`, `istiod.${cfg.namespace}.svc`, 'localhost'])];
  const issue = () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = ca.issueForKey(publicKey, { dnsNames: names, ips: ['127.0.0.1'] }, CERT_TTL_SECONDS);
    return { cert: issued.certChain.slice(0, -1).join(''), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  };
  const app = createWebhookServer({
    tls: issue(),
    log,
    namespaceLabels: (ns) => (store().get('Namespace', undefined, ns)?.metadata.labels ?? undefined) as Record<string, string> | undefined,
    inject: {
      hub: cfg.proxyHub,
      tag: cfg.proxyTag,
      discoveryAddress: cfg.discoveryAddress,
      revision: cfg.revision,
      trustDomain: cfg.trustDomain,
      clusterDomain: cfg.domainSuffix,
      meshId: cfg.meshId,
      clusterId: cfg.clusterId,
      cni: cfg.cni,
    },
    ...(metrics ? { onResult: (hook, outcome) => recordWebhookResult(metrics, hook, outcome) } : {}),
  });
  const renew = () => {
    try {
      const { cert, key } = issue();
      app.setCertificate(cert, key);
      log.info({ names }, 'webhook serving certificate renewed');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'webhook certificate renewal failed; keeping the current one');
    }
  };
  const timer = setInterval(renew, (CERT_TTL_SECONDS * 1000) / 2);
  timer.unref();
  const stopWatching = ca.onChange(renew);
  await app.listen({ host: cfg.listenAddress, port: cfg.webhookPort });
  const port = (app.server.address() as AddressInfo).port;
  return {
    port,
    close: async () => {
      clearInterval(timer);
      stopWatching();
      await app.close();
    },
  };
}
