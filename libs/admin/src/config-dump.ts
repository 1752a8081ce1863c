/**
 * Debug output for one proxy: Envoy's own `ConfigDump` shape (what
 * `istioctl proxy-config … --file` parses) and Sextant's per-type detail,
 * both with every sensitive field redacted the way Envoy's admin config dump
 * redacts them, plus a last check that no private key text gets out at all.
 */
import { getOption, type DescExtension, type DescField, type DescMessage, type JsonObject, type JsonValue } from '@bufbuild/protobuf';
import { TypeUrl, decodeToJson, encodeJson, messageSchema, registry, shortTypeName, typeNameOf } from '@sextant/envoy';

/** What Envoy writes in place of a sensitive string, and (base64 of it) in place of sensitive bytes. */
export const REDACTED = '[redacted]';
const REDACTED_BYTES = Buffer.from(REDACTED).toString('base64');

/** One type of what a stream was last sent, as the xDS server records it. */
export interface SentType {
  typeUrl: string;
  versionSent?: string | undefined;
  versionAcked?: string | undefined;
  /** When the last response of this type was written (ISO 8601). */
  sentAt?: string | undefined;
  lastNack?: unknown;
  resources: ReadonlyArray<{ name: string; version: string; value: Uint8Array }>;
}

/** A connected proxy's stream as the debug endpoints read it. */
export interface ProxyState {
  connectionId: string;
  proxyId: string;
  delta: boolean;
  /** The node as Envoy JSON. */
  node: unknown;
  /** The proxy's namespace (NAMESPACE metadata, else the `<pod>.<ns>` part of its ID). */
  namespace: string | undefined;
  types: SentType[];
}

// ------------------------------------------------------------------ redaction

/** `udpa.annotations.sensitive` (a bool FieldOptions extension), from the generated Envoy registry. */
const sensitive = (() => {
  const ext = registry.getExtension('udpa.annotations.sensitive');
  if (!ext) throw new Error('udpa.annotations.sensitive is missing from the Envoy proto registry: cannot redact');
  return ext;
})();
const sensitiveCache = new WeakMap<DescField, boolean>();
function isSensitive(field: DescField): boolean {
  let s = sensitiveCache.get(field);
  if (s === undefined) {
    s = (getOption(field, sensitive as DescExtension) as unknown) === true;
    sensitiveCache.set(field, s);
  }
  return s;
}

function fieldIndex(desc: DescMessage): Map<string, DescField> {
  const m = new Map<string, DescField>();
  for (const f of desc.fields) {
    m.set(f.jsonName, f);
    m.set(f.name, f);
  }
  return m;
}
const indexCache = new WeakMap<DescMessage, Map<string, DescField>>();
const fieldsOf = (desc: DescMessage) => {
  let m = indexCache.get(desc);
  if (!m) indexCache.set(desc, (m = fieldIndex(desc)));
  return m;
};

