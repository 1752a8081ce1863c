/**
 * The public shapes of Sextant's model of the mesh: services, endpoints,
 * proxies and the immutable PushContext that translation reads.
 *
 * Everything here is plain data; `libs/model` has no I/O, timers or clocks.
 * Names follow istiod's (pilot/pkg/model) where the behaviour matches.
 */
import type { ObjectMeta, ValidationIssue } from '@sextant/api';
import type { EndpointIndex, EndpointReader } from './endpoint-index.js';

// ---------------------------------------------------------------------------
// Inputs

/**
 * A validated configuration object as a source yields it. Structurally the
 * same as `ConfigObject` from `@sextant/sources` (kept here so the model does
 * not depend on the package that talks to Kubernetes).
 */
export interface ConfigObjectLike<Body = unknown> {
  kind: string;
  group: string;
  version: string;
  metadata: ObjectMeta;
  body: Body;
}

/** An Istio config object as the model hands it to translation. */
export interface IstioConfig<Spec = Record<string, any>> {
  kind: string;
  /** Namespace of the object (always set; cluster-scoped Istio kinds do not exist). */
  namespace: string;
  name: string;
  metadata: ObjectMeta;
  spec: Spec;
}

/** The subset of MeshConfig the model and translation read. All optional. */
export interface MeshConfig {
  /** Namespace of the root config (default `istio-system`): Sidecars/EnvoyFilters there apply mesh-wide. */
  rootNamespace?: string;
  /** Default `exportTo` for Services, VirtualServices and DestinationRules (default `['*']`). */
  defaultServiceExportTo?: string[];
  defaultVirtualServiceExportTo?: string[];
  defaultDestinationRuleExportTo?: string[];
  /** `ALLOW_ANY` (default): unknown destinations go to PassthroughCluster; `REGISTRY_ONLY`: BlackHoleCluster. */
  outboundTrafficPolicy?: { mode?: 'ALLOW_ANY' | 'REGISTRY_ONLY' };
  /** Cluster connect timeout (default `10s`). */
  connectTimeout?: string;
  /** How often DNS clusters (ServiceEntry resolution DNS) re-resolve without a DNS TTL to follow (default `60s`). */
  dnsRefreshRate?: string;
  /** How long outbound listeners wait for the HTTP inspector to sniff the protocol (default `0s`: no timeout). */
  protocolDetectionTimeout?: string;
  /** Request path normalization of HTTP connection managers (default `BASE`). */
  pathNormalization?: { normalization?: 'DEFAULT' | 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES' };
  /** Auto mTLS (default true). */
  enableAutoMtls?: boolean;
  /** Mesh-wide locality load balancing settings (DestinationRule overrides). */
  localityLbSetting?: Record<string, unknown>;
  /** Default TCP keepalive etc. are not modelled. */
  trustDomain?: string;
}

// ---------------------------------------------------------------------------
// Services

/**
 * Istio's protocol names (pkg/config/protocol). `Unsupported` means "sniff":
 * the port's protocol could not be told from its name or appProtocol.
 */
export type Protocol =
  | 'HTTP'
  | 'HTTP2'
  | 'HTTP_PROXY'
  | 'GRPC'
  | 'GRPC-Web'
  | 'HTTPS'
  | 'TLS'
  | 'TCP'
  | 'UDP'
  | 'Mongo'
  | 'Redis'
  | 'MySQL'
  | 'Unsupported';

export interface ServicePort {
  /** Port name (`http-web`); may be empty for unnamed single-port services. */
  name: string;
  /** The service port. */
  port: number;
  /** The resolved protocol (from `appProtocol`, else the name prefix, else `Unsupported`). */
  protocol: Protocol;
  /** Kubernetes targetPort (number or named container port), when given. */
  targetPort?: number | string | undefined;
  appProtocol?: string | undefined;
}

/**
 * How clients find endpoints (istiod's `model.Resolution`):
 * - `ClientSideLB`: EDS (Kubernetes services, ServiceEntry STATIC / NONE-with-endpoints via selector)
 * - `DNSLB`: STRICT_DNS (ServiceEntry `DNS`)
 * - `DNSRoundRobinLB`: LOGICAL_DNS (ServiceEntry `DNS_ROUND_ROBIN`)
 * - `Passthrough`: ORIGINAL_DST (ServiceEntry `NONE`, headless Services)
 */
export type Resolution = 'ClientSideLB' | 'DNSLB' | 'DNSRoundRobinLB' | 'Passthrough';

export interface ServiceAttributes {
  /** `Kubernetes` for Services, `External` for ServiceEntries. */
  serviceRegistry: 'Kubernetes' | 'External';
  /** Short name (Service name, or ServiceEntry host's first label). */
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** Workload selector (Service `spec.selector` / ServiceEntry `workloadSelector.labels`). */
  selector?: Record<string, string> | undefined;
  /** Kubernetes service type (`ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`). */
  serviceType?: string | undefined;
  /** Set for `ExternalName` services. */
  externalName?: string | undefined;
  /** The object this service came from (kind/namespace/name). */
  origin: { kind: string; namespace: string; name: string };
}

export interface Service {
  /** FQDN (`reviews.default.svc.cluster.local`) or ServiceEntry host (may be a wildcard `*.example.com`). */
  hostname: string;
  namespace: string;
  name: string;
  /** The first address, or `0.0.0.0` when there is none (headless / no VIP), as istiod does. */
  clusterVIP: string;
  /** All VIPs (ClusterIPs or ServiceEntry addresses). */
  addresses: string[];
  ports: ServicePort[];
  labels: Record<string, string>;
  /**
   * Namespaces this service is visible in: `*` (all), or namespace names.
   * `.` is resolved to the service's own namespace at build time; `~` gives an empty list.
   */
  exportTo: string[];
  meshExternal: boolean;
  resolution: Resolution;
  /** True for a headless Kubernetes Service (clusterIP: None). */
  headless: boolean;
  /** Creation timestamp (RFC 3339) or '' — older wins when two objects claim a host. */
  creationTime: string;
  attributes: ServiceAttributes;
}

// ---------------------------------------------------------------------------
// Endpoints

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

export type HealthStatus = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING';

/** One endpoint of one service port (istiod's IstioEndpoint). */
export interface IstioEndpoint {
  address: string;
  /** The port on the endpoint (target port), not the service port. */
  endpointPort: number;
  /** Name of the service port this endpoint serves. */
  servicePortName: string;
  /** Labels of the workload (pod labels / WorkloadEntry labels); subsets select on these. */
  labels: Record<string, string>;
  locality: Locality;
  /** SPIFFE identity (`spiffe://cluster.local/ns/default/sa/bookinfo-reviews`) or ''. */
  serviceAccount: string;
  /** From the workload label `security.istio.io/tlsMode`: `istio` means the workload has a sidecar and takes mTLS. */
  tlsMode: 'istio' | 'disabled';
  network: string;
  clusterId: string;
  healthStatus: HealthStatus;
  /** Load balancing weight (>=1). */
  weight: number;
  workloadName: string;
  namespace: string;
  /** DNS name instead of an IP (ServiceEntry DNS endpoints); equals `address`. */
  isHostname?: boolean;
  /**
   * Built from a WorkloadEntry or a ServiceEntry's own endpoints, which istiod
   * gives no health status: Envoy's `health_status` is left unset (UNKNOWN,
   * routed like HEALTHY) instead of HEALTHY. `healthStatus` stays HEALTHY here.
   */
  noHealthStatus?: boolean;
}

/** A service port paired with an endpoint (istiod's ServiceInstance; used for inbound). */
export interface ServiceInstance {
  service: Service;
  servicePort: ServicePort;
  endpoint: IstioEndpoint;
}

// ---------------------------------------------------------------------------
// Proxies

export type NodeType = 'sidecar' | 'router';

/** The `ISTIO_META_*` node metadata fields the model reads (Envoy sends them without the prefix). */
export interface ProxyMetadata {
  NAMESPACE?: string;
  LABELS?: Record<string, string>;
  INSTANCE_IPS?: string;
  CLUSTER_ID?: string;
  ISTIO_VERSION?: string;
  GENERATOR?: string;
  INTERCEPTION_MODE?: string;
  SERVICE_ACCOUNT?: string;
  WORKLOAD_NAME?: string;
  NETWORK?: string;
  MESH_ID?: string;
  /** Everything Envoy sent, unmodified. */
  raw: Record<string, unknown>;
}

/** What a proxy is, parsed from its node ID and metadata (istiod's model.Proxy). */
export interface ProxyView {
  /** The full node ID as sent. */
  nodeId: string;
  type: NodeType;
  /** First = the node ID's IP, then any INSTANCE_IPS not already present. */
  ipAddresses: string[];
  /** The node ID's third part, `pod.ns` (istiod's Proxy.ID). */
  id: string;
  /** The fourth part, `ns.svc.cluster.local`. */
  dnsDomain: string;
  /** NAMESPACE metadata, else the second label of `id`, else of `dnsDomain`. */
  namespace: string;
  /** LABELS metadata; PushContext fills these from the Pod found by IP when absent. */
  labels: Record<string, string>;
  metadata: ProxyMetadata;
  /** `grpc` for proxyless gRPC clients; '' for Envoy. */
  generator: string;
  /** `REDIRECT` (default), `TPROXY` or `NONE`. */
  interceptionMode: 'REDIRECT' | 'TPROXY' | 'NONE';
  istioVersion: string;
  serviceAccount: string;
  workloadName: string;
  clusterId: string;
  network: string;
  /** Locality, when the proxy's Pod runs on a Node with topology labels. */
  locality?: Locality | undefined;
  /**
   * What Envoy says it was built with (`node.extensions`): each extension's
   * name and config type URLs. Undefined when the node sent no list.
   */
  extensions?: readonly string[] | undefined;
  /** Envoy's `node.cluster` (istiod names OpenTelemetry spans' service after it). */
  nodeCluster?: string | undefined;
}

// ---------------------------------------------------------------------------
// Scoping

/** One Sidecar egress listener after parsing: hosts as `namespace/dnsName`. */
export interface EgressListener {
  port?: { number: number; protocol: string; name?: string } | undefined;
  bind?: string | undefined;
  /** Parsed `ns/host` pairs; ns may be `*`, `.` is resolved to the Sidecar's namespace, `~` means none. */
  hosts: Array<{ namespace: string; host: string }>;
}

/**
 * What one proxy can see (istiod's SidecarScope): the services, VirtualServices
 * and DestinationRules visible by `exportTo` and the proxy's Sidecar (or the
 * root namespace default Sidecar).
 */
export interface SidecarScope {
  /** The namespace whose Sidecar rules apply. */
  namespace: string;
  /** The Sidecar resource in effect, if any. */
  sidecar: IstioConfig | undefined;
  egress: EgressListener[];
  /** Visible services, sorted by hostname. */
  services: Service[];
  /** Visible VirtualServices (unmerged), in Istio's precedence order. */
  virtualServices: IstioConfig[];
  /** Whether a hostname is visible. */
  hasService(hostname: string): boolean;
  /** `outboundTrafficPolicy` in effect for this scope. */
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

/** A DestinationRule after Istio's merge for one host, with where each part came from. */
export interface MergedDestinationRule {
  host: string;
  /** The merged spec (first rule's trafficPolicy wins; subsets appended unless duplicated). */
  spec: Record<string, any>;
  /** The DestinationRules merged into this one, in precedence order. */
  from: Array<{ namespace: string; name: string }>;
}

// ---------------------------------------------------------------------------
// PushContext

export interface PushContextOptions {
  domainSuffix: string;
  trustDomain: string;
  meshConfig?: MeshConfig | undefined;
  /** Version string for this push (content hash or counter, the caller's choice). */
  version: string;
  /**
   * The endpoint index to read endpoints, pods and WorkloadEntries from, kept
   * up to date by the caller's endpoint events; the build then ignores objects
   * of the endpoint kinds. Without it the build makes its own from `objects`.
   */
  endpointIndex?: EndpointIndex | undefined;
  /**
   * JWKS the control plane fetched for RequestAuthentication `jwksUri`s (or
   * issuers' OpenID discovery), by `jwksKey`: a snapshot taken when the push
   * is built, so translation stays pure. A key that is absent was not fetched.
   */
  jwks?: ReadonlyMap<string, string> | undefined;
}

/**
 * An immutable snapshot of the mesh at one config version, built once by
 * `PushContext.build` and shared by every proxy's translation.
 */
export interface PushContext {
  readonly version: string;
  readonly domainSuffix: string;
  readonly trustDomain: string;
  readonly mesh: Required<Pick<MeshConfig, 'rootNamespace' | 'connectTimeout' | 'enableAutoMtls'>> & MeshConfig;
  /** JWKS fetched by the control plane, by `jwksKey(jwksUri, issuer)` (see PushContextOptions.jwks). */
  readonly jwks: ReadonlyMap<string, string>;
  /** Semantic problems found while building (unknown subset, missing host, duplicate hosts, ...). */
  readonly issues: ValidationIssue[];

