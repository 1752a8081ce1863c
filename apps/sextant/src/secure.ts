import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
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
import { splitNodeId } from '@sextant/api';
import type { AdsListener, DiscoveryServer, ResourceGenerator, XdsProxy } from '@sextant/xds';
import type { DiscoveryConfig } from './flags.js';

export interface SecureServices {
  ca: CertificateAuthority;
  /** How callers are authenticated (token, workload certificate): the CSR API, ADS and /debug/* share them. */
  authenticators: Authenticator[];
  /** SDS generators for the xDS server (secrets over ADS). */
  generators: Record<string, ResourceGenerator>;
  /** For the xDS server: the identity of a stream on the secure port. */
  adsAuthenticate: (call: grpc.ServerDuplexStream<unknown, unknown>) => Promise<{ namespace: string; serviceAccount: string } | undefined>;
  /** For the xDS server: refuses an authenticated stream whose node claims another namespace or service account. */
  adsAuthorizeNode: (proxy: XdsProxy) => string | undefined;
  /** Binds the TLS gRPC server (CSR API + ADS) and resolves with its port. */
  listen(xds: DiscoveryServer): Promise<number>;
  /** Binds the webhook server and resolves with its port. */
  listenWebhooks(store: StoreView): Promise<number>;
  /**
   * Starts a graceful shutdown of the TLS gRPC server: the listener closes and
   * every connection gets GOAWAY, so no new CSR or ADS stream starts, while the
   * calls already accepted finish. Resolves once every connection has closed.
   */
  drain(): Promise<void>;
  /** CSRs being handled right now. */
  csrsInFlight(): number;
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
  // Counters follow the CA service's own stats, under istiod's citadel_server_* names.
  const seen = { requests: 0, issued: 0, refused: {} as Record<string, number> };
  const syncMetrics = () => {
    const st = caService.stats;
    metrics.csrCount.inc(st.requests - seen.requests);
    metrics.certsIssued.inc(st.issued - seen.issued);
    for (const [code, n] of Object.entries(st.refusedByCode)) {
      const d = n - (seen.refused[code] ?? 0);
      if (d <= 0) continue;
      metrics.csrErrors.inc({ code }, d);
      if (code === 'UNAUTHENTICATED') metrics.authnErrors.inc(d);
      else if (code === 'INVALID_ARGUMENT') metrics.csrParsingErrors.inc(d);
      else if (code === 'PERMISSION_DENIED') metrics.idExtractionErrors.inc(d);
      else metrics.certSignErrors.inc({ error: code }, d);
      seen.refused[code] = n;
    }
    seen.requests = st.requests;
    seen.issued = st.issued;
    const nowS = Date.now() / 1000;
    const notAfter = Date.parse(new X509Certificate(ca.rootCertPem()).validTo);
    if (Number.isFinite(notAfter)) {
      metrics.rootCertExpiry.set(Math.floor(notAfter / 1000));
      metrics.rootCertExpirySeconds.set(Math.floor(notAfter / 1000 - nowS));
    }
    const chain = ca.signingChain()[0];
    const chainNotAfter = chain ? Date.parse(new X509Certificate(chain).validTo) : NaN;
    if (Number.isFinite(chainNotAfter)) {
      metrics.certChainExpiry.set(Math.floor(chainNotAfter / 1000));
      metrics.certChainExpirySeconds.set(Math.floor(chainNotAfter / 1000 - nowS));
    }
  };
  syncMetrics();
  const metricsTimer = setInterval(syncMetrics, 5000);
  metricsTimer.unref();
  const creds = createSecureServerCredentials(ca, cfg.dnsNames, { logger: log });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': cfg.xdsMaxRequestBytes });
  server.addService(caService.definition, caService.implementation);

