import { validateObject, type Logger, type ObjectKey, type ObjectMeta, type ValidationIssue } from '@sextant/api';
import type { ConfigBatch, ConfigEvent, ConfigObject, ConfigSource } from '../types.js';
import { KubeClient, type KubeObject } from './client.js';
import { SupervisedInformer, type InformerStatus, type InformerTiming, type RawChange } from './informer.js';
import { crdName, defaultKinds, kindId, type KubeKind } from './kinds.js';

export type ValidationResult = { ok: true; object: ConfigObject } | { ok: false; issues: ValidationIssue[] };
export type ValidateFn = (raw: unknown) => ValidationResult;

export interface KubeSourceOptions {
  /** Path of a kubeconfig file; without it (and without inCluster) the default loading rules apply. */
  kubeconfigPath?: string | undefined;
  /** Use the pod's service account (in-cluster configuration). */
  inCluster?: boolean | undefined;
  /** An existing client (shares the connection config with the leader elector and writers). */
  client?: KubeClient | undefined;
  log: Logger;
  /** What to watch; default: core kinds plus every Istio kind Sextant reads. */
  kinds?: KubeKind[] | undefined;
  /**
   * Validation of every object. Default: `validateObject` from `@sextant/api`
   * with unknown spec fields dropped and reported as warnings (a cluster's
   * CRDs may be newer than Sextant); `envelopeValidate` checks only the envelope.
   */
  validate?: ValidateFn | undefined;
  /** Supervisor timing (backoff, watchdog, watch timeout); tests shorten it. */
  timing?: Partial<InformerTiming> | undefined;
  /** Source name in batches (default `kubernetes`). */
  name?: string | undefined;
}

export interface KubeSourceStats {
  /** Objects rejected by validation so far (a counter, for the metric). */
  rejectedTotal: number;
  /** Informer restarts by the supervisor (errors, dropped or stalled watches). */
  restartsTotal: number;
  eventsTotal: number;
}

export interface KubeSource extends ConfigSource {
  readonly client: KubeClient;
  /** Every informer's status (for /debug and tests). */
  informers(): InformerStatus[];
  /** The valid objects currently served, per kind id (`Kind` or `Kind.group`). */
  snapshot(): ConfigObject[];
  stats(): KubeSourceStats;
  /** Test and debug hook: drop every watch connection, as a network failure would. */
  dropConnections(): void;
}

/** The default validator: the registry's schemas; unknown spec fields are warned about and dropped. */
export const clusterValidate: ValidateFn = (raw) => validateObject(raw, { unknownFields: 'warn' });

/** Builds a ConfigObject from a raw object without schema checks. */
export function envelopeValidate(raw: unknown): ValidationResult {
  const o = (raw ?? {}) as KubeObject;
  const kind = typeof o.kind === 'string' ? o.kind : '';
  const meta = (o.metadata ?? {}) as ObjectMeta;
  const name = typeof meta.name === 'string' ? meta.name : '';
  const issue = (field: string, reason: string): ValidationResult => ({
    ok: false,
    issues: [{ kind: kind || 'Unknown', namespace: meta.namespace, name: name || '<unnamed>', field, reason }],
  });
  if (!kind) return issue('kind', 'missing');
  if (typeof o.apiVersion !== 'string' || !o.apiVersion) return issue('apiVersion', 'missing');
  if (!name) return issue('metadata.name', 'missing');
  const slash = o.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : o.apiVersion.slice(0, slash);
  const version = slash < 0 ? o.apiVersion : o.apiVersion.slice(slash + 1);
  const { apiVersion: _a, kind: _k, metadata: _m, ...body } = o;
  return { ok: true, object: { kind, group, version, metadata: meta, body } };
}

interface Entry {
  /** What is served downstream: the last valid version. */
  valid: ConfigObject | undefined;
  rejected: Array<ValidationIssue & { key: ObjectKey }> | undefined;
}

/**
 * The Kubernetes source: one supervised informer per kind, CRD kinds started
 * when their CRD is established, objects validated before they become
 * events. Batches are the same `ConfigEvent`s as the folder source's.
 */
