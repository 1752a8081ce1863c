import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TypeUrl } from '@sextant/envoy';
import { silentLogger } from '@sextant/api';
import type { XdsProxy } from '../types.js';
import { ClassGenerators, type ProxyTranslator } from './class-cache.js';

/** A name set that counts how often it is walked. */
class CountingSet extends Set<string> {
  walks = 0;
  override [Symbol.iterator](): SetIterator<string> {
    this.walks++;
    return super[Symbol.iterator]();
  }
}

const EDS = TypeUrl.ClusterLoadAssignment;
const proxy = (id: string) => ({ connectionId: id, id, metadata: {}, peer: '' }) as unknown as XdsProxy;

test('EDS: streams watching the same names do not look every name up again until assignments are forgotten', () => {
  let port = 80;
  const builds: string[][] = [];
  const translator: ProxyTranslator<object, object> = {
    resolve: () => ({}),
    classKey: () => 'one',
    perName: new Set(),
    build: (_type, _ctx, _view, names) => {
      builds.push([...(names ?? [])]);
      return (names ?? []).map((n) => ({ name: n, json: { clusterName: n, endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: port } } } }] }] } }));
    },
  };
  const ctx = {};
  const gens = new ClassGenerators(translator, () => ctx, silentLogger);
  const eds = gens.generators([EDS])[EDS]!;
  const names = new CountingSet(Array.from({ length: 50 }, (_, i) => `c${i}`));
  const watch = { typeUrl: EDS, wildcard: false, names };

  const first = eds.generate(proxy('a'), watch, { full: true, version: 'v1', reason: [] });
  assert.equal(first.size, 50);
  assert.deepEqual(builds, [[...names]]);
  const walked = names.walks;
  // A second and third stream with the same subscription: the same result, without walking the names.
  assert.equal(eds.generate(proxy('b'), watch, { full: true, version: 'v1', reason: [] }), first);
  eds.generate(proxy('c'), watch, { full: true, version: 'v1', reason: [] });
  assert.equal(names.walks, walked, 'the watched names were walked again although nothing was forgotten');

  // An endpoint push forgets c7: the next stream finds it missing and gets it rebuilt, the rest kept.
  port = 90;
  gens.advance({ full: false, version: 'v1/eds1', reason: ['endpoints'], edsUpdates: new Set(['c7']) });
  const after = eds.generate(proxy('a'), watch, { full: false, version: 'v1/eds1', reason: [] });
  assert.deepEqual(builds.at(-1), ['c7']);
  assert.notEqual(after.get('c7')!.version, first.get('c7')!.version);
  assert.equal(after.get('c3'), first.get('c3'));
  assert.ok(names.walks > walked);
});

test('a push that rebuilds some names of a partial layer asks its filter about each name once, however many classes rebuild', () => {
  const CDS = TypeUrl.Cluster;
  const names = Array.from({ length: 40 }, (_, i) => `outbound|80||s${i}.ns.svc.cluster.local`);
  let version = 1;
  const translator: ProxyTranslator<object, { cls: string }> = {
    resolve: (p) => ({ cls: p.id.slice(0, 1) }),
    classKey: (_type, view) => view.cls,
    layers: () => [{ layer: 'outbound', partial: true }],
    perName: new Set(),
    build: (_type, _ctx, _view, _names, _cls, _proxy, part) =>
      names.filter((n) => !part?.only || part.only(n)).map((n) => ({ name: n, json: { name: n, connectTimeout: `${version}s` } })),
  };
  const gens = new ClassGenerators(translator, () => ({}), silentLogger);
  const cds = gens.generators([CDS])[CDS]!;
  const watch = { typeUrl: CDS, wildcard: true, names: new Set<string>() };
  const classes = ['a', 'b', 'c', 'd', 'e'];
  for (const c of classes) cds.generate(proxy(`${c}1`), watch, { full: true, version: 'v1', reason: [] });

  const asked = new Map<string, number>();
  const filter = (n: string) => {
    asked.set(n, (asked.get(n) ?? 0) + 1);
    return n.includes('|s3.');
  };
  version = 2;
  gens.advance({ full: true, version: 'v2', reason: ['DestinationRule'], types: new Set([CDS]), resources: new Map([[CDS, filter]]) });
  const out = classes.map((c) => cds.generate(proxy(`${c}1`), watch, { full: true, version: 'v2', reason: [] }));
  for (const o of out) {
    assert.equal(o.size, 40);
    assert.notEqual(o.get('outbound|80||s3.ns.svc.cluster.local')!.version, o.get('outbound|80||s4.ns.svc.cluster.local')!.version, 'the named cluster was rebuilt, the others kept');
  }
  assert.equal(asked.size, 40);
  assert.deepEqual([...new Set(asked.values())], [1], `each name asked once, not once per class: ${JSON.stringify([...asked].slice(0, 3))}`);
});

test('units are dropped after 32 full pushes that did not ask for them, and endpoint pushes do not count towards it', () => {
  const CDS = TypeUrl.Cluster;
  const RDS = TypeUrl.RouteConfiguration;
  let builds = 0;
  const translator: ProxyTranslator<object, object> = {
    resolve: () => ({}),
    classKey: () => 'one',
    perName: new Set(),
    build: () => {
      builds++;
      return [{ name: 'outbound|80||a.ns.svc.cluster.local', json: { name: 'outbound|80||a.ns.svc.cluster.local' } }];
    },
  };
  const gens = new ClassGenerators(translator, () => ({}), silentLogger);
  const cds = gens.generators([CDS])[CDS]!;
  const watch = { typeUrl: CDS, wildcard: true, names: new Set<string>() };
  const ask = (version: string) => cds.generate(proxy('a1'), watch, { full: true, version, reason: [] });
  gens.advance({ full: true, version: 'v1', reason: ['initial'] });
  const first = ask('v1');
  assert.equal(builds, 1);

  // A long run of endpoint changes, then an edit that concerns only routes: the class's clusters are still held.
  for (let i = 0; i < 40; i++) gens.advance({ full: false, version: `v1/eds${i}`, reason: ['endpoints'], edsUpdates: new Set([`outbound|80||s${i}.ns.svc.cluster.local`]) });
  gens.advance({ full: true, version: 'v2', reason: ['VirtualService'], types: new Set([RDS]) });
  assert.equal(ask('v2'), first);
  assert.equal(builds, 1, 'endpoint pushes made the class unit look unused');

  // Full pushes that never ask for it: after 32 of them it goes, and the next request builds it again.
  for (let i = 0; i < 33; i++) gens.advance({ full: true, version: `v3.${i}`, reason: ['VirtualService'], types: new Set([RDS]) });
  assert.notEqual(ask('v4'), first);
  assert.equal(builds, 2);
});
