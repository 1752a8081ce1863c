/**
 * Security policy on listeners: AuthorizationPolicy (RBAC, ext_authz). The
 * listener builders call `securityHttpFilters` / `securityNetworkFilters` and
 * put the result in front of the router / tcp_proxy.
 */
import type { HttpFilterJson, NetworkFilterJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { authzHttpFilters, authzNetworkFilters } from './authz.js';

export * from './authz.js';
export { cidrRange, replaceTrustDomainAliases } from './authz-model.js';

/** The HTTP filters istiod puts before the others on inbound and gateway HCMs: CUSTOM ext_authz, authentication, then RBAC. */
export function securityHttpFilters(push: PushContext, proxy: ProxyView): HttpFilterJson[] {
  const authz = authzHttpFilters(push, proxy);
  return [...authz.custom, ...authz.local];
}

/** The network filters before tcp_proxy on inbound and gateway TCP chains. */
export function securityNetworkFilters(push: PushContext, proxy: ProxyView): NetworkFilterJson[] {
  return authzNetworkFilters(push, proxy);
}
