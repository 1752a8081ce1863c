/**
 * What the Kubernetes source watches. Core kinds are always served by the API
 * server; Istio kinds come from CRDs that may be missing, so their informer
 * starts when the CRD appears, at the first served version in `versions`
 * (Sextant's order of preference).
 */
export interface KubeKind {
  kind: string;
  group: string;
  /** Served versions in order of preference; the informer watches the first one the server serves. */
  versions: string[];
  plural: string;
  namespaced: boolean;
  /** True when the kind comes from a CustomResourceDefinition (tolerated when missing). */
  crd: boolean;
}

export const coreKinds: KubeKind[] = [
  { kind: 'Namespace', group: '', versions: ['v1'], plural: 'namespaces', namespaced: false, crd: false },
  { kind: 'Node', group: '', versions: ['v1'], plural: 'nodes', namespaced: false, crd: false },
  { kind: 'Service', group: '', versions: ['v1'], plural: 'services', namespaced: true, crd: false },
  { kind: 'Pod', group: '', versions: ['v1'], plural: 'pods', namespaced: true, crd: false },
  { kind: 'Secret', group: '', versions: ['v1'], plural: 'secrets', namespaced: true, crd: false },
  { kind: 'ConfigMap', group: '', versions: ['v1'], plural: 'configmaps', namespaced: true, crd: false },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', namespaced: true, crd: false },
];

const net = 'networking.istio.io';
const sec = 'security.istio.io';
const tel = 'telemetry.istio.io';
const v1First = ['v1', 'v1beta1', 'v1alpha3'];

/** The Istio kinds Sextant reads, used until (and unless) the caller passes the registry's list. */
export const istioKinds: KubeKind[] = [
  { kind: 'VirtualService', group: net, versions: v1First, plural: 'virtualservices', namespaced: true, crd: true },
  { kind: 'DestinationRule', group: net, versions: v1First, plural: 'destinationrules', namespaced: true, crd: true },
  { kind: 'Gateway', group: net, versions: v1First, plural: 'gateways', namespaced: true, crd: true },
  { kind: 'ServiceEntry', group: net, versions: v1First, plural: 'serviceentries', namespaced: true, crd: true },
  { kind: 'WorkloadEntry', group: net, versions: v1First, plural: 'workloadentries', namespaced: true, crd: true },
  { kind: 'WorkloadGroup', group: net, versions: v1First, plural: 'workloadgroups', namespaced: true, crd: true },
  { kind: 'Sidecar', group: net, versions: v1First, plural: 'sidecars', namespaced: true, crd: true },
  { kind: 'EnvoyFilter', group: net, versions: ['v1alpha3'], plural: 'envoyfilters', namespaced: true, crd: true },
  { kind: 'PeerAuthentication', group: sec, versions: ['v1', 'v1beta1'], plural: 'peerauthentications', namespaced: true, crd: true },
  { kind: 'RequestAuthentication', group: sec, versions: ['v1', 'v1beta1'], plural: 'requestauthentications', namespaced: true, crd: true },
  { kind: 'AuthorizationPolicy', group: sec, versions: ['v1', 'v1beta1'], plural: 'authorizationpolicies', namespaced: true, crd: true },
  { kind: 'Telemetry', group: tel, versions: ['v1', 'v1alpha1'], plural: 'telemetries', namespaced: true, crd: true },
];

export const defaultKinds: KubeKind[] = [...coreKinds, ...istioKinds];

export function kindId(k: { group: string; kind: string }): string {
  return k.group ? `${k.kind}.${k.group}` : k.kind;
}

/** `<plural>.<group>`, the CRD's metadata.name. */
export function crdName(k: KubeKind): string {
  return `${k.plural}.${k.group}`;
}
