import { createHash } from 'node:crypto';
import { createRegistry, fromBinary, fromJson, toBinary, toJson, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { allFiles } from './gen/all-files.js';
import { typeNameOf } from './type-urls.js';
import { encodeAny } from './wire.js';

/** Every generated Envoy/xDS/Google message, for Any packing and JSON. */
export const registry = createRegistry(...allFiles);

const schemaCache = new Map<string, DescMessage>();
/** The message descriptor for a fully-qualified type name or type URL. */
export function messageSchema(typeNameOrUrl: string): DescMessage {
  const typeName = typeNameOf(typeNameOrUrl);
  let desc = schemaCache.get(typeName);
  if (!desc) {
    desc = registry.getMessage(typeName);
    if (!desc) throw new Error(`unknown protobuf message type ${typeName}`);
    schemaCache.set(typeName, desc);
  }
  return desc;
}

export function isKnownType(typeNameOrUrl: string): boolean {
  return registry.getMessage(typeNameOf(typeNameOrUrl)) !== undefined;
}

/**
 * Returns a copy of a JSON value with every object's keys sorted. Proto3 JSON
 * does not care about key order, but protobuf map and Struct fields are encoded
 * in the order their keys arrive, so sorting makes encoding deterministic:
 * equal content always gives equal bytes, and so equal version hashes.
 */
export function canonicalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonicalize(v);
    }
    return out;
  }
  return value;
}

/**
 * Encodes a message given in Envoy's JSON form (proto3 JSON, Anys as
 * `{"@type": ...}`) to protobuf binary, deterministically. Throws with the
 * type name and the parser's reason if the JSON does not fit the schema.
 */
export function encodeJson(typeNameOrUrl: string, json: unknown): Uint8Array {
  const schema = messageSchema(typeNameOrUrl);
  try {
    const message = fromJson(schema, canonicalize(json) as JsonValue, { registry });
    return toBinary(schema, message);
  } catch (err) {
    throw new Error(`cannot encode ${schema.typeName}: ${(err as Error).message}`);
  }
}

/** Decodes protobuf binary into Envoy's JSON form (what config_dump and `sextant translate` print). */
export function decodeToJson(typeNameOrUrl: string, bytes: Uint8Array): JsonValue {
  const schema = messageSchema(typeNameOrUrl);
  return toJson(schema, fromBinary(schema, bytes), { registry });
}

/** Decodes protobuf binary into a typed message (for requests the server receives). */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array) {
  return fromBinary(schema, bytes);
}

/** A short content hash, used as a resource version: equal bytes, equal version. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}

/**
 * One xDS resource encoded once: its name, version (content hash) and the
 * bytes of the google.protobuf.Any that carries it. Every stream that receives
 * this resource is sent these same bytes.
 */
export interface EncodedResource {
  readonly typeUrl: string;
  readonly name: string;
  readonly version: string;
  /** Encoded google.protobuf.Any { type_url, value }. */
  readonly any: Uint8Array;
  /** The message bytes alone (the Any's value). */
  readonly value: Uint8Array;
}

export function encodedResource(typeUrl: string, name: string, value: Uint8Array): EncodedResource {
  return { typeUrl, name, version: contentHash(value), any: encodeAny(typeUrl, value), value };
}

/** Encodes a resource from its Envoy JSON form (no caching; see ResourceEncoder for that). */
export function encodeResource(typeUrl: string, name: string, json: unknown): EncodedResource {
  return encodedResource(typeUrl, name, encodeJson(typeUrl, json));
}

/**
 * Serialize-once for generated resources: translation produces Envoy JSON, and
 * identical JSON (by its JSON.stringify text) maps to the one EncodedResource
 * already built, so a resource shared by thousands of proxies is encoded once.
 * Entries not used during a generation are dropped by `sweep()`.
 */
export class ResourceEncoder {
  private current = new Map<string, EncodedResource>();
  private previous = new Map<string, EncodedResource>();
  hits = 0;
  misses = 0;

  encode(typeUrl: string, name: string, json: unknown): EncodedResource {
    const key = `${typeUrl}\u0000${name}\u0000${JSON.stringify(json)}`;
    let res = this.current.get(key);
    if (!res) {
      res = this.previous.get(key);
      if (res) this.previous.delete(key);
      else {
        res = encodeResource(typeUrl, name, json);
        this.misses++;
      }
      this.current.set(key, res);
    } else this.hits++;
    return res;
  }

  /** Forgets everything not encoded since the previous sweep. Call once per generation cycle. */
  sweep(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}
