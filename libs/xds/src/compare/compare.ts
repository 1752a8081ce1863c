/**
 * One proxy, two control planes: fetch what each serves it and diff. Used by
 * the parity suite and `sextant compare`.
 */
import type * as grpc from '@grpc/grpc-js';
import type { XdsDecoder } from './decode.js';
import { diffSnapshots } from './diff.js';
import { fetchXds, type NodeJson, type XdsSnapshot } from './fetch.js';
import type { ProxyComparison } from './report.js';

export interface ControlPlaneAddress {
  address: string;
  credentials?: grpc.ChannelCredentials;
}

export interface CompareProxyOptions {
  /** Label for reports (matrix name or pod). */
  proxy: string;
  node: NodeJson;
  client?: 'envoy' | 'grpc';
  listeners?: string[];
  istiod: ControlPlaneAddress;
  sextant: ControlPlaneAddress;
  decoder: XdsDecoder;
  /**
   * Fetch each side until two fetches in a row agree (at most this many
   * fetches; default 1, no check), so a control plane still catching up with
   * the cluster is not compared half-way.
   */
  settleFetches?: number;
  timeoutMs?: number;
}

async function settledFetch(cp: ControlPlaneAddress, opts: CompareProxyOptions): Promise<XdsSnapshot> {
  const fetchOnce = () =>
    fetchXds({
      address: cp.address,
      node: opts.node,
      decoder: opts.decoder,
      ...(cp.credentials ? { credentials: cp.credentials } : {}),
      ...(opts.client ? { client: opts.client } : {}),
      ...(opts.listeners ? { listeners: opts.listeners } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
  let last = await fetchOnce();
  const max = opts.settleFetches ?? 1;
  for (let i = 1; i < max; i++) {
    const next = await fetchOnce();
    if (diffSnapshots(last, next).length === 0) return next;
    last = next;
  }
  if (max > 1) throw new Error(`${cp.address} kept changing what it serves ${opts.node.id} over ${max} fetches`);
  return last;
}

export async function compareProxy(opts: CompareProxyOptions): Promise<ProxyComparison & { istiod: XdsSnapshot; sextant: XdsSnapshot }> {
  const [istiod, sextant] = await Promise.all([settledFetch(opts.istiod, opts), settledFetch(opts.sextant, opts)]);
  return { proxy: opts.proxy, nodeId: opts.node.id, differences: diffSnapshots(istiod, sextant), istiod, sextant };
}
