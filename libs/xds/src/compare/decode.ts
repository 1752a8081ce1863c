/**
 * Decoding xDS resources for comparison. The reference decoder is built from
 * a FileDescriptorSet of the protos istiod is compiled with (Envoy's API, every
 * Envoy extension istiod knows and Istio's own filter configs such as
 * `stats.PluginConfig`), which `make tools` writes next to pilot-discovery
 * (scripts/xds-descriptors). Without one, Sextant's own Envoy registry is
 * used, and an Any of a type it does not know is kept as its type URL and a
 * hash of its bytes (a StringValue `opaque <type> sha256:<hash>`), so equal bytes still compare equal.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { create, createFileRegistry, createRegistry, fromBinary, toBinary, toJson, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, StringValueSchema, type Any } from '@bufbuild/protobuf/wkt';
import { registry as envoyRegistry, typeNameOf } from '@sextant/envoy';

export interface XdsDecoder {
  /** Where the descriptors came from, for reports. */
  readonly source: string;
  /** A resource (the value of an Any of this type URL) in Envoy's JSON form. */
  decode(typeUrl: string, value: Uint8Array): JsonValue;
}

class RegistryDecoder implements XdsDecoder {
  private readonly registry: Registry;

  constructor(
    readonly source: string,
    registry: Registry,
  ) {
    // StringValue carries the markers for Anys of unknown types.
    this.registry = createRegistry(registry, StringValueSchema);
  }

  decode(typeUrl: string, value: Uint8Array): JsonValue {
    const schema = this.registry.getMessage(typeNameOf(typeUrl));
    if (!schema) return opaqueJson(typeUrl, value);
    const msg = fromBinary(schema, value);
    const unknown: string[] = [];
    markOpaqueAnys(schema, msg as unknown as Record<string, unknown>, this.registry, unknown);
    const json = toJson(schema, msg, { registry: this.registry });
    // toJson drops fields the descriptors do not know; name them so they still compare.
    if (unknown.length && json && typeof json === 'object' && !Array.isArray(json)) return { ...json, '@unknownFields': [...new Set(unknown)].sort() };
    return json;
  }
}

function digest(value: Uint8Array): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

function opaqueJson(typeUrl: string, value: Uint8Array): JsonValue {
  return { '@type': typeUrl, '@opaque': `sha256:${digest(value)}` };
}

/**
 * Replaces every Any (at any depth) whose type the registry lacks by a
 * StringValue naming its type and the hash of its bytes, since toJson cannot
 * print it, and collects the fields no descriptor names (`Type#number:hash`).
 * Returns whether the message changed (so enclosing Anys re-encode).
 */
function markOpaqueAnys(desc: DescMessage, msg: Record<string, unknown>, reg: Registry, unknown: string[]): boolean {
  const extra = msg['$unknown'] as Array<{ no: number; data: Uint8Array }> | undefined;
  for (const u of extra ?? []) unknown.push(`${desc.typeName}#${u.no}:sha256:${digest(u.data)}`);
  if (desc.typeName === 'google.protobuf.Any') {
    const any = msg as unknown as Any;
    const inner = reg.getMessage(typeNameOf(any.typeUrl));
    if (!inner) {
      const marker = create(StringValueSchema, { value: `opaque ${any.typeUrl} sha256:${digest(any.value)}` });
      any.typeUrl = 'type.googleapis.com/google.protobuf.StringValue';
      any.value = toBinary(StringValueSchema, marker);
      return true;
    }
    const m = fromBinary(inner, any.value);
    if (!markOpaqueAnys(inner, m as unknown as Record<string, unknown>, reg, unknown)) return false;
    any.value = toBinary(inner, m);
    return true;
  }
  let changed = false;
  for (const f of desc.fields) {
    let v: unknown;
    if (f.oneof) {
      const o = msg[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      v = o?.case === f.localName ? o.value : undefined;
    } else v = msg[f.localName];
    if (v === undefined || v === null) continue;
    if (f.fieldKind === 'message') {
      if (markOpaqueAnys(f.message, v as Record<string, unknown>, reg, unknown)) changed = true;
    } else if (f.fieldKind === 'list' && f.listKind === 'message') {
      for (const e of v as Record<string, unknown>[]) if (markOpaqueAnys(f.message, e, reg, unknown)) changed = true;
    } else if (f.fieldKind === 'map' && f.mapKind === 'message') {
      for (const e of Object.values(v as Record<string, Record<string, unknown>>)) if (markOpaqueAnys(f.message, e, reg, unknown)) changed = true;
    }
  }
  return changed;
}

/** A decoder over the descriptors in FILE (a serialized google.protobuf.FileDescriptorSet). */
export function loadDescriptorSet(file: string): XdsDecoder {
  let set;
  try {
    set = fromBinary(FileDescriptorSetSchema, readFileSync(file));
  } catch (err) {
    throw new Error(`cannot read descriptor set ${file}: ${(err as Error).message}`);
  }
  return new RegistryDecoder(`descriptors ${file} (${set.file.length} files)`, createFileRegistry(set));
}

/** Sextant's built-in Envoy registry (no Istio extension types). */
export function builtinDecoder(): XdsDecoder {
  return new RegistryDecoder("Sextant's built-in Envoy registry", envoyRegistry);
}
