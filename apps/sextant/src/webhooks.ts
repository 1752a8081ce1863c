import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import type { Logger } from '@sextant/api';
import type { CertificateAuthority } from '@sextant/ca';
import type { StoreView } from '@sextant/sources';
import type { DiscoveryConfig } from './flags.js';

/** The webhook server on --webhook-port: TLS with a serving certificate from Sextant's CA. */
export async function startWebhookServer(cfg: DiscoveryConfig, log: Logger, ca: CertificateAuthority, store: () => StoreView) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const names = [...new Set([...cfg.dnsNames, 'localhost'])];
  const issued = ca.issueForKey(publicKey, { dnsNames: names, ips: ['127.0.0.1'] }, 365 * 86400);
  const app = Fastify({
    logger: false,
    https: { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: issued.certChain.slice(0, -1).join('') },
  });
  const admin = (await import('@sextant/admin')) as Record<string, unknown>;
  const register = admin.registerWebhooks as ((app: unknown, opts: unknown) => void) | undefined;
  register?.(app, { log, store, ca });
  await app.listen({ host: cfg.listenAddress, port: cfg.webhookPort });
  const port = (app.server.address() as AddressInfo).port;
  return { port, caBundle: ca.rootCertPem(), close: () => app.close() };
}
