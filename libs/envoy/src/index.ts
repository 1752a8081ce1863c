export * from './type-urls.js';
export * from './codec.js';
export * from './wire.js';
export { markDerived, markDerivedFrom, splicePlaceholder, templateOf } from './splice.js';
export {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  type DiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DiscoveryResponse,
  type DeltaDiscoveryResponse,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';
export { NodeSchema, ControlPlaneSchema, type Node, type NodeJson } from './gen/envoy/config/core/v3/base_pb.js';
export type { ListenerJson } from './gen/envoy/config/listener/v3/listener_pb.js';
export type { RouteConfigurationJson } from './gen/envoy/config/route/v3/route_pb.js';
export type { ClusterJson } from './gen/envoy/config/cluster/v3/cluster_pb.js';
export type { ClusterLoadAssignmentJson } from './gen/envoy/config/endpoint/v3/endpoint_pb.js';
export type { SecretJson } from './gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
export type { TypedExtensionConfigJson } from './gen/envoy/config/core/v3/extension_pb.js';
export { create, toBinary, fromBinary, toJson, fromJson, type JsonValue, type JsonObject } from '@bufbuild/protobuf';
export * from './json.js';
// Security filters (AuthorizationPolicy, RequestAuthentication).
export type { PolicyJson as RbacPolicyJson, PermissionJson as RbacPermissionJson, PrincipalJson as RbacPrincipalJson, RBACJson as RbacRulesJson } from './gen/envoy/config/rbac/v3/rbac_pb.js';
export type { RBACJson as HttpRbacJson } from './gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
export type { RBACJson as NetworkRbacJson } from './gen/envoy/extensions/filters/network/rbac/v3/rbac_pb.js';
export type { ExtAuthzJson as HttpExtAuthzJson } from './gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
export type { ExtAuthzJson as NetworkExtAuthzJson } from './gen/envoy/extensions/filters/network/ext_authz/v3/ext_authz_pb.js';
export type { JwtAuthenticationJson, JwtProviderJson, JwtRequirementJson } from './gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
export type { MetadataMatcherJson } from './gen/envoy/type/matcher/v3/metadata_pb.js';
export type { ValueMatcherJson } from './gen/envoy/type/matcher/v3/value_pb.js';
