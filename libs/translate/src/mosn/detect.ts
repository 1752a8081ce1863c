/**
 * Which proxies get the MOSN profile. MOSN v1.6.1 sends a node with only
 * `id`, `cluster` and `metadata` (no `user_agent_name`, no build version), so
 * the choice is an explicit metadata key; the one thing MOSN itself puts in
 * the metadata it builds from its `--service-meta` flags is its default
 * `ISTIO_VERSION`, the literal `unknow` (pkg/istio IstioVersion), which no
 * Envoy or pilot-agent sends.
 */
import type { ProxyView } from '@sextant/model';

/** `SEXTANT_DATA_PLANE: mosn` (or `ISTIO_META_SEXTANT_DATA_PLANE`, as pilot-agent forwards it) selects the MOSN profile. */
export const DATA_PLANE_KEY = 'SEXTANT_DATA_PLANE';
/** `ISTIO_VERSION` as MOSN v1.6.1 fills it in when nothing else is given. */
export const MOSN_DEFAULT_ISTIO_VERSION = 'unknow';
/**
 * Where MOSN dials SDS: a Unix socket path (MOSN prepends `unix:`). Default:
 * Istio's workload socket, where pilot-agent serves `default` and `ROOTCA`;
 * `SEXTANT_MOSN_SDS_PATH` in the node metadata overrides it.
 */
export const SDS_PATH_KEY = 'SEXTANT_MOSN_SDS_PATH';
export const DEFAULT_SDS_PATH = './var/run/secrets/workload-spiffe-uds/socket';

function metaString(proxy: ProxyView, key: string): string | undefined {
  const raw = proxy.metadata.raw;
  const v = raw[key] ?? raw[`ISTIO_META_${key}`];
  return typeof v === 'string' ? v : undefined;
}

/** The data plane a proxy declared: `mosn` or `envoy` (the default). */
export function dataPlaneOf(proxy: ProxyView): 'mosn' | 'envoy' {
  const declared = metaString(proxy, DATA_PLANE_KEY)?.toLowerCase();
  if (declared === 'mosn') return 'mosn';
  if (declared === 'envoy') return 'envoy';
  if (proxy.generator === '' && proxy.metadata.raw['ISTIO_VERSION'] === MOSN_DEFAULT_ISTIO_VERSION) return 'mosn';
  return 'envoy';
}

/** True for a sidecar that gets the MOSN profile (gateways and proxyless gRPC never do). */
export function isMosnProxy(proxy: ProxyView): boolean {
  return proxy.type === 'sidecar' && proxy.generator !== 'grpc' && dataPlaneOf(proxy) === 'mosn';
}

export function mosnSdsPath(proxy: ProxyView): string {
  return metaString(proxy, SDS_PATH_KEY) || DEFAULT_SDS_PATH;
}
