/**
 * Child process of the side-by-side benchmark (istiod.ts): N simulated
 * sidecars, each one Delta ADS stream on its own HTTP/2 connection (the
 * minimal client of h2-wire.ts), as pilot-agent proxies Envoy's to the
 * control plane. They run apart from the control plane and from the
 * harness, so the control plane's CPU (read from /proc by the parent) is
 * its own.
 *
 * Each client follows Envoy's subscription order: CDS (wildcard, with the
 * node), then EDS for the EDS clusters CDS named, then LDS (wildcard) once the
 * first EDS response arrived, then RDS for the route configurations the
 * listeners' HttpConnectionManagers name. Every response is ACKed; later CDS
 * and LDS responses move the EDS and RDS subscriptions as Envoy would. A
 * stream the control plane ends is opened again after Envoy's backoff.
 *
 * Messages from the parent (IPC), one at a time:
 *   { op: 'open', address, clients: [{ nodeId, metadata }], timeoutMs, offset } (offset: the first client's index among all processes')
 *       → { op: 'opened', readyMs: number[] (per client, from open), failed: string[] }
 *   { op: 'watch', typeUrl, name }          start recording responses carrying that resource
 *   { op: 'await', typeUrl, name, contains, notContains, since, timeoutMs }
 *       → { op: 'delivered', times: (number|null)[] } epoch ms per client of the first
 *         response (at or after `since`) whose resource bytes contain every `contains`
 *         pattern and no `notContains` pattern (base64 byte patterns); recording stops.
 *   { op: 'stats' }   → { op: 'stats', bytes, responses, reconnects, errors }
 *   { op: 'quiet', quietMs, maxMs } → { op: 'quiet', at } once no byte arrived for quietMs
 *   { op: 'close' }   → { op: 'closed' } and exit
 */
import { performance } from 'node:perf_hooks';
import {
  DeltaDiscoveryRequestSchema,
  NodeSchema,
  TypeUrl,
  create,
  fromJson,
  toBinary,
  type JsonValue,
} from '@sextant/envoy';
import { H2Connection, type H2Stream } from './h2-wire.js';
import { Deframer, ackFrame, decodeDeltaResponse, fields, frame, retryDelay, type DeltaResponse } from './istiod-wire.js';

export interface ClientSpec {
  nodeId: string;
  /** The node's cluster: <workload>.<namespace>. */
  cluster: string;
  metadata: Record<string, JsonValue>;
}

type Msg =
  | { op: 'open'; address: string; clients: ClientSpec[]; timeoutMs: number; offset?: number }
  | { op: 'watch'; typeUrl: string; name: string }
  | { op: 'await'; typeUrl: string; name: string; contains: string[]; notContains: string[]; since: number; timeoutMs: number }
  | { op: 'stats' }
  | { op: 'quiet'; quietMs: number; maxMs: number }
  | { op: 'close' };

const now = () => performance.timeOrigin + performance.now();

let totalBytes = 0;
let totalResponses = 0;
let lastByteAt = 0;
/** Streams the control plane ended that the clients opened again. */
let reconnects = 0;
const errors: string[] = [];

const utf8 = new TextDecoder();

/** One string per cluster name for all the clients of this process (each would otherwise hold its own ~9,000 copies). */
const names = new Map<string, string>();
function intern(s: string): string {
  const k = names.get(s);
  if (k !== undefined) return k;
  names.set(s, s);
  return s;
}

