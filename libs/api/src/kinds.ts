import { z } from 'zod';
import { IstioStatus } from './common.js';
import {
  ConfigMapBody,
  EndpointSliceBody,
  NamespaceBody,
  NodeBody,
  PodBody,
  SecretBody,
  ServiceBody,
} from './core.js';
import type { NameRule } from './meta.js';
import {
  DestinationRuleSpec,
  EnvoyFilterSpec,
  GatewaySpec,
  ServiceEntrySpec,
  SidecarSpec,
  VirtualServiceSpec,
  WorkloadEntrySpec,
  WorkloadGroupSpec,
} from './networking/index.js';
import type { ConfigObject } from './object.js';
import { AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec } from './security/index.js';
import { TelemetrySpec } from './telemetry/index.js';

/** A column `kubectl get` prints for an Istio kind (same names and paths as Istio's CRDs). */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
}

/** Everything Sextant knows about one kind it reads. */
export interface KindInfo<Body extends z.ZodType = z.ZodType> {
  kind: string;
  /** API group, '' for the Kubernetes core group. */
  group: string;
  /** Served versions, in the order Istio's CRDs list them. */
  versions: readonly string[];
  storageVersion: string;
  plural: string;
  singular: string;
  listKind: string;
  shortNames: readonly string[];
  categories: readonly string[];
  namespaced: boolean;
  nameRule: NameRule;
  /** Istio kinds have a CRD in crds/ and a `{ spec, status }` body. */
  istio: boolean;
  printerColumns: readonly PrinterColumn[];
  /** Schema of the object minus apiVersion/kind/metadata. */
  body: Body;
  /** For Istio kinds, the spec schema alone (what crds/ is generated from). */
  spec?: z.ZodType;
}

const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since the object was created.',
};

/** `{ spec, status }`, strict: a misspelt top-level field such as `sepc` is an error. */
function istioBody<S extends z.ZodType>(spec: S) {
  return z.strictObject({ spec, status: IstioStatus.optional() });
}

const NETWORKING_VERSIONS = ['v1', 'v1alpha3', 'v1beta1'] as const;

function istio<S extends z.ZodType>(
  kind: string,
  group: string,
  plural: string,
  opts: {
    versions: readonly string[];
    storageVersion: string;
    shortNames?: string[];
    printerColumns?: PrinterColumn[];
  },
  spec: S,
) {
  const groupCategory = group.replace(/\./g, '-');
  return {
    kind,
    group,
    versions: opts.versions,
    storageVersion: opts.storageVersion,
    plural,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    shortNames: opts.shortNames ?? [],
    categories: ['istio-io', groupCategory],
    namespaced: true,
    nameRule: 'dns1123-subdomain' as NameRule,
    istio: true,
    printerColumns: opts.printerColumns ?? [],
    body: istioBody(spec),
    spec,
  } satisfies KindInfo;
}

function core<B extends z.ZodType>(
  kind: string,
  group: string,
  version: string,
  plural: string,
  shortNames: string[],
  namespaced: boolean,
  nameRule: NameRule,
  body: B,
) {
  return {
    kind,
    group,
    versions: [version],
    storageVersion: version,
    plural,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    shortNames,
    categories: [],
    namespaced,
    nameRule,
    istio: false,
    printerColumns: [],
    body,
  } satisfies KindInfo;
}

const NET = 'networking.istio.io';
const SEC = 'security.istio.io';
const TEL = 'telemetry.istio.io';