const isObject = (v: JsonValue | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Envoy's rule (MessageUtil::redact): a field annotated `udpa.annotations.sensitive`,
 * and everything below it, has its strings and bytes replaced by `[redacted]` and
 * its other scalars cleared. Anys are unpacked and walked too, so a private key
 * inside a transport socket's typed_config is caught as well as one in a Secret.
 * Works on proto3 JSON (either field-name spelling) and returns a copy.
 */
export function redact(typeNameOrUrl: string, json: JsonValue): JsonValue {
  return redactMessage(messageSchema(typeNameOrUrl), json, false);
}

function redactMessage(desc: DescMessage, json: JsonValue, under: boolean): JsonValue {
  switch (desc.typeName) {
    case 'google.protobuf.Any':
      return redactAny(json, under);
    case 'google.protobuf.Struct':
    case 'google.protobuf.Value':
    case 'google.protobuf.ListValue':
      return under ? redactLoose(json) : json;
  }
  if (desc.typeName.startsWith('google.protobuf.')) {
    // Wrappers, Duration, Timestamp…: JSON scalars.
    if (!under) return json;
    return typeof json === 'string' ? (desc.typeName === 'google.protobuf.BytesValue' ? REDACTED_BYTES : REDACTED) : null;
  }
  if (!isObject(json)) return json;
  const fields = fieldsOf(desc);
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const f = fields.get(key);
    if (!f) {
      out[key] = under ? redactLoose(value) : value;
      continue;
    }
    const s = under || isSensitive(f);
    const v = redactField(f, value, s);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

function redactField(f: DescField, value: JsonValue, s: boolean): JsonValue | undefined {
  const one = (v: JsonValue): JsonValue | undefined => {
    if (f.message) return redactMessage(f.message, v, s);
    if (!s) return v;
    if (f.scalar === undefined) return undefined; // enum
    // ScalarType.STRING = 9, BYTES = 12
    if (f.scalar === 9) return REDACTED;
    if (f.scalar === 12) return REDACTED_BYTES;
    return undefined;
  };
  if (f.fieldKind === 'list') {
    if (!Array.isArray(value)) return value;
    const items = value.map(one).filter((v): v is JsonValue => v !== undefined);
    return items;
  }
  if (f.fieldKind === 'map') {
    if (!isObject(value)) return value;
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const r = one(v);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }
  return one(value);
}

function redactAny(json: JsonValue, under: boolean): JsonValue {
  if (!isObject(json)) return json;
  const url = json['@type'];
  if (typeof url !== 'string') return under ? redactLoose(json) : json;
  const desc = registry.getMessage(typeNameOf(url));
  if (!desc) return under ? { '@type': url } : json;
  const { '@type': _t, ...rest } = json;
  // A well-known type packed in an Any carries its JSON form under "value".
  if (desc.typeName.startsWith('google.protobuf.') && 'value' in rest && desc.fields.length > 0 && !fieldsOf(desc).has('value')) {
    return { '@type': url, value: redactMessage(desc, rest.value!, under) };
  }
  const inner = redactMessage(desc, rest, under);
  return isObject(inner) ? { '@type': url, ...inner } : { '@type': url };
}

/** Below a sensitive field without a schema (Struct, unknown Any): every string is redacted, other scalars dropped. */
function redactLoose(json: JsonValue): JsonValue {
  if (typeof json === 'string') return REDACTED;
  if (Array.isArray(json)) return json.map(redactLoose);
  if (isObject(json)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(json)) if (k === '@type' || typeof v !== 'number') out[k] = k === '@type' ? v : redactLoose(v);
    return out;
  }
  return null;
}

// ---------------------------------------------------- last line of defence

/** Text that only a private key carries: the PEM label, also as it appears inside base64 at each alignment. */
const KEY_MARKERS: readonly string[] = (() => {
  const label = 'PRIVATE KEY';
  const out = [label];
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.from('\0'.repeat(pad) + label).toString('base64');
    const start = Math.ceil((pad * 8) / 6);
    const end = Math.floor(((pad + label.length) * 8) / 6);
    out.push(b64.slice(start, end));
  }
  return out;
})();

/** True when serialized debug output carries what looks like a private key (PEM, or PEM in base64). */
export function containsPrivateKey(text: string): boolean {
  return KEY_MARKERS.some((m) => text.includes(m));
}

// ------------------------------------------------------------- config dump

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';
export const ConfigDumpType = {
  ConfigDump: `${ADMIN}ConfigDump`,
  Bootstrap: `${ADMIN}BootstrapConfigDump`,
  Clusters: `${ADMIN}ClustersConfigDump`,
  Endpoints: `${ADMIN}EndpointsConfigDump`,
  Listeners: `${ADMIN}ListenersConfigDump`,
  ScopedRoutes: `${ADMIN}ScopedRoutesConfigDump`,
  Routes: `${ADMIN}RoutesConfigDump`,
  Secrets: `${ADMIN}SecretsConfigDump`,
} as const;

