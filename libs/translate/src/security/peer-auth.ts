/**
 * PeerAuthentication resolution as istiod does it (pilot/pkg/security/authn:
 * ComposePeerAuthentication): one mesh-wide policy (root namespace, no
 * selector), one namespace-wide policy (no selector) and one workload policy
 * (selector matching the workload's labels, not in the root namespace) apply;
 * within one scope the oldest object wins (ties: namespace, then name). The
 * narrowest scope that sets a mode wins, UNSET (or no `mtls`) inherits from the
 * scope above, and with nothing set the mode is PERMISSIVE. `portLevelMtls`
 * of the workload policy overrides per workload (target) port; UNSET there
 * inherits the workload's mode. Pure.
 */
import type { IstioConfig, ProxyView, PushContext } from '@sextant/model';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface EffectivePeerAuthentication {
  /** The mode for ports without a port-level setting. */
  mode: MtlsMode;
  /** Port-level overrides by workload port. */
  perPort: Map<number, MtlsMode>;
  /** The objects that took part, `namespace/name`, for debugging: mesh, namespace, workload. */
  from: { mesh?: string; namespace?: string; workload?: string };
}

/** The PeerAuthentication fields read here (validated by @sextant/api's schema). */
interface PeerAuthenticationFields {
  selector?: { matchLabels?: Record<string, string> | null } | null;
  mtls?: MtlsFields | null;
  portLevelMtls?: Record<string, MtlsFields | null> | null;
}
interface MtlsFields {
  mode?: string | null;
}
const specOf = (pa: IstioConfig): PeerAuthenticationFields => pa.spec as PeerAuthenticationFields;

function modeOf(mtls: MtlsFields | undefined | null): MtlsMode | undefined {
  const m = mtls?.mode;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
}

function hasSelector(pa: IstioConfig): boolean {
  const ml = specOf(pa).selector?.matchLabels;
  return !!ml && Object.keys(ml).length > 0;
}

function selects(pa: IstioConfig, labels: Record<string, string>): boolean {
  const ml = specOf(pa).selector?.matchLabels ?? {};
  return Object.entries(ml).every(([k, v]) => labels[k] === v);
}

function created(pa: IstioConfig): number {
  const t: unknown = pa.metadata?.creationTimestamp;
  const ms = t ? Date.parse(String(t)) : NaN;
  // Objects without a timestamp (folder source) sort after timestamped ones, then by name.
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

/** istiod's "oldest wins" within one scope, made deterministic for equal timestamps. */
function oldest(list: IstioConfig[]): IstioConfig | undefined {
  let best: IstioConfig | undefined;
  for (const pa of list) {
    if (!best) {
      best = pa;
      continue;
    }
    const a = created(pa);
    const b = created(best);
    if (a < b || (a === b && (pa.namespace < best.namespace || (pa.namespace === best.namespace && pa.name < best.name)))) best = pa;
  }
  return best;
}

const ref = (pa: IstioConfig | undefined) => (pa ? `${pa.namespace}/${pa.name}` : undefined);

/** The PeerAuthentication in effect for a workload in `namespace` with `labels`. */
export function composePeerAuthentication(push: PushContext, namespace: string, labels: Record<string, string>): EffectivePeerAuthentication {
  const root = push.mesh.rootNamespace;
  const meshPa = oldest(push.configs('PeerAuthentication', root).filter((p) => !hasSelector(p)));
  const nsPa = namespace === root ? undefined : oldest(push.configs('PeerAuthentication', namespace).filter((p) => !hasSelector(p)));
  const wlPa = namespace === root ? undefined : oldest(push.configs('PeerAuthentication', namespace).filter((p) => hasSelector(p) && selects(p, labels)));
  let mode: MtlsMode = 'PERMISSIVE';
  for (const pa of [meshPa, nsPa, wlPa]) {
    const m = modeOf(pa && specOf(pa).mtls);
    if (m) mode = m;
  }
  const perPort = new Map<number, MtlsMode>();
  for (const [port, mtls] of Object.entries((wlPa && specOf(wlPa).portLevelMtls) ?? {})) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) continue;
    perPort.set(n, modeOf(mtls) ?? mode);
  }
  const from: EffectivePeerAuthentication['from'] = {};
  if (meshPa) from.mesh = ref(meshPa)!;
  if (nsPa) from.namespace = ref(nsPa)!;
  if (wlPa) from.workload = ref(wlPa)!;
  return { mode, perPort, from };
}

/** The proxy's effective PeerAuthentication (its namespace and labels). */
export function peerAuthenticationForProxy(push: PushContext, proxy: ProxyView): EffectivePeerAuthentication {
  return composePeerAuthentication(push, proxy.namespace, proxy.labels);
}

/** The mTLS mode of one workload port of the proxy. */
export function mtlsModeForPort(push: PushContext, proxy: ProxyView, port: number): MtlsMode {
  const eff = peerAuthenticationForProxy(push, proxy);
  return eff.perPort.get(port) ?? eff.mode;
}

/**
 * istiod's best-effort guess of a service's server-side mode, used to turn auto
 * mTLS off for a destination: namespace-wide then mesh-wide policy (workload
 * policies are not considered, as in istiod).
 */
export function inferServiceMtlsMode(push: PushContext, serviceNamespace: string): MtlsMode {
  return composePeerAuthentication(push, serviceNamespace, {}).mode;
}
