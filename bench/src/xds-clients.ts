/**
 * Child process for the xDS benchmark: opens N raw HTTP/2 gRPC ADS streams
 * (no grpc-js, minimal parsing), sends one initial request per type on each,
 * and reports when each stream receives a response carrying a given version.
 * Runs apart from the server so the server's CPU is measured alone.
 *
 * Messages from the parent (IPC):
 *   { op: 'open', address, n, perConnection, requests: [{typeUrl, names}] }
 *   { op: 'await', version, timeoutMs }   → { op: 'arrivals', version, times: number[] (epoch ms), missing }
 *   { op: 'close' }
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { DiscoveryRequestSchema, NodeSchema, create, fromJson, toBinary } from '@sextant/envoy';

type Msg =
  | { op: 'open'; address: string; n: number; perConnection: number; requests: { typeUrl: string; names: string[] }[] }
  | { op: 'await'; version: string; timeoutMs: number }
  | { op: 'close' };

const now = () => performance.timeOrigin + performance.now();

interface Stream {
  /** version → arrival time (first response carrying it). */
  arrivals: Map<string, number>;
  bytes: number;
}

const streams: Stream[] = [];
const sessions: http2.ClientHttp2Session[] = [];
const waiters = new Set<() => void>();
/** version → streams that have received it. */
const counts = new Map<string, number>();
let totalBytes = 0;

function frame(msg: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + msg.length);
  b[0] = 0;
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

/**
 * Reads gRPC messages off a byte stream, pulls version_info (field 1, written
 * first) out of each, and reports it when the whole message has arrived.
 */
class Scanner {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = -1; // bytes of the current message still to come
  private head: Buffer[] = [];
  private headLen = 0;
  private versionDone = false;
  private version: string | undefined;
  constructor(private readonly onVersion: (v: string) => void) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining < 0) {
        const take = Math.min(5 - this.headerFill, chunk.length - i);
        chunk.copy(this.header, this.headerFill, i, i + take);
        this.headerFill += take;
        i += take;
        if (this.headerFill === 5) {
          this.remaining = this.header.readUInt32BE(1);
          this.headerFill = 0;
          this.head = [];
          this.headLen = 0;
          this.versionDone = false;
          this.version = undefined;
          if (this.remaining === 0) this.complete();
        }
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - i);
      if (!this.versionDone && this.headLen < 256) {
        this.head.push(chunk.subarray(i, i + Math.min(take, 256)));
        this.headLen += Math.min(take, 256);
        this.tryVersion(this.remaining - take === 0);
      }
      this.remaining -= take;
      i += take;
      if (this.remaining === 0) this.complete();
    }
  }

  private tryVersion(final: boolean): void {
    const b = Buffer.concat(this.head);
    // field 1, wire type 2: tag 0x0a, varint length, bytes
    if (b.length < 2) return;
    if (b[0] !== 0x0a) {
      this.versionDone = true;
      return;
    }
    let len = 0;
    let shift = 0;
    let p = 1;
    for (;;) {
      if (p >= b.length) return;
      const x = b[p++]!;
      len |= (x & 0x7f) << shift;
      shift += 7;
      if (x < 0x80) break;
    }
    if (b.length < p + len) {
      if (final) this.versionDone = true;
      return;
    }
    this.versionDone = true;
    this.version = b.toString('utf8', p, p + len);
  }

  private complete(): void {
    this.remaining = -1;
    if (this.version !== undefined) this.onVersion(this.version);
    this.version = undefined;
  }
}

function open(m: Extract<Msg, { op: 'open' }>): Promise<void> {
  return new Promise((resolve, reject) => {
    let opened = 0;
    let failed = false;
    const makeSession = () => {
      const s = http2.connect(`http://${m.address}`, { settings: { initialWindowSize: 8 * 1024 * 1024 } });
      s.on('connect', () => s.setLocalWindowSize(32 * 1024 * 1024));
      s.on('error', (err) => {
        if (!failed) {
          failed = true;
          reject(err);
        }
      });
      sessions.push(s);
      return s;
    };
    let session: http2.ClientHttp2Session | undefined;
    for (let k = 0; k < m.n; k++) {
      if (k % m.perConnection === 0) session = makeSession();
      const idx = streams.length;
      const st: Stream = { arrivals: new Map(), bytes: 0 };
      streams.push(st);
      const req = session!.request({
        ':method': 'POST',
        ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const scanner = new Scanner((v) => {
        if (st.arrivals.has(v)) return;
        st.arrivals.set(v, now());
        const c = (counts.get(v) ?? 0) + 1;
        counts.set(v, c);
        if (c === streams.length) for (const w of waiters) w();
      });
      let first = true;
      req.on('data', (chunk: Buffer) => {
        st.bytes += chunk.length;
        totalBytes += chunk.length;
        if (first) {
          first = false;
          opened++;
          if (opened === m.n) resolve();
        }
        scanner.push(chunk);
      });
      req.on('error', () => {});
      m.requests.forEach((r, j) => {
        const msg = create(DiscoveryRequestSchema, { typeUrl: r.typeUrl, resourceNames: r.names });
        if (j === 0) msg.node = fromJson(NodeSchema, { id: `sidecar~10.0.${(idx >> 8) & 255}.${idx & 255}~bench-${idx}.default~default.svc.cluster.local`, metadata: { CLUSTER_ID: 'Kubernetes' } });
        req.write(frame(toBinary(DiscoveryRequestSchema, msg)));
      });
    }
  });
}

function awaitVersion(version: string, timeoutMs: number): Promise<{ times: number[]; missing: number }> {
  return new Promise((resolve) => {
    const check = () => {
      if ((counts.get(version) ?? 0) >= streams.length) finish();
    };
    const finish = () => {
      clearTimeout(timer);
      waiters.delete(check);
      const times = streams.map((s) => s.arrivals.get(version)).filter((t): t is number => t !== undefined);
      resolve({ times, missing: streams.length - times.length });
    };
    const timer = setTimeout(finish, timeoutMs);
    waiters.add(check);
    check();
  });
}

process.on('message', (m: Msg) => {
  void (async () => {
    try {
      if (m.op === 'open') {
        await open(m);
        process.send!({ op: 'opened', n: streams.length });
      } else if (m.op === 'await') {
        const r = await awaitVersion(m.version, m.timeoutMs);
        process.send!({ op: 'arrivals', version: m.version, ...r, totalBytes });
      } else if (m.op === 'close') {
        for (const s of sessions) s.destroy();
        process.send!({ op: 'closed' });
        setImmediate(() => process.exit(0));
      }
    } catch (err) {
      process.send!({ op: 'error', error: (err as Error).message });
    }
  })();
});
