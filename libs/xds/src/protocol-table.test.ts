/**
 * The ADS protocol as one table (ARCHITECTURE.md, "Tests: protocol tables"):
 * each row is a request sequence against a fresh server, for SotW or Delta,
 * and says what the server must answer (or that it answers nothing), and what
 * it records. Rows cover the initial request, ACK, NACK, stale nonce, new
 * names at an unchanged version, unsubscribe, wildcard, reconnect and Delta's
 * initial_resource_versions.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TypeUrl, type DeltaDiscoveryResponse, type DiscoveryResponse } from '@sextant/envoy';
import { DeltaClient, SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { ExtensionConfigType, edsCluster, extensionConfig, loadAssignment, startHarness, type Harness } from '@sextant/testing/xds-harness';

const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;

/** Which earlier response of the same type a request refers to: the first or the latest one received. */
type Ref = 'first' | 'last';

interface Req {
  type: string;
  /** SotW resource_names. */
  names?: string[];
  /** Delta subscribe / unsubscribe / initial_resource_versions (`current`: the server's version of that resource). */
  subscribe?: string[];
  unsubscribe?: string[];
  initial?: Record<string, string>;
  /** response_nonce (and, SotW, version_info) of an earlier response; none when absent. */
  nonce?: Ref;
  /** SotW version_info when it differs from the nonce's response (a NACK keeps the last accepted version). */
  version?: Ref | 'none';
  /** error_detail message: a NACK. */
  nack?: string;
}

type Step =
  | { req: Req }
  /** The next response: its type, resource names (sorted) and, for Delta, removed names. */
  | { expect: { type: string; names: string[]; removed?: string[]; version?: 'unchanged' } }
  /** Nothing is sent: the next response answers a probe subscription of another type. */
  | { nothing: true }
  /** A change on the server side (config or endpoints), pushed. */
  | { change: string; apply: (h: Harness) => void }
  /** What the server recorded for the stream's type; staleNonces counted since the row started. */
  | { state: { type: string; nacks?: number; lastNack?: string; versionAcked?: Ref | 'none'; staleNonces?: number } }
  /** The stream ends and a new one opens (the references to earlier responses are kept). */
  | { reconnect: true };

interface Row {
  protocol: 'sotw' | 'delta';
  name: string;
  steps: Step[];
}

const req = (r: Req): Step => ({ req: r });
const expect = (type: string, names: string[], more: { removed?: string[]; version?: 'unchanged' } = {}): Step => ({ expect: { type, names, ...more } });
const nothing: Step = { nothing: true };
/**
 * An ACK of the latest response, then a probe: the probe proves the ACK got no
 * answer, and that it was handled before the row's next change (otherwise the
 * change's response would make it stale).
 */
const ack = (type: string, more: Omit<Req, 'type' | 'nonce'> = {}): Step[] => [req({ type, nonce: 'last', ...more }), nothing];
const addCluster = (name: string): Step => ({ change: `add cluster ${name}`, apply: (h) => (h.clusters.set(edsCluster(name)), h.pushAll(`add ${name}`)) });
const removeCluster = (name: string): Step => ({ change: `remove cluster ${name}`, apply: (h) => (h.clusters.delete(name), h.pushAll(`remove ${name}`)) });
const unrelatedPush: Step = { change: 'a full push with nothing changed', apply: (h) => void h.pushAll('unrelated') };
let port = 1000;
const moveEndpoints = (name: string): Step => ({
  change: `endpoints of ${name} change`,
  apply: (h) => h.endpoints.set(name, loadAssignment(name, [{ address: '10.0.0.9', port: ++port }])),
});

