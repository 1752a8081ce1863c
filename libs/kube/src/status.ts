import type { Logger, ValidationIssue } from '@sextant/api';
import { collectionPath, isConflict, isNotFound, defaultKinds, type KubeClient, type KubeObject, type KubeKind } from '@sextant/sources';
import { ReconcileQueue } from './reconcile-queue.js';

/**
 * Istio's analysis code for an object that fails schema validation
 * (`IST0106 SchemaValidationError`); Sextant writes it into
 * `status.validationMessages` of an Istio object that reached the cluster
 * without passing the webhook (created while it was down, or with
 * failurePolicy Ignore) and is therefore skipped.
 */
export const schemaValidationMessageType = { code: 'IST0106', name: 'SchemaValidationError' } as const;
export const schemaValidationDocUrl = 'https://istio.io/latest/docs/reference/config/analysis/ist0106/';
/** The condition Sextant sets next to the message: `Reconciled=False`, reason `SchemaValidationError`, message naming each field and reason. */
export const invalidConditionType = 'Reconciled';
export const invalidConditionReason = 'SchemaValidationError';
/**
 * The condition Sextant sets on an object a proxy rejected config built from:
 * `Reconciled=False`, reason `ProxyRejected`, the message naming the resource
 * and Envoy's error. Istio's `Reconciled` means "distributed to the
 * proxies", which a NACK denies. An object that is also invalid shows the
 * SchemaValidationError condition instead (its current version is not served).
 */
export const rejectedConditionReason = 'ProxyRejected';
/**
 * Sextant's condition on an EnvoyFilter (istiod writes none): whether each
 * of its patches matched something in the config Sextant built for the
 * proxies it selects. `True` (reason `Applied`), or `False` (reason
 * `NotApplied`) with a message naming each patch that matched nothing or
 * could not apply. Kept apart from `Reconciled` so neither hides the other.
 */
export const patchesAppliedConditionType = 'PatchesApplied';

interface IstioCondition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number | string;
  [k: string]: unknown;
}
interface ValidationMessage {
  type?: { code?: string; name?: string };
  level?: string;
  documentationUrl?: string;
  [k: string]: unknown;
}
interface IstioStatus {
  conditions?: IstioCondition[] | null;
  validationMessages?: ValidationMessage[] | null;
  [k: string]: unknown;
}

export interface StatusWriterOptions {
  client: KubeClient;
  log: Logger;
  /** Kinds whose objects get a status (default: the registry's CRD kinds). */
  kinds?: KubeKind[] | undefined;
  /** First retry delay for a failed write (ms, default 500, doubling). */
  retryMs?: number | undefined;
  /** Attempts per observed object version before giving up until it changes again (default 5). */
  maxAttempts?: number | undefined;
  now?: (() => Date) | undefined;
}

export interface StatusWriterStats {
  /** Status writes that marked an object invalid. */
  marked: number;
  /** Status writes that removed Sextant's invalid marking (the object became valid). */
  cleared: number;
  /** Writes that failed (each attempt). */
  failures: number;
  /** Objects given up on after maxAttempts (until they change again). */
  abandoned: number;
  /** Status writes that set or changed a ProxyRejected condition. */
  rejected: number;
  /** Status writes of an EnvoyFilter's PatchesApplied condition (with no other change of Sextant's). */
  patchesApplied: number;
}

export interface StatusWriter {
  /**
   * Every validated raw object, with its issues (empty when valid). Called for
   * every object the source sees, leader or not; only Istio kinds are kept,
   * and only those whose status differs from what it should be.
   */
  observe(raw: unknown, issues: readonly ValidationIssue[]): void;
  /**
   * A proxy rejects config built from this object (message), or no longer
   * does (undefined). Kinds without a status (core objects) are ignored.
   */
  setRejection(object: { kind: string; namespace: string; name: string }, message: string | undefined): void;
  /**
   * The `PatchesApplied` condition of an EnvoyFilter (status, reason,
   * message), or undefined to remove it.
   */
  setPatchesApplied(object: { namespace: string; name: string }, condition: { status: 'True' | 'False'; reason: string; message: string } | undefined): void;
  /** Starts writing (on leadership). */
  start(): void;
  /** Stops writing (leadership lost, shutdown); observations keep being recorded. */
  stop(): Promise<void>;
  /** Resolves when no write is pending or in flight (or when stopped). */
  idle(): Promise<void>;
  /** Objects whose status is waiting to be written. */
  pending(): number;
  stats(): StatusWriterStats;
  running(): boolean;
}

