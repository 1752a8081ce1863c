/**
 * Hand-framed protobuf for the few messages that wrap already-encoded bytes:
 * google.protobuf.Any, DiscoveryResponse and DeltaDiscoveryResponse (and its
 * Resource). Framing copies cached resource bytes into one buffer instead of
 * re-encoding messages per stream, which is what makes serialize-once pay off.
 * Field numbers are from envoy/service/discovery/v3/discovery.proto and
 * google/protobuf/any.proto.
 */

const WIRE_LEN = 2;

/** Bytes of `n` as a protobuf varint. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

class Frame {
  readonly buf: Buffer;
  pos: number;
  /** `headroom`: bytes left free at the start for the caller (a gRPC message prefix). */
  constructor(size: number, headroom = 0) {
    this.buf = Buffer.allocUnsafe(size + headroom);
    this.pos = headroom;
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }
  bytesField(field: number, bytes: Uint8Array): void {
    this.varint((field << 3) | WIRE_LEN);
    this.varint(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`frame size mismatch: wrote ${this.pos} of ${this.buf.length}`);
    return this.buf;
  }
}

/** Size of a length-delimited field with a small field number (< 16) holding `len` bytes. */
function fieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');

/**
 * A message's bytes followed by more elements of one of its repeated message
 * fields (each already encoded): protobuf encodes a repeated field as its
 * elements one after another, in any position, so this is the message with
 * those elements appended.
 */
export function appendRepeated(message: Uint8Array, field: number, elements: readonly Uint8Array[]): Uint8Array {
  const tag = (field << 3) | WIRE_LEN;
  let size = message.length;
  for (const e of elements) size += varintSize(tag) + varintSize(e.length) + e.length;
  const f = new Frame(size);
  f.buf.set(message, 0);
  f.pos = message.length;
  for (const e of elements) f.bytesField(field, e);
  return f.done();
}

/** google.protobuf.Any { type_url = 1; value = 2; } */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  const url = utf8(typeUrl);
  const f = new Frame(fieldSize(url.length) + fieldSize(value.length));
  f.bytesField(1, url);
  f.bytesField(2, value);
  return f.done();
}

/** Fields of a response other than its resources. */
export interface ResponseHeader {
  typeUrl: string;
  nonce: string;
  /** DiscoveryResponse.version_info / DeltaDiscoveryResponse.system_version_info. */
  versionInfo: string;
  /** Encoded envoy.config.core.v3.ControlPlane, identifying this server; optional. */
  controlPlane?: Uint8Array | undefined;
}

/**
 * DiscoveryResponse { version_info = 1; resources = 2 (Any); type_url = 4;
 * nonce = 5; control_plane = 6; }, framed around pre-encoded Any bytes;
 * `headroom` as for encodeDeltaDiscoveryResponse.
 */
export function encodeDiscoveryResponse(h: ResponseHeader, anys: readonly Uint8Array[], headroom = 0): Buffer {
  const version = utf8(h.versionInfo);
  const typeUrl = utf8(h.typeUrl);
  const nonce = utf8(h.nonce);
  let size = fieldSize(version.length) + fieldSize(typeUrl.length) + fieldSize(nonce.length);
  for (const a of anys) size += fieldSize(a.length);
  if (h.controlPlane) size += fieldSize(h.controlPlane.length);
  const f = new Frame(size, headroom);
  f.bytesField(1, version);
  for (const a of anys) f.bytesField(2, a);
  f.bytesField(4, typeUrl);
  f.bytesField(5, nonce);
  if (h.controlPlane) f.bytesField(6, h.controlPlane);
  return f.done();
}

/** Resource { version = 1; resource = 2 (Any); name = 3; } as carried in delta responses. */
export function encodeDeltaResource(name: string, version: string, any: Uint8Array): Uint8Array {
  const n = utf8(name);
  const v = utf8(version);
  const f = new Frame(fieldSize(v.length) + fieldSize(any.length) + fieldSize(n.length));
  f.bytesField(1, v);
  f.bytesField(2, any);
  f.bytesField(3, n);
  return f.done();
}

/**
 * DeltaDiscoveryResponse { system_version_info = 1; resources = 2 (Resource);
 * type_url = 4; nonce = 5; removed_resources = 6; control_plane = 7; }.
 * `resources` are pre-encoded Resource messages (see encodeDeltaResource).
 * `headroom` bytes are left free at the start of the buffer for the caller
 * (a gRPC message prefix, so the message is not copied again to add one).
 */
export function encodeDeltaDiscoveryResponse(h: ResponseHeader, resources: readonly Uint8Array[], removed: readonly string[], headroom = 0): Buffer {
  const version = utf8(h.versionInfo);
  const typeUrl = utf8(h.typeUrl);
  const nonce = utf8(h.nonce);
  const removedBytes = removed.map(utf8);
  let size = fieldSize(version.length) + fieldSize(typeUrl.length) + fieldSize(nonce.length);
  for (const r of resources) size += fieldSize(r.length);
  for (const r of removedBytes) size += fieldSize(r.length);
  if (h.controlPlane) size += fieldSize(h.controlPlane.length);
  const f = new Frame(size, headroom);
  f.bytesField(1, version);
  for (const r of resources) f.bytesField(2, r);
  f.bytesField(4, typeUrl);
  f.bytesField(5, nonce);
  for (const r of removedBytes) f.bytesField(6, r);
  if (h.controlPlane) f.bytesField(7, h.controlPlane);
  return f.done();
}

/**
 * Pre-encoded Resource messages as the `resources` fields (2) of a
 * DeltaDiscoveryResponse, one after another: bytes that can follow any
 * DeltaDiscoveryResponse's own, since a message's fields may come in any
 * order and a repeated field's elements need not be adjacent.
 */
export function encodeDeltaResourcesFields(resources: readonly Uint8Array[]): Buffer {
  let size = 0;
  for (const r of resources) size += fieldSize(r.length);
  const f = new Frame(size);
  for (const r of resources) f.bytesField(2, r);
  return f.done();
}
