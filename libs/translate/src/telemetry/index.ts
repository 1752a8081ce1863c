/** Istio's telemetry (istio.stats, peer metadata, access logs, tracing, the Telemetry API) for sidecars and gateways. */
export { applyTelemetryToClusters, applyTelemetryToListeners } from './apply.js';
export { accessLogs, ENVOY_JSON_LOG_FORMAT, ENVOY_TEXT_LOG_FORMAT, hcmTracing, MX_FILTER, STATS_FILTER, statsFilters, TELEMETRY_TYPE } from './build.js';
export { ISTIO_TYPE, istioFilterSupport, istioFilterSupportKey, telemetryClassKey, type IstioFilterSupport } from './support.js';
export { applicableTelemetries, extensionProviders as telemetryExtensionProviders, mergeLogs, mergeMetrics, mergeTracing, type ListenerClass } from './telemetries.js';

import type { ProxyView, PushContext } from '@sextant/model';
import { telemetryClassKey as key } from './support.js';
import { extensionProviders as providers } from './telemetries.js';

/** The telemetry part of a proxy's class key (see telemetryClassKey). */
export function telemetryKeyFor(push: PushContext, proxy: ProxyView): string {
  return key(proxy, providers(push).some((p) => p.opentelemetry !== undefined));
}
