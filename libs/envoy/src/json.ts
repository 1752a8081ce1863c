/**
 * The proto3 JSON types of the Envoy messages translation writes (generated
 * by protobuf-es, `json_types=true`), re-exported under one name each so
 * that other packages never import from `gen/`. Names that two protos share
 * get the package in front (`Cluster`/`Listener`FilterJson, ...).
 */
export type { AnyJson, DurationJson, StructJson, ValueJson } from '@bufbuild/protobuf/wkt';
export type {
  AddressJson,
  BindConfigJson,
  CidrRangeJson,
  ExtraSourceAddressJson,
  SocketAddressJson,
} from './gen/envoy/config/core/v3/address_pb.js';
export type {
  DataSourceJson,
  HeaderValueOptionJson,
  LocalityJson,
  MetadataJson,
  TransportSocketJson,
  TrafficDirectionJson,
  RuntimeFractionalPercentJson,
} from './gen/envoy/config/core/v3/base_pb.js';
export type { ConfigSourceJson, ApiConfigSourceJson } from './gen/envoy/config/core/v3/config_source_pb.js';
export type { TypedExtensionConfigJson } from './gen/envoy/config/core/v3/extension_pb.js';
export type {
  HttpProtocolOptionsJson as CoreHttpProtocolOptionsJson,
  Http1ProtocolOptionsJson,
  Http2ProtocolOptionsJson,
  TcpProtocolOptionsJson,
  UpstreamHttpProtocolOptionsJson,
} from './gen/envoy/config/core/v3/protocol_pb.js';
export type {
  Cluster_CommonLbConfigJson,
  Cluster_DiscoveryTypeJson,
  Cluster_EdsClusterConfigJson,
  Cluster_LbPolicyJson,
  Cluster_TransportSocketMatchJson,
  Cluster_RingHashLbConfigJson,
  Cluster_LeastRequestLbConfigJson,
  Cluster_RoundRobinLbConfigJson,
  Cluster_SlowStartConfigJson,
  Cluster_DnsLookupFamilyJson,
  UpstreamConnectionOptionsJson,
} from './gen/envoy/config/cluster/v3/cluster_pb.js';
export type { CircuitBreakersJson, CircuitBreakers_ThresholdsJson } from './gen/envoy/config/cluster/v3/circuit_breaker_pb.js';
export type { OutlierDetectionJson } from './gen/envoy/config/cluster/v3/outlier_detection_pb.js';
export type { EndpointJson, LbEndpointJson, LocalityLbEndpointsJson } from './gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
export type {
  FilterChainJson,
  FilterChainMatchJson,
  FilterJson as NetworkFilterJson,
  ListenerFilterJson,
} from './gen/envoy/config/listener/v3/listener_components_pb.js';
export type { ApiListenerJson } from './gen/envoy/config/listener/v3/api_listener_pb.js';
export type {
  CorsPolicyJson as RouteCorsPolicyJson,
  DecoratorJson,
  DirectResponseActionJson,
  HeaderMatcherJson,
  QueryParameterMatcherJson,
  RedirectActionJson,
  RetryPolicyJson,
  RouteActionJson,
  RouteAction_HashPolicyJson,
  RouteAction_MaxStreamDurationJson,
  RouteAction_RequestMirrorPolicyJson,
  RouteJson,
  RouteMatchJson,
  VirtualHostJson,
  WeightedClusterJson,
  WeightedCluster_ClusterWeightJson,
} from './gen/envoy/config/route/v3/route_components_pb.js';
export type {
  HttpConnectionManagerJson,
  HttpFilterJson,
  RdsJson,
} from './gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
export type { TcpProxyJson, TcpProxy_WeightedClusterJson } from './gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
export type { MongoProxyJson } from './gen/envoy/extensions/filters/network/mongo_proxy/v3/mongo_proxy_pb.js';
export type { TlsInspectorJson } from './gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
export type { CaresDnsResolverConfigJson } from './gen/envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver_pb.js';
export type { FilterConfigJson as IstioAlpnFilterConfigJson } from './gen/istio/envoy/config/filter/http/alpn/v2alpha1/config_pb.js';
export type { HTTPFaultJson } from './gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
export type { FaultDelayJson } from './gen/envoy/extensions/filters/common/fault/v3/fault_pb.js';
export type { CorsJson as CorsFilterJson, CorsPolicyJson as CorsFilterPolicyJson } from './gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
export type {
  HttpProtocolOptionsJson as UpstreamsHttpProtocolOptionsJson,
} from './gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
export type {
  CertificateValidationContextJson,
  TlsParametersJson,
  TlsParameters_TlsProtocolJson,
} from './gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
export type { SdsSecretConfigJson } from './gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
export type {
  CommonTlsContextJson,
  CommonTlsContext_CombinedCertificateValidationContextJson,
  DownstreamTlsContextJson,
  UpstreamTlsContextJson,
} from './gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
export type { RegexMatcherJson, RegexMatchAndSubstituteJson } from './gen/envoy/type/matcher/v3/regex_pb.js';
export type { StringMatcherJson } from './gen/envoy/type/matcher/v3/string_pb.js';
export type { FractionalPercentJson, PercentJson } from './gen/envoy/type/v3/percent_pb.js';
export type { PreviousPrioritiesConfigJson } from './gen/envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config_pb.js';
