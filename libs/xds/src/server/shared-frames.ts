/**
 * Responses built once and written to many streams. Nonces, and the frame
 * caches: whole-set SotW responses per generator output (Map identity), type
 * and version; Delta responses per output (whole, or a push's diff) while the
 * push queue is busy; incremental (EDS) responses per set of changed
 * resources, for the current incremental version only. A shared frame carries
 * a sequence number so a stream is never sent the same frame (and nonce)
 * twice for one type.
 */
import {
  encodeDeltaDiscoveryResponse,
  encodeDeltaResourcesFields,
  encodeDiscoveryResponse,
  type EncodedResource,
} from '@sextant/envoy';
import { LayeredMap } from '../cache/layered-map.js';
import { framePrefix, grpcFramedInPlace, grpcFramedParts } from '../frames.js';

export interface SharedFrame {
  seq: number;
  nonce: string;
  /** The response, pre-framed for grpc-js when that is enabled (see frames.ts). */
  frame: Buffer;
}

/**
 * The first stream's response of an output that may be its alone (a proxy's
 * own inbound layer), held weakly: a second stream with the same output gets
 * the same bytes while the first one's are still held (in the transport, as
 * they usually are), and they are kept from then on. Before, the first stream
 * got a message of its own and the second a shared copy, so a class's
 * response was built twice; a thousand-host route configuration that is
 * megabytes a class, and V8 counts every such buffer towards its next full
 * collection.
 */
interface WeakFrame {
  seq: number;
  nonce: string;
  ref: WeakRef<Buffer>;
}
type KeptFrame = SharedFrame | WeakFrame;

/** The frame kept under `key` unless this stream had it (`seq <= lastSeq`), else a new one from `make`, kept (weakly when nothing was kept before and `weakFirst`). */
function frameFor<K>(kept: Map<K, KeptFrame>, key: K, lastSeq: number, make: () => SharedFrame, weakFirst = false): SharedFrame {
  const f = kept.get(key);
  if (f && f.seq > lastSeq) {
    if ('frame' in f) return f;
    const frame = f.ref.deref();
    if (frame) {
      const strong = { seq: f.seq, nonce: f.nonce, frame };
      kept.set(key, strong);
      return strong;
    }
  }
  const next = make();
  kept.set(key, weakFirst && f === undefined ? { seq: next.seq, nonce: next.nonce, ref: new WeakRef(next.frame) } : next);
  return next;
}

/**
 * An incremental EDS response shared by the streams of one push that have the
 * same generator output and changed names: the candidate resources, their frame,
 * and the `sent` maps built from each earlier `sent` map (streams in one class
 * share those too), so per-stream work is a short check, not string keys and
 * Map copies.
 */
export interface IncrementalShare {
  list: EncodedResource[];
  /** Key of `list` in the incremental frames (streams with other generator outputs but the same changes share the frame too). */
  key: string;
  frame: SharedFrame | undefined;
  /** Delta responses carrying resources of `list` and nothing removed, by the names they carry ('' for all of `list`). */
  deltaFrames: Map<string, KeptFrame> | undefined;
  merged: WeakMap<ReadonlyMap<string, EncodedResource>, ReadonlyMap<string, EncodedResource>>;
}

export class FrameCache {
  private seq = 0;
  /** Whole-set SotW responses framed once per generator output (Map identity), type and version. */
  private frames = new WeakMap<ReadonlyMap<string, EncodedResource>, Map<string, KeptFrame>>();
  /**
   * Delta responses carrying a whole generator output, per output, type and
   * version: kept only while the push queue is busy (`release`), since
   * holding them as long as the outputs live kept a class's whole first
   * response (megabytes at S = 1000) per output.
   */
  private deltaWholeFrames = new Map<ReadonlyMap<string, EncodedResource>, Map<string, KeptFrame>>();
  /**
   * The first layer of layered outputs (a class's outbound clusters) as Delta
   * `resources` fields, per layer unit, for as long as the unit lives (the
   * class cache holds it); units with the same resources in the same order
   * (the classes of a mesh without Sidecars) share one buffer, found by their
   * size and first resource (`layerUnits`, held weakly).
   */
  private layerFields = new WeakMap<ReadonlyMap<string, EncodedResource>, Buffer>();
  private layerUnits = new Map<string, WeakRef<ReadonlyMap<string, EncodedResource>>[]>();
  /**
   * Delta responses of a push that are the same for every stream with the
   * same output, the same `sent` map and the same subscription (what a
   * VirtualService edit sends a class: its route configuration): output →
   * sent → names (or wildcard) → frame, per version, while the push queue is
   * busy; the first one weakly (WeakFrame).
   */
  private deltaDiffFrames = new WeakMap<ReadonlyMap<string, EncodedResource>, WeakMap<ReadonlyMap<string, EncodedResource>, Map<ReadonlySet<string> | typeof WILDCARD, KeptFrame>>>();
  private deltaDiffVersion = '';
  /** Layered outputs sent whole once since the last release (written in parts the first time). */
  private layeredSentOnce = new WeakSet<ReadonlyMap<string, EncodedResource>>();
  /** Incremental (EDS) responses shared by streams that get the same changed resources, for the current incremental version. */
  private incrementalFrames = new Map<string, KeptFrame>();
  private incrementalVersion = '';
  /** Per push: generator output → changed-names set → shared incremental response. */
  private incrementalShares = new WeakMap<ReadonlyMap<string, EncodedResource>, WeakMap<ReadonlySet<string>, IncrementalShare>>();