/** Client i's source address: 127.0.(1 + i / 250).(1 + i % 250), all on the loopback interface. */
export function loopbackSource(i: number): string {
  return `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at).replace(/^\[|\]$/g, ''), Number(address.slice(at + 1))];
}

/** The EDS service name of a Cluster if its discovery type is EDS (3), else undefined. */
function edsName(name: string, cluster: Uint8Array): string | undefined {
  let eds = false;
  let service = '';
  fields(cluster, (field, _wt, v, bytes) => {
    if (field === 2 && _wt === 0) eds = v === 3;
    else if (field === 3 && bytes) fields(bytes, (f2, _w, _v, b2) => f2 === 2 && b2 && (service = utf8.decode(b2)));
  });
  return eds ? service || name : undefined;
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** Route configuration names the Listener's HttpConnectionManagers load over RDS. */
function rdsNames(listener: Uint8Array, out: Set<string>): void {
  const chain = (fc: Uint8Array) =>
    fields(fc, (f, _wt, _v, filter) => {
      if (f !== 3 || !filter) return;
      fields(filter, (ff, _w, _vv, any) => {
        if (ff !== 4 || !any) return;
        let typeUrl = '';
        let value: Uint8Array | undefined;
        fields(any, (af, _w2, _v2, ab) => {
          if (af === 1 && ab) typeUrl = utf8.decode(ab);
          else if (af === 2 && ab) value = ab;
        });
        if (typeUrl !== HCM || !value) return;
        fields(value, (hf, _w3, _v3, rds) => {
          if (hf !== 3 || !rds) return;
          fields(rds, (rf, _w4, _v4, rn) => rf === 2 && rn && out.add(utf8.decode(rn)));
        });
      });
    });
  fields(listener, (f, _wt, _v, bytes) => {
    if ((f === 3 || f === 25) && bytes) chain(bytes);
  });
}

// --- watches: record responses carrying one resource, per client ---

interface Watch {
  typeUrl: string;
  name: string;
  /** per client: (arrival, resource bytes or null when removed) */
  seen: Array<Array<[number, Buffer | null]>>;
  /** Called with the index of the client that received. */
  onArrival?: (index: number) => void;
}
/** Watches by type URL, then resource name: a response of a type nobody watches is not looked into. */
const watches = new Map<string, Map<string, Watch>>();
const watchOf = (typeUrl: string, name: string): Watch | undefined => watches.get(typeUrl)?.get(name);
function unwatch(typeUrl: string, name: string): void {
  const byName = watches.get(typeUrl);
  byName?.delete(name);
  if (byName?.size === 0) watches.delete(typeUrl);
}

// --- clients ---

class Client {
  readonly subscribed = new Map<string, Set<string>>([
    [TypeUrl.ClusterLoadAssignment, new Set()],
    [TypeUrl.RouteConfiguration, new Set()],
  ]);
  private readonly edsOf = new Map<string, string>(); // cluster → EDS name
  private readonly routesOf = new Map<string, Set<string>>(); // listener → route names
  private ldsRequested = false;
  private got = new Set<string>();
  readyAt: number | undefined;
  private stream: H2Stream | undefined;
  private session: H2Connection | undefined;

  constructor(
    /** Index in this process (watches record per local index). */
    readonly index: number,
    private readonly spec: ClientSpec,
    private readonly onReady: () => void,
    /** Index of this process's first client among all the processes' clients. */
    private readonly offset = 0,
  ) {}

  start(address: string): void {
    this.address = address;
    this.openStream();
  }

  private address = '';
  private backoffMs = 0;

  /**
   * One Delta ADS stream; when the control plane ends it (istiod turns away
   * streams beyond its request rate limit with an error), the client comes
   * back after a jittered exponential backoff, as Envoy's gRPC mux does
   * (500 ms base, 30 s cap), and subscribes afresh.
   */
  private openStream(): void {
    if (closing) return;
    if (!this.session?.usable) {
      // Each simulated pod connects from its own loopback address, as sidecars come from their own pod IPs: per-address limits see one proxy each.
      const [host, port] = splitHostPort(this.address);
      this.session?.destroy();
      const s = new H2Connection({ host, port, localAddress: loopbackSource(this.offset + this.index), streamWindow: 16 * 1024 * 1024, connectionWindow: 64 * 1024 * 1024 });
      this.session = s;
      s.onError((err) => this.note(`session: ${err.message}`));
      s.onGoaway((code) => this.note(`GOAWAY ${code}`));
    }
    this.subscribed.set(TypeUrl.ClusterLoadAssignment, new Set());
    this.subscribed.set(TypeUrl.RouteConfiguration, new Set());
    this.edsOf.clear();
    this.routesOf.clear();
    this.ldsRequested = false;
    this.got.clear();
    const deframer = new Deframer((m) => this.onResponse(m));
    let req: H2Stream;
    try {
      req = this.session.request('/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources', this.address, {
        data: (chunk) => {
          totalBytes += chunk.length;
          lastByteAt = now();
          this.backoffMs = 0;
          deframer.push(chunk);
        },
        // Trailers (or trailers-only: istiod's rate limit answers this way) with an error status are noted.
        headers: (h) => {
          const code = h.get('grpc-status');
          if (code !== undefined && code !== '0') this.note(`grpc-status ${code}: ${decodeURIComponent(h.get('grpc-message') ?? '')}`);
        },
        close: (rstCode, reason) => {
          if (closing || this.stream !== req) return;
          if (rstCode) this.note(`RST_STREAM ${rstCode}`);
          else if (reason !== 'trailers') this.note(`stream: ${reason}`);
          reconnects++;
          this.reopened++;
          this.retry();
        },
      });
    } catch (err) {
      // The connection went away (GOAWAY) between the check above and here: a new connection next time.
      this.note(`request: ${(err as Error).message}`);
      this.session.destroy();
      this.retry();
      return;
    }
    this.stream = req;
    // Envoy's first request carries the node; CDS is wildcard.
    this.send({ typeUrl: TypeUrl.Cluster, node: true });
  }

  /** Opens the stream again after Envoy's backoff (istio-wire.ts retryDelay). */
  private retry(): void {
    const { nextMs, delayMs } = retryDelay(this.backoffMs);
    this.backoffMs = nextMs;
    setTimeout(() => this.openStream(), delayMs);
  }

  /** Times this client's stream was ended and opened again. */
  reopened = 0;
  /** The last reasons the stream or connection ended (diagnostics for clients that never complete). */
  readonly reasons: string[] = [];
  private note(reason: string): void {
    errors.push(`client ${this.offset + this.index}: ${reason}`);
    if (this.reasons.length >= 5) this.reasons.shift();
    this.reasons.push(reason);
  }

  /** What an incomplete client has: types received on its current stream, resubscriptions, why its streams ended. */
  describe(): string {
    return `client ${this.offset + this.index} (${this.spec.nodeId}): has ${[...this.got].map((t) => t.slice(t.lastIndexOf('.') + 1)).join(',') || 'nothing'}, EDS ${this.subscribed.get(TypeUrl.ClusterLoadAssignment)!.size} names, reopened ${this.reopened}×${this.reasons.length ? `, last: ${this.reasons.join('; ')}` : ''}`;
  }

  get nodeId(): string {
    return this.spec.nodeId;
  }

  stop(): void {
    this.session?.destroy();
  }

  private send(r: { typeUrl: string; nonce?: string; subscribe?: string[]; unsubscribe?: string[]; node?: boolean }): void {
    const msg = create(DeltaDiscoveryRequestSchema, {
      typeUrl: r.typeUrl,
      responseNonce: r.nonce ?? '',
      resourceNamesSubscribe: r.subscribe ?? [],
      resourceNamesUnsubscribe: r.unsubscribe ?? [],
    });
    if (r.node) msg.node = fromJson(NodeSchema, { id: this.spec.nodeId, cluster: this.spec.cluster, metadata: this.spec.metadata, userAgentName: 'envoy' });
    this.stream!.write(frame(toBinary(DeltaDiscoveryRequestSchema, msg)));
  }

  /** Moves the subscription of TYPE to WANT (Envoy sends the difference). */
  private resubscribe(typeUrl: string, want: Set<string>, force: boolean): void {
    const have = this.subscribed.get(typeUrl)!;
    const subscribe = [...want].filter((n) => !have.has(n));
    const unsubscribe = [...have].filter((n) => !want.has(n));
    if (!subscribe.length && !unsubscribe.length && !force) return;
    this.subscribed.set(typeUrl, new Set(want));
    this.send({ typeUrl, subscribe, unsubscribe });
  }

  private onResponse(m: Buffer): void {
    totalResponses++;
    const at = now();
    const res = decodeDeltaResponse(m);
    const t = res.typeUrl;
    const watched = watches.get(t);
    if (watched) this.record(watched, res, at);
    // ACK first, as Envoy does, then move dependent subscriptions.
    this.stream!.write(ackFrame(t, res.nonce));
    this.follow(t, res, at);
  }

  /** Records the response's resources (and removals) that a watch is on. */
  private record(watched: ReadonlyMap<string, Watch>, res: DeltaResponse, at: number): void {
    for (const r of res.resources) {
      const w = watched.get(r.name);
      if (w) {
        // The message is a view valid only during this call. An await under way scans it now and lets it go (a copy
        // of route "80" per client was 1.2 GB per edit); before the await starts, what arrives is kept as a copy.
        const value = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        w.seen[this.index]!.push([at, w.onArrival ? value : Buffer.from(value)]);
        w.onArrival?.(this.index);
      }
    }
    for (const name of res.removedResources) {
      const w = watched.get(name);
      if (w) {
        w.seen[this.index]!.push([at, null]);
        w.onArrival?.(this.index);
      }
    }
  }

  /** What Envoy does after it ACKed: moves the EDS and RDS subscriptions the response changes, and notes readiness. */
  private follow(t: string, res: DeltaResponse, at: number): void {
    if (t === TypeUrl.Cluster) {
      for (const r of res.resources) {
        const e = r.value.length ? edsName(r.name, r.value) : undefined;
        if (e) this.edsOf.set(intern(r.name), intern(e));
        else this.edsOf.delete(r.name);
      }
      for (const n of res.removedResources) this.edsOf.delete(n);
      const first = !this.got.has(t);
      this.got.add(t);
      const want = new Set(this.edsOf.values());
      this.resubscribe(TypeUrl.ClusterLoadAssignment, want, false);
      if (first && want.size === 0) this.requestLds();
    } else if (t === TypeUrl.ClusterLoadAssignment) {
      this.got.add(t);
      this.requestLds();
    } else if (t === TypeUrl.Listener) {
      for (const r of res.resources) {
        const names = new Set<string>();
        rdsNames(r.value, names);
        this.routesOf.set(r.name, names);
      }
      for (const n of res.removedResources) this.routesOf.delete(n);
      this.got.add(t);
      const want = new Set<string>();
      for (const s of this.routesOf.values()) for (const n of s) want.add(n);
      this.resubscribe(TypeUrl.RouteConfiguration, want, false);
      if (want.size === 0) this.markReady(at);
    } else if (t === TypeUrl.RouteConfiguration) {
      this.got.add(t);
      this.markReady(at);
    }
  }

  private requestLds(): void {
    if (this.ldsRequested) return;
    this.ldsRequested = true;
    this.send({ typeUrl: TypeUrl.Listener });
  }

  private markReady(at: number): void {
    if (this.readyAt !== undefined) return;
    this.readyAt = at;
    this.onReady();
  }
}

let clients: Client[] = [];
let closing = false;

function open(m: Extract<Msg, { op: 'open' }>): Promise<{ readyAt: number[]; failed: string[] }> {
  const t0 = now();
  return new Promise((resolve) => {
    let ready = 0;
    const finish = () => {
      clearTimeout(timer);
      resolve({
        readyAt: clients.filter((c) => c.readyAt !== undefined).map((c) => c.readyAt!),
        failed: clients.filter((c) => c.readyAt === undefined).map((c) => c.describe()),
      });
    };
    const timer = setTimeout(finish, m.timeoutMs);
    clients = m.clients.map(
      (spec, i) =>
        new Client(i, spec, () => {
          if (++ready === m.clients.length) finish();
        }, m.offset ?? 0),
    );
    // A few at a time, yielding between: the processes' clients then reach the control plane interleaved, and so are
    // served interleaved. Opened all at once, one process's clients came first and got the first half of every push,
    // and the other process had the whole second half to read alone, on the cores the control plane uses.
    let next = 0;
    const startSome = () => {
      const end = Math.min(clients.length, next + OPEN_CHUNK);
      for (; next < end; next++) clients[next]!.start(m.address);
      if (next < clients.length) setImmediate(startSome);
    };
    startSome();
  });
}

/** Clients a process opens before it yields (see open). */
const OPEN_CHUNK = 8;

function patterns(b64: string[]): Buffer[] {
  return b64.map((s) => Buffer.from(s, 'base64'));
}

function awaitDelivery(m: Extract<Msg, { op: 'await' }>): Promise<(number | null)[]> {
  const w = watchOf(m.typeUrl, m.name);
  if (!w) throw new Error(`await without watch: ${m.typeUrl} ${m.name}`);
  const contains = patterns(m.contains);
  const notContains = patterns(m.notContains);
  const times: (number | null)[] = clients.map(() => null);
  const matches = (v: Buffer | null) => {
    if (v === null) return contains.length === 0 && notContains.length > 0; // removed: nothing of it remains
    return contains.every((p) => v.includes(p)) && notContains.every((p) => !v.includes(p));
  };
  let pending = clients.length;
  const scanOne = (i: number) => {
    const seen = w.seen[i]!;
    if (times[i] === null) {
      for (const [at, v] of seen) {
        if (at >= m.since && matches(v)) {
          times[i] = at;
          pending--;
          break;
        }
      }
    }
    seen.length = 0; // evaluated; keep memory flat
  };
  const scan = () => {
    for (let i = 0; i < clients.length; i++) scanOne(i);
  };
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      unwatch(m.typeUrl, m.name);
      resolve(times);
    };
    const timer = setTimeout(() => {
      scan();
      done();
    }, m.timeoutMs);
    // Only the client that received can have changed: scanning every client per arrival made the harness's own
    // CPU per change grow with N² (about 110 ms of the clients' 180 per endpoint change at N = 1000).
    w.onArrival = (i) => {
      scanOne(i);
      if (pending === 0) done();
    };
    scan();
    if (pending === 0) done();
  });
}

function quiet(quietMs: number, maxMs: number): Promise<number> {
  const start = now();
  return new Promise((resolve) => {
    const tick = () => {
      const t = now();
      if (t - Math.max(lastByteAt, start) >= quietMs || t - start >= maxMs) resolve(t);
      else setTimeout(tick, 50);
    };
    tick();
  });
}

process.on('message', (m: Msg) => {
  void (async () => {
    try {
      if (m.op === 'open') {
        const r = await open(m);
        process.send!({ op: 'opened', ...r, errors: errors.slice(0, 20) });
      } else if (m.op === 'watch') {
        let byName = watches.get(m.typeUrl);
        if (!byName) watches.set(m.typeUrl, (byName = new Map()));
        byName.set(m.name, { typeUrl: m.typeUrl, name: m.name, seen: clients.map(() => []) });
        process.send!({ op: 'watching' });
      } else if (m.op === 'await') {
        const times = await awaitDelivery(m);
        process.send!({ op: 'delivered', times });
      } else if (m.op === 'stats') {
        process.send!({ op: 'stats', bytes: totalBytes, responses: totalResponses, reconnects, errors: errors.slice(0, 20), errorCount: errors.length });
      } else if (m.op === 'quiet') {
        process.send!({ op: 'quiet', at: await quiet(m.quietMs, m.maxMs) });
      } else if (m.op === 'close') {
        closing = true;
        for (const c of clients) c.stop();
        process.send!({ op: 'closed' });
        setImmediate(() => process.exit(0));
      }
    } catch (err) {
      process.send!({ op: 'error', error: (err as Error).stack ?? String(err) });
    }
  })();
});
