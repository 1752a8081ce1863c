import { cmp, exportedTo, hostMatches, resolveExportTo, resolveShortName, selectorMatches } from './labels.js';
import type { EgressListener, IstioConfig, ProxyView, Service, SidecarScope } from './types.js';

/** Parses Sidecar egress hosts (`ns/host`), resolving `.` to the Sidecar's namespace. */
export function parseEgress(sidecar: IstioConfig | undefined): EgressListener[] {
  if (!sidecar) return [];
  const egress = (sidecar.spec.egress ?? []) as Array<{ port?: EgressListener['port']; bind?: string; hosts: string[] }>;
  return egress.map((e) => ({
    port: e.port,
    bind: e.bind,
    hosts: e.hosts.map((h) => {
      const slash = h.indexOf('/');
      const ns = slash >= 0 ? h.slice(0, slash) : '*';
      const host = slash >= 0 ? h.slice(slash + 1) : h;
      return { namespace: ns === '.' ? sidecar.namespace : ns, host };
    }),
  }));
}

function egressAllows(egress: EgressListener[], namespace: string, hosts: readonly string[]): boolean {
  if (egress.length === 0) return true;
  for (const l of egress) {
    for (const h of l.hosts) {
      if (h.namespace === '~') continue;
      if (h.namespace !== '*' && h.namespace !== namespace) continue;
      if (hosts.some((host) => hostMatches(h.host, host))) return true;
    }
  }
  return false;
}

/** The Sidecar that applies to a proxy: a selector match in its namespace, else its namespace's default, else the root namespace's default. */
export function findSidecar(sidecars: IstioConfig[], proxy: ProxyView, rootNamespace: string): IstioConfig | undefined {
  const own = sidecars.filter((s) => s.namespace === proxy.namespace);
  const selected = own.find((s) => s.spec.workloadSelector?.labels && selectorMatches(s.spec.workloadSelector.labels, proxy.labels));
  if (selected) return selected;
  const nsDefault = own.find((s) => !s.spec.workloadSelector);
  if (nsDefault) return nsDefault;
  return sidecars.find((s) => s.namespace === rootNamespace && !s.spec.workloadSelector);
}

export function buildSidecarScope(
  proxy: ProxyView,
  sidecar: IstioConfig | undefined,
  services: Service[],
  virtualServices: IstioConfig[],
  defaultVsExportTo: readonly string[],
  meshOutboundMode: 'ALLOW_ANY' | 'REGISTRY_ONLY',
  domainSuffix = 'cluster.local',
): SidecarScope {
  const ns = proxy.namespace;
  // Gateways are not scoped by Sidecar resources.
  const egress = proxy.type === 'sidecar' ? parseEgress(sidecar) : [];
  const visible = services
    .filter((s) => exportedTo(s.exportTo, ns) && egressAllows(egress, s.namespace, [s.hostname]))
    .sort((a, b) => cmp(a.hostname, b.hostname) || cmp(a.namespace, b.namespace));
  // One service per hostname: the proxy's own namespace wins, then the oldest.
  const byHost = new Map<string, Service>();
  for (const s of visible) {
    const cur = byHost.get(s.hostname);
    if (!cur || (s.namespace === ns && cur.namespace !== ns) || (cur.namespace !== ns && s.creationTime < cur.creationTime)) byHost.set(s.hostname, s);
  }
  const scoped = [...byHost.values()];
  const vss = virtualServices.filter((vs) => {
    const exportTo = resolveExportTo(vs.spec.exportTo, vs.namespace, defaultVsExportTo);
    // Egress hosts are FQDNs: a VirtualService's short hosts are matched as istiod resolves them (in its own namespace).
    const hosts = ((vs.spec.hosts ?? []) as string[]).map((h) => resolveShortName(h, vs.namespace, domainSuffix));
    return exportedTo(exportTo, ns) && egressAllows(egress, vs.namespace, hosts);
  });
  const mode = (sidecar?.spec.outboundTrafficPolicy?.mode as 'ALLOW_ANY' | 'REGISTRY_ONLY' | undefined) ?? meshOutboundMode;
  return {
    namespace: ns,
    sidecar: proxy.type === 'sidecar' ? sidecar : undefined,
    egress,
    services: scoped,
    virtualServices: vss,
    hasService: (h: string) => byHost.has(h),
    outboundTrafficPolicy: mode,
  };
}