function decodedResources(t: SentType | undefined): Array<{ name: string; json: JsonValue }> {
  if (!t) return [];
  const out = [...t.resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out.map((r) => ({ name: r.name, json: { '@type': t.typeUrl, ...(redact(t.typeUrl, decodeToJson(t.typeUrl, r.value)) as JsonObject) } }));
}

/**
 * The proxy's config as an Envoy admin `ConfigDump` (the shape istiod's
 * `/debug/config_dump` and `istio.io/debug/config_dump` return): an empty
 * bootstrap, then clusters, endpoints, listeners, scoped routes, routes and
 * secrets, each as its dynamic_active_* form with the version last sent and
 * when it was sent. Secrets are redacted as Envoy redacts them. Each entry is
 * checked against the admin protos (encoded once), so a shape error fails here,
 * not in istioctl.
 */
export function buildConfigDump(state: ProxyState): { configs: JsonObject[] } {
  const byType = new Map(state.types.map((t) => [t.typeUrl, t]));
  const meta = (typeUrl: string) => {
    const t = byType.get(typeUrl);
    return { versionInfo: t?.versionSent ?? '', ...(t?.sentAt ? { lastUpdated: t.sentAt } : {}) };
  };
  const cds = meta(TypeUrl.Cluster);
  const eds = meta(TypeUrl.ClusterLoadAssignment);
  const lds = meta(TypeUrl.Listener);
  const rds = meta(TypeUrl.RouteConfiguration);
  const sds = meta(TypeUrl.Secret);
  const configs: JsonObject[] = [
    { '@type': ConfigDumpType.Bootstrap },
    {
      '@type': ConfigDumpType.Clusters,
      versionInfo: cds.versionInfo,
      dynamicActiveClusters: decodedResources(byType.get(TypeUrl.Cluster)).map((r) => ({ ...cds, cluster: r.json })),
    },
    {
      '@type': ConfigDumpType.Endpoints,
      dynamicEndpointConfigs: decodedResources(byType.get(TypeUrl.ClusterLoadAssignment)).map((r) => ({ ...eds, endpointConfig: r.json })),
    },
    {
      '@type': ConfigDumpType.Listeners,
      versionInfo: lds.versionInfo,
      dynamicListeners: decodedResources(byType.get(TypeUrl.Listener)).map((r) => ({ name: r.name, activeState: { ...lds, listener: r.json } })),
    },
    { '@type': ConfigDumpType.ScopedRoutes },
    {
      '@type': ConfigDumpType.Routes,
      dynamicRouteConfigs: decodedResources(byType.get(TypeUrl.RouteConfiguration)).map((r) => ({ ...rds, routeConfig: r.json })),
    },
    {
      '@type': ConfigDumpType.Secrets,
      dynamicActiveSecrets: decodedResources(byType.get(TypeUrl.Secret)).map((r) => ({ name: r.name, ...sds, secret: r.json })),
    },
  ];
  return { configs };
}

/** Each ConfigDump entry encoded as its admin message (the resources of an `istio.io/debug/config_dump` response). */
export function encodeConfigDump(dump: { configs: JsonObject[] }): Array<{ typeUrl: string; value: Uint8Array }> {
  return dump.configs.map((c) => {
    const { '@type': typeUrl, ...body } = c;
    return { typeUrl: String(typeUrl), value: encodeJson(String(typeUrl), body) };
  });
}

/** Encodes then decodes the whole dump: proves it fits envoy.admin.v3.ConfigDump and gives its canonical JSON. */
export function canonicalConfigDump(dump: { configs: JsonObject[] }): JsonValue {
  return decodeToJson(ConfigDumpType.ConfigDump, encodeJson(ConfigDumpType.ConfigDump, dump));
}

/** Sextant's own per-type detail (`/debug/sextant_dump`): versions sent and ACKed, NACKs, resources as Envoy JSON, redacted. */
export function buildSextantDump(state: ProxyState): JsonObject {
  const types: JsonObject = {};
  for (const t of state.types) {
    types[t.typeUrl] = {
      type: shortTypeName[t.typeUrl] ?? t.typeUrl,
      versionSent: t.versionSent ?? null,
      versionAcked: t.versionAcked ?? null,
      sentAt: t.sentAt ?? null,
      lastNack: (t.lastNack ?? null) as JsonValue,
      resources: messageKnown(t.typeUrl)
        ? decodedResources(t).map((r) => {
            const version = t.resources.find((x) => x.name === r.name)?.version ?? '';
            return { name: r.name, version, resource: r.json };
          })
        : t.resources.map((r) => ({ name: r.name, version: r.version })),
    };
  }
  return {
    connectionId: state.connectionId,
    proxyId: state.proxyId,
    namespace: state.namespace ?? null,
    delta: state.delta,
    node: state.node as JsonValue,
    types,
  };
}

function messageKnown(typeUrl: string): boolean {
  try {
    messageSchema(typeUrl);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------- clusters view

interface LbEndpointJson {
  endpoint?: { address?: JsonValue; hostname?: string };
  healthStatus?: string;
  loadBalancingWeight?: number;
}
interface LocalityJson {
  locality?: JsonValue;
  lbEndpoints?: LbEndpointJson[];
  priority?: number;
}

/**
 * The proxy's endpoints in the shape of Envoy's `/clusters?format=json`
 * (envoy.admin.v3.Clusters, snake_case as Envoy prints it), built from the
 * clusters and ClusterLoadAssignments it was last sent: what `istioctl
 * proxy-config endpoint --file` reads. Envoy's health-check and outlier
 * state is not known to the control plane; EDS health is (absent or UNKNOWN
 * reads as HEALTHY, as Envoy treats it).
 */
export function buildClustersView(state: ProxyState): JsonObject {
  const byType = new Map(state.types.map((t) => [t.typeUrl, t]));
  const clas = new Map<string, LocalityJson[]>();
  for (const r of decodedResources(byType.get(TypeUrl.ClusterLoadAssignment))) {
    const cla = r.json as { clusterName?: string; endpoints?: LocalityJson[] };
    clas.set(cla.clusterName ?? r.name, cla.endpoints ?? []);
  }
  const hosts = (localities: LocalityJson[]): JsonObject[] =>
    localities.flatMap((l) =>
      (l.lbEndpoints ?? []).map((lb) => {
        const eds = !lb.healthStatus || lb.healthStatus === 'UNKNOWN' ? 'HEALTHY' : lb.healthStatus;
        return {
          address: snake(lb.endpoint?.address ?? null),
          health_status: { eds_health_status: eds },
          weight: lb.loadBalancingWeight ?? 1,
          ...(lb.endpoint?.hostname ? { hostname: lb.endpoint.hostname } : {}),
          ...(l.priority ? { priority: l.priority } : {}),
          locality: snake(l.locality ?? {}),
        } as JsonObject;
      }),
    );
  const statuses: JsonObject[] = [];
  for (const r of decodedResources(byType.get(TypeUrl.Cluster))) {
    const c = r.json as { name?: string; type?: string; edsClusterConfig?: { serviceName?: string }; loadAssignment?: { endpoints?: LocalityJson[] } };
    const name = c.name ?? r.name;
    const eds = c.type === 'EDS' || c.edsClusterConfig !== undefined;
    const localities = eds ? (clas.get(c.edsClusterConfig?.serviceName || name) ?? []) : (c.loadAssignment?.endpoints ?? []);
    statuses.push({ name, added_via_api: true, host_statuses: hosts(localities), ...(c.edsClusterConfig?.serviceName ? { eds_service_name: c.edsClusterConfig.serviceName } : {}) });
  }
  return { cluster_statuses: statuses };
}

/** camelCase proto3 JSON keys to Envoy admin's snake_case (for the hand-built clusters view). */
function snake(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(snake);
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) out[k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`)] = snake(x);
    return out;
  }
  return v;
}