  const encoder = new ResourceEncoder();
  // Agentless `default` secrets, one per identity, reused until half their lifetime
  // (so every stream of one identity shares one key and one encoded resource).
  const issued = new Map<string, { json: unknown; renewAt: number }>();
  const workloadSecretFor = (identity: string) => {
    const now = Date.now();
    let c = issued.get(identity);
    if (!c || now >= c.renewAt) {
      const r = workloadSecret(ca, identity);
      c = { json: r.secret, renewAt: now + Math.max(1000, (r.notAfter - now) / 2) };
      issued.set(identity, c);
      log.info({ identity, notAfter: new Date(r.notAfter).toISOString() }, 'agentless SDS: issued workload certificate');
    }
    return c.json;
  };
  const secretsGenerator: ResourceGenerator = {
    generate(proxy, watch) {
      const out = new Map<string, EncodedResource>();
      const namespace = proxy.identity?.namespace ?? '';
      // The store holds validated objects (metadata + body); the CA wants the Secret's own shape.
      const lookup = (ns: string, name: string): KubernetesSecret | undefined => {
        const o = store().get('Secret', ns, name);
        if (!o) return undefined;
        const body = o.body as { type?: string; data?: Record<string, string> };
        return { metadata: { namespace: o.metadata.namespace, name: o.metadata.name }, ...(body.type ? { type: body.type } : {}), ...(body.data ? { data: body.data } : {}) };
      };
      for (const name of watch.names) {
        let json: unknown;
        if (name === ROOT_SECRET) json = rootCaSecret(ca);
        else if (name === WORKLOAD_SECRET) {
          // Agentless mode only, and only to a proxy whose identity the secure port authenticated.
          if (!cfg.agentlessSds || !proxy.identity) continue;
          json = workloadSecretFor(`spiffe://${cfg.trustDomain}/ns/${proxy.identity.namespace}/sa/${proxy.identity.serviceAccount}`);
        } else {
          // Gateway credentials are private keys: only to a proxy whose namespace the secure port
          // authenticated (as istiod's SDS requires a verified identity), and only from its namespace.
          if (!proxy.identity) {
            log.warn({ proxy: proxy.id, secret: name }, 'SDS secret not served: the proxy is not authenticated (connect on the secure port)');
            continue;
          }
          const res = credentialSecret(name, namespace, (ns, n) => (canReadSecret(namespace, ns) ? lookup(ns, n) : undefined));
          if ('error' in res) {
            log.warn({ proxy: proxy.id, secret: name, reason: res.error }, 'SDS secret not served');
            continue;
          }
          json = res.secret;
        }
        // The builders return Envoy's JSON with its `@type` (as in a config dump); the encoder wants the bare message.
        const { '@type': _type, ...message } = json as Record<string, unknown>;
        out.set(name, encoder.encode(TypeUrl.Secret, name, message));
      }
      return out;
    },
  };

  const secureCalls = new WeakSet<object>();
  let webhook: { close(): Promise<void> } | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let unwatchCa: (() => void) | undefined;
  let tlsListener: AdsListener | undefined;
  return {
    ca,
    authenticators,
    generators: { [TypeUrl.Secret]: secretsGenerator },
    adsAuthenticate: secureAdsAuthenticator(authenticators, secureCalls),
    adsAuthorizeNode: authorizeNodeIdentity,
    async listen(xds) {
      // The same DiscoveryServer serves both ports: mark the streams that arrive on this (TLS) one.
      xds.addTo(markSecureCalls(server, secureCalls));
      let seq = 0;
      const pushSecrets = (reason: string, affects?: (p: XdsProxy) => boolean) =>
        xds.push({ full: true, version: `secrets-${Date.now()}-${++seq}`, reason: [reason], ...(affects ? { affects } : {}) });
      // New roots (rotation, overlap start and end) reach every proxy watching ROOTCA.
      unwatchCa = ca.onChange(() => {
        issued.clear();
        pushSecrets('ca-roots');
      });
      // Agentless certificates are renewed at half their lifetime: push the proxies of those identities.
      renewTimer = setInterval(() => {
        const now = Date.now();
        const due = new Set([...issued].filter(([, c]) => now >= c.renewAt).map(([id]) => id));
        if (!due.size) return;
        for (const id of due) issued.delete(id);
        pushSecrets('workload-cert-renewal', (p) => !!p.identity && due.has(`spiffe://${cfg.trustDomain}/ns/${p.identity.namespace}/sa/${p.identity.serviceAccount}`));
      }, 30_000);
      renewTimer.unref();
      // Accepted on a listener of our own, as 15010 is: an address in cooldown is reset at TCP accept, before the TLS handshake.
      tlsListener = await xds.listen(server, cfg.listenAddress, cfg.securePort, creds);
      return tlsListener.port;
    },
    async listenWebhooks(view) {
      const { startWebhookServer } = await import('./webhooks.js');
      const started = await startWebhookServer(cfg, log, ca, () => view, metrics);
      webhook = started;
      return started.port;
    },
    drain() {
      return Promise.all([tlsListener?.close(), new Promise<void>((resolve) => server.tryShutdown(() => resolve()))]).then(() => undefined);
    },
    csrsInFlight: () => caService.stats.inFlight,
    async stop() {
      if (renewTimer) clearInterval(renewTimer);
      unwatchCa?.();
      ca.stop();
      creds.close();
      await webhook?.close();
      await tlsListener?.close();
      server.forceShutdown();
    },
  };
}

