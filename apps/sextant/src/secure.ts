import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sextant/api';
import type { Metrics } from '@sextant/admin';
import {
  CertificateAuthority,
  FileCaStore,
  JwtAuthenticator,
  MemoryCaStore,
  MtlsAuthenticator,
  ROOT_SECRET,
  WORKLOAD_SECRET,
  authenticate,
  bearerTokenFrom,
  canReadSecret,
  createCaService,
  createSecureServerCredentials,
  credentialSecret,
  rootCaSecret,
  workloadSecret,
  type Authenticator,
  type CaStore,
  type KubernetesSecret,
} from '@sextant/ca';
import { ResourceEncoder, TypeUrl, type EncodedResource } from '@sextant/envoy';
import type { StoreView } from '@sextant/sources';
import type { DiscoveryServer, ResourceGenerator } from '@sextant/xds';
import type { DiscoveryConfig } from './flags.js';

export interface SecureServices {
  ca: CertificateAuthority;
  /** SDS generators for the xDS server (secrets over ADS). */
  generators: Record<string, ResourceGenerator>;
  /** For the xDS server: the identity of a stream on the secure port. */
  adsAuthenticate: (call: grpc.ServerDuplexStream<unknown, unknown>) => Promise<{ namespace: string; serviceAccount: string } | undefined>;
  /** Binds the TLS gRPC server (CSR API + ADS) and resolves with its port. */
  listen(xds: DiscoveryServer): Promise<number>;
  /** Binds the webhook server and resolves with its port. */
  listenWebhooks(store: StoreView): Promise<number>;
  stop(): Promise<void>;
}

/** Extra pieces Kubernetes mode supplies (token review, Secret-backed CA store). */
export interface SecureExtras {
  authenticators?: Authenticator[];
  caStore?: CaStore;
  isWriter?: () => boolean;
}

/**
 * The CA and everything that needs it: the secure gRPC port (CSR API and ADS
 * over TLS, callers authenticated), SDS secrets, and the webhook server's TLS.
 */
export async function startSecureServices(
  cfg: DiscoveryConfig,
  log: Logger,
  metrics: Metrics,
  store: () => StoreView,
  extras: SecureExtras = {},
): Promise<SecureServices> {
  let caStore = extras.caStore;
  if (!caStore) {
    if (cfg.caDir) caStore = new FileCaStore(cfg.caDir);
    else {
      log.warn({}, 'no --ca-dir: the CA root lives in memory and changes on every restart (give --ca-dir to keep it)');
      caStore = new MemoryCaStore();
    }
  }
  const ca = await CertificateAuthority.open(caStore, {
    trustDomain: cfg.trustDomain,
    maxTtlSeconds: cfg.maxCertLifetimeSeconds,
    logger: log,
    ...(extras.isWriter ? { isWriter: extras.isWriter } : {}),
  });
  ca.start();
  log.info({ root: ca.describeRoot() }, 'CA ready');

  const authenticators: Authenticator[] = [...(extras.authenticators ?? [])];
  if (cfg.jwksFile) {
    if (!cfg.jwtIssuer) throw new Error('--jwks-file needs --jwt-issuer');
    authenticators.push(new JwtAuthenticator({ jwksFile: cfg.jwksFile, issuer: cfg.jwtIssuer, trustDomain: cfg.trustDomain }));
  }
  authenticators.push(new MtlsAuthenticator(ca));

  const caService = createCaService(ca, authenticators, { logger: log });
  const creds = createSecureServerCredentials(ca, cfg.dnsNames, { logger: log });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  server.addService(caService.definition, caService.implementation);

  const encoder = new ResourceEncoder();
  const secretsGenerator: ResourceGenerator = {
    generate(proxy, watch) {
      const out = new Map<string, EncodedResource>();
      const namespace = proxy.identity?.namespace ?? String(proxy.metadata.NAMESPACE ?? '');
      const lookup = (ns: string, name: string) => store().get('Secret', ns, name) as unknown as KubernetesSecret | undefined;
      for (const name of watch.names) {
        let json: unknown;
        if (name === ROOT_SECRET) json = rootCaSecret(ca);
        else if (name === WORKLOAD_SECRET) {
          // Agentless mode only, and only to a proxy whose identity the secure port authenticated.
          if (!cfg.agentlessSds || !proxy.identity) continue;
          json = workloadSecret(ca, `spiffe://${cfg.trustDomain}/ns/${proxy.identity.namespace}/sa/${proxy.identity.serviceAccount}`).secret;
        } else {
          const res = credentialSecret(name, namespace, (ns, n) => (canReadSecret(namespace, ns) ? lookup(ns, n) : undefined));
          if ('error' in res) {
            log.warn({ proxy: proxy.id, secret: name, reason: res.error }, 'SDS secret not served');
            continue;
          }
          json = res.secret;
        }
        out.set(name, encoder.encode(TypeUrl.Secret, name, json));
      }
      return out;
    },
  };

  let webhook: { close(): Promise<void> } | undefined;
  return {
    ca,
    generators: { [TypeUrl.Secret]: secretsGenerator },
    adsAuthenticate: secureAdsAuthenticator(authenticators),
    async listen(xds) {
      xds.addTo(server);
      return new Promise<number>((resolve, reject) =>
        server.bindAsync(`${cfg.listenAddress}:${cfg.securePort}`, creds, (err, port) => (err ? reject(err) : resolve(port))),
      );
    },
    async listenWebhooks(view) {
      const { startWebhookServer } = await import('./webhooks.js');
      const started = await startWebhookServer(cfg, log, ca, () => view);
      webhook = started;
      return started.port;
    },
    async stop() {
      ca.stop();
      creds.close();
      await webhook?.close();
      server.forceShutdown();
    },
  };
}

/** ADS on the secure port: the caller's identity from its token or client certificate. */
export function secureAdsAuthenticator(authenticators: Authenticator[]) {
  return async (call: grpc.ServerDuplexStream<unknown, unknown>) => {
    const auth = call.getAuthContext?.();
    if (!auth || auth.transportSecurityType !== 'ssl') return undefined; // plaintext port: no identity
    const bearerToken = bearerTokenFrom(call.metadata.get('authorization'));
    const peer = auth.sslPeerCertificate?.raw;
    const caller = await authenticate(authenticators, {
      ...(bearerToken !== undefined ? { bearerToken } : {}),
      ...(peer ? { peerCertificate: peer } : {}),
    });
    return { namespace: caller.namespace, serviceAccount: caller.serviceAccount };
  };
}