interface Want {
  conditions: IstioCondition[];
  validationMessages: ValidationMessage[];
}

interface Entry {
  /** The object as last observed; undefined when only a rejection changed (read back before writing). */
  raw: KubeObject | undefined;
  path: string;
  want: Want | undefined;
  marking: boolean;
  attempts: number;
}

const isOurMessage = (m: ValidationMessage) => m?.type?.code === schemaValidationMessageType.code;
const isOurCondition = (c: IstioCondition) => c?.type === invalidConditionType && (c?.reason === invalidConditionReason || c?.reason === rejectedConditionReason);
const isPatchesApplied = (c: IstioCondition) => c?.type === patchesAppliedConditionType;

function sameCondition(a: IstioCondition | undefined, b: IstioCondition | undefined): boolean {
  if (!a || !b) return a === b;
  return a.type === b.type && a.status === b.status && a.reason === b.reason && a.message === b.message && String(a.observedGeneration ?? '') === String(b.observedGeneration ?? '');
}

/** The text of the condition: every field and reason. */
export function invalidMessage(issues: readonly ValidationIssue[]): string {
  const parts = issues.map((i) => (i.field ? `${i.field}: ${i.reason}` : i.reason));
  return `configuration is invalid and is not served by Sextant (a previously valid version keeps serving): ${parts.join('; ')}`;
}

/**
 * Writes Istio's status for objects the Kubernetes source rejected, through
 * the `/status` subresource: `validationMessages` gets an `IST0106`
 * (SchemaValidationError, level ERROR) entry and `conditions` a
 * `Reconciled=False` condition with reason `SchemaValidationError` and a
 * message naming every field and reason. Objects a proxy rejected config
 * built from (setRejection) get `Reconciled=False` with reason
 * `ProxyRejected`. Both are removed again when the cause goes away; other
 * messages and conditions are left alone. Only the leader writes
 * (start/stop follow leadership); a failed write is retried with backoff a
 * bounded number of times and never throws.
 */
