import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '@sextant/api';
import type { Registry } from 'prom-client';

/** What the debug endpoints read; the daemon supplies it. Each returns plain JSON. */
export interface DebugSources {
  /** Per proxy and type: version sent, acked, nonce, last NACK. */
  syncz(): unknown;
  /** What was last sent to one proxy, as Envoy JSON; undefined when no such proxy. */
  configDump(proxyId: string): unknown | undefined;
  /** Objects rejected by validation and semantic issues, with kind/ns/name, field and reason. */
  configIssues(): unknown;
  /** The current push version and what triggered it. */
  pushStatus(): unknown;
}

export interface AdminServerOptions {
  host: string;
  port: number;
  isReady: () => boolean;
  debug: DebugSources;
  log: Logger;
}

/** The HTTP server on --http-port: /ready and /debug/*. */
export function createAdminServer(opts: AdminServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/ready', async (_req, reply) => {
    if (opts.isReady()) return reply.code(200).send('ready\n');
    return reply.code(503).send('not ready: waiting for every config source to sync once\n');
  });
  app.get('/debug/syncz', async () => opts.debug.syncz());
  app.get<{ Querystring: { proxyID?: string } }>('/debug/config_dump', async (req, reply) => {
    const id = req.query.proxyID;
    if (!id) return reply.code(400).send({ error: 'proxyID query parameter is required' });
    const dump = opts.debug.configDump(id);
    if (dump === undefined) return reply.code(404).send({ error: `no connected proxy ${id}` });
    return dump;
  });
  app.get('/debug/config_issues', async () => opts.debug.configIssues());
  app.get('/debug/push_status', async () => opts.debug.pushStatus());
  app.get('/debug', async () => ({
    endpoints: ['/ready', '/debug/syncz', '/debug/config_dump?proxyID=', '/debug/config_issues', '/debug/push_status'],
  }));
  app.setErrorHandler((err, req, reply) => {
    const message = err instanceof Error ? err.message : String(err);
    opts.log.error({ err: message, url: req.url }, 'admin request failed');
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
