/**
 * Proto merge on the proto3 JSON form, as istiod's `proto.Merge` of a patch
 * into a generated resource: messages merge field by field, scalars and enums
 * are replaced, repeated fields are appended, map entries are replaced by key,
 * setting one member of a oneof clears the others, and a nested `Any` (its
 * type URL and bytes) or Duration is replaced. `mergeAnyWithAny` is istiod's
 * MergeAnyWithAny for a filter's or transport socket's typed_config: the two
 * packed messages merge, which needs the same `@type`. Pure: returns a new
 * value, never mutates its inputs.
 */
import { fromJson, messageSchema, registry, toJson, type JsonObject } from '@sextant/envoy';

type Schema = ReturnType<typeof messageSchema>;
type Json = Record<string, unknown>;

const ANY = 'google.protobuf.Any';
/** Well-known types whose JSON form is not an object of their fields: replaced whole. */
const REPLACED = new Set(['google.protobuf.Duration', 'google.protobuf.Timestamp', 'google.protobuf.Value', 'google.protobuf.ListValue', 'google.protobuf.FieldMask']);

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The canonical JSON of `value` as a message of `typeName` (snake_case or
 * lowerCamel keys in, lowerCamel out, defaults dropped), so it merges with
 * what translation writes. Throws with protobuf-es's reason (unknown field,
 * unknown `@type`, wrong value) when Envoy could not parse it either.
 */
export function normalize(typeName: string, value: unknown): Json {
  const schema = messageSchema(typeName);
  const msg = fromJson(schema, (value ?? {}) as JsonObject, { registry });
  return toJson(schema, msg, { registry }) as Json;
}

/** `patch` merged into `target`, both canonical JSON of `typeName`. */
export function mergeMessage(typeName: string, target: Json, patch: Json): Json {
  return mergeWith(messageSchema(typeName), target, patch);
}

function mergeWith(schema: Schema, target: Json, patch: Json): Json {
  // proto.Merge of two Anys sets the type URL and replaces the packed bytes.
  if (schema.typeName === ANY) return patch;
  if (schema.typeName === 'google.protobuf.Struct') return { ...target, ...patch };
  if (REPLACED.has(schema.typeName) || schema.typeName.startsWith('google.protobuf.') && schema.typeName.endsWith('Value')) return patch;
  const out: Json = { ...target };
  for (const [key, pv] of Object.entries(patch)) {
    const field = schema.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      out[key] = pv;
      continue;
    }
    const name = field.jsonName;
    // A oneof holds one member: the patch's member clears the target's other.
    if (field.oneof) for (const o of field.oneof.fields) if (o !== field) delete out[o.jsonName];
    const tv = out[name];
    if (field.fieldKind === 'list') out[name] = [...(Array.isArray(tv) ? tv : []), ...(Array.isArray(pv) ? pv : [])];
    else if (field.fieldKind === 'map') out[name] = { ...(isObject(tv) ? tv : {}), ...(isObject(pv) ? pv : {}) };
    else if (field.fieldKind === 'message' && isObject(tv) && isObject(pv)) out[name] = mergeWith(field.message, tv, pv);
    else out[name] = pv;
  }
  return out;
}

/**
 * istiod's MergeAnyWithAny: the patch's packed message merged into the
 * target's. Throws when the `@type`s differ (istiod's merge panics there) or
 * the type is not one Sextant knows.
 */
export function mergeAnyWithAny(target: Json, patch: Json): Json {
  const tt = target['@type'];
  const pt = patch['@type'];
  if (typeof pt !== 'string' || tt !== pt) throw new Error(`typed_config ${String(pt)} cannot merge into ${String(tt)}`);
  const schema = registry.getMessage(pt.slice(pt.lastIndexOf('/') + 1));
  if (!schema) throw new Error(`unknown type ${pt}`);
  // Well-known types pack as `{ @type, value }`: replaced whole.
  if (schema.typeName.startsWith('google.protobuf.')) return patch;
  const { '@type': _t, ...tBody } = target;
  const { '@type': _p, ...pBody } = patch;
  return { '@type': pt, ...mergeWith(schema, tBody, pBody) };
}
