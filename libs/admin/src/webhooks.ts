import type https from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger, ValidationIssue } from '@sextant/api';
import { injectionDecision, injectionPatch, type InjectOptions, type PodLike } from './inject.js';

/** The part of `validateObject`'s answer the webhook reads. */
export type WebhookValidationResult = { ok: true; warnings?: ValidationIssue[] } | { ok: false; issues: ValidationIssue[] };

export interface WebhookOptions {
  /** Validation of one Istio object (`validateObject` from `@sextant/api`, unknown fields rejected). */
  validate: (raw: unknown) => WebhookValidationResult;
  /** Kinds `validate` knows; others are allowed untouched (the webhook configuration routes only Istio kinds). */
  isKnownKind?: (kind: string) => boolean;
  /** Injection settings; without them /inject allows every pod unchanged. */
  inject?: InjectOptions | undefined;
  /** Labels of a namespace (from the Kubernetes source's cache); undefined when unknown. */
  namespaceLabels?: (namespace: string) => Record<string, string> | undefined | Promise<Record<string, string> | undefined>;
  log: Logger;
  /** Counters for the metrics endpoint. */
  onResult?: (hook: 'validate' | 'inject', outcome: 'allowed' | 'denied' | 'injected' | 'skipped' | 'error') => void;
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  name?: string;
  object?: unknown;
  dryRun?: boolean;
}
interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: AdmissionRequest;
}

function review(uid: string, response: Record<string, unknown>) {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, ...response } };
}

/** How a list of issues reads in `kubectl apply`'s error: one `field: reason` per issue. */
export function denialMessage(issues: readonly ValidationIssue[]): string {
  const head = issues[0] ? `${issues[0].kind} ${issues[0].namespace ? `${issues[0].namespace}/` : ''}${issues[0].name}` : 'object';
  return `configuration is invalid: ${head}: ${issues.map((i) => `${i.field}: ${i.reason}`).join('; ')}`;
}

/**
 * Registers the AdmissionReview v1 handlers: POST /validate and POST /inject.
 * Malformed reviews get 400; a failure inside a handler is answered (allowed
 * for /inject so that pods are never blocked by Sextant, denied for /validate
 * only when the object is invalid), never a crash.
 */
export function registerWebhooks(app: FastifyInstance, opts: WebhookOptions): void {
  const log = opts.log.child({ component: 'webhooks' });
  const count = (h: 'validate' | 'inject', o: 'allowed' | 'denied' | 'injected' | 'skipped' | 'error') => opts.onResult?.(h, o);
  const bodyLimit = 8 * 1024 * 1024;

  app.post<{ Body: AdmissionReview }>('/validate', { bodyLimit }, async (req, reply) => {
    const r = req.body?.request;
    if (!r?.uid) return reply.code(400).send({ error: 'expected an admission.k8s.io/v1 AdmissionReview with request.uid' });
    const kind = r.kind?.kind ?? (r.object as { kind?: string } | undefined)?.kind ?? '';
    if (r.operation === 'DELETE' || r.object == null || (opts.isKnownKind && !opts.isKnownKind(kind))) {
      count('validate', 'allowed');
      return review(r.uid, { allowed: true });
    }
    let res: WebhookValidationResult;
    try {
      res = opts.validate(r.object);
    } catch (err) {
      log.error({ kind, namespace: r.namespace, name: r.name, err: (err as Error).message }, 'validation failed unexpectedly');
      count('validate', 'error');
      return review(r.uid, { allowed: false, status: { code: 500, message: `Sextant could not validate the object: ${(err as Error).message}` } });
    }
    if (res.ok) {
      count('validate', 'allowed');
      const warnings = (res.warnings ?? []).map((w) => `${w.field}: ${w.reason}`);
      return review(r.uid, { allowed: true, ...(warnings.length ? { warnings } : {}) });
    }
    const message = denialMessage(res.issues);
    log.info({ kind, namespace: r.namespace, name: r.name ?? res.issues[0]?.name, issues: res.issues.map((i) => `${i.field}: ${i.reason}`) }, 'admission denied');
    count('validate', 'denied');
    return review(r.uid, { allowed: false, status: { code: 400, reason: 'Invalid', message } });
  });

  app.post<{ Body: AdmissionReview }>('/inject', { bodyLimit }, async (req, reply) => {
    const r = req.body?.request;
    if (!r?.uid) return reply.code(400).send({ error: 'expected an admission.k8s.io/v1 AdmissionReview with request.uid' });
    const pod = (r.object ?? {}) as PodLike;
    const namespace = r.namespace ?? pod.metadata?.namespace ?? 'default';
    const podName = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ''}<generated>`;
    if (!opts.inject || (r.kind?.kind && r.kind.kind !== 'Pod') || r.operation !== 'CREATE') {
      count('inject', 'skipped');
      return review(r.uid, { allowed: true });
    }
    try {
      const nsLabels = await opts.namespaceLabels?.(namespace);
      const d = injectionDecision(pod, namespace, nsLabels, opts.inject);
      if (!d.inject) {
        log.debug({ namespace, pod: podName, reason: d.reason }, 'not injecting');
        count('inject', 'skipped');
        return review(r.uid, { allowed: true });
      }
      const patch = injectionPatch(pod, namespace, opts.inject);
      log.info({ namespace, pod: podName, reason: d.reason }, 'injecting sidecar');
      count('inject', 'injected');
      return review(r.uid, { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
    } catch (err) {
      // Never block a pod because of Sextant: admit it without a sidecar and say so.
      log.error({ namespace, pod: podName, err: (err as Error).message }, 'injection failed; admitting the pod without a sidecar');
      count('inject', 'error');
      return review(r.uid, { allowed: true, warnings: [`sidecar injection failed: ${(err as Error).message}`] });
    }
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
