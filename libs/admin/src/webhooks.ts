import type https from 'node:https';
import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import Fastify, { errorCodes, type FastifyInstance, type FastifyReply } from 'fastify';
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

/** Worker threads by default: one core stays free for the event loop (1 on a 2-core machine), at most 2. */
export const DEFAULT_WEBHOOK_THREADS = Math.max(1, Math.min(2, availableParallelism() - 1));

/** Nice increment of the webhook worker threads. */
export const WEBHOOK_WORKER_NICE = 10;

/** Limits of the webhook worker pool; each has a default that suits the chart's 10 s webhook timeout. */
export interface WebhookLimits {
  /** Request body limit in bytes (default WEBHOOK_BODY_LIMIT); a larger body gets 413. */
  bodyLimit?: number;
  /** Worker threads that parse, validate and inject (default DEFAULT_WEBHOOK_THREADS). */
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

/**
 * The body's chunks as the worker receives them: a chunk that is the whole of
 * its ArrayBuffer (one socket read) moves to the worker without a copy, so
 * its memory leaves this thread's heap accounting at once; a chunk that
 * shares its buffer (the first one shares it with the headers) is copied.
 */
function movable(chunks: readonly Buffer[]): { parts: Uint8Array[]; transfer: ArrayBuffer[] } {
  const parts: Uint8Array[] = [];
  const transfer = new Set<ArrayBuffer>();
  for (const c of chunks) {
    const whole = c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.buffer instanceof ArrayBuffer && !transfer.has(c.buffer);
    if (whole) {
      transfer.add(c.buffer as ArrayBuffer);
      parts.push(new Uint8Array(c.buffer));
    } else parts.push(new Uint8Array(c));
  }
  return { parts, transfer: [...transfer] };
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
  const maxThreads = limits.maxThreads ?? DEFAULT_WEBHOOK_THREADS;
  // Counted here: piscina does not apply its maxQueue to tasks that carry an AbortSignal.
  const maxInFlight = maxThreads + (limits.maxQueue ?? 32);
  let inFlight = 0;
  const pool = new Piscina<WebhookTask, AdmissionAnswer>({
    filename: new URL('./webhook-worker.js', import.meta.url).href,
    minThreads: 1,
    maxThreads,
    idleTimeout: 60_000,
    // A lower CPU priority (Linux: per thread, through piscina's @napi-rs/nice): when the workers and the
    // event loop that serves xDS, CSRs and /ready want the same core, the event loop gets about 90% of it.
    // Not 19: on a host shared with other busy processes a nice-19 worker starves, and a pod's injection
    // review (failurePolicy Fail) would time out.
    niceIncrement: WEBHOOK_WORKER_NICE,
    resourceLimits: { maxOldGenerationSizeMb: limits.workerHeapMb ?? 256 },
    workerData,
  });
  // A worker that dies (out of its heap, say) is replaced by the pool; its error must not end the daemon.
  pool.on('error', (err: Error) => log.error({ err: err.message }, 'a webhook worker failed; the pool replaces it'));
  app.addHook('onClose', async () => {
    await pool.destroy();
  });

  const handle = async (hook: Hook, chunks: Buffer[], reply: FastifyReply) => {
    const bytes = chunks.reduce((n, c) => n + c.length, 0);
    if (inFlight >= maxInFlight) {
      opts.onResult?.(hook, 'error');
      log.warn({ hook, bytes, inFlight }, 'admission review refused: every webhook worker is busy and the queue is full');
      return status(reply, 429, 'TooManyRequests', 'Sextant is busy with other admission reviews; try again');
    }
    inFlight++;
    try {
      return await handleInPool(hook, chunks, bytes, reply);
    } finally {
      inFlight--;
    }
  };

  const handleInPool = async (hook: Hook, chunks: Buffer[], bytes: number, reply: FastifyReply) => {
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
    const run = (body: { parts: Uint8Array[]; transfer: ArrayBuffer[] }) =>
      pool.run({ hook, body: body.parts, ...(port ? { labels: port.port2 } : {}) }, { signal, transferList: [...body.transfer, ...(port ? [port.port2] : [])] });
    let res: AdmissionAnswer;
    try {
      // postMessage checks the transfer list before it moves anything: a buffer Node will not let go of is copied instead.
      res = await run(movable(chunks)).catch((err: Error) => {
        if (err.name === 'DataCloneError') return run({ parts: chunks.map((c) => new Uint8Array(c)), transfer: [] });
        throw err;
      });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'AbortError') {
        opts.onResult?.(hook, 'error');
        log.warn({ hook, bytes, deadlineMs }, 'admission review not answered within the deadline; its worker was stopped');
        return status(reply, 503, 'Timeout', `Sextant did not finish this review within ${deadlineMs} ms`);
      }
      opts.onResult?.(hook, 'error');
      log.error({ hook, bytes, err: e.message }, 'admission review failed in its worker');
      return status(reply, 500, 'InternalError', `Sextant could not process the review: ${e.message}`);
    } finally {
      port?.port1.close();
    }
    if (res.log) log[res.log.level](res.log.fields, res.log.msg);
    if (res.outcome) opts.onResult?.(hook, res.outcome);
    return reply.code(res.statusCode).type('application/json').send(res.body);
  };

  // The body stays bytes on this thread, as the chunks it arrived in (never joined here): JSON.parse
  // of megabytes is work for the worker, and so is the copy that joins them.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', (req, payload, done) => {
      if (Number(req.headers['content-length']) > bodyLimit) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), undefined);
      const chunks: Buffer[] = [];
      let size = 0;
      let finished = false;
      const finish = (err: Error | null) => {
        if (finished) return;
        finished = true;
        payload.removeListener('data', onData);
        done(err, err ? undefined : chunks);
      };
      const onData = (chunk: Buffer | string) => {
        const c = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        size += c.length;
        if (size > bodyLimit) finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
        else chunks.push(c);
      };
      payload.on('data', onData);
      payload.once('end', () => finish(null));
      payload.once('error', (err: Error) => finish(err));
    });
    scope.post<{ Body: Buffer[] }>('/validate', { bodyLimit }, (req, reply) => handle('validate', req.body, reply));
    scope.post<{ Body: Buffer[] }>('/inject', { bodyLimit }, (req, reply) => handle('inject', req.body, reply));
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
