/** What one generator per proxy kind produces, per xDS type (istiod's per-generator split: sidecar, router, grpcgen). */
import type { ValidationIssue } from '@sextant/api';
import type { ClusterJson, ClusterLoadAssignmentJson, ListenerJson, RouteConfigurationJson } from '@sextant/envoy';
import type { ProxyView, PushContext } from '@sextant/model';
import type { InboundTlsHook } from '../listener/inbound.js';

export type XdsShortType = 'lds' | 'rds' | 'cds' | 'eds';

/** The resource type each short type name stands for. */
export interface XdsResources {
  lds: ListenerJson[];
  rds: RouteConfigurationJson[];
  cds: ClusterJson[];
  eds: ClusterLoadAssignmentJson[];
}

/** The proxy kinds with a generator of their own. */
export type ProxyKind = 'sidecar' | 'router' | 'grpc' | 'mosn';

export interface ListenerOptions {
  /** Inbound security per port (default: `mtlsInbound`, PeerAuthentication). */
  inboundTls?: InboundTlsHook;
  /** Resource names a proxyless gRPC client asked for (sidecars and gateways get every listener). */
  names?: string[];
  /** Receives what the proxy's data plane cannot express in its listeners (MOSN). */
  issues?: ValidationIssue[];
}

export interface ProxyGenerator {
  readonly kind: ProxyKind;
  /** CDS that depends only on what proxies of one class share: outbound clusters (cacheable per class). */
  sharedClusters(push: PushContext, proxy: ProxyView): ClusterJson[];
  /** CDS of this one proxy: inbound clusters for its own instances and the special clusters. */
  proxyClusters(push: PushContext, proxy: ProxyView): ClusterJson[];
  listeners(push: PushContext, proxy: ProxyView, opts: ListenerOptions): ListenerJson[];
  /** Route configurations for `names`; names that do not resolve are left out. `issues` gets what the proxy cannot express. */
  routes(push: PushContext, proxy: ProxyView, names: string[], issues?: ValidationIssue[]): RouteConfigurationJson[];
  /** ClusterLoadAssignments for `names`, an empty one for a name without endpoints. */
  endpoints(push: PushContext, proxy: ProxyView, names: string[]): ClusterLoadAssignmentJson[];
}
