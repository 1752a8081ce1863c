import { describeValue, type ValidationIssue } from '@sextant/api';
import { injectionDecision, injectionPatch, type InjectOptions, type PodLike } from './inject.js';

/**
 * AdmissionReview handling without I/O: parse and check the review, decide,
 * and write the answer. The webhook server runs this in a worker thread
 * (webhook-worker.ts), so nothing here may touch the daemon's state.
 */

/** The AdmissionReview versions the API server may send; the answer uses the version asked in. */
export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  name?: string;
  object?: unknown;
  dryRun?: boolean;
}

export type Hook = 'validate' | 'inject';
export type Outcome = 'allowed' | 'denied' | 'injected' | 'skipped' | 'error';

/** What the HTTP layer sends back, and what it logs and counts. */
export interface AdmissionAnswer {
  /** HTTP status: 200 with an AdmissionReview, or 400 for a request that is not one. */
  statusCode: number;
  /** The JSON body, already serialized (it crosses the thread boundary as one string). */
  body: string;
  outcome?: Outcome;
  log?: { level: 'debug' | 'info' | 'warn' | 'error'; fields: Record<string, unknown>; msg: string };
}

/** A request the webhook refuses outright (HTTP 400), with the reason in Kubernetes' Status shape. */
function badRequest(message: string): AdmissionAnswer {
  return { statusCode: 400, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 400, reason: 'BadRequest', message }) };
}

function answer(version: AdmissionVersion, uid: string, response: Record<string, unknown>, outcome: Outcome, log?: AdmissionAnswer['log']): AdmissionAnswer {
  return { statusCode: 200, body: JSON.stringify({ apiVersion: version, kind: 'AdmissionReview', response: { uid, ...response } }), outcome, ...(log ? { log } : {}) };
}

/**
 * Parses and checks an AdmissionReview: JSON, kind AdmissionReview, a version
 * Kubernetes sends (v1 or v1beta1), a request with a non-empty string uid.
 */
export function parseAdmissionReview(bytes: Uint8Array | string): { ok: true; version: AdmissionVersion; request: AdmissionRequest } | { ok: false; answer: AdmissionAnswer } {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  let review: unknown;
  try {
    review = JSON.parse(text);
  } catch (err) {
    return { ok: false, answer: badRequest(`the request body is not JSON: ${(err as Error).message}`) };
  }
  if (review === null || typeof review !== 'object' || Array.isArray(review))
    return { ok: false, answer: badRequest(`expected an AdmissionReview object, got ${describeValue(review)}`) };
  const r = review as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (r.kind !== 'AdmissionReview') return { ok: false, answer: badRequest(`expected kind "AdmissionReview", got ${describeValue(r.kind)}`) };
  if (typeof r.apiVersion !== 'string' || !(ADMISSION_VERSIONS as readonly string[]).includes(r.apiVersion))
    return { ok: false, answer: badRequest(`unsupported AdmissionReview apiVersion ${describeValue(r.apiVersion)}; Sextant accepts ${ADMISSION_VERSIONS.map((v) => `"${v}"`).join(' and ')}`) };
  const request = r.request;
  if (request === null || typeof request !== 'object' || Array.isArray(request))
    return { ok: false, answer: badRequest(`request: expected the AdmissionRequest object, got ${describeValue(request)}`) };
  const uid = (request as { uid?: unknown }).uid;
  if (typeof uid !== 'string' || uid === '') return { ok: false, answer: badRequest(`request.uid: expected a non-empty string, got ${describeValue(uid)}`) };
  return { ok: true, version: r.apiVersion as AdmissionVersion, request: request as AdmissionRequest };
}

/** The part of `validateObject`'s answer the webhook reads. */
export type WebhookValidationResult = { ok: true; warnings?: ValidationIssue[] } | { ok: false; issues: ValidationIssue[] };

/** How a list of issues reads in `kubectl apply`'s error: one `field: reason` per issue. */
export function denialMessage(issues: readonly ValidationIssue[]): string {
  const head = issues[0] ? `${issues[0].kind} ${issues[0].namespace ? `${issues[0].namespace}/` : ''}${issues[0].name}` : 'object';
  return `configuration is invalid: ${head}: ${issues.map((i) => `${i.field}: ${i.reason}`).join('; ')}`;
}