/**
 * A grpc.Server stand-in for `DiscoveryServer.addTo` that registers the
 * service on `server` with every call first recorded in `secureCalls`.
 */
function markSecureCalls(server: grpc.Server, secureCalls: WeakSet<object>): grpc.Server {
  return {
    addService(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) {
      const wrapped: grpc.UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(impl)) {
        wrapped[name] = ((call: object, ...rest: unknown[]) => {
          secureCalls.add(call);
          return (handler as (...a: unknown[]) => unknown)(call, ...rest);
        }) as grpc.UntypedHandleCall;
      }
      server.addService(def, wrapped);
    },
  } as unknown as grpc.Server;
}

/**
 * ADS on the secure port: the caller's identity from its token or client
 * certificate. Streams on the plaintext port (not in `secureCalls`) have none.
 * grpc-js reports a TLS auth context only when the client presented a verified
 * certificate, so a token-only caller is recognised by the port, not by that.
 */
export function secureAdsAuthenticator(authenticators: Authenticator[], secureCalls?: WeakSet<object>) {
  return async (call: grpc.ServerDuplexStream<unknown, unknown>) => {
    const auth = call.getAuthContext?.();
    const tls = auth?.transportSecurityType === 'ssl';
    if (secureCalls ? !secureCalls.has(call) : !tls) return undefined; // plaintext port: no identity
    const bearerToken = bearerTokenFrom(call.metadata.get('authorization'));
    const peer = tls ? auth?.sslPeerCertificate?.raw : undefined;
    const caller = await authenticate(authenticators, {
      ...(bearerToken !== undefined ? { bearerToken } : {}),
      ...(peer ? { peerCertificate: peer } : {}),
    });
    return { namespace: caller.namespace, serviceAccount: caller.serviceAccount };
  };
}

/**
 * The identity rule for the secure port (issue 4 §4): a stream whose caller was
 * authenticated must describe a proxy of that namespace and service account.
 * The node's namespace is its NAMESPACE metadata, else the `pod.namespace` part
 * of its ID; its service account is SERVICE_ACCOUNT metadata when present.
 * Returns the reason to refuse, or undefined. Unauthenticated streams (the
 * plaintext port) are not judged here.
 */
export function authorizeNodeIdentity(proxy: XdsProxy): string | undefined {
  const id = proxy.identity;
  if (!id) return undefined;
  const meta = proxy.metadata;
  const pick = (k: string) => {
    const v = meta[k] ?? meta[`ISTIO_META_${k}`];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const nodeNamespace = pick('NAMESPACE') ?? splitNodeId(proxy.id)?.idNamespace;
  if (nodeNamespace !== undefined && nodeNamespace !== id.namespace) {
    return `node ${proxy.id} claims namespace ${JSON.stringify(nodeNamespace)} but the caller is authenticated as ${id.namespace}/${id.serviceAccount}`;
  }
  if (nodeNamespace === undefined) return `node ${proxy.id} does not say its namespace (NAMESPACE metadata or pod.namespace in the node ID); the caller is ${id.namespace}/${id.serviceAccount}`;
  const sa = pick('SERVICE_ACCOUNT');
  if (sa !== undefined && sa !== id.serviceAccount) {
    return `node ${proxy.id} claims service account ${JSON.stringify(sa)} but the caller is authenticated as ${id.namespace}/${id.serviceAccount}`;
  }
  return undefined;
}
