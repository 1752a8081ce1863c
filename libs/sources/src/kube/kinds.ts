import { KINDS } from '@sextant/api';

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

/** Stability order: GA before beta before alpha, higher numbers first (v1 > v1beta2 > v1beta1 > v1alpha3). */
export function versionRank(v: string): number {
  const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
  if (!m) return -1;
  const major = Number(m[1]);
  const stage = m[2] === 'alpha' ? 0 : m[2] === 'beta' ? 1 : 2;
  return major * 10_000 + stage * 1_000 + Number(m[3] ?? 0);
}

export function preferVersions(versions: readonly string[]): string[] {
  return [...versions].sort((a, b) => versionRank(b) - versionRank(a));
}

/** The kinds from `@sextant/api`'s registry: every kind Sextant reads, Istio kinds gated on their CRD. */
export function registryKinds(): KubeKind[] {
  return KINDS.map((k) => ({
    kind: k.kind,
    group: k.group,
    versions: preferVersions(k.versions),
    plural: k.plural,
    namespaced: k.namespaced,
    crd: k.istio,
  }));
}

/** What the source watches by default: the registry's kinds. */
export const defaultKinds: KubeKind[] = registryKinds();

export function kindId(k: { group: string; kind: string }): string {
  return k.group ? `${k.kind}.${k.group}` : k.kind;
}

/** `<plural>.<group>`, the CRD's metadata.name. */
export function crdName(k: KubeKind): string {
  return `${k.plural}.${k.group}`;
}
