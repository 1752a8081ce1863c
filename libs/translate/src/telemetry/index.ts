/** Istio's telemetry (istio.stats, peer metadata, access logs, tracing, the Telemetry API) for sidecars and gateways. */
export { applyTelemetryToClusters, applyTelemetryToListeners } from './apply.js';
export { accessLogs, ENVOY_JSON_LOG_FORMAT, ENVOY_TEXT_LOG_FORMAT, hcmTracing, MX_FILTER, STATS_FILTER, statsFilters, TELEMETRY_TYPE } from './build.js';
export { ISTIO_TYPE, istioFilterSupport, istioFilterSupportKey, telemetryClassKey, type IstioFilterSupport } from './support.js';
export { applicableTelemetries, extensionProviders as telemetryExtensionProviders, mergeLogs, mergeMetrics, mergeTracing, type ListenerClass } from './telemetries.js';

import type { ProxyView, PushContext } from '@sextant/model';
import { telemetryClassKey as key } from './support.js';
import { extensionProviders as providers, type Json } from './telemetries.js';

/** What of the push the telemetry key reads, once per push: an OpenTelemetry tracer configured; tracing possible at all. */
interface PushTelemetry {
  otel: boolean;
  tracing: boolean;
}
const byPush = new WeakMap<PushContext, { push: PushTelemetry; views: WeakMap<ProxyView, string> }>();

/**
 * The telemetry part of a proxy's class key (see telemetryClassKey), once per
 * push and view (asked per type and layer). Tracing is possible unless the
 * mesh config turns it off and no Telemetry configures any; only then are
 * istiod's per-workload tracing tags absent from every listener.
 */
export function telemetryKeyFor(push: PushContext, proxy: ProxyView): string {
  let memo = byPush.get(push);
  if (!memo) {
    const tracing = (push.mesh as Json).enableTracing !== false || push.configs('Telemetry').some((t) => Array.isArray(t.spec.tracing) && t.spec.tracing.length > 0);
    memo = { push: { otel: providers(push).some((p) => p.opentelemetry !== undefined), tracing }, views: new WeakMap() };
    byPush.set(push, memo);
  }
  let k = memo.views.get(proxy);
  if (k === undefined) memo.views.set(proxy, (k = key(proxy, memo.push.otel, memo.push.tracing)));
  return k;
}
