/**
 * NDS: the name table pilot-agent's DNS proxy answers from
 * (`istio.networking.nds.v1.NameTable`, proto/istio/networking/nds/v1/nds.proto),
 * and VIP auto-allocation for ServiceEntries without addresses, as istiod does
 * (pkg/dns/server BuildNameTable; pilot/pkg/serviceregistry/serviceentry
 * autoAllocateIPs). Pure: the allocation is a function of the services of one
 * push, memoised per PushContext.
 */
import type { ProxyView, PushContext, Service } from '@sextant/model';

export const NDS_TYPE_URL = 'type.googleapis.com/istio.networking.nds.v1.NameTable';

export interface NameInfo {
  ips: string[];
  registry: string;
  shortname?: string;
  namespace?: string;
}

export interface NameTable {
  table: Record<string, NameInfo>;
}

// istiod's constants: slots in 240.240.0.0/16 (third octet 0..255, fourth 1..254) and the prime below them for double hashing.
const MAX_IPS = 256 * 254;
const PRIME = 65011;

/** FNV-1a, 32 bits (Go's hash/fnv New32a). */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** `namespace/hostname`, istiod's Service.Key(). */
function serviceKey(svc: Service): string {
  return `${svc.namespace}/${svc.hostname}`;
}

/** Whether istiod would allocate an address: a ServiceEntry host with no address, not a wildcard, resolution not NONE. */
function needsAddress(svc: Service): boolean {
  return (
    svc.attributes.serviceRegistry === 'External' &&
    (svc.clusterVIP === '0.0.0.0' || svc.clusterVIP === '') &&
    svc.addresses.length === 0 &&
    !svc.hostname.startsWith('*') &&
    svc.resolution !== 'Passthrough'
  );
}

/**
 * Addresses in 240.240.0.0/16 for the ServiceEntry services without one, by
 * `namespace/hostname`. The slot is FNV-1a(key) mod the slot count, collisions
 * resolved by double hashing; addresses are then given in slot order, skipping
 * fourth octets 0 and 255. Deterministic for a set of services: the same
 * config gives the same addresses on every Sextant (and as istiod's
 * allocator, for services processed in the same order).
 */
