import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '@sextant/api';
import type { Registry } from 'prom-client';
import { buildClustersView, buildConfigDump, buildSextantDump, canonicalConfigDump, containsPrivateKey, type ProxyState } from './config-dump.js';

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
const NAMESPACE_DEBUG_PATHS = new Set(['config_dump', 'clusters', 'sextant_dump']);

/**
 * The debug path a request was routed to (`list` for `/debug`), or undefined
 * for any other route. Decided by the route that matched, not by the raw URL,
 * so no spelling of the path (percent-encoding, say) slips past the check.
 */
function debugPathOf(req: FastifyRequest): string | undefined {
  const route = req.routeOptions?.url;
  if (route === '/debug') return 'list';
  if (route === '/debug/*') return (req.params as { '*'?: string })['*'] ?? '';
  return undefined;
}

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
    const debugPath = debugPathOf(req);
    if (debugPath === undefined) return;
    const path = `/debug/${debugPath}`;
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
    if (!NAMESPACE_DEBUG_PATHS.has(debugPath)) {
      log.warn({ peer, url: path, caller: `${caller.namespace}/${caller.serviceAccount}` }, 'debug request refused: caller is not in the system namespace');
      return reply.code(403).send({ error: `${path} is only for callers in namespace ${opts.systemNamespace}` });
    }
    req.debugNamespace = caller.namespace;
  });

  // Last line of defence: no debug response carries a private key, whatever produced it.
  app.addHook('onSend', async (req, reply, payload) => {
    if (debugPathOf(req) === undefined) return payload;
    if (typeof payload === 'string' && containsPrivateKey(payload)) {
      log.error({ url: req.url.split('?')[0] }, 'debug response withheld: it would have carried a private key');
      reply.code(500).header('content-type', 'application/json; charset=utf-8');
      return JSON.stringify({ error: 'response withheld: it would have carried a private key (redaction gap; please report)' });
    }
    return payload;
  });

  const handle = debugHandler(opts.debug);
  const serve = (path: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    const query = new URLSearchParams(req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '');
    const r = handle(path, query, req.debugNamespace);
    reply.code(r.status);
    if (typeof r.body === 'string') {
      reply.header('content-type', r.json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8');
    }
    return reply.send(r.body);
  };

  app.get('/ready', async (_req, reply) => {
    if (opts.isReady()) return reply.code(200).send('ready\n');
    return reply.code(503).send('not ready: waiting for every config source to sync once\n');
  });
  app.get('/debug', serve('list'));
  app.get<{ Params: { '*': string } }>('/debug/*', async (req, reply) => serve(req.params['*'])(req, reply));
  app.setErrorHandler((err, req, reply) => {
    const message = err instanceof Error ? err.message : String(err);
    opts.log.error({ err: message, url: req.url.split('?')[0] }, 'admin request failed');
    void reply.code(500).send({ error: message });
  });
  return app;
}

/** What a debug path answers: a status and a JSON value, or text (`json` marks text that is JSON already). */
export interface DebugResult {
  status: number;
  body: unknown;
  json?: boolean;
}

/** The debug paths, without the `/debug/` prefix (what istioctl's `x internal-debug --list` shows). */
export const DEBUG_PATHS = ['syncz', 'config_dump?proxyID=', 'clusters?proxyID=', 'sextant_dump?proxyID=', 'config_issues', 'push_status', 'list'] as const;

/**
 * The debug endpoints as one function of (path, query, namespace scope), so
 * HTTP `/debug/<path>` and the xDS type `istio.io/debug` (resource name
 * `<path>?<query>`, as istiod's DebugGen) answer the same. `namespace`, when
 * set, limits proxy lookups to that namespace (a non-system caller). Error
 * texts match istiod's, which istioctl recognises.
 */
export function debugHandler(debug: DebugSources): (path: string, query: URLSearchParams, namespace?: string) => DebugResult {
  const proxyFor = (query: URLSearchParams, namespace: string | undefined): DebugResult | ProxyState => {
    const id = query.get('proxyID');
    if (!id) return { status: 400, body: 'You must provide a proxyID in the query string (node ID or <pod>.<namespace>)\n' };
    const p = debug.proxy(id);
    // A non-system caller sees only its own namespace's proxies; others look not connected (as istiod).
    if (!p || (namespace !== undefined && p.namespace !== namespace)) {
      return { status: 404, body: 'Proxy not connected to this Pilot instance. It may be connected to another instance.\n' };
    }
    return p;
  };
  const isResult = (x: DebugResult | ProxyState): x is DebugResult => 'status' in x;
  return (path, query, namespace) => {
    switch (path) {
      case 'list':
        return { status: 200, body: DEBUG_PATHS.map((p) => `/debug/${p}`) };
      case 'syncz':
        return { status: 200, body: debug.syncz() };
      case 'config_dump': {
        const p = proxyFor(query, namespace);
        if (isResult(p)) return p;
        return { status: 200, body: JSON.stringify(canonicalConfigDump(buildConfigDump(p))), json: true };
      }
      case 'clusters': {
        const p = proxyFor(query, namespace);
        return isResult(p) ? p : { status: 200, body: buildClustersView(p) };
      }
      case 'sextant_dump': {
        const p = proxyFor(query, namespace);
        return isResult(p) ? p : { status: 200, body: buildSextantDump(p) };
      }
      case 'config_issues':
        return { status: 200, body: debug.configIssues() };
      case 'push_status':
        return { status: 200, body: debug.pushStatus() };
      default:
        return { status: 404, body: '404 page not found\n' };
    }
  };
}

/** True when serialized debug output may be sent: it carries no private key. */
export function debugOutputSafe(text: string): boolean {
  return !containsPrivateKey(text);
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