export function createStatusWriter(opts: StatusWriterOptions): StatusWriter {
  const log = opts.log.child({ controller: 'status-writer' });
  const kinds = new Map((opts.kinds ?? defaultKinds).filter((k) => k.crd).map((k) => [`${k.kind}.${k.group}`, k]));
  const retryBase = opts.retryMs ?? 500;
  const maxAttempts = opts.maxAttempts ?? 5;
  const now = opts.now ?? (() => new Date());
  const entries = new Map<string, Entry>();
  /** Validation issues of objects currently invalid, by key. */
  const invalid = new Map<string, readonly ValidationIssue[]>();
  /** Rejection text of objects a proxy currently rejects config from, by key. */
  const rejected = new Map<string, string>();
  /** The PatchesApplied condition wanted on EnvoyFilters, by key. */
  const patchesApplied = new Map<string, { status: 'True' | 'False'; reason: string; message: string }>();
  const st: StatusWriterStats = { marked: 0, cleared: 0, failures: 0, abandoned: 0, rejected: 0, patchesApplied: 0 };
  const stamp = () => now().toISOString().replace(/\.\d+Z$/, 'Z');

  /** What the object's status should be, and whether it already is. */
  const desired = (o: KubeObject, key: string): { want: Want; inSync: boolean; marking: boolean } => {
    const status = (o.status && typeof o.status === 'object' ? o.status : {}) as IstioStatus;
    const conditions = Array.isArray(status.conditions) ? status.conditions : [];
    const messages = Array.isArray(status.validationMessages) ? status.validationMessages : [];
    const otherConditions = conditions.filter((c) => !isOurCondition(c) && !isPatchesApplied(c));
    const otherMessages = messages.filter((m) => !isOurMessage(m));
    const issues = invalid.get(key) ?? [];
    const rejection = rejected.get(key);
    const previous = conditions.find(isOurCondition);
    const generation = (o.metadata as { generation?: number } | undefined)?.generation;
    let condition: IstioCondition | undefined;
    if (issues.length || rejection !== undefined) {
      condition = {
        type: invalidConditionType,
        status: 'False',
        reason: issues.length ? invalidConditionReason : rejectedConditionReason,
        message: issues.length ? invalidMessage(issues) : rejection,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      };
      condition.lastTransitionTime = previous?.status === 'False' && previous.lastTransitionTime ? previous.lastTransitionTime : stamp();
    }
    // The EnvoyFilter condition, kept with its transition time while its status holds.
    const pa = patchesApplied.get(key);
    const previousPa = conditions.find(isPatchesApplied);
    let paCondition: IstioCondition | undefined;
    if (pa) {
      paCondition = { type: patchesAppliedConditionType, status: pa.status, reason: pa.reason, message: pa.message, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
      paCondition.lastTransitionTime = previousPa?.status === pa.status && previousPa.lastTransitionTime ? previousPa.lastTransitionTime : stamp();
    }
    const paInSync = paCondition ? sameCondition(previousPa, paCondition) && conditions.filter(isPatchesApplied).length === 1 : previousPa === undefined;
    const wantMessage = issues.length > 0;
    const want: Want = {
      conditions: [...otherConditions, ...(condition ? [condition] : []), ...(paCondition ? [paCondition] : [])],
      validationMessages: wantMessage ? [...otherMessages, { type: { ...schemaValidationMessageType }, level: 'ERROR', documentationUrl: schemaValidationDocUrl }] : otherMessages,
    };
    const ours = messages.filter(isOurMessage);
    const conditionInSync = condition ? sameCondition(previous, condition) && conditions.filter(isOurCondition).length === 1 : previous === undefined;
    const messageInSync = wantMessage ? ours.length === 1 && ours[0]?.level === 'ERROR' : otherMessages.length === messages.length;
    return { want, inSync: conditionInSync && messageInSync && paInSync, marking: condition !== undefined };
  };

  const write = async (key: string, entry: Entry) => {
    if (!entry.raw) {
      // Only the rejection changed: read the object (rare: rate-limited NACK reports).
      try {
        entry.raw = await opts.client.request<KubeObject>('GET', entry.path, { timeoutMs: 10_000 });
      } catch (err) {
        if (isNotFound(err)) {
          if (entries.get(key) === entry) entries.delete(key);
          return;
        }
        throw err;
      }
    }
    const raw = entry.raw;
    const d = desired(raw, key);
    if (d.inSync) {
      if (entries.get(key) === entry) entries.delete(key);
      return;
    }
    entry.want = d.want;
    entry.marking = d.marking;
    const meta = raw.metadata ?? {};
    const ident = { kind: raw.kind, namespace: meta.namespace, name: meta.name };
    const empty = (a: unknown[]) => (a.length ? a : null);
    const patch = {
      metadata: { resourceVersion: meta.resourceVersion },
      status: { conditions: empty(d.want.conditions), validationMessages: empty(d.want.validationMessages) },
    };
    try {
      await opts.client.request('PATCH', `${entry.path}/status`, { body: patch, contentType: 'application/merge-patch+json', timeoutMs: 10_000 });
      const reason = d.want.conditions.find(isOurCondition)?.reason;
      const pa = d.want.conditions.find(isPatchesApplied);
      if (reason === rejectedConditionReason) st.rejected++;
      else if (entry.marking) st.marked++;
      else if (pa) st.patchesApplied++;
      else st.cleared++;
      if (pa && !reason) log.info({ ...ident, status: pa.status, reason: pa.reason }, 'wrote EnvoyFilter PatchesApplied status');
      else log.info({ ...ident, reason: reason ?? 'cleared' }, reason === rejectedConditionReason ? 'wrote proxy-rejected status' : entry.marking ? 'wrote invalid-config status (IST0106)' : 'cleared Sextant status');
      // The informer's echo of this write is checked again by observe(); nothing more to do unless a newer observation came in.
      if (entries.get(key) === entry) entries.delete(key);
    } catch (err) {
      if (isNotFound(err)) {
        if (entries.get(key) === entry) entries.delete(key);
        return;
      }
      st.failures++;
      entry.attempts++;
      if (isConflict(err) && entries.get(key) !== entry) return; // a newer observation replaced it and is queued
      if (entry.attempts >= maxAttempts) {
        st.abandoned++;
        log.error({ ...ident, err: (err as Error).message, attempts: entry.attempts }, 'could not write object status; giving up until the object changes');
        if (entries.get(key) === entry) entries.delete(key);
        return;
      }
      const delay = queue.backoff(entry.attempts);
      log.warn({ ...ident, err: (err as Error).message, retryInMs: Math.round(delay) }, 'could not write object status; retrying');
      if (isConflict(err)) {
        // Someone else changed the object; read it back so the retry carries its resourceVersion and status.
        try {
          const live = await opts.client.request<KubeObject>('GET', entry.path, { timeoutMs: 10_000 });
          if (entries.get(key) === entry) entry.raw = { ...live, apiVersion: raw.apiVersion, kind: raw.kind };
        } catch {
          // retried below
        }
      }
      // The retry finds whatever entry is current for the key (a newer observation may have replaced this one).
      queue.retryLater(key, delay);
    }
  };

  const queue = new ReconcileQueue({
    reconcile: async (key) => {
      const entry = entries.get(key);
      if (entry) await write(key, entry);
    },
    // write() handles its own errors (attempt counts live on the entry).
    onFailure: (key, err) => log.error({ key, err: (err as Error).message }, 'status write failed unexpectedly'),
    retryBaseMs: retryBase,
  });

  return {
    observe(raw, issues) {
      const o = raw as KubeObject;
      if (!o || typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return;
      const slash = o.apiVersion.indexOf('/');
      if (slash < 0) return;
      const group = o.apiVersion.slice(0, slash);
      const version = o.apiVersion.slice(slash + 1);
      const k = kinds.get(`${o.kind}.${group}`);
      const name = o.metadata?.name;
      if (!k || typeof name !== 'string' || !name) return;
      const ns = typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : undefined;
      const key = `${o.kind}.${group}/${ns ?? ''}/${name}`;
      if (issues.length) invalid.set(key, issues);
      else invalid.delete(key);
      const d = desired(o, key);
      if (d.inSync) {
        entries.delete(key);
        return;
      }
      entries.set(key, { raw: o, path: `${collectionPath(group, version, k.plural, ns)}/${name}`, want: d.want, marking: d.marking, attempts: 0 });
      queue.add(key);
    },
    setRejection(object, message) {
      // Istio's kinds only (a Kubernetes Gateway shares the kind name with Istio's).
      const k = [...kinds.values()].find((x) => x.kind === object.kind && x.group.endsWith('istio.io'));
      if (!k) return;
      const key = `${k.kind}.${k.group}/${object.namespace}/${object.name}`;
      if (message === undefined) {
        if (!rejected.delete(key)) return;
      } else {
        if (rejected.get(key) === message) return;
        rejected.set(key, message);
      }
      const pending = entries.get(key);
      if (pending) {
        pending.attempts = 0;
      } else {
        entries.set(key, { raw: undefined, path: `${collectionPath(k.group, k.versions[0]!, k.plural, k.namespaced ? object.namespace : undefined)}/${object.name}`, want: undefined, marking: message !== undefined, attempts: 0 });
      }
      queue.add(key);
    },
    setPatchesApplied(object, condition) {
      const k = [...kinds.values()].find((x) => x.kind === 'EnvoyFilter' && x.group === 'networking.istio.io');
      if (!k) return;
      const key = `${k.kind}.${k.group}/${object.namespace}/${object.name}`;
      const cur = patchesApplied.get(key);
      if (condition === undefined) {
        if (!patchesApplied.delete(key)) return;
      } else {
        if (cur && cur.status === condition.status && cur.reason === condition.reason && cur.message === condition.message) return;
        patchesApplied.set(key, { ...condition });
      }
      const pending = entries.get(key);
      if (pending) {
        pending.attempts = 0;
      } else {
        entries.set(key, { raw: undefined, path: `${collectionPath(k.group, k.versions[0]!, k.plural, object.namespace)}/${object.name}`, want: undefined, marking: false, attempts: 0 });
      }
      queue.add(key);
    },
    start() {
      if (queue.running) return;
      log.info({ pending: entries.size }, 'status writer started (leader)');
      queue.start();
      queue.add(...entries.keys());
    },
    async stop() {
      if (queue.running) await queue.stop();
    },
    idle: () => queue.idle(),
    pending: () => entries.size,
    stats: () => ({ ...st }),
    running: () => queue.running,
  };
}
