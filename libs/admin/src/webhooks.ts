import type https from 'node:https';
import { MessageChannel } from 'node:worker_threads';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { Piscina } from 'piscina';
import type { Logger } from '@sextant/api';
import type { AdmissionAnswer, Hook, Outcome } from './admission.js';
import type { InjectOptions } from './inject.js';
import type { WebhookTask, WebhookWorkerData } from './webhook-worker.js';

export { denialMessage, type WebhookValidationResult } from './admission.js';

/**
 * The largest AdmissionReview read, as Istio's webhooks allow (6 MiB): the API
 * server takes objects up to 3 MiB, and an UPDATE review carries the object
 * and its old version.
 */
export const WEBHOOK_BODY_LIMIT = 6 * 1024 * 1024;

/** Limits of the webhook worker pool; each has a default that suits the chart's 10 s webhook timeout. */
export interface WebhookLimits {
  /** Request body limit in bytes (default WEBHOOK_BODY_LIMIT); a larger body gets 413. */
  bodyLimit?: number;
  /** Worker threads that parse, validate and inject (default 2). */
  maxThreads?: number;
  /** Reviews waiting for a worker before new ones get 429 (default 32). */
  maxQueue?: number;
  /** A review not answered by then gets 503 and its worker is terminated (default 9000 ms, under the API server's 10 s). */
  deadlineMs?: number;
  /** Heap of one worker in MiB (default 256); a review that needs more ends that worker and gets 503. */
  workerHeapMb?: number;
}

export interface WebhookOptions {
  /** Injection settings; without them /inject allows every pod unchanged. */
  inject?: InjectOptions | undefined;
  /** Labels of a namespace (from the Kubernetes source's cache); undefined when unknown. */
  namespaceLabels?: (namespace: string) => Record<string, string> | undefined | Promise<Record<string, string> | undefined>;
  log: Logger;
  /** Counters for the metrics endpoint. */
  onResult?: (hook: Hook, outcome: Outcome) => void;
  limits?: WebhookLimits;
}

