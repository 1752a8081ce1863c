/**
 * A raw xDS client for tests: opens a SotW or Delta ADS stream to an address,
 * sends requests, awaits the next response with a deadline, and decodes
 * resources to Envoy JSON. It speaks the wire protocol directly (protobuf-es
 * messages over grpc-js), so protocol tests see exactly what the server sends.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  NodeSchema,
  create,
  decodeToJson,
  fromBinary,
  fromJson,
  toBinary,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type JsonValue,
  type Node,
} from '@sextant/envoy';
import { ADS_SERVICE } from '@sextant/xds';

export interface NodeInit {
  id: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  userAgentName?: string;
}

export interface ClientOptions {
  /** Sent on the first request of the stream (omit to test a missing node). */
  node?: NodeInit | undefined;
  credentials?: grpc.ChannelCredentials;
  metadata?: grpc.Metadata;
  channelOptions?: grpc.ChannelOptions;
  /** Default deadline for next(), ms. */
  timeoutMs?: number;
}

export type DecodedResource = { name: string; version?: string; json: JsonValue };

function toNode(n: NodeInit): Node {
  return fromJson(NodeSchema, { id: n.id, cluster: n.cluster ?? '', metadata: (n.metadata ?? {}) as Record<string, JsonValue>, userAgentName: n.userAgentName ?? 'sextant-test-client' });
}

/** A bidirectional stream with a response queue and deadlines. */
export class TestStream<Req, Resp> {
  private readonly queue: Resp[] = [];
  private readonly waiters: { resolve: (r: Resp) => void; reject: (e: Error) => void }[] = [];
  private ended?: grpc.StatusObject;
  private readonly endWaiters: ((s: grpc.StatusObject) => void)[] = [];
  readonly received: Resp[] = [];

  constructor(
    readonly client: grpc.Client,
    readonly call: grpc.ClientDuplexStream<Req, Resp>,
    readonly timeoutMs: number,
  ) {
    call.on('data', (r: Resp) => {
      this.received.push(r);
      const w = this.waiters.shift();
      if (w) w.resolve(r);
      else this.queue.push(r);
    });
    call.on('status', (s: grpc.StatusObject) => this.finish(s));
    call.on('error', (e: grpc.ServiceError) => this.finish({ code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? e.message, metadata: e.metadata ?? new grpc.Metadata() }));
  }

  private finish(s: grpc.StatusObject): void {
    if (this.ended) return;
    this.ended = s;
    for (const w of this.waiters.splice(0)) w.reject(new Error(`stream ended with status ${grpc.status[s.code] ?? s.code}: ${s.details}`));
    for (const w of this.endWaiters.splice(0)) w(s);
  }

  sendRaw(req: Req): void {
    this.call.write(req);
  }

