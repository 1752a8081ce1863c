import { cmp } from './labels.js';
import type { ConfigObjectLike, IstioConfig } from './types.js';

/** Istio's config order: oldest first, then namespace, then name. */
export function configOrder(a: IstioConfig, b: IstioConfig): number {
  return cmp(a.metadata.creationTimestamp ?? '', b.metadata.creationTimestamp ?? '') || cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

/**
 * One IstioConfig per stored object, the same across push contexts while the
 * object is unchanged: translation memoizes by it (a VirtualService's routes,
 * sidecar.ts). Never mutated.
 */
const istioConfigs = new WeakMap<ConfigObjectLike, IstioConfig>();
export function toIstioConfig(obj: ConfigObjectLike): IstioConfig {
  let c = istioConfigs.get(obj);
  if (!c) {
    const spec = ((obj.body as { spec?: unknown } | undefined)?.spec ?? {}) as Record<string, any>;
    c = { kind: obj.kind, namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name, metadata: obj.metadata, spec };
    istioConfigs.set(obj, c);
  }
  return c;
}

/** Configs of one kind, indexed by namespace. */
export class ConfigIndex {
  readonly all: IstioConfig[];
  private readonly byNs = new Map<string, IstioConfig[]>();
  constructor(configs: IstioConfig[]) {
    this.all = [...configs].sort(configOrder);
    for (const c of this.all) {
      let l = this.byNs.get(c.namespace);
      if (!l) this.byNs.set(c.namespace, (l = []));
      l.push(c);
    }
  }
  inNamespace(ns: string): IstioConfig[] {
    return this.byNs.get(ns) ?? [];
  }
}