  constructor(
    private readonly noncePrefix: string,
    /** Sent as control_plane on every response (ControlPlane message bytes). */
    private readonly controlPlane: Uint8Array | undefined,
  ) {}

  nonce(): string {
    return `${this.noncePrefix}-${(++this.seq).toString(36)}`;
  }

  /** A frame for many streams: its sequence number and nonce, and the message built with that nonce. */
  private sharedFrame(message: (nonce: string) => Buffer): SharedFrame {
    const nonce = this.nonce();
    return { seq: this.seq, nonce, frame: message(nonce) };
  }

  /** A SotW response for one stream only, framed for grpc-js where the hook is on. */
  sotwMessage(typeUrl: string, nonce: string, version: string, list: readonly EncodedResource[]): Buffer {
    return grpcFramedInPlace(encodeDiscoveryResponse(this.header(typeUrl, nonce, version), list.map((r) => r.any), framePrefix()));
  }

  /** A Delta response, framed for grpc-js where the hook is on. */
  deltaMessage(typeUrl: string, nonce: string, version: string, resources: readonly EncodedResource[], removed: string[]): Buffer {
    return grpcFramedInPlace(encodeDeltaDiscoveryResponse(this.header(typeUrl, nonce, version), resources, removed, framePrefix()));
  }

  /**
   * A Delta response carrying every resource of a layered output and nothing
   * removed (a proxy's first CDS), in parts, in the merge's order: the first
   * layer's resources, encoded once and shared by every stream sent that
   * layer whole, then the stream's own fields and what its later layers add. Where a proxy's
   * output is its own (its inbound clusters), this spares copying the whole
   * class's clusters into a response per proxy. Undefined where it does not
   * apply (not layered, an override layer, or no pre-framed writes).
   */
  deltaLayeredWhole(out: ReadonlyMap<string, EncodedResource>, typeUrl: string, nonce: string, version: string): Buffer[] | undefined {
    if (!inParts(out)) return undefined;
    const split = out.split();
    if (!split || split.first.size === 0) return undefined;
    const shared = this.firstLayerFields(split.first);
    const own = encodeDeltaDiscoveryResponse(this.header(typeUrl, nonce, version), split.rest, []);
    return grpcFramedParts([shared, own]);
  }

  private firstLayerFields(layer: ReadonlyMap<string, EncodedResource>): Buffer {
    let b = this.layerFields.get(layer);
    if (b) return b;
    const first = layer.values().next().value!;
    const sig = `${layer.size}\u0000${first.name}\u0000${first.version}`;
    let units = this.layerUnits.get(sig);
    if (!units) {
      if (this.layerUnits.size >= 1024) this.layerUnits.clear();
      this.layerUnits.set(sig, (units = []));
    }
    for (let i = units.length - 1; i >= 0; i--) {
      const other = units[i]!.deref();
      if (!other) units.splice(i, 1);
      else if (!b && sameEntries(other, layer)) b = this.layerFields.get(other);
    }
    b ??= encodeDeltaResourcesFields([...layer.values()]);
    this.layerFields.set(layer, b);
    units.push(new WeakRef(layer));
    return b;
  }

  /** One frame per (generator output, type, version), shared by every stream it fits; `lastSeq`: the stream's last shared frame of this type. */
  whole(out: ReadonlyMap<string, EncodedResource>, typeUrl: string, version: string, list: EncodedResource[], lastSeq: number): SharedFrame {
    let byKey = this.frames.get(out);
    if (!byKey) this.frames.set(out, (byKey = new Map()));
    return frameFor(byKey, `${typeUrl}\u0000${version}`, lastSeq, () => this.newFrame(typeUrl, version, list));
  }

  /**
   * A Delta response carrying every resource of `out` and no removals (what
   * each stream of a class is sent first), shared like `whole` by the streams
   * that get the same output, type and version while the push queue is busy;
   * kept weakly until a second stream asks for it, since outputs of one proxy
   * (its own inbound layer) are never shared. Undefined the first time for a
   * layered output: that stream is written in parts (deltaLayeredWhole).
   */
  deltaWhole(out: ReadonlyMap<string, EncodedResource>, typeUrl: string, version: string, list: readonly EncodedResource[], lastSeq: number): SharedFrame | undefined {
    if (inParts(out) && !this.layeredSentOnce.has(out)) {
      this.layeredSentOnce.add(out);
      return undefined;
    }
    let byKey = this.deltaWholeFrames.get(out);
    if (!byKey) this.deltaWholeFrames.set(out, (byKey = new Map()));
    return frameFor(byKey, `${typeUrl}\u0000${version}`, lastSeq, () => this.sharedFrame((nonce) => this.deltaMessage(typeUrl, nonce, version, list, [])), true);
  }