/** Kubernetes' Status shape for an HTTP-level refusal. */
function status(reply: FastifyReply, code: number, reason: string, message: string) {
  return reply.code(code).type('application/json').send({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
}

/**
 * Registers POST /validate and POST /inject (AdmissionReview admission.k8s.io/v1
 * and v1beta1, answered in the version asked). The main thread only collects
 * the body; parsing, validation and injection run in a pool of worker threads
 * with a queue bound and a deadline, so no review, however hostile, holds up
 * xDS, CSRs or /ready. A body that is not an AdmissionReview gets 400; a
 * failure inside a handler is answered (allowed for /inject so that pods are
 * never blocked by Sextant, denied for /validate only when the object is
 * invalid), never a crash. The pool closes with the server.
 */
export function registerWebhooks(app: FastifyInstance, opts: WebhookOptions): void {
  const log = opts.log.child({ component: 'webhooks' });
  const limits = opts.limits ?? {};
  const bodyLimit = limits.bodyLimit ?? WEBHOOK_BODY_LIMIT;
  const deadlineMs = limits.deadlineMs ?? 9000;
  const workerData: WebhookWorkerData = opts.inject ? { inject: opts.inject } : {};
  const maxThreads = limits.maxThreads ?? 2;
  // Counted here: piscina does not apply its maxQueue to tasks that carry an AbortSignal.
  const maxInFlight = maxThreads + (limits.maxQueue ?? 32);
  let inFlight = 0;
  const pool = new Piscina<WebhookTask, AdmissionAnswer>({
    filename: new URL('./webhook-worker.js', import.meta.url).href,
    minThreads: 1,
    maxThreads,
    idleTimeout: 60_000,
    // The lowest CPU priority (Linux: per thread, through piscina's @napi-rs/nice): with every core
    // busy validating, the scheduler still runs the event loop that serves xDS, CSRs and /ready first.
    niceIncrement: 19,
    resourceLimits: { maxOldGenerationSizeMb: limits.workerHeapMb ?? 256 },
    workerData,
  });
  // A worker that dies (out of its heap, say) is replaced by the pool; its error must not end the daemon.
  pool.on('error', (err: Error) => log.error({ err: err.message }, 'a webhook worker failed; the pool replaces it'));
  app.addHook('onClose', async () => {
    await pool.destroy();
  });

  const handle = async (hook: Hook, body: Buffer, reply: FastifyReply) => {
    if (inFlight >= maxInFlight) {
      opts.onResult?.(hook, 'error');
      log.warn({ hook, bytes: body.length, inFlight }, 'admission review refused: every webhook worker is busy and the queue is full');
      return status(reply, 429, 'TooManyRequests', 'Sextant is busy with other admission reviews; try again');
    }
    inFlight++;
    try {
      return await handleInPool(hook, body, reply);
    } finally {
      inFlight--;
    }
  };

  const handleInPool = async (hook: Hook, body: Buffer, reply: FastifyReply) => {
    const signal = AbortSignal.timeout(deadlineMs);
    let port: MessageChannel | undefined;
    if (hook === 'inject' && opts.namespaceLabels) {
      port = new MessageChannel();
      const ask = opts.namespaceLabels;
      const mine = port.port1;
      mine.on('message', (ns: string) => {
        Promise.resolve()
          .then(() => ask(ns))
          .then(
            (labels) => mine.postMessage(labels ?? null),
            (err: Error) => {
              log.warn({ namespace: ns, err: err.message }, 'namespace labels unavailable for injection');
              mine.postMessage(null);
            },
          );
      });
    }
    const task: WebhookTask = { hook, body, ...(port ? { labels: port.port2 } : {}) };
    let res: AdmissionAnswer;
    try {
      res = await pool.run(task, { signal, ...(port ? { transferList: [port.port2] } : {}) });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'AbortError') {
        opts.onResult?.(hook, 'error');
        log.warn({ hook, bytes: body.length, deadlineMs }, 'admission review not answered within the deadline; its worker was stopped');
        return status(reply, 503, 'Timeout', `Sextant did not finish this review within ${deadlineMs} ms`);
      }
      opts.onResult?.(hook, 'error');
      log.error({ hook, bytes: body.length, err: e.message }, 'admission review failed in its worker');
      return status(reply, 500, 'InternalError', `Sextant could not process the review: ${e.message}`);
    } finally {
      port?.port1.close();
    }
    if (res.log) log[res.log.level](res.log.fields, res.log.msg);
    if (res.outcome) opts.onResult?.(hook, res.outcome);
    return reply.code(res.statusCode).type('application/json').send(res.body);
  };

  // The body stays bytes on this thread: JSON.parse of megabytes is work for the worker.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
    scope.post<{ Body: Buffer }>('/validate', { bodyLimit }, (req, reply) => handle('validate', req.body, reply));
    scope.post<{ Body: Buffer }>('/inject', { bodyLimit }, (req, reply) => handle('inject', req.body, reply));
  });
}

export interface WebhookServerOptions extends WebhookOptions {
  /** PEM certificate chain and key for TLS (the API server only calls webhooks over HTTPS). */
  tls: { cert: string; key: string };
}

/** A fastify HTTPS server with only the webhooks (the daemon's --webhook-port); `setCertificate` swaps the cert without a restart. */
export function createWebhookServer(opts: WebhookServerOptions): FastifyInstance<https.Server> & { setCertificate(cert: string, key: string): void } {
  const app = Fastify({ logger: false, https: { cert: opts.tls.cert, key: opts.tls.key } });
  registerWebhooks(app as unknown as FastifyInstance, opts);
  app.get('/ready', async () => 'ok\n');
  return Object.assign(app, {
    setCertificate(cert: string, key: string) {
      app.server.setSecureContext({ cert, key });
    },
  });
}
