/**
 * ECDS (extension config discovery, type
 * `envoy.config.core.v3.TypedExtensionConfig`) as istiod's EcdsGenerator
 * serves it for EnvoyFilters (pilot/pkg/xds/ecds.go,
 * BuildExtensionConfiguration): the EXTENSION_CONFIG ADD patches that select
 * the proxy, whose value's name the proxy asked for (a filter's
 * `config_discovery` names it), in patch order. Envoy sidecars and gateways
 * only, as every EnvoyFilter patch. Pure.
 */
import type { TypedExtensionConfigJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { insertedExtensionConfigs, recordHits } from '../envoyfilter/apply.js';
import { appliedIn } from '../envoyfilter/index.js';
import { patchesFor } from '../envoyfilter/select.js';
import { generatorFor } from './index.js';

/** The extension configs named in `names` for this proxy; two patches with one name: the first wins (one resource per name). */
export function buildExtensionConfigs(push: PushContext, proxy: ProxyView, names: readonly string[]): TypedExtensionConfigJson[] {
  const kind = generatorFor(proxy).kind;
  if (kind !== 'sidecar' && kind !== 'router') return [];
  if (names.length === 0) return [];
  const seen = new Set<string>();
  const out: TypedExtensionConfigJson[] = [];
  // Served configs count as applied patches (the EnvoyFilter status).
  for (const ec of recordHits(appliedIn(push), () => insertedExtensionConfigs(patchesFor(push, proxy), names))) {
    const name = String(ec.name ?? '');
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(ec as TypedExtensionConfigJson);
  }
  return out;
}
