export * from './type-urls.js';
export * from './codec.js';
export * from './wire.js';
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
export { create, toBinary, fromBinary, toJson, fromJson, type JsonValue, type JsonObject } from '@bufbuild/protobuf';
export * from './json.js';
