/**
 * The shape every configuration object has once it crossed validation: the
 * Kubernetes envelope plus a typed body. `spec` is the validated spec for Istio
 * kinds; Kubernetes core kinds keep their own top-level fields (e.g.
 * EndpointSlice `endpoints`) in `body`.
 */
export interface ObjectMeta {
  name: string;
  namespace?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  resourceVersion?: string | undefined;
  generation?: number | undefined;
  uid?: string | undefined;
  creationTimestamp?: string | undefined;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid?: string; controller?: boolean }> | undefined;
}

/** kind/namespace/name, the way operators name an object in errors and logs. */
export interface ObjectKey {
  kind: string;
  namespace: string | undefined;
  name: string;
}

export function keyString(k: ObjectKey): string {
  return k.namespace ? `${k.kind}/${k.namespace}/${k.name}` : `${k.kind}/${k.name}`;
}

/** One problem with one object: what it is, where in it, and why. */
export interface ValidationIssue {
  kind: string;
  namespace: string | undefined;
  name: string;
  /** Dotted path into the object, e.g. `spec.http[0].route[1].weight`. */
  field: string;
  reason: string;
}

export function formatIssue(i: ValidationIssue): string {
  return `${keyString(i)}: ${i.field}: ${i.reason}`;
}

/**
 * A validated configuration object as every source yields it (re-exported by
 * `@sextant/sources`). `kind` is the Kubernetes kind (`Service`,
 * `VirtualService`, ...), `group` its API group ('' for core), `version` the
 * served version it arrived in. `body` is the validated object minus
 * apiVersion/kind/metadata: `{ spec, status? }` for Istio kinds, the kind's own
 * top-level fields (`spec`, `data`, `endpoints`, ...) for Kubernetes kinds.
 */
export interface ConfigObject<Body = unknown> {
  kind: string;
  group: string;
  version: string;
  metadata: ObjectMeta;
  body: Body;
}

export function objectKey(o: { kind: string; metadata: { name: string; namespace?: string | undefined } }): ObjectKey {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
}
