import { z } from 'zod';
import { stringify } from 'yaml';
import { IstioStatus } from './common.js';
import { ISTIO_KINDS, type KindInfo } from './kinds.js';

/**
 * Generates Istio's CustomResourceDefinitions from the zod schemas: same
 * groups, kinds, names, short names, categories, scope, served and storage
 * versions and printer columns as Istio's base chart, with structural OpenAPI
 * v3 schemas (every node typed, no $ref, free-form only where the schema is).
 *
 * What structural schemas cannot say (cross-field rules written as zod
 * refinements, e.g. "only one of selector or targetRef") is checked by
 * Sextant's validation, not by the API server.
 */

type Json = Record<string, unknown>;

/** Keys a structural schema node may carry, in the order they are written. */
const VALUE_KEYS = [
  'description',
  'type',
  'format',
  'enum',
  'nullable',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'multipleOf',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
] as const;

const KNOWN_FORMATS = new Set([
  'int32',
  'int64',
  'float',
  'double',
  'byte',
  'date',
  'date-time',
  'duration',
  'uri',
  'uuid',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'mac',
  'password',
]);

/** Go's RE2 (the API server) has no lookaround or back-references: such patterns are left to Sextant. */
function re2Compatible(pattern: string): boolean {
  return !/\(\?[=!<]|\\[1-9]|\(\?<[=!]/.test(pattern);
}

const FREE_FORM: Json = { 'x-kubernetes-preserve-unknown-fields': true };
const SAFE_INT = 9007199254740991;

interface Ctx {
  defs: Record<string, Json>;
  /** $refs being expanded, to break cycles. */
  stack: string[];
}

function resolveRef(ref: string, ctx: Ctx): { name: string; schema: Json | undefined } {
  const name = ref.replace(/^#\/(\$defs|definitions|components\/schemas)\//, '');
  return { name, schema: ctx.defs[name] };
}

/** Converts one JSON Schema node (zod's openapi-3.0 output) into Kubernetes structural form. */
function structural(node: Json, ctx: Ctx): Json {
  if (typeof node.$ref === 'string') {
    const { name, schema } = resolveRef(node.$ref, ctx);
    if (!schema || ctx.stack.includes(name)) {
      // A recursive type cannot be expanded: that level is kept free-form.
      return { type: 'object', ...FREE_FORM };
    }
    ctx.stack.push(name);
    try {
      const { $ref: _ref, ...siblings } = node;
      return structural({ ...schema, ...siblings }, ctx);
    } finally {
      ctx.stack.pop();
    }
  }
  if (Array.isArray(node.allOf)) {
    const { allOf, ...rest } = node;
    const parts = (allOf as Json[]).map((p) => structural(p, ctx));
    return parts.reduce((acc, p) => merge(acc, p), strip(rest, ctx));
  }
  const alts = (node.anyOf ?? node.oneOf) as Json[] | undefined;
  if (Array.isArray(alts)) {
    const { anyOf: _a, oneOf: _o, ...rest } = node;
    const nullable = alts.some((a) => a.type === 'null') || rest.nullable === true;
    const options = alts.filter((a) => a.type !== 'null').map((a) => structural(a, ctx));
    let out = union(options);
    if (rest.description !== undefined) out = { description: rest.description, ...out };
    if (nullable) out.nullable = true;
    return out;
  }
  return strip(node, ctx);
}

/** Copies the allowed keys of a plain (non-union) node and converts its children. */
function strip(node: Json, ctx: Ctx): Json {
  const out: Json = {};
  for (const k of VALUE_KEYS) if (node[k] !== undefined) out[k] = node[k];
  if (node.const !== undefined && out.enum === undefined) out.enum = [node.const];
  if (typeof out.format === 'string' && !KNOWN_FORMATS.has(out.format)) delete out.format;
  if (typeof out.pattern === 'string' && !re2Compatible(out.pattern)) delete out.pattern;
  if (out.type === 'integer') {
    if (out.minimum === -SAFE_INT) delete out.minimum;
    if (out.maximum === SAFE_INT) delete out.maximum;
  }
  if (out.type === undefined) {
    if (out.enum !== undefined) out.type = typeof (out.enum as unknown[])[0] === 'number' ? 'number' : 'string';
    else if (node.properties || node.additionalProperties) out.type = 'object';
    else if (node.items) out.type = 'array';
  }
  if (out.type === 'array') {
    const items = node.items as Json | Json[] | undefined;
    out.items = items === undefined || Array.isArray(items) ? FREE_FORM : structural(items, ctx);
  }
  if (out.type === 'object') {
    const props = node.properties as Record<string, Json> | undefined;
    const ap = node.additionalProperties;
    if (props && Object.keys(props).length > 0) {
      const converted: Record<string, Json> = {};
      for (const k of Object.keys(props).sort()) converted[k] = structural(props[k]!, ctx);
      out.properties = converted;
      if (ap !== undefined && ap !== false) out['x-kubernetes-preserve-unknown-fields'] = true;
    } else if (ap && typeof ap === 'object') {
      const value = structural(ap as Json, ctx);
      if (isFreeForm(value)) out['x-kubernetes-preserve-unknown-fields'] = true;
      else out.additionalProperties = value;
    } else if (ap === true) {
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
    const required = (node.required as string[] | undefined)?.filter((r) => props?.[r] !== undefined);
    if (required && required.length > 0) out.required = required;
  }
  if (out.type === undefined) return { ...(out.description ? { description: out.description } : {}), ...FREE_FORM };
  if (out.type === 'null') return { ...FREE_FORM, nullable: true };
  return out;
}

function isFreeForm(s: Json): boolean {
  return s['x-kubernetes-preserve-unknown-fields'] === true && s.type === undefined && s.properties === undefined;
}

/** Merges two schemas of one node (allOf, or properties that several union branches share). */
function merge(a: Json, b: Json): Json {
  if (isFreeForm(a)) return b;
  if (isFreeForm(b)) return a;
  if (a.type !== b.type) return FREE_FORM;
  const out: Json = { ...b, ...a };
  if (a.type === 'object') {
    const pa = (a.properties ?? {}) as Record<string, Json>;
    const pb = (b.properties ?? {}) as Record<string, Json>;
    const props: Record<string, Json> = {};
    for (const k of [...new Set([...Object.keys(pa), ...Object.keys(pb)])].sort())
      props[k] = pa[k] && pb[k] ? merge(pa[k]!, pb[k]!) : (pa[k] ?? pb[k])!;
    if (Object.keys(props).length > 0) {
      out.properties = props;
      delete out.additionalProperties;
    }
    const req = [...new Set([...((a.required as string[]) ?? []), ...((b.required as string[]) ?? [])])];
    if (req.length > 0) out.required = req;
  }
  if (a.type === 'array' && a.items && b.items) out.items = merge(a.items as Json, b.items as Json);
  if (Array.isArray(a.enum) && Array.isArray(b.enum)) out.enum = [...new Set([...a.enum, ...b.enum])];
  return out;
}

/**
 * A union in structural form. int|string becomes x-kubernetes-int-or-string;
 * object alternatives become one object holding every field, with a oneOf of
 * `required` lists (the only form of oneOf structural schemas allow) when each
 * alternative is told apart by its own required fields; anything else is
 * free-form and left to Sextant's validation.
 */
function union(options: Json[]): Json {
  if (options.length === 0) return FREE_FORM;
  if (options.length === 1) return options[0]!;
  if (options.some(isFreeForm)) return FREE_FORM;
  const types = new Set(options.map((o) => o.type));
  if (types.size === 2 && types.has('string') && (types.has('integer') || types.has('number')))
    return { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] };
  if (types.size > 1) return FREE_FORM;
  const type = options[0]!.type;
  if (type !== 'object') return options.reduce((acc, o) => merge(acc, o));
  const requiredSets = options.map((o) => (o.required as string[] | undefined) ?? []);
  const common = requiredSets.reduce((acc, r) => acc.filter((k) => r.includes(k)));
  const distinct = requiredSets.map((r) => r.filter((k) => !common.includes(k)));
  const merged = options.reduce((acc, o) => merge(acc, o));
  if (common.length > 0) merged.required = common;
  else delete merged.required;
  const empties = distinct.filter((d) => d.length === 0).length;
  const keyed = distinct.filter((d) => d.length > 0);
  const distinguishable = new Set(keyed.map((d) => d.join(','))).size === keyed.length && empties <= 1 && keyed.length > 0;
  if (distinguishable) {
    const oneOf: Json[] = [];
    if (empties === 1) oneOf.push({ not: { anyOf: keyed.map((d) => ({ required: d })) } });
    for (const d of keyed) oneOf.push({ required: d });
    merged.oneOf = oneOf;
  }
  return merged;
}

/** Converts a zod schema into a structural OpenAPI v3 schema. */
export function structuralSchema(schema: z.ZodType): Json {
  const js = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    cycles: 'ref',
    reused: 'inline',
  }) as Json;
  const defs = { ...((js.$defs ?? {}) as Record<string, Json>), ...((js.definitions ?? {}) as Record<string, Json>) };
  const { $defs: _d, definitions: _defs, $schema: _s, ...root } = js;
  return structural(root, { defs, stack: [] });
}

/** Lists every way `schema` breaks Kubernetes' structural schema rules (empty when it is structural). */
export function structuralProblems(schema: Json, path = 'openAPIV3Schema', inJunctor = false): string[] {
  const problems: string[] = [];
  if ('$ref' in schema) problems.push(`${path}: $ref is not allowed`);
  if (!inJunctor) {
    const typed = schema.type !== undefined || schema['x-kubernetes-int-or-string'] === true || schema['x-kubernetes-preserve-unknown-fields'] === true;
    if (!typed) problems.push(`${path}: type is missing`);
  } else {
    for (const k of ['type', 'description', 'default', 'nullable', 'additionalProperties', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string'])
      if (k in schema) problems.push(`${path}: ${k} is not allowed inside a oneOf/anyOf/allOf/not`);
  }
  if (schema.properties && schema.additionalProperties) problems.push(`${path}: properties and additionalProperties together`);
  if (schema.additionalProperties === false) problems.push(`${path}: additionalProperties: false is not allowed`);
  if (schema.type === 'array' && !schema.items) problems.push(`${path}: array without items`);
  for (const [k, v] of Object.entries((schema.properties ?? {}) as Record<string, Json>))
    problems.push(...structuralProblems(v, `${path}.properties.${k}`, inJunctor));
  if (schema.items) problems.push(...structuralProblems(schema.items as Json, `${path}.items`, inJunctor));
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    problems.push(...structuralProblems(schema.additionalProperties as Json, `${path}.additionalProperties`, inJunctor));
  for (const j of ['oneOf', 'anyOf', 'allOf'] as const) {
    const list = schema[j] as Json[] | undefined;
    list?.forEach((s, i) => {
      const intOrString = j === 'anyOf' && schema['x-kubernetes-int-or-string'] === true;
      if (!intOrString) problems.push(...structuralProblems(s, `${path}.${j}[${i}]`, true));
    });
  }
  if (schema.not) problems.push(...structuralProblems(schema.not as Json, `${path}.not`, true));
  return problems;
}

/** The CustomResourceDefinition for one Istio kind. */
export function crdFor(info: KindInfo): Json {
  if (!info.istio || !info.spec) throw new Error(`${info.kind} is not an Istio kind`);
  const spec = structuralSchema(info.spec);
  const status = { ...structuralSchema(IstioStatus), 'x-kubernetes-preserve-unknown-fields': true };
  const openAPIV3Schema = {
    type: 'object',
    properties: {
      spec: { description: `Spec of the ${info.kind}; see Istio's ${info.group} API reference.`, ...spec },
      status,
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${info.plural}.${info.group}`,
      annotations: { 'helm.sh/resource-policy': 'keep' },
      labels: { 'app.kubernetes.io/part-of': 'sextant' },
    },
    spec: {
      group: info.group,
      names: {
        categories: [...info.categories],
        kind: info.kind,
        listKind: info.listKind,
        plural: info.plural,
        ...(info.shortNames.length > 0 ? { shortNames: [...info.shortNames] } : {}),
        singular: info.singular,
      },
      scope: info.namespaced ? 'Namespaced' : 'Cluster',
      versions: info.versions.map((name) => ({
        ...(info.printerColumns.length > 0 ? { additionalPrinterColumns: info.printerColumns.map((c) => ({ ...c })) } : {}),
        name,
        schema: { openAPIV3Schema },
        served: true,
        storage: name === info.storageVersion,
        subresources: { status: {} },
      })),
    },
  };
}

export const CRD_HEADER =
  '# Generated from the zod schemas in libs/api by `node libs/api/scripts/gen-crds.mjs`. Do not edit.\n';

/** Every generated file, relative to `crds/`, with its exact content. */
export function renderCrdFiles(): { file: string; content: string }[] {
  return ISTIO_KINDS.map((info) => ({
    file: `${info.group}_${info.plural}.yaml`,
    content: CRD_HEADER + stringify(crdFor(info), { lineWidth: 0, aliasDuplicateObjects: false }),
  })).sort((a, b) => a.file.localeCompare(b.file));
}
