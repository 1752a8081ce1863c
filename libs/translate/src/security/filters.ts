/**
 * Security policy on listeners: AuthorizationPolicy (RBAC, ext_authz) and
 * RequestAuthentication (jwt_authn). The listener builders call
 * `securityHttpFilters` / `securityNetworkFilters` and put the result in
 * front of their other filters.
 */
import type { ValidationIssue } from '@sextant/api';
import type { HttpFilterJson, NetworkFilterJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import { authorizationPolicyIssues, authzHttpFilters, authzNetworkFilters } from './authz.js';
import { jwtAuthnFilter, requestAuthenticationIssues } from './authn.js';

export * from './authz.js';
export * from './authn.js';
export { cidrRange, replaceTrustDomainAliases } from './authz-model.js';

/**
 * The HTTP filters istiod puts first on inbound and gateway HCMs, in its
 * order: CUSTOM (RBAC shadow + ext_authz), jwt_authn, then the AUDIT, DENY
 * and ALLOW RBAC filters.
 */
export function securityHttpFilters(push: PushContext, proxy: ProxyView): HttpFilterJson[] {
  const authz = authzHttpFilters(push, proxy);
  const jwt = jwtAuthnFilter(push, proxy);
  return [...authz.custom, ...(jwt ? [jwt] : []), ...authz.local];
}

/** The network filters before tcp_proxy on inbound and gateway TCP chains. */
export function securityNetworkFilters(push: PushContext, proxy: ProxyView): NetworkFilterJson[] {
  return authzNetworkFilters(push, proxy);
}

/** Security policy that cannot be rendered as written and fails closed (kind/namespace/name, field, reason). */
export function securityPolicyIssues(push: PushContext): ValidationIssue[] {
  return [...authorizationPolicyIssues(push), ...requestAuthenticationIssues(push)];
}
