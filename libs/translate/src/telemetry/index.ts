/** Istio's telemetry (istio.stats, peer metadata, access logs, tracing, the Telemetry API) for sidecars and gateways. */
export { applyTelemetryToClusters, applyTelemetryToListeners } from './apply.js';
export { accessLogs, canonicalTagValues, ENVOY_JSON_LOG_FORMAT, ENVOY_TEXT_LOG_FORMAT, hcmTracing, MX_FILTER, STATS_FILTER, statsFilters, TELEMETRY_TYPE } from './build.js';
export { ISTIO_TYPE, istioFilterSupport, istioFilterSupportKey, telemetryClassKey, type IstioFilterSupport } from './support.js';
export { applicableTelemetries, extensionProviders as telemetryExtensionProviders, mergeLogs, mergeMetrics, mergeTracing, type ListenerClass } from './telemetries.js';

import { markDerived, markDerivedFrom, splicePlaceholder, type ListenerJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { canonicalTagValues } from './build.js';
import { telemetryClassKey as key } from './support.js';
import { extensionProviders as providers, type Json } from './telemetries.js';

/** What of the push the telemetry key reads, once per push: an OpenTelemetry tracer configured; tracing possible at all. */
interface PushTelemetry {
  otel: boolean;
  tracing: boolean;
}
const byPush = new WeakMap<PushContext, { push: PushTelemetry; views: WeakMap<ProxyView, string>; classViews: WeakMap<ProxyView, string> }>();

/**
 * The telemetry part of a proxy's class key (see telemetryClassKey), once per
 * push and view (asked per type and layer). Tracing is possible unless the
 * mesh config turns it off and no Telemetry configures any; only then are
 * istiod's per-workload tracing tags absent from every listener.
 */
export function telemetryKeyFor(push: PushContext, proxy: ProxyView, canonical = true): string {
  let memo = byPush.get(push);
  if (!memo) {
    const tracing = (push.mesh as Json).enableTracing !== false || push.configs('Telemetry').some((t) => Array.isArray(t.spec.tracing) && t.spec.tracing.length > 0);
    memo = { push: { otel: providers(push).some((p) => p.opentelemetry !== undefined || p.datadog !== undefined), tracing }, views: new WeakMap(), classViews: new WeakMap() };
    byPush.set(push, memo);
  }
  // canonical false: the key of listeners whose canonical tags are rendered per workload afterwards (withCanonicalTags).
  const views = canonical ? memo.views : memo.classViews;
  let k = views.get(proxy);
  if (k === undefined) views.set(proxy, (k = key(proxy, memo.push.otel, canonical && memo.push.tracing)));
  return k;
}

const HCM = 'envoy.filters.network.http_connection_manager';
const CANONICAL_TAGS = new Set(['istio.canonical_revision', 'istio.canonical_service']);

function hcmWithCanonical(f: Json): boolean {
  return f.name === HCM && Array.isArray(f.typedConfig?.tracing?.customTags) && (f.typedConfig.tracing.customTags as Json[]).some((t) => CANONICAL_TAGS.has(t.tag) && t.literal);
}
const chainsOf = (l: ListenerJson): Json[] => [...((l.filterChains ?? []) as Json[]), ...(l.defaultFilterChain ? [l.defaultFilterChain as Json] : [])];

/** Whether a listener carries istiod's per-workload tracing tags (istio.canonical_service and _revision literals on an HCM). */
export function hasCanonicalTags(l: ListenerJson): boolean {
  return chainsOf(l).some((c) => ((c.filters ?? []) as Json[]).some(hcmWithCanonical));
}

/**
 * A listener built for one workload of a class, with its canonical tracing
 * tags rendered for another (istiod renders them per workload): a copy, the
 * parts that do not change shared. Everything else in a class's listeners is
 * the same for each of its workloads (the class key says so).
 */
export function withCanonicalTags(l: ListenerJson, proxy: ProxyView): ListenerJson {
  const values = canonicalTagValues(proxy);
  const out = renderTags(l, values);
  // The encoder renders the copy from the template's bytes (templates equal in content share one plan).
  const t = tagTemplate(l);
  markDerived(out, t.template, [values['istio.canonical_revision'], values['istio.canonical_service'], ...t.classValues]);
  return out;
}

/**
 * Literal tracing tags put in a template as placeholders, in placeholder
 * order: the canonical two (per workload), then the class's own (its
 * namespace, mesh and cluster), so the templates of classes that differ only
 * in those are equal in content and the encoder plans them once.
 */
const TEMPLATE_TAGS = ['istio.canonical_revision', 'istio.canonical_service', 'istio.namespace', 'istio.mesh_id', 'istio.cluster_id'];
const CLASS_TAGS = TEMPLATE_TAGS.slice(2);

/** A class listener with placeholders for TEMPLATE_TAGS, and its own values of CLASS_TAGS; by the class listener. */
const templates = new WeakMap<ListenerJson, { template: ListenerJson; classValues: string[] }>();
function tagTemplate(l: ListenerJson): { template: ListenerJson; classValues: string[] } {
  let t = templates.get(l);
  if (!t) {
    const hcm = chainsOf(l)
      .flatMap((c) => (c.filters ?? []) as Json[])
      .find(hcmWithCanonical)!;
    const own = new Map(((hcm.typedConfig as Json).tracing.customTags as Json[]).filter((x) => x.literal).map((x) => [x.tag as string, String(x.literal.value ?? '')]));
    templates.set(l, (t = { template: renderTags(l, Object.fromEntries(TEMPLATE_TAGS.map((tag, i) => [tag, splicePlaceholder(i)]))), classValues: CLASS_TAGS.map((tag) => own.get(tag) ?? '') }));
  }
  return t;
}

/**
 * Marks the filter chains of a workload's own listener (virtualInbound) that
 * carry its canonical tracing tags as copies of a template whose holes are
 * the chain's per-workload strings: the literal values of TEMPLATE_TAGS and
 * its inline routes' decorator operations (`<host>:<port>/*`). The encoder
 * renders each from the bytes of a template that the chains of other
 * workloads with the same ports share, instead of encoding every workload's
 * chains from JSON. Returns the listener itself (the marks are kept aside).
 */
export function markWorkloadChains(l: ListenerJson): ListenerJson {
  for (const c of chainsOf(l)) {
    const hcms = ((c.filters ?? []) as Json[]).filter(hcmWithCanonical);
    if (hcms.length === 0) continue;
    const values = new Set<string>();
    for (const f of hcms) {
      const tc = f.typedConfig as Json;
      for (const t of tc.tracing.customTags as Json[]) if (t.literal && TEMPLATE_TAGS.includes(t.tag)) values.add(String(t.literal.value ?? ''));
      for (const vh of (tc.routeConfig?.virtualHosts ?? []) as Json[]) for (const r of (vh.routes ?? []) as Json[]) if (typeof r.decorator?.operation === 'string') values.add(r.decorator.operation);
    }
    markDerivedFrom(c, [...values]);
  }
  return l;
}

/** The listener with the literal values of the tags `values` names replaced, in the HCMs that carry canonical tags. */
function renderTags(l: ListenerJson, values: Record<string, string>): ListenerJson {
  const chain = (c: Json): Json => {
    const filters = (c.filters ?? []) as Json[];
    if (!filters.some(hcmWithCanonical)) return c;
    return {
      ...c,
      filters: filters.map((f) => {
        if (!hcmWithCanonical(f)) return f;
        const tc = f.typedConfig as Json;
        const customTags = (tc.tracing.customTags as Json[]).map((t) => (t.literal && values[t.tag] !== undefined ? { ...t, literal: { ...t.literal, value: values[t.tag] } } : t));
        return { ...f, typedConfig: { ...tc, tracing: { ...tc.tracing, customTags } } };
      }),
    };
  };
  const out: Json = { ...l };
  if (l.filterChains) out.filterChains = (l.filterChains as Json[]).map(chain);
  if (l.defaultFilterChain) out.defaultFilterChain = chain(l.defaultFilterChain as Json);
  return out as ListenerJson;
}