  /**
   * The Delta response of one push for a stream that had `sent`, watches
   * `names` (undefined: wildcard) and is sent `resources` and `removed` out of
   * `out`: these follow from the other four, so every stream with the same
   * four (and no declared versions) is sent one frame, unless this stream
   * already had it.
   */
  deltaDiff(out: ReadonlyMap<string, EncodedResource>, sent: ReadonlyMap<string, EncodedResource>, names: ReadonlySet<string> | undefined, typeUrl: string, version: string, resources: readonly EncodedResource[], removed: string[], lastSeq: number): SharedFrame {
    if (this.deltaDiffVersion !== version) {
      this.deltaDiffVersion = version;
      this.deltaDiffFrames = new WeakMap();
    }
    let bySent = this.deltaDiffFrames.get(out);
    if (!bySent) this.deltaDiffFrames.set(out, (bySent = new WeakMap()));
    let byNames = bySent.get(sent);
    if (!byNames) bySent.set(sent, (byNames = new Map()));
    return frameFor(byNames, names ?? WILDCARD, lastSeq, () => this.sharedFrame((nonce) => this.deltaMessage(typeUrl, nonce, version, resources, removed)), true);
  }

  /** Drops what is kept only while the push queue is busy (it drained): the Delta frames above. */
  release(): void {
    this.deltaDiffFrames = new WeakMap();
    if (this.deltaWholeFrames.size > 0) this.deltaWholeFrames = new Map();
    this.layeredSentOnce = new WeakSet();
  }

  /**
   * The incremental response shared by streams of this push with the same
   * generator output and changed names (the caches restart with each
   * incremental version).
   */
  incrementalShare(version: string, out: ReadonlyMap<string, EncodedResource>, only: ReadonlySet<string>, typeUrl: string): IncrementalShare {
    if (this.incrementalVersion !== version) {
      this.incrementalVersion = version;
      this.incrementalFrames = new Map();
      this.incrementalShares = new WeakMap();
    }
    let byNames = this.incrementalShares.get(out);
    if (!byNames) this.incrementalShares.set(out, (byNames = new WeakMap()));
    let share = byNames.get(only);
    if (!share) {
      const cand: EncodedResource[] = [];
      for (const n of only) {
        const r = out.get(n);
        if (r) cand.push(r);
      }
      // Every field from the start: one shape for every share (the per-stream code that reads them stays monomorphic).
      share = { list: cand, key: incrementalKey(typeUrl, cand), frame: undefined, deltaFrames: undefined, merged: new WeakMap() };
      byNames.set(only, share);
    }
    return share;
  }

  /**
   * The Delta response carrying `resources` (the share's resources this
   * stream lacks: all of them, or fewer when some were rebuilt unchanged) and
   * nothing removed, shared by the streams of the share sent the same ones,
   * unless this stream already had that frame.
   */
  deltaIncremental(share: IncrementalShare, resources: readonly EncodedResource[], typeUrl: string, version: string, lastSeq: number): SharedFrame {
    const key = resources.length === share.list.length ? '' : resources.map((r) => r.name).join('\u0000');
    return frameFor((share.deltaFrames ??= new Map()), key, lastSeq, () => this.sharedFrame((nonce) => this.deltaMessage(typeUrl, nonce, version, resources, [])));
  }

  /** The incremental response for these changed resources, shared unless this stream already had that frame. */
  incremental(key: string, typeUrl: string, version: string, list: readonly EncodedResource[], lastSeq: number): SharedFrame {
    // Bounded: past 1024 sets of changes in one version, the rest are framed per stream.
    if (this.incrementalFrames.size >= 1024 && !this.incrementalFrames.has(key)) return this.newFrame(typeUrl, version, list);
    return frameFor(this.incrementalFrames, key, lastSeq, () => this.newFrame(typeUrl, version, list));
  }

  private newFrame(typeUrl: string, version: string, list: readonly EncodedResource[]): SharedFrame {
    return this.sharedFrame((nonce) => this.sotwMessage(typeUrl, nonce, version, list));
  }

  private header(typeUrl: string, nonce: string, version: string) {
    return { typeUrl, nonce, versionInfo: version, controlPlane: this.controlPlane };
  }
}

const WILDCARD = Symbol('wildcard');

/** Whether a whole response of `out` can be written in parts (deltaLayeredWhole): a layered output, and pre-framed writes. */
function inParts(out: ReadonlyMap<string, EncodedResource>): out is LayeredMap<EncodedResource> {
  return framePrefix() !== 0 && out instanceof LayeredMap;
}

export function incrementalKey(typeUrl: string, list: readonly EncodedResource[]): string {
  return `${typeUrl}\u0000${list.map((r) => `${r.name}\u0000${r.version}`).join('\u0000')}`;
}

/** The same resources (by identity) in the same order. */
function sameEntries(a: ReadonlyMap<string, EncodedResource>, b: ReadonlyMap<string, EncodedResource>): boolean {
  if (a.size !== b.size) return false;
  const ia = a.values();
  for (const r of b.values()) if (ia.next().value !== r) return false;
  return true;
}
