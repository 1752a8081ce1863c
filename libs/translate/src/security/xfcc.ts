/**
 * X-Forwarded-Client-Cert on gateway HCMs, as istiod sets it
 * (networking/core/gateway.go): `SANITIZE_SET` unless the proxy's ProxyConfig
 * `gatewayTopology.forwardClientCertDetails` says otherwise; with
 * `APPEND_FORWARD` or `SANITIZE_SET` the current client certificate's
 * subject, cert, DNS and URI SANs are set. A client can then never forge the
 * header through the gateway. `gatewayTopology.numTrustedProxies` becomes
 * `xffNumTrustedHops`. Pure.
 */
import type { HttpConnectionManagerJson } from '@sextant/envoy';
import type { ProxyView } from '@sextant/model';
import { nodeProxyConfig } from '../common.js';

type Json = Record<string, any>;

const MODES = new Set(['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY']);

/** The XFCC and XFF settings of a gateway's HCMs. */
export function gatewayClientCertSettings(proxy: ProxyView): Partial<HttpConnectionManagerJson> {
  const topo = (nodeProxyConfig(proxy)?.gatewayTopology ?? {}) as Json;
  const configured = String(topo.forwardClientCertDetails ?? '');
  const mode = MODES.has(configured) ? configured : 'SANITIZE_SET';
  const out: Partial<HttpConnectionManagerJson> = { forwardClientCertDetails: mode as HttpConnectionManagerJson['forwardClientCertDetails'] };
  if (mode === 'APPEND_FORWARD' || mode === 'SANITIZE_SET') out.setCurrentClientCertDetails = { subject: true, cert: true, dns: true, uri: true };
  const hops = Number(topo.numTrustedProxies);
  if (Number.isInteger(hops) && hops > 0) out.xffNumTrustedHops = hops;
  return out;
}
