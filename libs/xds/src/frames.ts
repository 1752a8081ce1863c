/**
 * Zero-copy response writes on grpc-js.
 *
 * grpc-js frames every outgoing message by allocating a new buffer of
 * length + 5 and copying the serialized message into it. For a response
 * shared by thousands of streams that per-stream copy (and the garbage it
 * makes) is most of the cost of a push, so for shared frames the server builds
 * the 5-byte gRPC message prefix itself, once, and a small, guarded hook on
 * grpc-js's server call passes such pre-framed buffers through untouched.
 * Only buffers created by `grpcFramed()` are recognised (a WeakSet); all
 * other messages take grpc-js's normal path. If the hook cannot be installed
 * (a grpc-js without `BaseServerInterceptingCall.prototype.serializeMessage`),
 * `grpcFramed()` returns the message unchanged and grpc-js copies as usual.
 */
import { createRequire } from 'node:module';

const preFramed = new WeakSet<Uint8Array>();
let state: 'unknown' | 'on' | 'off' = 'unknown';

type SerializeHost = { serializeMessage(value: unknown): Buffer; __sextantPreFramed?: boolean };

/** Installs the hook once; returns whether pre-framed writes are in use. */
export function enablePreFramedWrites(): boolean {
  if (state !== 'unknown') return state === 'on';
  state = 'off';
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: SerializeHost } };
    const proto = mod.BaseServerInterceptingCall?.prototype;
    if (!proto || typeof proto.serializeMessage !== 'function') return false;
    if (!proto.__sextantPreFramed) {
      const original = proto.serializeMessage;
      proto.serializeMessage = function (this: SerializeHost, value: unknown): Buffer {
        return value instanceof Uint8Array && preFramed.has(value) ? (value as Buffer) : original.call(this, value);
      };
      proto.__sextantPreFramed = true;
    }
    state = 'on';
  } catch {
    state = 'off';
  }
  return state === 'on';
}

/** Size of the gRPC message prefix a pre-framed buffer carries (0 when the hook is off). */
export function framePrefix(): number {
  return state === 'on' ? 5 : 0;
}

/**
 * Returns the message with its gRPC length prefix (uncompressed), marked so
 * grpc-js writes it as is; or the message itself when the hook is off.
 */
export function grpcFramed(message: Uint8Array): Buffer {
  if (state !== 'on') return Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const out = Buffer.allocUnsafe(message.length + 5);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  preFramed.add(out);
  return out;
}

/**
 * A message encoded with `framePrefix()` bytes of headroom at its start:
 * writes the gRPC prefix there and marks it so grpc-js writes it as is (no
 * copy to add a prefix). With the hook off there is no headroom and the
 * message is returned unchanged, for grpc-js to frame.
 */
export function grpcFramedInPlace(message: Buffer): Buffer {
  if (state !== 'on') return message;
  message[0] = 0;
  message.writeUInt32BE(message.length - 5, 1);
  preFramed.add(message);
  return message;
}

/**
 * One message written as consecutive parts (some shared by many streams):
 * its gRPC prefix as a part of its own, then the parts, all marked so grpc-js
 * writes them as they are. They must be written in order, one after another,
 * on one stream. Needs the hook (undefined without it).
 */
export function grpcFramedParts(parts: readonly Buffer[]): Buffer[] | undefined {
  if (state !== 'on') return undefined;
  let length = 0;
  for (const p of parts) length += p.length;
  const prefix = Buffer.allocUnsafe(5);
  prefix[0] = 0;
  prefix.writeUInt32BE(length, 1);
  preFramed.add(prefix);
  for (const p of parts) preFramed.add(p);
  return [prefix, ...parts];
}

/** Whether a buffer was made by grpcFramed() with the hook on. */
export function isPreFramed(b: Uint8Array): boolean {
  return preFramed.has(b);
}

/** Writes one message on a server stream; `done` runs once HTTP/2 has taken it (not on a cancelled stream). */
export type DirectSend = (message: Buffer, done: () => void) => void;

type DuplexHost = { prototype: { _write?: unknown } };
let duplexImpl: DuplexHost | null | undefined;

/**
 * A cheaper write path for a grpc-js server bidi stream: the call's intercepting
 * call (`call.call.sendMessage`) directly, skipping the object-mode `Duplex`
 * layer (`Writable.write` → `writeOrBuffer` → `_write`, then `onwrite` →
 * `afterWrite` per message), which is all `ServerDuplexStreamImpl._write` does
 * in grpc-js 1.14. Ordering is unchanged: the HTTP/2 stream below is itself a
 * queueing Writable, and `call.end()` (→ `_final` → `sendStatus` →
 * `http2Stream.end()`) still goes after every message written this way.
 *
 * Only used when the call is a grpc-js `ServerDuplexStreamImpl` whose `_write`
 * is grpc-js's own and whose `call.sendMessage` is a function; otherwise
 * returns undefined and the caller uses `call.write()`. A stream must use one
 * path for its whole life (never mix, or messages could reorder).
 */
export function directSender(call: object): DirectSend | undefined {
  try {
    if (duplexImpl === undefined) {
      const require = createRequire(import.meta.url);
      const mod = require('@grpc/grpc-js/build/src/server-call.js') as { ServerDuplexStreamImpl?: DuplexHost };
      duplexImpl = mod.ServerDuplexStreamImpl && typeof mod.ServerDuplexStreamImpl.prototype._write === 'function' ? mod.ServerDuplexStreamImpl : null;
    }
    if (!duplexImpl || !(call instanceof (duplexImpl as unknown as new () => object))) return undefined;
    if ((call as { _write?: unknown })._write !== duplexImpl.prototype._write) return undefined;
    const inner = (call as { call?: { sendMessage?: unknown } }).call;
    if (!inner || typeof inner.sendMessage !== 'function') return undefined;
    const send = inner.sendMessage as (this: unknown, m: unknown, cb: () => void) => void;
    return (message, done) => send.call(inner, message, done);
  } catch {
    return undefined;
  }
}