export function autoAllocateAddresses(services: readonly Service[]): Map<string, string> {
  // istiod orders by creation time, then object name and namespace.
  const candidates = services
    .filter(needsAddress)
    .slice()
    .sort((a, b) => cmp(a.creationTime, b.creationTime) || cmp(a.attributes.origin.name, b.attributes.origin.name) || cmp(a.namespace, b.namespace) || cmp(a.hostname, b.hostname));
  const slots: Array<string | undefined> = new Array(MAX_IPS);
  let placed = 0;
  for (const svc of candidates) {
    if (placed >= MAX_IPS) break;
    const key = serviceKey(svc);
    const s = fnv1a32(key);
    const first = s % MAX_IPS;
    if (slots[first] === undefined) slots[first] = key;
    else if (slots[first] !== key) {
      const second = PRIME - (s % PRIME);
      for (let i = 1; ; i++) {
        const nh = ((s + Math.imul(i, second) >>> 0) >>> 0) % (MAX_IPS - 1);
        if (slots[nh] === undefined) {
          slots[nh] = key;
          break;
        }
        if (slots[nh] === key) break;
      }
    }
    placed++;
  }
  const out = new Map<string, string>();
  let x = 0;
  for (const key of slots) {
    x++;
    if (key === undefined) continue;
    if (x % 255 === 0) x++;
    if (!out.has(key)) out.set(key, `240.240.${Math.floor(x / 255)}.${x % 255}`);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const allocations = new WeakMap<PushContext, Map<string, string>>();

/** The auto-allocated addresses of one push (computed once per PushContext). */
export function autoAllocatedAddresses(push: PushContext): Map<string, string> {
  let m = allocations.get(push);
  if (!m) allocations.set(push, (m = autoAllocateAddresses(push.allServices())));
  return m;
}

function metaTrue(proxy: ProxyView, key: string): boolean {
  const v = proxy.metadata.raw[key] ?? proxy.metadata.raw[`ISTIO_META_${key}`];
  return v === true || v === 'true' || v === 'True' || v === '1';
}

/** `ISTIO_META_DNS_CAPTURE`: the proxy's agent answers DNS from the name table. */
export function dnsCapture(proxy: ProxyView): boolean {
  return metaTrue(proxy, 'DNS_CAPTURE');
}

/** `ISTIO_META_DNS_AUTO_ALLOCATE` (with DNS capture): the proxy uses auto-allocated ServiceEntry addresses. */
export function dnsAutoAllocate(proxy: ProxyView): boolean {
  return dnsCapture(proxy) && metaTrue(proxy, 'DNS_AUTO_ALLOCATE');
}

/**
 * The address a proxy uses for a service (istiod's GetAddressForProxy): its
 * VIP, else, for a proxy with DNS capture and auto-allocation, the
 * auto-allocated one, else `0.0.0.0`.
 */
export function serviceAddressForProxy(push: PushContext, proxy: ProxyView, svc: Service): string {
  if (svc.clusterVIP && svc.clusterVIP !== '0.0.0.0') return svc.clusterVIP;
  if (dnsAutoAllocate(proxy)) return autoAllocatedAddresses(push).get(serviceKey(svc)) ?? '0.0.0.0';
  return '0.0.0.0';
}

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
function isIp(s: string): boolean {
  return IPV4.test(s) || (s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s));
}

/**
 * The name table of a sidecar (istiod's BuildNameTable): every service it
 * sees, by host name, with its address (VIP or auto-allocated); headless
 * services with their endpoints' addresses. Kubernetes services carry their
 * name and namespace so the agent also answers the short forms. Undefined for
 * proxies that are not sidecars.
 */
export function buildNameTable(push: PushContext, proxy: ProxyView): NameTable | undefined {
  if (proxy.type !== 'sidecar') return undefined;
  const table: Record<string, NameInfo> = {};
  for (const svc of push.sidecarScope(proxy).services) {
    const address = serviceAddressForProxy(push, proxy, svc);
    let ips: string[] = [];
    if (address !== '0.0.0.0') {
      if (!isIp(address)) continue; // a CIDR
      ips = [address];
    } else if (svc.resolution === 'Passthrough' && svc.ports.length > 0) {
      ips = [...new Set(push.endpoints(svc, svc.ports[0]!).map((e) => e.address).filter(isIp))];
      if (ips.length === 0) continue;
    } else continue;
    const existing = table[svc.hostname];
    if (!existing) {
      const info: NameInfo = { ips, registry: svc.attributes.serviceRegistry };
      if (svc.attributes.serviceRegistry === 'Kubernetes' && !svc.hostname.endsWith('.clusterset.local')) {
        info.namespace = svc.attributes.namespace;
        info.shortname = svc.attributes.name;
      }
      table[svc.hostname] = info;
    } else if (existing.registry !== 'Kubernetes') {
      // A Kubernetes service wins over a ServiceEntry of the same host; two ServiceEntries merge their addresses.
      if (svc.attributes.serviceRegistry === 'Kubernetes') {
        table[svc.hostname] = { ips, registry: 'Kubernetes', namespace: svc.attributes.namespace, shortname: svc.attributes.name };
      } else existing.ips = [...existing.ips, ...ips];
    }
  }
  return { table };
}

// --- Encoding: NameTable is small and fixed; its wire form is written here (field numbers from nds.proto).

function varint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}
function lenField(out: number[], field: number, bytes: Uint8Array | number[]): void {
  varint(out, (field << 3) | 2);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}
const str = (s: string) => Buffer.from(s, 'utf8');

function encodeNameInfo(info: NameInfo): number[] {
  const out: number[] = [];
  for (const ip of info.ips) lenField(out, 1, str(ip));
  if (info.registry) lenField(out, 2, str(info.registry));
  if (info.shortname) lenField(out, 3, str(info.shortname));
  if (info.namespace) lenField(out, 4, str(info.namespace));
  return out;
}

/** The protobuf encoding of a NameTable, map entries sorted by host name (deterministic). */
export function encodeNameTable(nt: NameTable): Uint8Array {
  const out: number[] = [];
  for (const host of Object.keys(nt.table).sort()) {
    const entry: number[] = [];
    lenField(entry, 1, str(host));
    lenField(entry, 2, encodeNameInfo(nt.table[host]!));
    lenField(out, 1, entry);
  }
  return Uint8Array.from(out);
}