  /** The next response in arrival order, or an error after the deadline. */
  next(timeoutMs = this.timeoutMs): Promise<Resp> {
    const r = this.queue.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.ended) return Promise.reject(new Error(`stream ended with status ${grpc.status[this.ended.code]}: ${this.ended.details}`));
    return new Promise<Resp>((resolve, reject) => {
      const w = {
        resolve: (x: Resp) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no xDS response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Responses received but not yet taken by next(). */
  get buffered(): number {
    return this.queue.length;
  }

  /** Resolves with the final status once the server ends the stream (deadline applies). */
  status(timeoutMs = this.timeoutMs): Promise<grpc.StatusObject> {
    if (this.ended) return Promise.resolve(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream not ended within ${timeoutMs} ms`)), timeoutMs);
      this.endWaiters.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }

  /** Half-closes, cancels and closes the channel. */
  close(): void {
    try {
      this.call.end();
      this.call.cancel();
    } catch {
      /* already closed */
    }
    this.client.close();
  }
}

function openStream<Req, Resp>(address: string, method: string, ser: (r: Req) => Buffer, de: (b: Buffer) => Resp, opts: ClientOptions) {
  const client = new grpc.Client(address, opts.credentials ?? grpc.credentials.createInsecure(), opts.channelOptions ?? {});
  const call = client.makeBidiStreamRequest<Req, Resp>(`/${ADS_SERVICE}/${method}`, ser, de, opts.metadata ?? new grpc.Metadata());
  return { client, call };
}

/** An ADS stream of protobuf requests: the first request carries the node, a NACK an error detail. */
abstract class AdsStream<Req extends AdsRequest, Resp> extends TestStream<Req, Resp> {
  private nodeSent = false;
  constructor(address: string, method: string, ser: (r: Req) => Buffer, de: (b: Buffer) => Resp, readonly opts: ClientOptions) {
    const { client, call } = openStream(address, method, ser, de, opts);
    super(client, call, opts.timeoutMs ?? 5000);
  }

  protected send(req: Req, error?: { code?: number; message: string }): void {
    const r: AdsRequest = req;
    if (error) r.errorDetail = { $typeName: 'google.rpc.Status', code: error.code ?? 3, message: error.message, details: [] };
    if (!this.nodeSent && this.opts.node) {
      r.node = toNode(this.opts.node);
      this.nodeSent = true;
    }
    this.sendRaw(req);
  }
}

type AdsRequest = { node?: Node | undefined; errorDetail?: DiscoveryRequest['errorDetail'] };

export interface SotwRequestInit {
  resourceNames?: string[];
  versionInfo?: string;
  responseNonce?: string;
  error?: { code?: number; message: string };
}

/** A State-of-the-World ADS stream. */
export class SotwClient extends AdsStream<DiscoveryRequest, DiscoveryResponse> {
  constructor(address: string, opts: ClientOptions = {}) {
    super(address, 'StreamAggregatedResources', (r) => Buffer.from(toBinary(DiscoveryRequestSchema, r)), (b) => fromBinary(DiscoveryResponseSchema, b), opts);
  }

  /** Sends a DiscoveryRequest; the first one carries the node. */
  request(typeUrl: string, init: SotwRequestInit = {}): void {
    const req = create(DiscoveryRequestSchema, {
      typeUrl,
      resourceNames: init.resourceNames ?? [],
      versionInfo: init.versionInfo ?? '',
      responseNonce: init.responseNonce ?? '',
    });
    this.send(req, init.error);
  }

  /** ACKs a response (same names unless given). */
  ack(resp: DiscoveryResponse, resourceNames?: string[]): void {
    this.request(resp.typeUrl, { resourceNames: resourceNames ?? [], versionInfo: resp.versionInfo, responseNonce: resp.nonce });
  }

  /** NACKs a response: the version stays the last one accepted, as Envoy does. */
  nack(resp: DiscoveryResponse, message: string, lastAcceptedVersion = '', resourceNames?: string[]): void {
    this.request(resp.typeUrl, { resourceNames: resourceNames ?? [], versionInfo: lastAcceptedVersion, responseNonce: resp.nonce, error: { message } });
  }
}

export interface DeltaRequestInit {
  subscribe?: string[];
  unsubscribe?: string[];
  initialResourceVersions?: Record<string, string>;
  responseNonce?: string;
  error?: { code?: number; message: string };
}

/** An incremental (Delta) ADS stream. */
export class DeltaClient extends AdsStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  constructor(address: string, opts: ClientOptions = {}) {
    super(address, 'DeltaAggregatedResources', (r) => Buffer.from(toBinary(DeltaDiscoveryRequestSchema, r)), (b) => fromBinary(DeltaDiscoveryResponseSchema, b), opts);
  }

  request(typeUrl: string, init: DeltaRequestInit = {}): void {
    const req = create(DeltaDiscoveryRequestSchema, {
      typeUrl,
      resourceNamesSubscribe: init.subscribe ?? [],
      resourceNamesUnsubscribe: init.unsubscribe ?? [],
      initialResourceVersions: init.initialResourceVersions ?? {},
      responseNonce: init.responseNonce ?? '',
    });
    this.send(req, init.error);
  }

  ack(resp: DeltaDiscoveryResponse, more: Omit<DeltaRequestInit, 'responseNonce' | 'error'> = {}): void {
    this.request(resp.typeUrl, { ...more, responseNonce: resp.nonce });
  }

  nack(resp: DeltaDiscoveryResponse, message: string): void {
    this.request(resp.typeUrl, { responseNonce: resp.nonce, error: { message } });
  }
}

/** One uncompressed gRPC message as it goes on the wire: the flag byte, the length, the bytes (for raw HTTP/2 clients). */
export function grpcMessage(msg: Uint8Array): Buffer {
  const out = Buffer.alloc(msg.length + 5);
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/**
 * A gRPC call on a raw HTTP/2 stream to PATH (for tests of the server's wire
 * handling: bytes cut anywhere, headers grpc-js clients would not send).
 * `status`: the grpc-status and message it ended with (code -1: closed with
 * none); `responses()`: the messages received so far, as text.
 */
export function rawGrpcCall(address: string, path: string, headers: http2.OutgoingHttpHeaders = {}) {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  req.on('error', () => {});
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  const status = new Promise<{ code: number; message: string }>((resolve) => {
    const on = (hd: http2.IncomingHttpHeaders) => {
      if (hd['grpc-status'] !== undefined) resolve({ code: Number(hd['grpc-status']), message: decodeURIComponent(String(hd['grpc-message'] ?? '')) });
    };
    req.on('response', on);
    req.on('trailers', on);
    req.on('close', () => resolve({ code: -1, message: 'closed' }));
  });
  const responses = () => {
    const got = Buffer.concat(chunks);
    const out: string[] = [];
    for (let at = 0; at + 5 <= got.length; ) {
      const n = got.readUInt32BE(at + 1);
      out.push(got.subarray(at + 5, at + 5 + n).toString());
      at += 5 + n;
    }
    return out;
  };
  return { session, req, status, responses, close: () => session.destroy() };
}

/** A stream that sends raw bytes (for malformed and oversized requests). */
export function openRawStream(address: string, kind: 'sotw' | 'delta', opts: ClientOptions = {}): TestStream<Buffer, Buffer> {
  const { client, call } = openStream<Buffer, Buffer>(address, kind === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources', (b) => b, (b) => b, opts);
  return new TestStream(client, call, opts.timeoutMs ?? 5000);
}

function nameOf(json: JsonValue): string {
  const o = json as Record<string, unknown>;
  return String(o['name'] ?? o['clusterName'] ?? '');
}

/** Decodes a SotW response's resources to Envoy JSON. */
export function decodeResources(resp: DiscoveryResponse): DecodedResource[] {
  return resp.resources.map((a) => {
    const json = decodeToJson(a.typeUrl, a.value);
    return { name: nameOf(json), json };
  });
}

/** Decodes a Delta response's resources to Envoy JSON, with their versions. */
export function decodeDeltaResources(resp: DeltaDiscoveryResponse): DecodedResource[] {
  return resp.resources.map((r) => {
    const json = r.resource ? decodeToJson(r.resource.typeUrl, r.resource.value) : null;
    return { name: r.name, version: r.version, json };
  });
}

/** Names of the resources in a SotW response, sorted. */
export function resourceNames(resp: DiscoveryResponse): string[] {
  return decodeResources(resp)
    .map((r) => r.name)
    .sort();
}
