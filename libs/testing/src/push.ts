/**
 * Fixtures for translation tests built on the real PushContext: small
 * Kubernetes and Istio objects, validated by `@sextant/api` as every source's
 * objects are, then `PushContext.build` with Istio's visibility, Sidecar and
 * DestinationRule rules as the daemon runs them. Proxies come from a node ID
 * through the model's one parser.
 */
import { KINDS, apiVersionOf, validateObject, type ValidationIssue } from '@sextant/api';
import { PushContext, parseProxy, type MeshConfig, type ProxyView } from '@sextant/model';

/** A Kubernetes object as a source reads it (apiVersion, kind, metadata, spec). */
export type RawObject = Record<string, unknown>;
type Json = Record<string, any>;

export const DOMAIN_SUFFIX = 'cluster.local';

/**
 * A Kubernetes Service. Ports are `[name, port, targetPort?]`; Istio derives
 * the protocol from the name (`http`, `tcp`, `grpc-web`…), and an empty name
 * leaves it to sniffing. `clusterIP: 'None'` makes it headless.
 */
export function service(
  name: string,
  namespace: string,
  clusterIP: string,
  ports: Array<[string, number] | [string, number, number]>,
  extra: { labels?: Record<string, string>; selector?: Record<string, string> } = {},
): RawObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, ...(extra.labels ? { labels: extra.labels } : {}) },
    spec: {
      clusterIP,
      ports: ports.map(([n, port, target]) => ({ ...(n ? { name: n } : {}), port, targetPort: target ?? port, protocol: 'TCP' })),
      ...(extra.selector ? { selector: extra.selector } : {}),
    },
  };
}

/** An Istio config object of `kind` (any registered Istio kind, at its storage version). */
export function istio(kind: string, namespace: string, name: string, spec: Json, creationTimestamp?: string): RawObject {
  const info = KINDS.find((k) => k.istio && k.kind === kind);
  if (!info) throw new Error(`istio(): ${kind} is not a registered Istio kind`);
  return {
    apiVersion: apiVersionOf(info.group, info.storageVersion),
    kind,
    metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) },
    spec,
  };
}

/** A running Pod with one IP (what a sidecar's node ID resolves against). */
export function pod(name: string, namespace: string, ip: string, labels: Record<string, string> = {}, serviceAccount = 'default'): RawObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

/** An EndpointSlice of `serviceName` with ready endpoints, each optionally backed by a Pod (for its labels). */
export function endpointSlice(
  serviceName: string,
  namespace: string,
  ports: Array<[string, number]>,
  endpoints: Array<{ ip: string; pod?: string }>,
  name = `${serviceName}-abc`,
): RawObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    ports: ports.map(([n, port]) => ({ ...(n ? { name: n } : {}), port, protocol: 'TCP' })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: true },
      ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace } } : {}),
    })),
  };
}

/** Thrown when a fixture object does not validate: fixtures must be valid config. */
export class FixtureError extends Error {
  constructor(readonly issues: ValidationIssue[]) {
    super(`invalid fixture object(s):\n${issues.map((i) => `${i.kind} ${i.namespace ?? ''}/${i.name} ${i.field}: ${i.reason}`).join('\n')}`);
    this.name = 'FixtureError';
  }
}

export interface PushOptions {
  meshConfig?: MeshConfig;
  version?: string;
}

/** Fixtures validated once each, as the store keeps one object per revision: contexts built from the same fixtures share it. */
const validated = new WeakMap<RawObject, ReturnType<typeof validateObject>>();

/** Validates `objects` as a source would and builds the real PushContext from them. */
export function pushContext(objects: RawObject[], opts: PushOptions = {}): ReturnType<typeof PushContext.build> {
  const valid = [];
  const issues: ValidationIssue[] = [];
  for (const raw of objects) {
    let res = validated.get(raw);
    if (!res) validated.set(raw, (res = validateObject(raw, { defaultNamespace: 'default' })));
    if (res.ok) valid.push(res.object);
    else issues.push(...res.issues);
  }
  if (issues.length) throw new FixtureError(issues);
  return PushContext.build(valid, { domainSuffix: DOMAIN_SUFFIX, trustDomain: DOMAIN_SUFFIX, version: opts.version ?? 'v1', meshConfig: opts.meshConfig });
}

/**
 * A sidecar (or router) as the server sees it: parsed from its node ID
 * (`sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`) and Istio metadata.
 */
export function proxy(opts: ProxyOptions = {}): ProxyView {
  const ns = opts.namespace ?? 'default';
  const nodeId = `${opts.type ?? 'sidecar'}~${opts.ip ?? '10.0.0.9'}~${opts.pod ?? 'app'}.${ns}~${ns}.svc.${DOMAIN_SUFFIX}`;
  return parseProxy(nodeId, opts.metadata ?? {});
}

export interface ProxyOptions {
  namespace?: string;
  ip?: string;
  pod?: string;
  type?: 'sidecar' | 'router';
  /** Istio node metadata (LABELS, GENERATOR, INTERCEPTION_MODE…), as pilot-agent sends it. */
  metadata?: Record<string, unknown>;
}

/** `proxy(opts)` resolved against `push` (labels, service account and workload from its Pod), as the server does before translating. */
export function proxyIn(push: ReturnType<typeof PushContext.build>, opts: ProxyOptions = {}): ProxyView {
  return push.resolveProxy(proxy(opts));
}
