/**
 * Minimal, strict DER encoding and decoding: just what X.509 certificates and
 * PKCS#10 requests need. The reader refuses indefinite lengths, non-minimal
 * lengths, truncation and excessive nesting, so it is safe on hostile input.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export class DerError extends Error {}

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  let v = n;
  while (v > 0) {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given tag around the concatenated contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = contents.length === 1 ? Buffer.from(contents[0]!) : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const seq = (...c: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...c);
export const set = (...c: Uint8Array[]): Buffer => tlv(TAG.SET, ...c);
export const octets = (b: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Uint8Array, unused = 0): Buffer => tlv(TAG.BIT_STRING, Buffer.from([unused]), b);
export const nullValue = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const bool = (v: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0]);
/** Context-specific constructed [n] (EXPLICIT). */
export const explicit = (n: number, ...c: Uint8Array[]): Buffer => tlv(0xa0 | n, ...c);
/** Context-specific primitive [n] (IMPLICIT over a primitive type). */
export const implicitPrimitive = (n: number, b: Uint8Array): Buffer => tlv(0x80 | n, b);

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
export function uintBytes(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let m = Buffer.from(magnitude.subarray(i));
  if (m.length === 0) m = Buffer.from([0]);
  if (m[0]! & 0x80) m = Buffer.concat([Buffer.from([0]), m]);
  return tlv(TAG.INTEGER, m);
}

export function smallInt(n: number): Buffer {
  if (n < 0 || n > 0x7fffffff) throw new DerError('smallInt out of range');
  const b: number[] = [];
  let v = n;
  do {
    b.unshift(v & 0xff);
    v >>>= 8;
  } while (v > 0);
  if (b[0]! & 0x80) b.unshift(0);
  return tlv(TAG.INTEGER, Buffer.from(b));
}

const oidCache = new Map<string, Buffer>();
export function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  const parts = dotted.split('.').map((p) => Number(p));
  if (parts.length < 2 || parts.some((p) => !Number.isInteger(p) || p < 0)) throw new DerError(`bad OID ${dotted}`);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const bytes: number[] = [];
    let v = p;
    do {
      bytes.unshift((v & 0x7f) | (bytes.length ? 0x80 : 0));
      v = Math.floor(v / 128);
    } while (v > 0);
    out.push(...bytes);
  }
  const enc = tlv(TAG.OID, Buffer.from(out));
  oidCache.set(dotted, enc);
  return enc;
}

export function decodeOid(content: Uint8Array): string {
  if (content.length === 0 || content.length > 64) throw new DerError('bad OID length');
  const parts: number[] = [];
  let v = 0;
  let first = true;
  for (let i = 0; i < content.length; i++) {
    const byte = content[i]!;
    if (v === 0 && byte === 0x80) throw new DerError('non-minimal OID arc');
    v = v * 128 + (byte & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if (!(byte & 0x80)) {
      if (first) {
        const a = v < 40 ? 0 : v < 80 ? 1 : 2;
        parts.push(a, v - a * 40);
        first = false;
      } else parts.push(v);
      v = 0;
    } else if (i === content.length - 1) throw new DerError('truncated OID');
  }
  return parts.join('.');
}

function two(n: number): string {
  return n.toString().padStart(2, '0');
}

/** UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
export function time(ms: number): Buffer {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const y = d.getUTCFullYear();
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${two(y % 100)}${rest}`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${y.toString().padStart(4, '0')}${rest}`, 'ascii'));
}

// ---------------------------------------------------------------- reading

export interface Node {
  tag: number;
  /** The whole TLV. */
  raw: Buffer;
  /** The contents. */
  content: Buffer;
}

const MAX_DEPTH = 32;

/** Reads the single TLV at `offset`; returns it and the offset after it. */
export function readOne(buf: Buffer, offset = 0): { node: Node; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated TLV header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (p + n > buf.length) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    if (buf[p] === 0 || len < 0x80) throw new DerError('non-minimal length');
    p += n;
  }
  if (p + len > buf.length) throw new DerError('truncated contents');
  return { node: { tag, raw: buf.subarray(offset, p + len), content: buf.subarray(p, p + len) }, next: p + len };
}

/** Parses a buffer that must hold exactly one TLV. */
export function parse(buf: Buffer): Node {
  const { node, next } = readOne(buf, 0);
  if (next !== buf.length) throw new DerError('trailing data after DER value');
  return node;
}

/** The children of a constructed node. */
export function children(node: Node, depth = 0): Node[] {
  if (depth > MAX_DEPTH) throw new DerError('nesting too deep');
  if (!(node.tag & 0x20)) throw new DerError(`tag 0x${node.tag.toString(16)} is not constructed`);
  const out: Node[] = [];
  let off = 0;
  while (off < node.content.length) {
    const { node: child, next } = readOne(node.content, off);
    out.push(child);
    off = next;
    if (out.length > 4096) throw new DerError('too many elements');
  }
  return out;
}

export function expect(node: Node | undefined, tag: number, what: string): Node {
  if (!node) throw new DerError(`${what}: missing`);
  if (node.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`);
  return node;
}

export function readBitString(node: Node, what: string): Buffer {
  expect(node, TAG.BIT_STRING, what);
  if (node.content.length < 1) throw new DerError(`${what}: empty BIT STRING`);
  const unused = node.content[0]!;
  if (unused > 7 || (unused && node.content.length === 1)) throw new DerError(`${what}: bad unused-bit count`);
  return node.content.subarray(1);
}

export function readInteger(node: Node, what: string): bigint {
  expect(node, TAG.INTEGER, what);
  const c = node.content;
  if (c.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (c.length > 1 && ((c[0] === 0 && !(c[1]! & 0x80)) || (c[0] === 0xff && c[1]! & 0x80))) {
    throw new DerError(`${what}: non-minimal INTEGER`);
  }
  let v = 0n;
  for (const b of c) v = (v << 8n) | BigInt(b);
  if (c[0]! & 0x80) v -= 1n << BigInt(c.length * 8);
  return v;
}

export function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END \1-----/g;

/** Every PEM block in a text, in order. Base64 must be canonical. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    const b64 = m[2]!.replace(/[\r\n]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new DerError(`PEM ${m[1]} has invalid base64`);
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64) throw new DerError(`PEM ${m[1]} has non-canonical base64`);
    out.push({ label: m[1]!, der });
  }
  return out;
}
