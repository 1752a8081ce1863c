import type { Logger } from '@sextant/api';
import { isConflict, isNotFound, KubeClient } from '@sextant/sources';

export interface LeaderElectorOptions {
  /** A client, or a kubeconfig path (undefined with inCluster for the pod's service account). */
  client?: KubeClient | undefined;
  kubeconfig?: string | undefined;
  inCluster?: boolean | undefined;
  namespace: string;
  /** The Lease name (Istio uses e.g. `istio-namespace-controller-election`). */
  name: string;
  /** This replica's identity (pod name, or hostname + pid). */
  identity: string;
  /** How long a lease is valid without renewal (ms, default 15 s). */
  leaseDurationMs?: number | undefined;
  /** The leader gives up when it could not renew for this long (ms, default 10 s). */
  renewDeadlineMs?: number | undefined;
  /** Interval of acquire attempts and renewals (ms, default 2 s). */
  retryPeriodMs?: number | undefined;
  log: Logger;
  onStartedLeading?: (() => void) | undefined;
  onStoppedLeading?: (() => void) | undefined;
  /** Called whenever the observed leader changes (including to this replica). */
  onNewLeader?: ((identity: string) => void) | undefined;
}

export interface LeaderElector {
  /** Starts campaigning; returns at once. */
  start(): void;
  /** Stops; a leader releases the lease so another replica takes over without waiting for expiry. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** The identity last seen holding the lease. */
  leader(): string | undefined;
  /** Resolves when this replica becomes leader (or immediately if it is). */
  whenLeading(): Promise<void>;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** metav1.MicroTime wants RFC 3339 with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
 * a lease is free when it has no holder or its holder has not renewed it for
 * leaseDuration as observed locally (so clocks need not agree); updates carry
 * the resourceVersion, so two candidates never both win.
 */
export function createLeaderElector(opts: LeaderElectorOptions): LeaderElector {
  const client = opts.client ?? new KubeClient({ kubeconfigPath: opts.kubeconfig, inCluster: opts.inCluster });
  const log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  const leaseDurationMs = opts.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
  }
  const path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  let leading = false;
  let stopped = true;
  let loop: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let observed: { holder: string; renewTime: string; at: number } | undefined;
  let lastRenew = 0;
  let waiters: Array<() => void> = [];
  let known: Lease | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        wake = undefined;
        resolve();
      };
      timer = setTimeout(done, ms);
      wake = done;
    });

  const setLeading = (v: boolean) => {
    if (v === leading) return;
    leading = v;
    if (v) {
      log.info({}, 'became leader');
      for (const w of waiters.splice(0)) w();
      safe(opts.onStartedLeading);
    } else {
      log.info({}, 'stopped leading');
      safe(opts.onStoppedLeading);
    }
  };
  const safe = (f: (() => void) | undefined) => {
    try {
      f?.();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'leader election callback threw');
    }
  };

  const observe = (lease: Lease) => {
    const holder = lease.spec?.holderIdentity ?? '';
    const renewTime = lease.spec?.renewTime ?? '';
    if (!observed || observed.holder !== holder || observed.renewTime !== renewTime) {
      if (observed?.holder !== holder && holder) safe(() => opts.onNewLeader?.(holder));
      observed = { holder, renewTime, at: Date.now() };
    }
  };

  /** One attempt; true when this replica holds the lease afterwards. */
  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const now = new Date();
    const mine = (prev?: LeaseSpec): LeaseSpec => ({
      holderIdentity: opts.identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime: prev?.holderIdentity === opts.identity && prev.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (prev && prev.holderIdentity !== opts.identity ? 1 : 0),
    });
    let lease: Lease;
    try {
      lease = await client.request<Lease>('GET', `${path}/${opts.name}`, { timeoutMs: retryPeriodMs * 2 });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await client.request<Lease>('POST', path, {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: opts.name, namespace: opts.namespace }, spec: mine() },
        timeoutMs: retryPeriodMs * 2,
      });
      known = created;
      observe(created);
      return true;
    }
    observe(lease);
    known = lease;
    const holder = lease.spec?.holderIdentity ?? '';
    const durMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(leaseDurationMs / 1000)) * 1000;
    if (holder && holder !== opts.identity && observed && Date.now() < observed.at + durMs) return false;
    try {
      const updated = await client.request<Lease>('PUT', `${path}/${opts.name}`, {
        body: { ...lease, spec: mine(lease.spec) },
        timeoutMs: retryPeriodMs * 2,
      });
      known = updated;
      observe(updated);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  };

  const run = async () => {
    while (!stopped) {
      try {
        const ok = await tryAcquireOrRenew();
        if (ok) {
          lastRenew = Date.now();
          setLeading(true);
        } else if (leading) {
          setLeading(false);
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, leading ? 'lease renewal failed' : 'lease acquisition failed');
      }
      if (leading && Date.now() - lastRenew > renewDeadlineMs) {
        log.warn({ sinceRenewMs: Date.now() - lastRenew }, 'could not renew the lease within the renew deadline');
        setLeading(false);
      }
      if (stopped) break;
      // Candidates retry with jitter so that replicas do not move in lockstep.
      await sleep(leading ? retryPeriodMs : retryPeriodMs * (1 + Math.random() * 0.2));
    }
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop = run();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      wake?.();
      await loop;
      loop = undefined;
      if (leading) {
        try {
          if (known?.spec?.holderIdentity === opts.identity) {
            await client.request('PUT', `${path}/${opts.name}`, {
              body: { ...known, spec: { ...known.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(new Date()) } },
              timeoutMs: 5_000,
            });
            log.info({}, 'released the lease');
          }
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'could not release the lease; it expires by itself');
        }
        setLeading(false);
      }
      waiters = []; // pending whenLeading() promises never resolve after stop; drop them
    },
    isLeader: () => leading,
    leader: () => observed?.holder || undefined,
    whenLeading() {
      if (leading) return Promise.resolve();
      return new Promise((r) => waiters.push(r));
    },
  };
}