const registry = {
  Service: core('Service', '', 'v1', 'services', ['svc'], true, 'dns1035-label', ServiceBody),
  EndpointSlice: core('EndpointSlice', 'discovery.k8s.io', 'v1', 'endpointslices', [], true, 'dns1123-subdomain', EndpointSliceBody),
  Pod: core('Pod', '', 'v1', 'pods', ['po'], true, 'dns1123-subdomain', PodBody),
  Namespace: core('Namespace', '', 'v1', 'namespaces', ['ns'], false, 'dns1123-label', NamespaceBody),
  Node: core('Node', '', 'v1', 'nodes', ['no'], false, 'dns1123-subdomain', NodeBody),
  Secret: core('Secret', '', 'v1', 'secrets', [], true, 'dns1123-subdomain', SecretBody),
  ConfigMap: core('ConfigMap', '', 'v1', 'configmaps', ['cm'], true, 'dns1123-subdomain', ConfigMapBody),

  VirtualService: istio(
    'VirtualService',
    NET,
    'virtualservices',
    {
      versions: NETWORKING_VERSIONS,
      storageVersion: 'v1',
      shortNames: ['vs'],
      printerColumns: [
        { name: 'Gateways', type: 'string', jsonPath: '.spec.gateways', description: 'Gateways and sidecars the routes apply to.' },
        { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'Destination hosts the routes are for.' },
        AGE,
      ],
    },
    VirtualServiceSpec,
  ),
  DestinationRule: istio(
    'DestinationRule',
    NET,
    'destinationrules',
    {
      versions: NETWORKING_VERSIONS,
      storageVersion: 'v1',
      shortNames: ['dr'],
      printerColumns: [{ name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'Service the policies apply to.' }, AGE],
    },
    DestinationRuleSpec,
  ),
  Gateway: istio('Gateway', NET, 'gateways', { versions: NETWORKING_VERSIONS, storageVersion: 'v1', shortNames: ['gw'] }, GatewaySpec),
  ServiceEntry: istio(
    'ServiceEntry',
    NET,
    'serviceentries',
    {
      versions: NETWORKING_VERSIONS,
      storageVersion: 'v1',
      shortNames: ['se'],
      printerColumns: [
        { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'Hosts of the entry.' },
        { name: 'Location', type: 'string', jsonPath: '.spec.location', description: 'MESH_EXTERNAL or MESH_INTERNAL.' },
        { name: 'Resolution', type: 'string', jsonPath: '.spec.resolution', description: 'How the hosts are resolved (NONE, STATIC, DNS, ...).' },
        AGE,
      ],
    },
    ServiceEntrySpec,
  ),
  WorkloadEntry: istio(
    'WorkloadEntry',
    NET,
    'workloadentries',
    {
      versions: NETWORKING_VERSIONS,
      storageVersion: 'v1',
      shortNames: ['we'],
      printerColumns: [AGE, { name: 'Address', type: 'string', jsonPath: '.spec.address', description: 'Address of the workload.' }],
    },
    WorkloadEntrySpec,
  ),
  WorkloadGroup: istio(
    'WorkloadGroup',
    NET,
    'workloadgroups',
    { versions: NETWORKING_VERSIONS, storageVersion: 'v1', shortNames: ['wg'], printerColumns: [AGE] },
    WorkloadGroupSpec,
  ),
  Sidecar: istio('Sidecar', NET, 'sidecars', { versions: NETWORKING_VERSIONS, storageVersion: 'v1' }, SidecarSpec),
  EnvoyFilter: istio('EnvoyFilter', NET, 'envoyfilters', { versions: ['v1alpha3'], storageVersion: 'v1alpha3' }, EnvoyFilterSpec),

  PeerAuthentication: istio(
    'PeerAuthentication',
    SEC,
    'peerauthentications',
    {
      versions: ['v1', 'v1beta1'],
      storageVersion: 'v1',
      shortNames: ['pa'],
      printerColumns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'Mutual TLS mode.' }, AGE],
    },
    PeerAuthenticationSpec,
  ),
  RequestAuthentication: istio(
    'RequestAuthentication',
    SEC,
    'requestauthentications',
    { versions: ['v1', 'v1beta1'], storageVersion: 'v1', shortNames: ['ra'] },
    RequestAuthenticationSpec,
  ),
  AuthorizationPolicy: istio(
    'AuthorizationPolicy',
    SEC,
    'authorizationpolicies',
    {
      versions: ['v1', 'v1beta1'],
      storageVersion: 'v1',
      shortNames: ['ap'],
      printerColumns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'What the policy does.' }, AGE],
    },
    AuthorizationPolicySpec,
  ),
  Telemetry: istio(
    'Telemetry',
    TEL,
    'telemetries',
    { versions: ['v1', 'v1alpha1'], storageVersion: 'v1alpha1', shortNames: ['telemetry'], printerColumns: [AGE] },
    TelemetrySpec,
  ),
} as const;

type Registry = typeof registry;
export type KnownKind = keyof Registry;

/** The validated body type of each kind, e.g. `KindBodies['VirtualService']` is `{ spec, status? }`. */
export type KindBodies = { [K in KnownKind]: z.output<Registry[K]['body']> };
/** A validated object of a known kind, e.g. `TypedObject<'Service'>`. */
export type TypedObject<K extends KnownKind> = ConfigObject<KindBodies[K]>;

export type VirtualServiceSpecType = z.output<typeof VirtualServiceSpec>;
export type DestinationRuleSpecType = z.output<typeof DestinationRuleSpec>;
export type GatewaySpecType = z.output<typeof GatewaySpec>;
export type ServiceEntrySpecType = z.output<typeof ServiceEntrySpec>;
export type WorkloadEntrySpecType = z.output<typeof WorkloadEntrySpec>;
export type WorkloadGroupSpecType = z.output<typeof WorkloadGroupSpec>;
export type SidecarSpecType = z.output<typeof SidecarSpec>;
export type EnvoyFilterSpecType = z.output<typeof EnvoyFilterSpec>;

/** Every kind Sextant reads, core kinds first, then Istio kinds. */
export const KINDS: readonly KindInfo[] = Object.values(registry);

export const ISTIO_KINDS: readonly KindInfo[] = KINDS.filter((k) => k.istio);

export function isKnownKind(kind: string): kind is KnownKind {
  return Object.prototype.hasOwnProperty.call(registry, kind);
}

/** The registry entry for a kind name (`VirtualService`), or undefined. */
export function kindInfo(kind: string): KindInfo | undefined {
  return isKnownKind(kind) ? registry[kind] : undefined;
}

/** Finds a kind by plural, singular or short name, as kubectl does (`vs`, `virtualservices`). */
export function kindByResourceName(name: string): KindInfo | undefined {
  const n = name.toLowerCase();
  return KINDS.find((k) => k.plural === n || k.singular === n || k.shortNames.includes(n) || k.kind.toLowerCase() === n);
}

/** `networking.istio.io/v1` → group and version; `v1` → core group. */
export function parseApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}
