/**
 * Loopback test backends that record what reaches them: plain node:http
 * servers and @grpc/grpc-js servers, each bound to a 127.0.0.x address with a
 * kernel-chosen port, answering with their own name so a test can tell which
 * one served a request.
 */
import assert from 'node:assert/strict';
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';

export interface RecordedRequest {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived. */
  at: number;
}

export interface HttpBackend {
  name: string;
  host: string;
  port: number;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** Answer the next n requests with this status (e.g. 503) before answering normally. */
  failNext(n: number, status?: number): void;
  /** Resolves when a request matching the predicate has arrived (deadline). */
  waitForRequest(pred: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

/**
 * An HTTP/1.1 backend. Every answer is 200 (unless failing) with a JSON body
 * `{backend, method, url, headers}` and the header `x-backend: <name>`;
 * `?delay=<ms>` in the URL delays the answer.
 */
export async function startHttpBackend(name: string, host = '127.0.0.1'): Promise<HttpBackend> {
  const requests: RecordedRequest[] = [];
  let failing = 0;
  let failStatus = 503;
  const timers = new Set<NodeJS.Timeout>();
  const waiters: Array<{ pred: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }> = [];
  const server: Server = createServer((req, res) => {
    const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, at: Date.now() };
    requests.push(rec);
    for (const w of [...waiters]) {
      if (w.pred(rec)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
    req.resume();
    req.on('end', () => {
      if (failing > 0) {
        failing--;
        res.writeHead(failStatus, { 'x-backend': name, 'content-type': 'text/plain' });
        res.end(`${name} failing on purpose`);
        return;
      }
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(200, { 'x-backend': name, 'content-type': 'application/json' });
        res.end(JSON.stringify({ backend: name, method: rec.method, url: rec.url, headers: rec.headers }));
      };
      // `?delay=<ms>` answers late (for timeout tests).
      const delay = Number(new URL(rec.url, 'http://x').searchParams.get('delay') ?? 0);
      if (delay > 0) {
        const t = setTimeout(() => (timers.delete(t), answer()), delay);
        timers.add(t);
      } else answer();
    });
  });
  // Envoy pools upstream connections for an hour; a backend that closes an idle
  // one as Envoy sends on it makes Envoy answer 503 (the usual upstream
  // keep-alive race, seen once under load with a 1 s timeout). Keep them open
  // until close(), which ends every connection.
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    name,
    host,
    port,
    requests,
    failNext(n, status = 503) {
      failing = n;
      failStatus = status;
    },
    waitForRequest(pred, timeoutMs = 10_000) {
      const seen = requests.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`backend ${name}: no matching request within ${timeoutMs} ms (${requests.length} received)`));
        }, timeoutMs);
        const w = { pred, resolve: (r: RecordedRequest) => (clearTimeout(timer), resolve(r)) };
        waiters.push(w);
      });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const identity = (b: Buffer) => b;
/** A unary method with raw bytes in and out; no protobuf needed. */
export const ECHO_METHOD = '/sextant.test.Echo/Echo';
export const echoService: grpc.ServiceDefinition = {
  Echo: {
    path: ECHO_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface GrpcBackend {
  name: string;
  host: string;
  port: number;
  /** Metadata of every call received. */
  calls: Array<Record<string, string>>;
  close(): Promise<void>;
}

/** A gRPC server whose Echo answers `<name>` (JSON: {backend, request}). */
export async function startGrpcBackend(name: string, host = '127.0.0.1'): Promise<GrpcBackend> {
  const server = new grpc.Server();
  const calls: Array<Record<string, string>> = [];
  server.addService(echoService, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md: Record<string, string> = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = String(v);
      calls.push(md);
      cb(null, Buffer.from(JSON.stringify({ backend: name, request: call.request.toString() })));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name,
    host,
    port,
    calls,
    async close() {
      server.forceShutdown();
    },
  };
}

/** A port that was free a moment ago on 127.0.0.1 (for listeners Envoy must bind itself). */
/** Ports freePort() has handed out in this process: the kernel may offer a released port again at once. */
const handedOut = new Set<number>();

/**
 * A port free on `host` now, never one this process was given before: the
 * kernel can hand a just-released port out again (a test once got the same
 * port for its listener and for pilot-agent's status port, on all addresses).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const s = createNetServer();
    await new Promise<void>((r, j) => {
      s.once('error', j);
      s.listen(0, host, () => r());
    });
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    if (!handedOut.has(port) || attempt >= 100) {
      handedOut.add(port);
      return port;
    }
  }
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Which backend answered (`x-backend`), '' when none did. */
  backend: string;
  ms: number;
}

/** One HTTP/1.1 request with node:http (no keep-alive pooling surprises), to 127.0.0.1. */
export async function httpGet(port: number, path: string, headers: Record<string, string> = {}, host = '127.0.0.1'): Promise<HttpResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET', headers, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(',') : v;
        resolve({ status: res.statusCode ?? 0, headers: h, body: Buffer.concat(chunks).toString(), backend: h['x-backend'] ?? '', ms: Date.now() - started });
      });
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`GET ${path} on :${port}: no answer within 20 s`)));
    req.on('error', reject);
    req.end();
  });
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

/** Polls fn until ok(value) holds; throws after the deadline with the last value seen. */
export async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr = '';
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)} ${lastErr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counts which backend served each of `n` requests, `concurrency` at a time. */
export async function distribution(n: number, send: () => Promise<string>, concurrency = 16): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const who = await send();
      counts.set(who, (counts.get(who) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/**
 * Asserts that `counts` (from distribution over `n` requests) went only to backends `a` and `b`,
 * split evenly within ±`tolerance` (a fraction of n), and never to `never`.
 */
export function assertEvenSplit(counts: Map<string, number>, n: number, a: string, b: string, never: string, tolerance: number): void {
  assert.equal(counts.get(never), undefined, JSON.stringify([...counts]));
  const na = counts.get(a) ?? 0;
  const nb = counts.get(b) ?? 0;
  assert.equal(na + nb, n, JSON.stringify([...counts]));
  assert.ok(Math.abs(na / n - 0.5) <= tolerance, `${a} got ${na}/${n}`);
}

/** A TCP server that answers every chunk with `<name>:<chunk>` (which server a connection reached). */
export async function startNamedTcpEcho(name: string, host: string, port: number): Promise<NetServer> {
  const srv = createNetServer((s) => {
    s.on('data', (d) => s.write(`${name}:${d.toString()}`));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve());
  });
  return srv;
}

/**
 * One GET on a new connection (connections accepted before a listener update
 * keep its old filters until drained), with `Host: <host header>`; the body is
 * read and dropped. Fails after 20 s without an answer.
 */
export function getOnNewConnection(port: number, path: string, hostHeader: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: hostHeader }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Listens on an ephemeral port of `host`; `close` ends open connections too (a collector Envoy keeps connected). */
export async function listenEphemeral(server: Server, host: string): Promise<{ port: number; close(): Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
