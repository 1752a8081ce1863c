/**
 * Child process for the abuse benchmark: runs one attack against an ADS
 * address in a loop for a given time (a hostile client reconnects and tries
 * again), so its CPU is not the measuring process's. Requests are encoded once
 * and sent as raw bytes.
 *
 * argv: <attack> <address> <durationMs>
 * stdout: { ready: true } once the requests are encoded (the attack starts), then
 *         { attack, iterations, statuses: { CODE: count }, requestsSent, bytesSent, cpuMs } at the end.
 */
import * as grpc from '@grpc/grpc-js';
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema, TypeUrl, create, fromJson, NodeSchema, toBinary, type JsonValue } from '@sextant/envoy';
import { openRawStream, type TestStream } from '@sextant/testing/xds-client';

export const attacks = {
  control: 'none (control: an idle attacker process, same measurement)',
  'delta-names': '10 Delta requests of 100,000 resource names each on one stream',
  'sotw-names': 'SotW requests of 100,000 resource names each, then disconnect',
  'node-metadata': '40 streams at once, each with 3.8 MB of node metadata',
  'unknown-types': '2,000 distinct unknown type URLs (1 KB each) on one stream',
} as const;
export type Attack = keyof typeof attacks;

const node = (id: string, metadata: Record<string, JsonValue> = {}) => fromJson(NodeSchema, { id, metadata });
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(7, '0')}.attack.svc.cluster.local`);

/** One round of the attack: the streams it opens, and the bytes each sends. */
function round(attack: Attack, iteration: number): Buffer[][] {
  switch (attack) {
    case 'control':
      return [];
    case 'delta-names': {
      const msgs: Buffer[] = [];
      for (let i = 0; i < 10; i++) {
        const req = create(DeltaDiscoveryRequestSchema, { typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: names(`d${i}`, 100_000) });
        if (i === 0) req.node = node(`attacker-delta-${iteration}`);
        msgs.push(Buffer.from(toBinary(DeltaDiscoveryRequestSchema, req)));
      }
      return [msgs];
    }
    case 'sotw-names': {
      const msgs: Buffer[] = [];
      for (let i = 0; i < 3; i++) {
        const req = create(DiscoveryRequestSchema, { typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: names(`s${i}`, 100_000) });
        if (i === 0) req.node = node(`attacker-sotw-${iteration}`);
        msgs.push(Buffer.from(toBinary(DiscoveryRequestSchema, req)));
      }
      return [msgs];
    }
    case 'node-metadata': {
      const blob = 'm'.repeat(3_800_000);
      return Array.from({ length: 40 }, (_, i) => {
        const req = create(DiscoveryRequestSchema, { typeUrl: TypeUrl.Cluster, node: node(`attacker-node-${iteration}-${i}`, { ANNOTATIONS: { blob } }) });
        return [Buffer.from(toBinary(DiscoveryRequestSchema, req))];
      });
    }
    case 'unknown-types': {
      const pad = 'u'.repeat(1000);
      return [
        Array.from({ length: 2000 }, (_, i) => {
          const req = create(DiscoveryRequestSchema, { typeUrl: `type.googleapis.com/attack.${pad}.T${i}`, resourceNames: ['x'] });
          if (i === 0) req.node = node(`attacker-types-${iteration}`);
          return Buffer.from(toBinary(DiscoveryRequestSchema, req));
        }),
      ];
    }
  }
}

async function main(): Promise<void> {
  const [attack, address, durationText] = process.argv.slice(2) as [Attack, string, string];
  if (!(attack in attacks)) throw new Error(`unknown attack ${attack}`);
  const statuses: Record<string, number> = {};
  let iterations = 0;
  let requestsSent = 0;
  let bytesSent = 0;
  // The same bytes every round (only the first round's node IDs), so encoding is not what paces the attack.
  const template = round(attack, 0);
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  const cpu0 = process.cpuUsage();
  const end = Date.now() + Number(durationText);
  if (template.length === 0) await new Promise((r) => setTimeout(r, Number(durationText)));
  while (template.length > 0 && Date.now() < end) {
    iterations++;
    const streams: TestStream<Buffer, Buffer>[] = template.map(() =>
      openRawStream(address, attack.startsWith('delta') ? 'delta' : 'sotw', { timeoutMs: 30_000, channelOptions: { 'grpc.max_send_message_length': 8 * 1024 * 1024 } }),
    );
    template.forEach((msgs, i) => {
      for (const m of msgs) {
        streams[i]!.sendRaw(m);
        requestsSent++;
        bytesSent += m.length;
      }
    });
    const ends = await Promise.all(
      streams.map(async (s) => {
        try {
          return grpc.status[(await s.status(30_000)).code] ?? 'UNKNOWN';
        } catch {
          return 'NOT_ENDED';
        } finally {
          s.close();
        }
      }),
    );
    for (const e of ends) statuses[e] = (statuses[e] ?? 0) + 1;
  }
  // Its own CPU time (ms) over the attack: on a small machine it competes with the daemon for the cores.
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = Math.round((cpu.user + cpu.system) / 1000);
  process.stdout.write(JSON.stringify({ attack, iterations, statuses, requestsSent, bytesSent, cpuMs }) + '\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
