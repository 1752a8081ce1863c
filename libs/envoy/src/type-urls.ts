/** Type URLs of the xDS resources Sextant serves, as Envoy and istiod spell them. */
const prefix = 'type.googleapis.com/';
export const TypeUrl = {
  Listener: `${prefix}envoy.config.listener.v3.Listener`,
  RouteConfiguration: `${prefix}envoy.config.route.v3.RouteConfiguration`,
  Cluster: `${prefix}envoy.config.cluster.v3.Cluster`,
  ClusterLoadAssignment: `${prefix}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  Secret: `${prefix}envoy.extensions.transport_sockets.tls.v3.Secret`,
  /** ECDS: extension configs a filter's `config_discovery` names (istiod's ExtensionConfigurationType). */
  ExtensionConfiguration: `${prefix}envoy.config.core.v3.TypedExtensionConfig`,
} as const;
export type KnownTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** Short names used by CLIs and debug output (`lds`, `rds`, ...). */
export const shortTypeName: Record<string, string> = {
  [TypeUrl.Listener]: 'lds',
  [TypeUrl.RouteConfiguration]: 'rds',
  [TypeUrl.Cluster]: 'cds',
  [TypeUrl.ClusterLoadAssignment]: 'eds',
  [TypeUrl.Secret]: 'sds',
  [TypeUrl.ExtensionConfiguration]: 'ecds',
};

/** Push order: clusters before their endpoints, listeners before their routes (make-before-break). */
export const pushOrder: readonly string[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];

export function typeNameOf(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/');
  return slash >= 0 ? typeUrl.slice(slash + 1) : typeUrl;
}
