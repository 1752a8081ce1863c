import type { ValidationIssue } from '@sextant/api';
import { cmp, exportedTo, hostMatches, resolveExportTo, resolveShortName, selectorMatches } from './labels.js';
import type { IstioConfig, MergedDestinationRule } from './types.js';

export interface IndexedRule extends MergedDestinationRule {
  namespace: string;
  exportTo: string[];
  selector: Record<string, string> | undefined;
}

/**
 * DestinationRules merged the way istiod merges them: within a namespace,
 * rules for the same host (without workload selectors) become one; the
 * oldest rule's trafficPolicy wins and later rules add subsets they do not
 * share. Rules with a workloadSelector are kept apart.
 */
export class DestinationRuleIndex {
  private readonly byNs = new Map<string, IndexedRule[]>();

  constructor(rules: IstioConfig[], domainSuffix: string, defaultExportTo: readonly string[], issues: ValidationIssue[]) {
    for (const dr of rules) {
      const spec = dr.spec as { host?: string; exportTo?: string[]; workloadSelector?: { matchLabels?: Record<string, string> }; subsets?: Array<{ name: string }>; trafficPolicy?: unknown };
      if (!spec.host) continue;
      const host = resolveShortName(spec.host, dr.namespace, domainSuffix);
      const exportTo = resolveExportTo(spec.exportTo, dr.namespace, defaultExportTo);
      const selector = spec.workloadSelector?.matchLabels;
      let list = this.byNs.get(dr.namespace);
      if (!list) this.byNs.set(dr.namespace, (list = []));
      const existing = selector ? undefined : list.find((r) => r.host === host && !r.selector);
      if (!existing) {
        list.push({ host, namespace: dr.namespace, exportTo, selector, spec: { ...spec, host, subsets: [...(spec.subsets ?? [])] }, from: [{ namespace: dr.namespace, name: dr.name }] });
        continue;
      }
      existing.from.push({ namespace: dr.namespace, name: dr.name });
      existing.exportTo = [...new Set([...existing.exportTo, ...exportTo])].sort(cmp);
      const subsets = existing.spec.subsets as Array<{ name: string }>;
      (spec.subsets ?? []).forEach((s, i) => {
        if (subsets.some((x) => x.name === s.name)) {
          issues.push({
            kind: 'DestinationRule',
            namespace: dr.namespace,
            name: dr.name,
            field: `spec.subsets[${i}].name`,
            reason: `subset "${s.name}" for host ${host} is already defined by DestinationRule ${existing.from[0]!.namespace}/${existing.from[0]!.name}; this one is ignored`,
          });
        } else subsets.push(s);
      });
      if (existing.spec.trafficPolicy === undefined && spec.trafficPolicy !== undefined) existing.spec.trafficPolicy = spec.trafficPolicy;
    }
  }

  /** Per namespace: exact rule hosts, and whether any rule host is a wildcard (built on first lookup). */
  private hostIndex: Map<string, { exact: Set<string>; wildcard: boolean }> | undefined;
  /** Per hostname: the namespaces that may hold a rule for it (exact host or any wildcard rule), sorted; built on first lookup of the host. */
  private candidates = new Map<string, string[]>();
  private sortedNs: string[] | undefined;

  /** Whether namespace `ns` may hold a rule for `hostname` (a cheap pre-check; hostMatches decides). */
  private mayMatch(ns: string, hostname: string): boolean {
    const idx = this.index().get(ns);
    if (!idx) return false;
    return idx.wildcard || hostname.startsWith('*') || idx.exact.has(hostname);
  }

  private index(): Map<string, { exact: Set<string>; wildcard: boolean }> {
    if (!this.hostIndex) {
      this.hostIndex = new Map();
      for (const [n, rules] of this.byNs) this.hostIndex.set(n, { exact: new Set(rules.map((r) => r.host)), wildcard: rules.some((r) => r.host.startsWith('*')) });
    }
    return this.hostIndex;
  }

  /**
   * The namespaces, in name order, that may hold a rule for `hostname`: a
   * lookup walks these instead of every namespace with rules (one per service
   * and class on the route path, so the walk was O(namespaces) each time).
   */
  private namespacesFor(hostname: string): string[] {
    let c = this.candidates.get(hostname);
    if (!c) {
      this.sortedNs ??= [...this.byNs.keys()].sort(cmp);
      c = this.sortedNs.filter((ns) => this.mayMatch(ns, hostname));
      this.candidates.set(hostname, c);
    }
    return c;
  }

  /** Rules of one namespace, visible from `fromNs`, for the proxy's labels, best host match first. */
  private lookupIn(ns: string, fromNs: string, labels: Record<string, string> | undefined, hostname: string): IndexedRule | undefined {
    if (!this.mayMatch(ns, hostname)) return undefined;
    const candidates = (this.byNs.get(ns) ?? []).filter(
      (r) => exportedTo(r.exportTo, fromNs) && (!r.selector || (labels !== undefined && ns === fromNs && selectorMatches(r.selector, labels))) && hostMatches(r.host, hostname),
    );
    if (candidates.length === 0) return undefined;
    // Selector rules first (more specific), then exact host, then the longest wildcard.
    candidates.sort((a, b) => Number(!!b.selector) - Number(!!a.selector) || Number(b.host === hostname) - Number(a.host === hostname) || b.host.length - a.host.length);
    return candidates[0];
  }

  /**
   * The rule for `hostname` as a proxy in `fromNs` sees it: its own namespace
   * first, then the service's namespace, then the root namespace, then any
   * other namespace that exports a rule to it. Without `labels`, rules with a
   * workloadSelector are skipped.
   */
  lookup(fromNs: string, labels: Record<string, string> | undefined, hostname: string, serviceNs: string | undefined, rootNs: string): MergedDestinationRule | undefined {
    const namespaces = this.namespacesFor(hostname);
    if (namespaces.length === 0) return undefined;
    const first = [fromNs, serviceNs, rootNs];
    for (const ns of first) {
      if (!ns) continue;
      const r = this.lookupIn(ns, fromNs, labels, hostname);
      if (r) return r;
    }
    for (const ns of namespaces) {
      if (first.includes(ns)) continue;
      const r = this.lookupIn(ns, fromNs, labels, hostname);
      if (r) return r;
    }
    return undefined;
  }

  /** Subset names by hostname (subsetNames), built on first lookup of the host. */
  private subsetsByHost = new Map<string, ReadonlySet<string>>();

  /**
   * The subset names of every rule whose host matches `hostname`, in any
   * namespace, with or without a workload selector, whatever it exports to:
   * the subset clusters an endpoint change of the host can touch. Only the
   * namespaces that may hold a rule for the host are read (`namespacesFor`):
   * the endpoint path asks once per changed service, before its push, and
   * walking every rule of the mesh each time grew with the mesh.
   */
  subsetNames(hostname: string): ReadonlySet<string> {
    let names = this.subsetsByHost.get(hostname);
    if (names) return names;
    const found = new Set<string>();
    for (const ns of this.namespacesFor(hostname)) {
      for (const r of this.byNs.get(ns) ?? []) {
        if (!hostMatches(r.host, hostname)) continue;
        for (const s of (r.spec.subsets ?? []) as Array<{ name: string }>) found.add(s.name);
      }
    }
    names = found;
    this.subsetsByHost.set(hostname, names);
    return names;
  }

  all(): IndexedRule[] {
    return [...this.byNs.values()].flat();
  }
}
