/**
 * LDS for a sidecar: assembles the outbound (`outbound.ts`) and inbound
 * (`inbound.ts`) listeners, in iptables mode or with interception NONE. Pure.
 */
import type { ListenerJson } from '@sextant/envoy';
import { egressPortProtocol, isHttp, type ProxyView, type PushContext } from '@sextant/model';
import { hcmRds, socketAddress } from './filters.js';
import { mtlsInbound } from '../security/mtls.js';
import { inboundPorts } from './inbound-ports.js';
import { egressAdmits } from '../route/sidecar.js';
import type { ListenerOptions } from '../generator/types.js';
import { boundInboundListener, virtualInbound } from './inbound.js';
import { egressListeners, MeshVirtualServices, outboundPortListeners, virtualOutbound } from './outbound.js';

export { plaintextInbound, type InboundTlsHook } from './inbound.js';
export { egressListeners } from './outbound.js';

/** Sidecar LDS. With interception mode NONE, only bound egress and Sidecar ingress listeners (and no 15001/15006) are built. */
export function buildSidecarListeners(push: PushContext, proxy: ProxyView, opts: ListenerOptions = {}): ListenerJson[] {
  const scope = push.sidecarScope(proxy);
  const egress = egressListeners(push, proxy);
  const out: ListenerJson[] = [];
  const noIptables = proxy.interceptionMode === 'NONE';
  const catchAllEgress = egress.find((e) => !e.port);
  const vss = new MeshVirtualServices(push, proxy);
  // Sidecar egress listeners with a port: bound listeners when captureMode NONE (or no iptables at all).
  for (const e of egress) {
    if (!e.port) continue;
    const bound = e.captureMode === 'NONE' || noIptables;
    const svcs = scope.services.filter((s) => egressAdmits(e, s));
    // A Sidecar egress port may omit its protocol (sniffing); the service port's protocol applies then.
    const proto = e.port.protocol;
    const fakeSvcs = svcs
      .map((s) => ({ ...s, ports: s.ports.filter((p) => p.port === e.port!.number || svcs.length === 1).map((p) => ({ ...p, protocol: egressPortProtocol(proto, p.protocol) })) }))
      .filter((s) => s.ports.length);
    if (bound) {
      const address = e.bind || '127.0.0.1';
      if (isHttp(egressPortProtocol(proto, 'TCP'))) {
        out.push({
          name: `${address}_${e.port.number}`,
          address: socketAddress(address, e.port.number),
          filterChains: [{ filters: [hcmRds(`outbound_${address}_${e.port.number}`, String(e.port.number), { mesh: push.mesh })] }],
          trafficDirection: 'OUTBOUND',
        });
      } else if (fakeSvcs.length) {
        out.push(...outboundPortListeners(push, proxy, fakeSvcs.slice(0, 1), vss, { address, port: e.port.number }));
      }
    } else {
      out.push(...outboundPortListeners(push, proxy, fakeSvcs, vss));
    }
  }
  const hook = opts.inboundTls ?? mtlsInbound;
  const inbound = inboundPorts(push, proxy);
  // Sidecar ingress listeners that bind a socket (captureMode NONE, or no interception).
  for (const ip of inbound) if (ip.bindToPort) out.push(boundInboundListener(push, proxy, hook, ip));
  if (!noIptables) {
    const explicitPorts = new Set(egress.filter((e) => e.port).map((e) => e.port!.number));
    const rest = catchAllEgress || egress.length === 0 ? (catchAllEgress ? scope.services.filter((s) => egressAdmits(catchAllEgress, s)) : scope.services) : [];
    const restPorts = rest.map((s) => ({ ...s, ports: s.ports.filter((p) => !explicitPorts.has(p.port)) })).filter((s) => s.ports.length);
    const names = new Set(out.map((l) => l.name));
    // Only the catch-all egress listener gives headless Services per-pod listeners (istiod's buildSidecarOutboundListeners).
    for (const l of outboundPortListeners(push, proxy, restPorts, vss, undefined, { headlessPods: true })) if (!names.has(l.name)) out.push(l);
    out.push(virtualOutbound(push, proxy));
    out.push(virtualInbound(push, proxy, hook, inbound.filter((ip) => !ip.bindToPort)));
  }
  out.sort((a, b) => ((a.name ?? '') < (b.name ?? '') ? -1 : (a.name ?? '') > (b.name ?? '') ? 1 : 0));
  return out;
}
