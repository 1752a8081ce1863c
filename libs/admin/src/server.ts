import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from '@sextant/api';
import type { Registry } from 'prom-client';
import { buildConfigDump, buildSextantDump, canonicalConfigDump, containsPrivateKey, type ProxyState } from './config-dump.js';

/** What the debug endpoints read; the daemon supplies it. Each returns plain JSON. */
export interface DebugSources {
  /** Per proxy and type: version sent, acked, nonce, last NACK. */
  syncz(): unknown;
  /**
   * A connected proxy by node ID, connection ID or `<pod>.<namespace>` (as
   * istiod accepts), with what it was last sent; undefined when none.
   */
  proxy(id: string): ProxyState | undefined;
  /** Objects rejected by validation and semantic issues, with kind/ns/name, field and reason. */
  configIssues(): unknown;
  /** The current push version and what triggered it. */
  pushStatus(): unknown;
}

/** An authenticated debug caller. */
export interface DebugCaller {
  namespace: string;
  serviceAccount: string;
}

export interface AdminServerOptions {
  host: string;
  port: number;
  isReady: () => boolean;
  debug: DebugSources;
  log: Logger;
  /**
   * Checks the bearer token of a /debug caller that is not on loopback
   * (TokenReview in cluster mode, the JWKS in folder mode) and resolves with
   * its identity, or rejects with the reason. Without it such callers are refused.
   */
  authenticate?: (bearerToken: string) => Promise<DebugCaller>;
  /**
   * Callers authenticated in this namespace read every debug endpoint (istiod:
   * the mesh root namespace, istio-system). Others read only config dumps of
   * proxies in their own namespace.
   */
  systemNamespace: string;
}

/**
 * Loopback, for the debug rule: only the host's own canonical loopback
 * addresses, 127.0.0.1 and ::1 (also as an IPv4-mapped IPv6 address). Other
 * 127.0.0.0/8 addresses are treated as remote: narrower than istiod (which
 * trusts all of 127.0.0.0/8), and what lets a test be a non-loopback caller.
 */
export function isLoopbackPeer(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** Debug paths a caller outside the system namespace may read (istiod's activeNamespaceDebuggers that Sextant has). */
const NAMESPACE_DEBUG_PATHS = new Set(['/debug/config_dump', '/debug/sextant_dump']);

const BEARER = /^Bearer\s+(.+)$/i;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set for authenticated non-system callers: the only namespace whose proxies they may read. */
    debugNamespace?: string;
  }
}

/** The HTTP server on --http-port: /ready and /debug/*. */
export function createAdminServer(opts: AdminServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  const log = opts.log;

  // /debug/* answers loopback callers, and others only with a valid token (as istiod's allowAuthenticatedOrLocalhost).
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (path !== '/debug' && !path.startsWith('/debug/')) return;
    const peer = req.socket.remoteAddress;
    if (isLoopbackPeer(peer)) return;
    const m = BEARER.exec(String(req.headers.authorization ?? '').trim());
    if (!m || !opts.authenticate) {
      log.warn({ peer, url: path }, 'debug request refused: not on loopback and no bearer token');
      return reply.code(401).send({ error: 'authentication required: send "Authorization: Bearer <service-account token>" (audience istio-ca)' });
    }
    let caller: DebugCaller;
    try {
      caller = await opts.authenticate(m[1]!.trim());
    } catch (err) {
      // The reason goes to the log, not to the caller (as istiod and the xDS port do).
      log.warn({ peer, url: path, err: (err as Error).message }, 'debug request refused: authentication failed');
      return reply.code(401).send({ error: 'authentication failed' });
    }
    if (caller.namespace === opts.systemNamespace) return;
    if (!NAMESPACE_DEBUG_PATHS.has(path)) {
      log.warn({ peer, url: path, caller: `${caller.namespace}/${caller.serviceAccount}` }, 'debug request refused: caller is not in the system namespace');
      return reply.code(403).send({ error: `${path} is only for callers in namespace ${opts.systemNamespace}` });
    }
    req.debugNamespace = caller.namespace;
  });

  // Last line of defence: no debug response carries a private key, whatever produced it.
  app.addHook('onSend', async (req, reply, payload) => {
    if (!req.url.startsWith('/debug')) return payload;
    if (typeof payload === 'string' && containsPrivateKey(payload)) {
      log.error({ url: req.url.split('?')[0] }, 'debug response withheld: it would have carried a private key');
      reply.code(500).header('content-type', 'application/json; charset=utf-8');
      return JSON.stringify({ error: 'response withheld: it would have carried a private key (redaction gap; please report)' });
    }
    return payload;
  });

  const proxyFor = (req: FastifyRequest<{ Querystring: { proxyID?: string } }>): ProxyState | string | undefined => {
    const id = req.query.proxyID;
    if (!id) return undefined;
    const p = opts.debug.proxy(id);
    // A non-system caller sees only its own namespace's proxies; others look not connected (as istiod).
    if (!p || (req.debugNamespace !== undefined && p.namespace !== req.debugNamespace)) return id;
    return p;
  };

  app.get('/ready', async (_req, reply) => {
    if (opts.isReady()) return reply.code(200).send('ready\n');
    return reply.code(503).send('not ready: waiting for every config source to sync once\n');
  });
  app.get('/debug/syncz', async () => opts.debug.syncz());
  app.get<{ Querystring: { proxyID?: string } }>('/debug/config_dump', async (req, reply) => {
    const p = proxyFor(req);
    if (p === undefined) return reply.code(400).send({ error: 'proxyID query parameter is required (node ID or <pod>.<namespace>)' });
    if (typeof p === 'string') return reply.code(404).send({ error: `proxy ${p} is not connected to this instance` });
    reply.header('content-type', 'application/json; charset=utf-8');
    return JSON.stringify(canonicalConfigDump(buildConfigDump(p)));
  });
  app.get<{ Querystring: { proxyID?: string } }>('/debug/sextant_dump', async (req, reply) => {
    const p = proxyFor(req);
    if (p === undefined) return reply.code(400).send({ error: 'proxyID query parameter is required (node ID or <pod>.<namespace>)' });
    if (typeof p === 'string') return reply.code(404).send({ error: `proxy ${p} is not connected to this instance` });
    return buildSextantDump(p);
  });
  app.get('/debug/config_issues', async () => opts.debug.configIssues());
  app.get('/debug/push_status', async () => opts.debug.pushStatus());
  app.get('/debug', async () => ({
    endpoints: ['/ready', '/debug/syncz', '/debug/config_dump?proxyID=', '/debug/sextant_dump?proxyID=', '/debug/config_issues', '/debug/push_status'],
  }));
  app.setErrorHandler((err, req, reply) => {
    const message = err instanceof Error ? err.message : String(err);
    opts.log.error({ err: message, url: req.url.split('?')[0] }, 'admin request failed');
    void reply.code(500).send({ error: message });
  });
  return app;
}

/** The HTTP server on --monitoring-port: /metrics in Prometheus text format. */
export function createMonitoringServer(registry: Registry): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return app;
}
