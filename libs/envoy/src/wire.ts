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

/** google.protobuf.Any { type_url = 1; value = 2; } */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  return encodeAnyOf(typeUrl, value, 0, []).any;
}

/**
 * google.protobuf.Any whose value is `message` followed by `elements` (each
 * already encoded) as more elements of its repeated message field `field`:
 * protobuf encodes a repeated field as its elements one after another, in any
 * position, so that value is the message with those elements. Written into
 * one buffer: the value is not assembled first and copied into the Any after.
 * `value` is a view of the Any's tail.
 */
export function encodeAnyOf(typeUrl: string, message: Uint8Array, field: number, elements: readonly Uint8Array[]): { any: Buffer; value: Buffer } {
  const url = utf8(typeUrl);
  const tag = (field << 3) | WIRE_LEN;
  let valueSize = message.length;
  for (const e of elements) valueSize += varintSize(tag) + varintSize(e.length) + e.length;
  const f = new Frame(fieldSize(url.length) + fieldSize(valueSize));
  f.bytesField(1, url);
  f.varint((2 << 3) | WIRE_LEN);
  f.varint(valueSize);
  const start = f.pos;
  f.buf.set(message, f.pos);
  f.pos += message.length;
  for (const e of elements) f.bytesField(field, e);
  const any = f.done();
  return { any, value: any.subarray(start) };
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

/** A resource as a Delta response carries it: its name, version and the bytes of its Any. */
export interface DeltaResourceParts {
  readonly name: string;
  readonly version: string;
  readonly any: Uint8Array;
}

/** Resource { version = 1; resource = 2 (Any); name = 3; }, its fields' bytes ready to be written in place. */
class ResourceFields {
  readonly name: Buffer;
  readonly version: Buffer;
  readonly any: Uint8Array;
  readonly size: number;
  constructor(r: DeltaResourceParts) {
    this.name = utf8(r.name);
    this.version = utf8(r.version);
    // Read once: a spliced resource renders its bytes on each read.
    this.any = r.any;
    this.size = fieldSize(this.version.length) + fieldSize(this.any.length) + fieldSize(this.name.length);
  }
  /** As field `field` of the enclosing message. */
  write(f: Frame, field: number): void {
    f.varint((field << 3) | WIRE_LEN);
    f.varint(this.size);
    f.bytesField(1, this.version);
    f.bytesField(2, this.any);
    f.bytesField(3, this.name);
  }
}

/**
 * DeltaDiscoveryResponse { system_version_info = 1; resources = 2 (Resource);
 * type_url = 4; nonce = 5; removed_resources = 6; control_plane = 7; }. Each
 * Resource is written in place around its Any's bytes (one copy of a
 * resource per response, no Resource message of its own first).
 * `headroom` bytes are left free at the start of the buffer for the caller
 * (a gRPC message prefix, so the message is not copied again to add one).
 */
export function encodeDeltaDiscoveryResponse(h: ResponseHeader, resources: readonly DeltaResourceParts[], removed: readonly string[], headroom = 0): Buffer {
  const version = utf8(h.versionInfo);
  const typeUrl = utf8(h.typeUrl);
  const nonce = utf8(h.nonce);
  const removedBytes = removed.map(utf8);
  const fields = resources.map((r) => new ResourceFields(r));
  let size = fieldSize(version.length) + fieldSize(typeUrl.length) + fieldSize(nonce.length);
  for (const r of fields) size += fieldSize(r.size);
  for (const r of removedBytes) size += fieldSize(r.length);
  if (h.controlPlane) size += fieldSize(h.controlPlane.length);
  const f = new Frame(size, headroom);
  f.bytesField(1, version);
  for (const r of fields) r.write(f, 2);
  f.bytesField(4, typeUrl);
  f.bytesField(5, nonce);
  for (const r of removedBytes) f.bytesField(6, r);
  if (h.controlPlane) f.bytesField(7, h.controlPlane);
  return f.done();
}

/**
 * Resources as the `resources` fields (2) of a DeltaDiscoveryResponse, one
 * after another: bytes that can follow any DeltaDiscoveryResponse's own,
 * since a message's fields may come in any order and a repeated field's
 * elements need not be adjacent.
 */
export function encodeDeltaResourcesFields(resources: readonly DeltaResourceParts[]): Buffer {
  const fields = resources.map((r) => new ResourceFields(r));
  let size = 0;
  for (const r of fields) size += fieldSize(r.size);
  const f = new Frame(size);
  for (const r of fields) r.write(f, 2);
  return f.done();
}
