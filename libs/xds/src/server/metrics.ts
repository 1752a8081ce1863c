/**
 * The server's counters (what `DiscoveryServer.metrics()` returns) and the
 * calls out to its owner: the lifecycle hooks (`DiscoveryHooks`) and the
 * limit-exceeded callback. Neither a hook nor the callback can break a stream:
 * what they throw is logged (hooks) or dropped (the metrics callback).
 */
import type { Logger } from '@sextant/api';
import { shortTypeName } from '@sextant/envoy';
import type { LimitName } from '../limits.js';
import type { DiscoveryHooks, DiscoveryServerMetrics, DiscoveryServerOptions } from '../types.js';

/** `cds`, `eds`, ... for the five standard types; the type URL otherwise. */
export const short = (typeUrl: string): string => shortTypeName[typeUrl] ?? typeUrl;

export class ServerStats {
  /** Counted in place by the parts of the server; `snapshot()` copies. */
  readonly m: DiscoveryServerMetrics = {
    connections: 0,
    pushes: 0,
    bytesSent: 0,
    nacks: 0,
    staleNonces: 0,
    badRequests: 0,
    unknownTypes: 0,
    coalesced: 0,
    pushesByType: {},
    nacksByType: {},
    limitsExceeded: {},
  };

  constructor(
    private readonly opts: Pick<DiscoveryServerOptions, 'hooks' | 'onLimitExceeded'>,
    private readonly log: Logger,
  ) {}

  /** Whether the owner observes each response (its timing costs a clock read per response). */
  get observesResponses(): boolean {
    return Boolean(this.opts.hooks?.responded);
  }

  snapshot(connections: number): DiscoveryServerMetrics {
    return {
      ...this.m,
      connections,
      pushesByType: { ...this.m.pushesByType },
      nacksByType: { ...this.m.nacksByType },
      limitsExceeded: { ...this.m.limitsExceeded },
    };
  }

  /** A stream was ended (or refused) for going over a limit. */
  limitExceeded(limit: LimitName | 'address_cooldown'): void {
    this.m.limitsExceeded[limit] = (this.m.limitsExceeded[limit] ?? 0) + 1;
    try {
      this.opts.onLimitExceeded?.(limit);
    } catch {
      /* a metrics hook must not break the server */
    }
  }

  /** Calls an owner hook; one that throws never breaks the stream. */
  hook<K extends keyof DiscoveryHooks>(name: K, ...args: Parameters<NonNullable<DiscoveryHooks[K]>>): void {
    const fn = this.opts.hooks?.[name] as ((...a: unknown[]) => void) | undefined;
    if (!fn) return;
    try {
      fn.apply(this.opts.hooks, args);
    } catch (err) {
      this.log.error({ hook: name, err: (err as Error).message }, 'discovery hook failed; ignored');
    }
  }
}