export function createKubeSource(opts: KubeSourceOptions): KubeSource {
  const log = opts.log.child({ source: 'kubernetes' });
  const client = opts.client ?? new KubeClient({ kubeconfigPath: opts.kubeconfigPath, inCluster: opts.inCluster });
  const kinds = opts.kinds ?? defaultKinds;
  const validate = opts.validate ?? clusterValidate;
  const name = opts.name ?? 'kubernetes';
  const listeners = new Set<(b: ConfigBatch) => void>();
  const store = new Map<string, Entry>(); // kindId/ns/name
  /** Keys of `store` entries with a rejection: rejected() is read after every batch, and endpoint batches are many. */
  const rejectedKeys = new Set<string>();
  const informers = new Map<string, SupervisedInformer>(); // kindId -> informer
  const informerKind = new Map<string, { kind: KubeKind; version: string }>();
  let crdInformer: SupervisedInformer | undefined;
  let pending: ConfigEvent[] = [];
  let flushScheduled: NodeJS.Immediate | undefined;
  let synced = false;
  let started = false;
  let stopped = false;
  const stats: KubeSourceStats = { rejectedTotal: 0, restartsTotal: 0, eventsTotal: 0 };

  const flush = () => {
    if (flushScheduled) clearImmediate(flushScheduled);
    flushScheduled = undefined;
    if (!pending.length || stopped) return;
    const batch: ConfigBatch = { source: name, events: pending };
    pending = [];
    stats.eventsTotal += batch.events.length;
    for (const l of listeners) {
      try {
        l(batch);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'batch listener threw');
      }
    }
  };
  const schedule = () => {
    // Until the first sync completes, start() delivers everything in one batch.
    if (!synced || flushScheduled) return;
    flushScheduled = setImmediate(flush);
  };

  const entryKey = (k: KubeKind, o: KubeObject) => `${kindId(k)}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

  const handle = (k: KubeKind, version: string, changes: RawChange[]) => {
    for (const ch of changes) {
      const key = entryKey(k, ch.object);
      const entry = store.get(key);
      if (ch.type === 'delete') {
        if (entry?.valid) pending.push({ type: 'delete', object: entry.valid });
        store.delete(key);
        rejectedKeys.delete(key);
        continue;
      }
      // List items of built-in kinds come without apiVersion/kind.
      const raw = { ...ch.object, apiVersion: ch.object.apiVersion ?? (k.group ? `${k.group}/${version}` : version), kind: ch.object.kind ?? k.kind };
      let res: ValidationResult;
      try {
        res = validate(raw);
      } catch (err) {
        res = {
          ok: false,
          issues: [{ kind: k.kind, namespace: raw.metadata?.namespace, name: raw.metadata?.name ?? '', field: '', reason: `validator failed: ${(err as Error).message}` }],
        };
      }
      if (res.ok) {
        const warnings = (res as { warnings?: ValidationIssue[] }).warnings ?? [];
        for (const w of warnings) log.warn({ kind: w.kind, namespace: w.namespace, name: w.name, field: w.field, reason: w.reason }, 'object accepted with a warning');
        if (entry?.rejected) log.info({ kind: k.kind, namespace: raw.metadata?.namespace, name: raw.metadata?.name }, 'object valid again');
        if (!entry?.valid) pending.push({ type: 'add', object: res.object });
        else pending.push({ type: 'update', object: res.object, old: entry.valid });
        store.set(key, { valid: res.object, rejected: undefined });
        rejectedKeys.delete(key);
      } else {
        const objKey: ObjectKey = { kind: k.kind, namespace: raw.metadata?.namespace, name: raw.metadata?.name ?? '' };
        stats.rejectedTotal++;
        for (const i of res.issues) {
          log.warn(
            { kind: i.kind, namespace: i.namespace, name: i.name, field: i.field, reason: i.reason, servingPrevious: Boolean(entry?.valid) },
            'object rejected by validation; skipped',
          );
        }
        store.set(key, { valid: entry?.valid, rejected: res.issues.map((i) => ({ ...i, key: objKey })) });
        rejectedKeys.add(key);
      }
    }
    schedule();
  };

  const startKind = (k: KubeKind, version: string, seed?: KubeObject[]) => {
    const id = kindId(k);
    const inf = new SupervisedInformer({
      client,
      group: k.group,
      version,
      plural: k.plural,
      name: `${id}/${version}`,
      log,
      timing: opts.timing,
      onChanges: (changes) => handle(k, version, changes),
    });
    informers.set(id, inf);
    informerKind.set(id, { kind: k, version });
    if (seed) inf.seed(seed);
    inf.start();
    return inf;
  };

  const stopKind = async (k: KubeKind, dropObjects: boolean) => {
    const id = kindId(k);
    const inf = informers.get(id);
    if (!inf) return;
    informers.delete(id);
    informerKind.delete(id);
    await inf.stop();
    if (dropObjects) inf.clear();
  };

  const crdKinds = new Map<string, KubeKind>(kinds.filter((k) => k.crd).map((k) => [crdName(k), k]));

  /** A CRD appeared or changed: (re)start its kind's informer at the preferred served version. */
  const onCrd = (changes: RawChange[]) => {
    for (const ch of changes) {
      const crd = ch.object as KubeObject & {
        spec?: { versions?: Array<{ name: string; served?: boolean }> };
        status?: { conditions?: Array<{ type: string; status: string }> };
      };
      const k = crdKinds.get(crd.metadata?.name ?? '');
      if (!k) continue;
      const id = kindId(k);
      if (ch.type === 'delete') {
        log.info({ crd: crd.metadata?.name }, 'CRD deleted; stopping its informer');
        void stopKind(k, true);
        continue;
      }
      const established = crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
      const served = new Set((crd.spec?.versions ?? []).filter((v) => v.served !== false).map((v) => v.name));
      const version = k.versions.find((v) => served.has(v));
      const running = informerKind.get(id);
      if (!established || !version) {
        if (!version) log.warn({ crd: crd.metadata?.name, served: [...served] }, 'CRD serves none of the versions Sextant reads');
        if (running && !version) void stopKind(k, true);
        continue;
      }
      if (running?.version === version) continue;
      if (running) {
        log.info({ crd: crd.metadata?.name, from: running.version, to: version }, 'CRD version preference changed; restarting informer');
        // The new informer relists; its diff against the store turns into updates, not deletes.
        const old = informers.get(id)!;
        informers.delete(id);
        void old.stop();
        startKind(k, version, old.list());
      } else {
        log.info({ crd: crd.metadata?.name, version }, 'CRD present; starting informer');
        startKind(k, version);
      }
    }
  };

  const source: KubeSource = {
    name,
    client,
    async start() {
      if (started) throw new Error('kubernetes source already started');
      started = true;
      for (const k of kinds) if (!k.crd) startKind(k, k.versions[0]!);
      if (crdKinds.size) {
        crdInformer = new SupervisedInformer({
          client,
          group: 'apiextensions.k8s.io',
          version: 'v1',
          plural: 'customresourcedefinitions',
          name: 'CustomResourceDefinition.apiextensions.k8s.io/v1',
          log,
          timing: opts.timing,
          onChanges: onCrd,
        });
        crdInformer.start();
        await crdInformer.whenSynced();
      }
      // Every informer known now (core kinds, and CRD kinds whose CRD exists) must sync once.
      for (;;) {
        if (stopped) return;
        const waiting = [...informers.values()].filter((i) => !i.hasSynced());
        if (!waiting.length) break;
        await Promise.race([Promise.all(waiting.map((i) => i.whenSynced())), stoppedPromise]);
      }
      synced = true;
      flush();
      log.info({ informers: informers.size, objects: store.size }, 'kubernetes source synced');
    },
    hasSynced: () => synced,
    onBatch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    rejected() {
      const out: Array<ValidationIssue & { key: ObjectKey }> = [];
      for (const key of rejectedKeys) {
        const e = store.get(key);
        if (e?.rejected) out.push(...e.rejected);
      }
      return out;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      resolveStopped();
      if (flushScheduled) clearImmediate(flushScheduled);
      await Promise.all([crdInformer?.stop(), ...[...informers.values()].map((i) => i.stop())]);
      listeners.clear();
    },
    informers() {
      const all = [...informers.values()].map((i) => i.status());
      if (crdInformer) all.push(crdInformer.status());
      return all;
    },
    snapshot() {
      const out: ConfigObject[] = [];
      for (const e of store.values()) if (e.valid) out.push(e.valid);
      return out;
    },
    stats() {
      const restarts = [...informers.values(), ...(crdInformer ? [crdInformer] : [])].reduce((n, i) => n + i.status().restarts, 0);
      return { ...stats, restartsTotal: restarts };
    },
    dropConnections() {
      crdInformer?.dropConnection();
      for (const i of informers.values()) i.dropConnection();
    },
  };
  let resolveStopped!: () => void;
  const stoppedPromise = new Promise<void>((r) => (resolveStopped = r));
  return source;
}
