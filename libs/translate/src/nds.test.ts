import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxy, PushContext } from '@sextant/model';
import { parseObjects } from './translate.js';
import { autoAllocateAddresses, buildNameTable, encodeNameTable, serviceAddressForProxy } from './nds.js';

const se = (ns: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name, namespace: ns }, spec: { resolution: 'DNS', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], ...spec } });
function push(raw: unknown[]) {
  const { objects, issues } = parseObjects(raw);
  assert.deepEqual(issues, []);
  return PushContext.build(objects, { domainSuffix: 'cluster.local', trustDomain: 'cluster.local', version: 't' });
}

/** FNV-1a 32 with BigInt, written independently of the module's. */
function fnv(s: string): number {
  let h = 0x811c9dc5n;
  for (const b of Buffer.from(s)) h = ((h ^ BigInt(b)) * 0x01000193n) & 0xffffffffn;
  return Number(h);
}

test('FNV-1a matches the published test vector, and one service lands on its hash slot', () => {
  assert.equal(fnv('a'), 0xe40c292c);
  const p = push([se('default', 'api', { hosts: ['api.example.com'] })]);
  const x0 = (fnv('default/api.example.com') % (256 * 254)) + 1;
  const x = x0 % 255 === 0 ? x0 + 1 : x0;
  assert.deepEqual([...autoAllocateAddresses(p.allServices())], [['default/api.example.com', `240.240.${Math.floor(x / 255)}.${x % 255}`]]);
});

test('allocation: only ServiceEntries without addresses, not wildcards, not NONE; unique, in 240.240.0.0/16, order-independent', () => {
  const raw: unknown[] = [
    se('default', 'wild', { hosts: ['*.example.com'] }),
    se('default', 'none', { hosts: ['none.example.com'], resolution: 'NONE' }),
    se('default', 'vip', { hosts: ['vip.example.com'], addresses: ['10.1.2.3'] }),
  ];
  for (let i = 0; i < 2000; i++) raw.push(se(`ns${i % 7}`, `svc${i}`, { hosts: [`svc${i}.example.com`] }));
  const all = push(raw).allServices();
  const a = autoAllocateAddresses(all);
  assert.equal(a.size, 2000);
  assert.ok(![...a.keys()].some((k) => k.includes('wild') || k.includes('none') || k.includes('vip')));
  const ips = [...a.values()];
  assert.equal(new Set(ips).size, ips.length, 'unique');
  for (const ip of ips) {
    const m = /^240\.240\.(\d+)\.(\d+)$/.exec(ip);
    assert.ok(m && Number(m[1]) <= 255 && Number(m[2]) >= 1 && Number(m[2]) <= 254, ip);
  }
  assert.deepEqual(new Map([...autoAllocateAddresses([...all].reverse())].sort()), new Map([...a].sort()), 'deterministic');
});

test('a proxy uses allocated addresses only with DNS capture and auto-allocation; the name table follows', () => {
  const p = push([
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { clusterIP: '10.96.0.9', ports: [{ name: 'http', port: 9080 }] } },
    se('default', 'api', { hosts: ['api.example.com'] }),
  ]);
  const svc = p.allServices().find((s) => s.hostname === 'api.example.com')!;
  const id = 'sidecar~10.0.0.1~a-0.default~default.svc.cluster.local';
  const plain = p.resolveProxy(parseProxy(id, {}));
  const capture = p.resolveProxy(parseProxy(id, { DNS_CAPTURE: 'true' }));
  const auto = p.resolveProxy(parseProxy(id, { DNS_CAPTURE: 'true', DNS_AUTO_ALLOCATE: 'true' }));
  assert.equal(serviceAddressForProxy(p, plain, svc), '0.0.0.0');
  assert.equal(serviceAddressForProxy(p, capture, svc), '0.0.0.0');
  assert.match(serviceAddressForProxy(p, auto, svc), /^240\.240\./);
  assert.equal(buildNameTable(p, capture)!.table['api.example.com'], undefined);
  assert.deepEqual(buildNameTable(p, auto)!.table['reviews.default.svc.cluster.local'], { ips: ['10.96.0.9'], registry: 'Kubernetes', namespace: 'default', shortname: 'reviews' });
  assert.equal(buildNameTable(p, p.resolveProxy(parseProxy('router~10.0.0.2~gw-0.istio-system~istio-system.svc.cluster.local', {}))), undefined);
});

test('encoding: map entries sorted by host, NameInfo fields by number', () => {
  const bytes = encodeNameTable({ table: { 'b.x': { ips: ['1.2.3.4'], registry: 'External' }, 'a.x': { ips: [], registry: 'Kubernetes', shortname: 'a', namespace: 'n' } } });
  // entry(1) { key(1) "a.x", value(2) { registry(2) "Kubernetes", shortname(3) "a", namespace(4) "n" } } ...
  const hex = Buffer.from(bytes).toString('hex');
  const s = (t: string) => Buffer.from(t).toString('hex');
  const first = `0a03${s('a.x')}1212120a${s('Kubernetes')}1a01${s('a')}2201${s('n')}`;
  assert.ok(hex.startsWith(`0a${(first.length / 2).toString(16).padStart(2, '0')}${first}`), hex);
  assert.ok(hex.includes(`0a07${s('1.2.3.4')}1208${s('External')}`), hex);
});
