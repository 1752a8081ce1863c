import type { Protocol } from './types.js';

const BY_NAME: Record<string, Protocol> = {
  http: 'HTTP',
  http2: 'HTTP2',
  http_proxy: 'HTTP_PROXY',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-Web',
  https: 'HTTPS',
  tls: 'TLS',
  tcp: 'TCP',
  udp: 'UDP',
  mongo: 'Mongo',
  redis: 'Redis',
  mysql: 'MySQL',
};

/** Istio's protocol name parsing (case-insensitive); unknown names are `Unsupported`. */
export function parseProtocol(s: string | undefined | null): Protocol {
  if (!s) return 'Unsupported';
  return BY_NAME[s.toLowerCase()] ?? 'Unsupported';
}

/** Kubernetes appProtocol values with Kubernetes-defined meanings. */
const K8S_APP_PROTOCOLS: Record<string, Protocol> = {
  'kubernetes.io/h2c': 'HTTP2',
  'kubernetes.io/ws': 'HTTP',
  'kubernetes.io/wss': 'HTTPS',
};

/**
 * The protocol of a Kubernetes service port, as istiod decides it:
 * UDP ports are UDP; otherwise `appProtocol` wins, then the port name's
 * prefix before the first `-` (`http-web` → HTTP, `grpc-web` → GRPC), else
 * `Unsupported` (protocol sniffing).
 */
export function protocolForKubePort(name: string | undefined | null, appProtocol?: string | null, l4?: string | null): Protocol {
  if (l4 === 'UDP') return 'UDP';
  if (l4 === 'SCTP') return 'Unsupported';
  if (appProtocol) {
    const k = K8S_APP_PROTOCOLS[appProtocol.toLowerCase()];
    if (k) return k;
    const p = parseProtocol(appProtocol);
    if (p !== 'Unsupported') return p;
  }
  if (!name) return 'Unsupported';
  const lower = name.toLowerCase();
  const exact = BY_NAME[lower];
  if (exact && lower !== 'grpc-web') return exact;
  const dash = lower.indexOf('-');
  return parseProtocol(dash >= 0 ? lower.slice(0, dash) : lower);
}

/** HTTP-family protocols: served by an HTTP connection manager (istiod's IsHTTP). */
export function isHttp(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-Web' || p === 'HTTP_PROXY';
}
/** A port whose protocol is detected at connection time (istiod's IsUnsupported): HTTP and TCP chains behind the HTTP inspector. */
export function isSniffed(p: Protocol): boolean {
  return p === 'Unsupported';
}
export function isHttp2(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-Web';
}
export function isGrpc(p: Protocol): boolean {
  return p === 'GRPC' || p === 'GRPC-Web';
}
/** TCP-family protocols (not HTTP, not sniffed, not UDP). */
export function isTcp(p: Protocol): boolean {
  return p === 'TCP' || p === 'HTTPS' || p === 'TLS' || p === 'Mongo' || p === 'Redis' || p === 'MySQL';
}

/**
 * The protocol a Sidecar `ingress` listener declares, for deciding its chain:
 * the names Istio parses, except UDP and HTTP_PROXY (not served inbound),
 * which like an unknown or missing name mean sniffing (`Unsupported`).
 */
export function sidecarIngressProtocol(s: string | undefined | null): Protocol {
  const p = parseProtocol(s);
  return p === 'UDP' || p === 'HTTP_PROXY' ? 'Unsupported' : p;
}

/** The protocols a Sidecar `egress` listener's port can override the service port's with. */
const EGRESS_OVERRIDES: ReadonlySet<Protocol> = new Set<Protocol>(['HTTP', 'HTTP2', 'GRPC', 'GRPC-Web', 'TCP', 'TLS', 'HTTPS']);

/**
 * The protocol of a service port seen through a Sidecar `egress` listener:
 * the listener's declared protocol when it names one of the HTTP or TCP
 * families above, else the service port's own (sniffing when omitted).
 */
export function egressPortProtocol(egressProtocol: string | undefined | null, servicePortProtocol: Protocol): Protocol {
  const p = parseProtocol(egressProtocol);
  return EGRESS_OVERRIDES.has(p) ? p : servicePortProtocol;
}
