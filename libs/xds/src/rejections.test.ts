import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '@sextant/api';
import { TypeUrl, create, encodeJson, encodedResource, NodeSchema, type EncodedResource } from '@sextant/envoy';
import { RejectionTracker, summarize, type RejectedObjectRef } from './rejections.js';
import type { XdsProxy } from './types.js';

const proxy = (n: number): XdsProxy => ({
  connectionId: `c${n}`,
  id: `sidecar~10.0.0.${n}~web-${n}.shop~shop.svc.cluster.local`,
  node: create(NodeSchema, { id: `p${n}` }),
  metadata: {},
  peer: 'ipv4:127.0.0.1:1',
  delta: false,
});
const route = (name: string, header: string): EncodedResource =>
  encodedResource(TypeUrl.RouteConfiguration, name, encodeJson(TypeUrl.RouteConfiguration, { name, virtualHosts: [{ name: 'a', domains: ['a'], requestHeadersToAdd: [{ header: { key: 'x', value: header } }] }] }));
const set = (...rs: EncodedResource[]) => new Map(rs.map((r) => [r.name, r]));
const nack = (sent: ReadonlyMap<string, EncodedResource>, message: string) => ({ typeUrl: TypeUrl.RouteConfiguration, sent, version: 'v', nonce: 'n', code: 3, message, at: new Date().toISOString() });

test('a NACK blames what changed since the ACK (narrowed to what Envoy names), reports changes at most once per interval, and clears on a later ACK or disconnect', async () => {
  const calls: Array<Array<{ object: RejectedObjectRef; message: string | undefined }>> = [];
  const blamed: string[][] = [];
  let wake: () => void = () => {};
  const tracker = new RejectionTracker({
    log: silentLogger,
    minIntervalMs: 200,
    attribute: (_p, _t, rejected) => {
      blamed.push(rejected.map((r) => r.name));
      return rejected.map((r) => ({ kind: 'VirtualService', namespace: 'shop', name: `vs-${r.name}` }));
    },
    onChange: (c) => {
      calls.push(c);
      wake();
    },
  });
  // The tracker's timer is unref'd (it never holds a daemon open); keep the test's loop alive.
  const alive = setInterval(() => {}, 1000);
  try {
  const changed = () => new Promise<void>((r) => (wake = r));
  const good = set(route('80', 'ok'), route('9080', 'ok'), route('19080', 'ok'));
  tracker.acked(proxy(1), TypeUrl.RouteConfiguration, 'v1', good);
  // 9080 and 19080 changed; Envoy's message names 9080 as a whole token (not inside 19080).
  const bad = set(route('80', 'ok'), route('9080', 'bad'), route('19080', 'bad2'));
  let next = changed();
  tracker.nacked(proxy(1), nack(bad, 'Error adding/updating route(s) 9080: bad header'));
  await next;
  assert.deepEqual(blamed[0], ['9080']);
  assert.deepEqual(calls[0]!.map((c) => [c.object.name, c.message]), [['vs-9080', 'Envoy rejected RDS 9080 built from this object (proxy sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local): Error adding/updating route(s) 9080: bad header']]);

  // A second proxy within the interval: one report for both, counting proxies.
  next = changed();
  const started = Date.now();
  tracker.acked(proxy(2), TypeUrl.RouteConfiguration, 'v1', good);
  tracker.nacked(proxy(2), nack(bad, 'no name here'));
  await next;
  assert.ok(Date.now() - started >= 150, 'rate-limited');
  assert.equal(calls.length, 2);
  assert.deepEqual(blamed[1]!.sort(), ['19080', '9080'], 'the message names nothing: everything that changed is blamed');
  assert.match(calls[1]!.find((c) => c.object.name === 'vs-9080')!.message!, /and 1 more\)/);
  assert.equal(tracker.list().length, 2);

  // Proxy 1 ACKs a later version; proxy 2 goes away: cleared.
  next = changed();
  tracker.acked(proxy(1), TypeUrl.RouteConfiguration, 'v3', good);
  tracker.disconnected(proxy(2));
  await next;
  assert.deepEqual(tracker.list(), []);
  assert.deepEqual(calls[2]!.map((c) => [c.object.name, c.message]).sort(), [['vs-19080', undefined], ['vs-9080', undefined]]);
  } finally {
    tracker.stop();
    clearInterval(alive);
  }
});

test("Envoy's validation reason is kept when present; long messages are bounded", () => {
  const dump = 'goo.gle/debugproto\nname: "9080"\n'.padEnd(3000, 'x');
  assert.match(summarize(`${dump}: Proto constraint validation failed (HeaderValueValidationError.Value: value does not match regex)`), /^Proto constraint validation failed \(HeaderValueValidationError/);
  assert.ok(summarize(dump).length <= 1025);
});