const rows: Row[] = [
  // ---- State of the World ----
  { protocol: 'sotw', name: 'initial request: a wildcard CDS request gets every cluster', steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2'])] },
  {
    protocol: 'sotw',
    name: 'ACK: not answered, and recorded as the acknowledged version',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2']), req({ type: CDS, nonce: 'last' }), nothing, { state: { type: CDS, versionAcked: 'last', nacks: 0 } }],
  },
  {
    protocol: 'sotw',
    name: 'NACK: recorded, not answered; the rejected content is not re-sent, new content is',
    steps: [
      req({ type: CDS }),
      expect(CDS, ['c1', 'c2']),
      ...ack(CDS),
      addCluster('c3'),
      expect(CDS, ['c1', 'c2', 'c3']),
      req({ type: CDS, nonce: 'last', version: 'first', nack: 'cluster c3 rejected' }),
      nothing,
      { state: { type: CDS, nacks: 1, lastNack: 'cluster c3 rejected', versionAcked: 'first' } },
      unrelatedPush,
      nothing,
      removeCluster('c3'),
      expect(CDS, ['c1', 'c2']),
    ],
  },
  {
    protocol: 'sotw',
    name: 'stale nonce: a request answering an older response is ignored, its new names included',
    steps: [
      req({ type: EDS, names: ['c1'] }),
      expect(EDS, ['c1']),
      ...ack(EDS, { names: ['c1'] }),
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
      req({ type: EDS, names: ['c1', 'c2'], nonce: 'first' }),
      nothing,
      { state: { type: EDS, staleNonces: 1, versionAcked: 'first' } },
      moveEndpoints('c2'),
      nothing,
    ],
  },
  {
    protocol: 'sotw',
    name: 'stale nonce: a NACK of an older response is not recorded',
    steps: [
      req({ type: EDS, names: ['c1'] }),
      expect(EDS, ['c1']),
      ...ack(EDS, { names: ['c1'] }),
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
      req({ type: EDS, names: ['c1'], nonce: 'first', nack: 'late' }),
      nothing,
      { state: { type: EDS, nacks: 0, staleNonces: 1 } },
    ],
  },
  {
    protocol: 'sotw',
    name: 'new names at an unchanged version are answered, at that version',
    steps: [req({ type: EDS, names: ['c1'] }), expect(EDS, ['c1']), req({ type: EDS, names: ['c1', 'c2'], nonce: 'last' }), expect(EDS, ['c1', 'c2'], { version: 'unchanged' })],
  },
  {
    protocol: 'sotw',
    name: 'unsubscribe: the narrowed set is answered, and a change to the dropped name is not sent',
    steps: [
      req({ type: EDS, names: ['c1', 'c2'] }),
      expect(EDS, ['c1', 'c2']),
      req({ type: EDS, names: ['c1'], nonce: 'last' }),
      expect(EDS, ['c1']),
      ...ack(EDS, { names: ['c1'] }),
      moveEndpoints('c2'),
      nothing,
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
    ],
  },
  {
    protocol: 'sotw',
    name: 'wildcard: a new cluster sends the whole set again',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2']), ...ack(CDS), addCluster('c3'), expect(CDS, ['c1', 'c2', 'c3'])],
  },
  {
    protocol: 'sotw',
    name: 'wildcard: "*" subscribes an EDS stream to every cluster; an endpoint change sends only that cluster',
    steps: [req({ type: EDS, names: ['*'] }), expect(EDS, ['c1', 'c2']), ...ack(EDS, { names: ['*'] }), moveEndpoints('c2'), expect(EDS, ['c2'])],
  },
  {
    protocol: 'sotw',
    name: 'an empty EDS request is not a wildcard (only LDS and CDS are): it watches nothing',
    steps: [req({ type: EDS }), expect(EDS, []), ...ack(EDS), moveEndpoints('c1'), nothing],
  },
  {
    protocol: 'sotw',
    name: 'reconnect: a first request carrying the old version and nonce is answered in full',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2']), { reconnect: true }, req({ type: CDS, nonce: 'last' }), expect(CDS, ['c1', 'c2'])],
  },
  {
    protocol: 'sotw',
    name: 'a repeated request without a nonce (the client restarted the type) is answered again',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2']), req({ type: CDS }), expect(CDS, ['c1', 'c2'])],
  },

  // ---- Delta ----
  {
    protocol: 'delta',
    name: 'initial request: a wildcard CDS request gets every cluster, nothing removed',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2'], { removed: [] })],
  },
  {
    protocol: 'delta',
    name: 'ACK: not answered, and recorded as the acknowledged version',
    steps: [req({ type: CDS }), expect(CDS, ['c1', 'c2']), req({ type: CDS, nonce: 'last' }), nothing, { state: { type: CDS, versionAcked: 'last', nacks: 0 } }],
  },
  {
    protocol: 'delta',
    name: 'NACK: recorded, not answered; the rejected resource is not re-sent, a change to it is',
    steps: [
      req({ type: CDS }),
      expect(CDS, ['c1', 'c2']),
      ...ack(CDS),
      addCluster('c3'),
      expect(CDS, ['c3'], { removed: [] }),
      req({ type: CDS, nonce: 'last', nack: 'cluster c3 rejected' }),
      nothing,
      { state: { type: CDS, nacks: 1, lastNack: 'cluster c3 rejected', versionAcked: 'first' } },
      unrelatedPush,
      nothing,
      removeCluster('c3'),
      expect(CDS, [], { removed: ['c3'] }),
    ],
  },
  {
    protocol: 'delta',
    name: 'stale nonce: not an ACK, but the subscription diff it carries applies',
    steps: [
      req({ type: EDS, subscribe: ['c1'] }),
      expect(EDS, ['c1']),
      ...ack(EDS),
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
      req({ type: EDS, nonce: 'first', subscribe: ['c2'] }),
      expect(EDS, ['c2']),
      { state: { type: EDS, staleNonces: 1, versionAcked: 'first' } },
    ],
  },
  {
    protocol: 'delta',
    name: 'stale nonce: a NACK of an older response is not recorded',
    steps: [
      req({ type: EDS, subscribe: ['c1'] }),
      expect(EDS, ['c1']),
      ...ack(EDS),
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
      req({ type: EDS, nonce: 'first', nack: 'late' }),
      nothing,
      { state: { type: EDS, nacks: 0, staleNonces: 1 } },
    ],
  },
  {
    protocol: 'delta',
    name: 'new names: only the newly subscribed resource is sent',
    steps: [req({ type: EDS, subscribe: ['c1'] }), expect(EDS, ['c1']), req({ type: EDS, nonce: 'last', subscribe: ['c2'] }), expect(EDS, ['c2'], { version: 'unchanged' })],
  },
  {
    protocol: 'delta',
    name: 'unsubscribe: not answered, and a change to the dropped name is not sent',
    steps: [
      req({ type: EDS, subscribe: ['c1', 'c2'] }),
      expect(EDS, ['c1', 'c2']),
      req({ type: EDS, nonce: 'last', unsubscribe: ['c2'] }),
      nothing,
      moveEndpoints('c2'),
      nothing,
      moveEndpoints('c1'),
      expect(EDS, ['c1']),
    ],
  },
  {
    protocol: 'delta',
    name: 'wildcard: a new cluster is sent alone, a removed one in removed_resources',
    steps: [
      req({ type: CDS }),
      expect(CDS, ['c1', 'c2']),
      ...ack(CDS),
      addCluster('c3'),
      expect(CDS, ['c3'], { removed: [] }),
      ...ack(CDS),
      removeCluster('c3'),
      expect(CDS, [], { removed: ['c3'] }),
    ],
  },
  {
    protocol: 'delta',
    name: 'leaving wildcard: after unsubscribing "*" only the named resources are followed',
    steps: [
      req({ type: CDS }),
      expect(CDS, ['c1', 'c2']),
      req({ type: CDS, nonce: 'last', subscribe: ['c1'], unsubscribe: ['*'] }),
      nothing,
      addCluster('c3'),
      nothing,
      { change: 'cluster c1 changes', apply: (h) => (h.clusters.set(edsCluster('c1', { connectTimeout: '7s' })), h.pushAll('c1')) },
      expect(CDS, ['c1'], { removed: [] }),
    ],
  },
  {
    protocol: 'delta',
    name: 'reconnect with initial_resource_versions: only what differs is sent, what is gone is removed',
    steps: [req({ type: CDS, initial: { c1: 'current', c2: 'stale-version', gone: 'whatever' } }), expect(CDS, ['c2'], { removed: ['gone'] })],
  },
  {
    protocol: 'delta',
    name: 'reconnect already up to date: one empty response for a wildcard type, then only changes',
    steps: [
      req({ type: CDS, initial: { c1: 'current', c2: 'current' } }),
      expect(CDS, [], { removed: [] }),
      ...ack(CDS),
      addCluster('c3'),
      expect(CDS, ['c3'], { removed: [] }),
    ],
  },
];

/** One response as the table sees it. */
interface Seen {
  typeUrl: string;
  nonce: string;
  version: string;
  names: string[];
  removed: string[];
}

/** A stream of either protocol, driven by table steps. */
interface Driver {
  send(r: Req, ref: (type: string, which: Ref) => Seen | undefined, current: (name: string) => string): void;
  next(): Promise<Seen>;
  close(): void;
}

function sotwDriver(address: string, id: string): Driver {
  const c = new SotwClient(address, { node: { id } });
  return {
    send(r, ref) {
      const byNonce = r.nonce ? ref(r.type, r.nonce) : undefined;
      const byVersion = r.version === 'none' ? undefined : r.version ? ref(r.type, r.version) : byNonce;
      c.request(r.type, {
        resourceNames: r.names ?? [],
        versionInfo: byVersion?.version ?? '',
        responseNonce: byNonce?.nonce ?? '',
        ...(r.nack ? { error: { message: r.nack } } : {}),
      });
    },
    async next() {
      const r: DiscoveryResponse = await c.next();
      return { typeUrl: r.typeUrl, nonce: r.nonce, version: r.versionInfo, names: resourceNames(r).sort(), removed: [] };
    },
    close: () => c.close(),
  };
}

function deltaDriver(address: string, id: string): Driver {
  const c = new DeltaClient(address, { node: { id } });
  return {
    send(r, ref, current) {
      const initial = r.initial ? Object.fromEntries(Object.entries(r.initial).map(([n, v]) => [n, v === 'current' ? current(n) : v])) : undefined;
      c.request(r.type, {
        subscribe: r.subscribe ?? [],
        unsubscribe: r.unsubscribe ?? [],
        ...(initial ? { initialResourceVersions: initial } : {}),
        responseNonce: r.nonce ? (ref(r.type, r.nonce)?.nonce ?? '') : '',
        ...(r.nack ? { error: { message: r.nack } } : {}),
      });
    },
    async next() {
      const r: DeltaDiscoveryResponse = await c.next();
      return { typeUrl: r.typeUrl, nonce: r.nonce, version: r.systemVersionInfo, names: r.resources.map((x) => x.name).sort(), removed: [...r.removedResources].sort() };
    },
    close: () => c.close(),
  };
}

let probeSeq = 0;

async function run(row: Row): Promise<void> {
  const h = await startHarness();
  h.clusters.replace([edsCluster('c1'), edsCluster('c2')]);
  h.endpoints.set('c1', loadAssignment('c1', [{ address: '10.0.0.1', port: 80 }]));
  h.endpoints.set('c2', loadAssignment('c2', [{ address: '10.0.0.2', port: 80 }]));
  h.extensions.replace(Array.from({ length: 64 }, (_, i) => extensionConfig(`p${i + 1}`)));
  h.pushAll('seed');
  const open = (n: number) => (row.protocol === 'sotw' ? sotwDriver : deltaDriver)(h.address, `${row.protocol}-row-${n}`);
  let streams = 1;
  let d = open(streams);
  const seen = new Map<string, Seen[]>();
  /** Nonces sent on the current stream (unique per stream; streams may share a frame and its nonce). */
  let nonces = new Set<string>();
  const ref = (type: string, which: Ref) => {
    const list = seen.get(type);
    return which === 'first' ? list?.[0] : list?.at(-1);
  };
  // Resources clusters and endpoints share names; initial_resource_versions refers to the row's type.
  let lastType: string = CDS;
  const current = (name: string) => (lastType === EDS ? h.endpoints.get(name)?.version : h.clusters.resources.get(name)?.version) ?? 'absent';
  const stale0 = h.server.metrics().staleNonces;
  const status = (type: string) =>
    h.server
      .connections()
      .find((c) => c.proxyId === `${row.protocol}-row-${streams}`)
      ?.types.find((t) => t.typeUrl === type);
  try {
    for (const [i, step] of row.steps.entries()) {
      const at = `step ${i + 1} (${JSON.stringify(step)})`;
      if ('req' in step) {
        lastType = step.req.type;
        d.send(step.req, ref, current);
      } else if ('expect' in step) {
        const r = await d.next();
        const e = step.expect;
        assert.equal(r.typeUrl, e.type, `${at}: response type`);
        assert.deepEqual(r.names, [...e.names].sort(), `${at}: resources sent`);
        if (e.removed) assert.deepEqual(r.removed, [...e.removed].sort(), `${at}: removed resources`);
        assert.ok(r.nonce, `${at}: a nonce`);
        const before = ref(r.typeUrl, 'last');
        if (e.version === 'unchanged') assert.equal(r.version, before?.version, `${at}: version unchanged`);
        assert.ok(!nonces.has(r.nonce), `${at}: a nonce not used before on this stream`);
        nonces.add(r.nonce);
        seen.set(r.typeUrl, [...(seen.get(r.typeUrl) ?? []), r]);
      } else if ('nothing' in step) {
        // Requests on one stream are handled in order: if the next response answers this probe, nothing came before it.
        const name = `p${(++probeSeq % 64) + 1}`;
        d.send(row.protocol === 'sotw' ? { type: ExtensionConfigType, names: [name] } : { type: ExtensionConfigType, subscribe: [name] }, ref, current);
        const r = await d.next();
        assert.equal(r.typeUrl, ExtensionConfigType, `${at}: expected nothing, got ${r.typeUrl} [${r.names}] removed [${r.removed}]`);
        assert.ok(r.names.includes(name), `${at}: the probe is answered`);
        seen.set(r.typeUrl, [...(seen.get(r.typeUrl) ?? []), r]);
        // ACK the probe, and for SotW drop the name again so the next probe is a names change.
        d.send(row.protocol === 'sotw' ? { type: ExtensionConfigType, names: [name], nonce: 'last' } : { type: ExtensionConfigType, nonce: 'last', unsubscribe: [name] }, ref, current);
      } else if ('change' in step) {
        step.apply(h);
      } else if ('state' in step) {
        const s = step.state;
        const st = status(s.type);
        assert.ok(st, `${at}: the stream has state for ${s.type}`);
        if (s.nacks !== undefined) assert.equal(st.nacks, s.nacks, `${at}: NACKs recorded`);
        if (s.lastNack !== undefined) assert.equal(st.lastNack?.message, s.lastNack, `${at}: last NACK`);
        if (s.versionAcked !== undefined) assert.equal(st.versionAcked, s.versionAcked === 'none' ? undefined : ref(s.type, s.versionAcked)?.version, `${at}: version acknowledged`);
        if (s.staleNonces !== undefined) assert.equal(h.server.metrics().staleNonces - stale0, s.staleNonces, `${at}: stale nonces counted`);
      } else {
        d.close();
        d = open(++streams);
        nonces = new Set();
      }
    }
  } finally {
    d.close();
    await h.stop();
  }
}

for (const protocol of ['sotw', 'delta'] as const) {
  describe(`ADS protocol table (${protocol === 'sotw' ? 'SotW' : 'Delta'})`, () => {
    for (const row of rows.filter((r) => r.protocol === protocol)) test(row.name, () => run(row));
  });
}