  /** Every service, sorted by hostname then namespace. */
  allServices(): Service[];
  /** The service for a hostname visible from a namespace (Kubernetes service in the same namespace wins). */
  serviceByHostname(hostname: string, fromNamespace?: string): Service | undefined;
  /** Services in one namespace, in `allServices()` order (indexed: proxy dependencies ask per changed Service or ServiceEntry). */
  servicesInNamespace(namespace: string): readonly Service[];
  /** The service of a `namespace/hostname` key (the endpoint index's, serviceKeyOf): a Kubernetes Service or a ServiceEntry host. */
  serviceByKey(key: string): Service | undefined;

  /** Endpoints of one service port, optionally filtered by subset labels. */
  endpoints(service: Service, port: ServicePort, subsetLabels?: Record<string, string>): IstioEndpoint[];
  /** Where endpoints live: the endpoint index, updated in place by endpoint events (the EDS builder's input). */
  readonly endpointIndex: EndpointReader;
  /** SPIFFE identities of a service port's workloads (+ ServiceEntry subjectAltNames), sorted: ISTIO_MUTUAL subjectAltNames. */
  serviceAccounts(service: Service, port: ServicePort): string[];

  /** The proxy's view, completed with its Pod's labels, service account, locality (pods by IP). */
  resolveProxy(proxy: ProxyView): ProxyView;
  /** The SidecarScope for a proxy (cached per namespace/Sidecar). */
  sidecarScope(proxy: ProxyView): SidecarScope;
  /** Services visible to a proxy (= sidecarScope(proxy).services). */
  servicesForProxy(proxy: ProxyView): Service[];
  /** The merged DestinationRule for a host as seen from the proxy's namespace. */
  /** `inbound`: rules with a workloadSelector are skipped (istiod honours them for outbound config only). */
  destinationRule(proxy: ProxyView, hostname: string, direction?: 'outbound' | 'inbound'): MergedDestinationRule | undefined;
  /** Subset names of every DestinationRule whose host matches, in any namespace, whatever it exports to (the EDS clusters of the host). */
  destinationRuleSubsets(hostname: string): ReadonlySet<string>;
  /**
   * VirtualServices visible to the proxy. With `gateways` given, those bound to
   * any of them (`namespace/name`, or `mesh` for sidecars — the default).
   */
  virtualServices(proxy: ProxyView, gateways?: string[]): IstioConfig[];
  /** Gateway objects whose selector matches the proxy's labels (router proxies). */
  gatewaysForProxy(proxy: ProxyView): IstioConfig[];
  /** The services whose endpoints are this proxy's IP (inbound). */
  serviceInstancesForProxy(proxy: ProxyView): ServiceInstance[];
  /** Istio configs by kind (`VirtualService`, `Gateway`, `DestinationRule`, `Sidecar`, `ServiceEntry`, `EnvoyFilter`, `PeerAuthentication`, ...), optionally one namespace. */
  configs(kind: string, namespace?: string): IstioConfig[];
}

// ---------------------------------------------------------------------------
// Change impact

/** What a config change needs pushed (istiod's PushRequest, simplified). */
export interface PushScope {
  /** Full push (CDS/LDS/RDS/EDS) vs endpoint-only (EDS). */
  full: boolean;
  /** For EDS-only pushes, the cluster names whose endpoints changed; undefined = all. */
  edsClusters: Set<string> | undefined;
  /** Whether the change can affect this proxy at all. */
  affects(proxy: ProxyView): boolean;
}

/**
 * The key of a fetched JWKS: the `jwksUri`, or for a rule without one the
 * issuer whose OpenID discovery document names it (istiod's jwtKey).
 */
export function jwksKey(jwksUri: string | undefined, issuer: string): string {
  return jwksUri ? jwksUri : `openid:${issuer}`;
}
