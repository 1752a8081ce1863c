import { isIP } from 'node:net';
import { splitNodeId } from '@sextant/api';
import type { NodeType, ProxyMetadata, ProxyView } from './types.js';

/** A node ID or node metadata that cannot describe a proxy. */
export class ProxyParseError extends Error {
  constructor(
    readonly nodeId: string,
    readonly field: string,
    reason: string,
  ) {
    super(`proxy ${JSON.stringify(nodeId)}: ${field}: ${reason}`);
    this.name = 'ProxyParseError';
  }
}

const STRING_KEYS = [
  'NAMESPACE',
  'INSTANCE_IPS',
  'CLUSTER_ID',
  'ISTIO_VERSION',
  'GENERATOR',
  'INTERCEPTION_MODE',
  'SERVICE_ACCOUNT',
  'WORKLOAD_NAME',
  'NETWORK',
  'MESH_ID',
] as const;

/**
 * Reads the ISTIO_META_* fields from Envoy node metadata. pilot-agent strips
 * the `ISTIO_META_` prefix; keys that still carry it are accepted too.
 */
export function parseMetadata(nodeId: string, metadata: Record<string, unknown> | undefined | null): ProxyMetadata {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) raw[k.startsWith('ISTIO_META_') ? k.slice('ISTIO_META_'.length) : k] = v;
  const out: ProxyMetadata = { raw: { ...(metadata ?? {}) } };
  for (const key of STRING_KEYS) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new ProxyParseError(nodeId, `metadata.${key}`, `expected a string, got ${typeof v}`);
    out[key] = v;
  }
  const labels = raw.LABELS;
  if (labels !== undefined && labels !== null) {
    if (typeof labels !== 'object' || Array.isArray(labels)) throw new ProxyParseError(nodeId, 'metadata.LABELS', 'expected a map of label names to values');
    const l: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new ProxyParseError(nodeId, `metadata.LABELS.${k}`, `expected a string label value, got ${typeof v}`);
      l[k] = v;
    }
    out.LABELS = l;
  }
  return out;
}

/**
 * Parses an Envoy node ID (`sidecar~10.244.0.5~reviews-v1-abc.default~default.svc.cluster.local`
 * or `router~…`) and its metadata into a ProxyView. Throws ProxyParseError
 * with the reason when the ID is malformed.
 */
export function parseProxy(nodeId: string, metadata: Record<string, unknown> = {}): ProxyView {
  if (typeof nodeId !== 'string' || nodeId === '') throw new ProxyParseError(String(nodeId), 'node.id', 'node ID is empty; expected type~ip~id~domain');
  const parts = splitNodeId(nodeId);
  if (!parts) {
    throw new ProxyParseError(nodeId, 'node.id', `expected 4 parts separated by "~" (type~ip~pod.namespace~namespace.svc.cluster.local), got ${nodeId.split('~').length}`);
  }
  const { type, ip, id, dnsDomain, idNamespace } = parts;
  if (type !== 'sidecar' && type !== 'router') {
    throw new ProxyParseError(nodeId, 'node.id', `unknown proxy type ${JSON.stringify(type)}; expected "sidecar" or "router"`);
  }
  if (!isIP(ip)) throw new ProxyParseError(nodeId, 'node.id', `${JSON.stringify(ip)} is not an IP address`);
  const meta = parseMetadata(nodeId, metadata);
  const ipAddresses = [ip];
  for (const extra of (meta.INSTANCE_IPS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!isIP(extra)) throw new ProxyParseError(nodeId, 'metadata.INSTANCE_IPS', `${JSON.stringify(extra)} is not an IP address`);
    if (!ipAddresses.includes(extra)) ipAddresses.push(extra);
  }
  const idNs = idNamespace ?? '';
  const domainNs = dnsDomain.split('.')[0] ?? '';
  const namespace = meta.NAMESPACE || idNs || domainNs;
  if (!namespace) throw new ProxyParseError(nodeId, 'metadata.NAMESPACE', 'cannot tell the namespace: set NAMESPACE metadata or use pod.namespace in the node ID');
  const mode = (meta.INTERCEPTION_MODE ?? 'REDIRECT').toUpperCase();
  if (mode !== 'REDIRECT' && mode !== 'TPROXY' && mode !== 'NONE') {
    throw new ProxyParseError(nodeId, 'metadata.INTERCEPTION_MODE', `unknown mode ${JSON.stringify(meta.INTERCEPTION_MODE)}; expected REDIRECT, TPROXY or NONE`);
  }
  return {
    nodeId,
    type: type as NodeType,
    ipAddresses,
    id,
    dnsDomain,
    namespace,
    labels: { ...(meta.LABELS ?? {}) },
    metadata: meta,
    generator: meta.GENERATOR ?? '',
    interceptionMode: mode,
    istioVersion: meta.ISTIO_VERSION ?? '',
    serviceAccount: meta.SERVICE_ACCOUNT ?? '',
    workloadName: meta.WORKLOAD_NAME ?? '',
    clusterId: meta.CLUSTER_ID ?? 'Kubernetes',
    network: meta.NETWORK ?? '',
    locality: undefined,
  };
}
