/**
 * Proxy dependencies (istiod's pilot/pkg/xds/proxy_dependencies.go and
 * SidecarScope.DependsOnConfig): does a proxy depend on any of a set of
 * changed configs? A full push reaches only the proxies that do. Pure.
 *
 * Config keys follow istiod's ConfigKey: kind, namespace, name; a service (a
 * Kubernetes Service or one host of a ServiceEntry) is keyed as kind
 * `ServiceEntry` with its hostname as the name (`serviceConfigKeys` converts
 * changed objects to these keys).
 */
import type { ObjectKey } from '@sextant/api';
import { hostMatches, resolveShortName } from './labels.js';
import type { IstioConfig, NodeType, ProxyView, PushContext, SidecarScope } from './types.js';

export interface ConfigKey {
  kind: string;
  namespace: string;
  name: string;
}

/** Kinds that only ever change one proxy type (istiod's configKindAffectedProxyTypes). */
const AFFECTED_PROXY_TYPES: Readonly<Record<string, readonly NodeType[]>> = {
  Gateway: ['router'],
  Sidecar: ['sidecar'],
};

/** Kinds a SidecarScope tracks one by one (istiod's sidecarScopedKnownConfigTypes). */
const SCOPED_KINDS = new Set(['ServiceEntry', 'VirtualService', 'DestinationRule', 'Sidecar']);

/** Kinds that apply from the root namespace to every namespace, else to their own (istiod's clusterScopedKnownConfigTypes). */
const NAMESPACE_OR_ROOT_KINDS = new Set(['EnvoyFilter', 'AuthorizationPolicy', 'RequestAuthentication', 'PeerAuthentication', 'WasmPlugin', 'Telemetry']);

const hash = (k: ConfigKey) => `${k.kind}/${k.namespace}/${k.name}`;

const gatewaysOf = (vs: IstioConfig) => (vs.spec.gateways as string[] | undefined) ?? ['mesh'];

/** What one SidecarScope depends on (istiod's configDependencies), cached per scope object. */
const dependencyCache = new WeakMap<SidecarScope, Set<string>>();

function scopeDependencies(push: PushContext, scope: SidecarScope): Set<string> {
  let deps = dependencyCache.get(scope);
  if (deps) return deps;
  deps = new Set();
  if (scope.sidecar) deps.add(hash({ kind: 'Sidecar', namespace: scope.sidecar.namespace, name: scope.sidecar.name }));
  for (const vs of scope.virtualServices) {
    // Sidecars read only the VirtualServices bound to the mesh (delegates have no hosts and are read through their parents).
    const hosts = (vs.spec.hosts as string[] | undefined) ?? [];
    if (hosts.length > 0 && !gatewaysOf(vs).includes('mesh')) continue;
    deps.add(hash({ kind: 'VirtualService', namespace: vs.namespace, name: vs.name }));
  }
  // Every DestinationRule whose host covers a visible service, whatever its selector: a superset is safe.
  const rules = push.configs('DestinationRule').map((r) => ({ r, host: resolveShortName(String(r.spec.host ?? ''), r.namespace, push.domainSuffix) }));
  for (const s of scope.services) {
    deps.add(hash({ kind: 'ServiceEntry', namespace: s.namespace, name: s.hostname }));
    for (const { r, host } of rules) if (hostMatches(host, s.hostname)) deps.add(hash({ kind: 'DestinationRule', namespace: r.namespace, name: r.name }));
  }
  dependencyCache.set(scope, deps);
  return deps;
}

/** istiod's SidecarScope.DependsOnConfig. */
function scopeDependsOn(push: PushContext, scope: SidecarScope, key: ConfigKey): boolean {
  if (NAMESPACE_OR_ROOT_KINDS.has(key.kind)) {
    if (key.namespace === push.mesh.rootNamespace || key.namespace === scope.namespace) return true;
    // Auto mTLS: a client's clusters follow the destination namespace's PeerAuthentication (DISABLE turns TLS off).
    return key.kind === 'PeerAuthentication' && scope.services.some((s) => s.namespace === key.namespace);
  }
  if (!SCOPED_KINDS.has(key.kind)) return true; // unknown to the scope: assume it matters
  return scopeDependencies(push, scope).has(hash(key));
}

/**
 * Whether `proxy` (resolved against `push`) depends on any of `changed`
 * (istiod's DefaultProxyNeedsPush for a full push). `previous` is the context
 * before the change: what a proxy saw there counts too (istiod's
 * PrevSidecarScope), so a removed or moved config still reaches it. No keys
 * means "everything changed".
 */
export function proxyDependsOn(push: PushContext, proxy: ProxyView, changed: Iterable<ConfigKey>, previous?: PushContext): boolean {
  const keys = [...changed];
  if (keys.length === 0) return true;
  for (const key of keys) {
    const types = AFFECTED_PROXY_TYPES[key.kind];
    if (types && !types.includes(proxy.type)) continue;
    // Routers read the whole mesh (istiod checks only sidecars in detail).
    if (proxy.type !== 'sidecar') return true;
    if (scopeDependsOn(push, push.sidecarScope(proxy), key)) return true;
    if (previous && scopeDependsOn(previous, previous.sidecarScope(proxy), key)) return true;
    // The proxy's own services (inbound) changed.
    if (key.kind === 'ServiceEntry') {
      for (const si of push.serviceInstancesForProxy(proxy)) if (si.service.hostname === key.name && si.service.namespace === key.namespace) return true;
    }
  }
  return false;
}

/**
 * Changed objects as istiod's config keys: a Kubernetes Service or a
 * ServiceEntry becomes one `ServiceEntry` key per service (hostname) it
 * declares in either context; other kinds pass through (an endpoint kind is
 * unknown to every scope, so every proxy depends on it: name the services it
 * fed instead, with `endpointServices`, `namespace/hostname` keys from the
 * endpoint index).
 */
export function configKeysOf(changed: Iterable<ObjectKey>, contexts: PushContext[], endpointServices: Iterable<string> = []): ConfigKey[] {
  const out = new Map<string, ConfigKey>();
  const add = (k: ConfigKey) => out.set(hash(k), k);
  for (const k of changed) {
    const namespace = k.namespace ?? 'default';
    if (k.kind === 'Service' || k.kind === 'ServiceEntry') {
      const registry = k.kind === 'Service' ? 'Kubernetes' : 'External';
      for (const push of contexts) {
        for (const s of push.servicesInNamespace(namespace)) {
          if (s.attributes.serviceRegistry === registry && s.attributes.origin.name === k.name) add({ kind: 'ServiceEntry', namespace, name: s.hostname });
        }
      }
      continue;
    }
    add({ kind: k.kind, namespace, name: k.name });
  }
  for (const key of endpointServices) {
    const slash = key.indexOf('/');
    add({ kind: 'ServiceEntry', namespace: key.slice(0, slash), name: key.slice(slash + 1) });
  }
  return [...out.values()];
}