export interface ValidateDeps {
  validate: (raw: unknown) => WebhookValidationResult;
  /** Kinds `validate` knows; others are allowed untouched (the webhook configuration routes only Istio kinds). */
  isKnownKind?: (kind: string) => boolean;
}

/** POST /validate: a review in, the answer out. Denied only when the object is invalid; never throws. */
export function validateAdmission(bytes: Uint8Array | string, deps: ValidateDeps): AdmissionAnswer {
  const parsed = parseAdmissionReview(bytes);
  if (!parsed.ok) return parsed.answer;
  const { version, request: r } = parsed;
  const kind = r.kind?.kind ?? (r.object as { kind?: string } | undefined)?.kind ?? '';
  if (r.operation === 'DELETE' || r.object == null || (deps.isKnownKind && !deps.isKnownKind(kind))) return answer(version, r.uid, { allowed: true }, 'allowed');
  let res: WebhookValidationResult;
  try {
    res = deps.validate(r.object);
  } catch (err) {
    const message = (err as Error).message;
    return answer(version, r.uid, { allowed: false, status: { code: 500, message: `Sextant could not validate the object: ${message}` } }, 'error', {
      level: 'error',
      fields: { kind, namespace: r.namespace, name: r.name, err: message },
      msg: 'validation failed unexpectedly',
    });
  }
  if (res.ok) {
    const warnings = (res.warnings ?? []).map((w) => `${w.field}: ${w.reason}`);
    return answer(version, r.uid, { allowed: true, ...(warnings.length ? { warnings } : {}) }, 'allowed');
  }
  return answer(version, r.uid, { allowed: false, status: { code: 400, reason: 'Invalid', message: denialMessage(res.issues) } }, 'denied', {
    level: 'info',
    fields: { kind, namespace: r.namespace, name: r.name ?? res.issues[0]?.name, issues: res.issues.map((i) => `${i.field}: ${i.reason}`) },
    msg: 'admission denied',
  });
}

export interface InjectDeps {
  inject?: InjectOptions | undefined;
  /** Labels of a namespace; undefined when unknown. */
  namespaceLabels?: (namespace: string) => Record<string, string> | undefined | Promise<Record<string, string> | undefined>;
}

/** POST /inject: admits every pod; adds the sidecar patch when injection applies. Never throws. */
export async function injectAdmission(bytes: Uint8Array | string, deps: InjectDeps): Promise<AdmissionAnswer> {
  const parsed = parseAdmissionReview(bytes);
  if (!parsed.ok) return parsed.answer;
  const { version, request: r } = parsed;
  const pod = (r.object ?? {}) as PodLike;
  const namespace = r.namespace ?? pod.metadata?.namespace ?? 'default';
  const podName = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ''}<generated>`;
  if (!deps.inject || (r.kind?.kind && r.kind.kind !== 'Pod') || r.operation !== 'CREATE') return answer(version, r.uid, { allowed: true }, 'skipped');
  try {
    const nsLabels = await deps.namespaceLabels?.(namespace);
    const d = injectionDecision(pod, namespace, nsLabels, deps.inject);
    if (!d.inject) return answer(version, r.uid, { allowed: true }, 'skipped', { level: 'debug', fields: { namespace, pod: podName, reason: d.reason }, msg: 'not injecting' });
    const patch = injectionPatch(pod, namespace, deps.inject);
    return answer(version, r.uid, { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }, 'injected', {
      level: 'info',
      fields: { namespace, pod: podName, reason: d.reason },
      msg: 'injecting sidecar',
    });
  } catch (err) {
    // Never block a pod because of Sextant: admit it without a sidecar and say so.
    const message = (err as Error).message;
    return answer(version, r.uid, { allowed: true, warnings: [`sidecar injection failed: ${message}`] }, 'error', {
      level: 'error',
      fields: { namespace, pod: podName, err: message },
      msg: 'injection failed; admitting the pod without a sidecar',
    });
  }
}
