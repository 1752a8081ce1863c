import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary, fromJson, toBinary, type JsonValue } from '@bufbuild/protobuf';
import {
  DeltaDiscoveryResponseSchema,
  DiscoveryResponseSchema,
  ResourceEncoder,
  TypeUrl,
  canonicalize,
  decodeToJson,
  encodeDeltaDiscoveryResponse,
  encodeDiscoveryResponse,
  encodeJson,
  encodeResource,
  registry,
} from './index.js';

const cluster = {
  name: 'outbound|9080||reviews.default.svc.cluster.local',
  type: 'EDS',
  connectTimeout: '10s',
  edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' }, serviceName: 'outbound|9080||reviews.default.svc.cluster.local' },
  metadata: { filterMetadata: { istio: { services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }] }, b: { x: 1 }, a: { y: 'z' } } },
  perConnectionBufferLimitBytes: 32768,
};

test('equal content gives equal bytes whatever the key order of maps and Structs', () => {
  const reordered = {
    ...cluster,
    metadata: { filterMetadata: { a: { y: 'z' }, b: { x: 1 }, istio: cluster.metadata.filterMetadata.istio } },
  };
  const a = encodeResource(TypeUrl.Cluster, cluster.name, cluster);
  const b = encodeResource(TypeUrl.Cluster, cluster.name, reordered);
  assert.deepEqual(Buffer.from(a.value), Buffer.from(b.value));
  assert.equal(a.version, b.version);
  const c = encodeResource(TypeUrl.Cluster, cluster.name, { ...cluster, connectTimeout: '5s' });
  assert.notEqual(c.version, a.version);
});

test('JSON round-trips through binary in Envoy JSON form, durations and wrappers included', () => {
  const json = decodeToJson(TypeUrl.Cluster, encodeJson(TypeUrl.Cluster, cluster)) as Record<string, unknown>;
  assert.equal(json.connectTimeout, '10s');
  assert.equal(json.perConnectionBufferLimitBytes, 32768);
  assert.equal(json.type, 'EDS');
});

test('nested Anys encoded on their own give the bytes of encoding the whole message at once, and Struct data with "@type" stays data', () => {
  const hcm = (tag: string) => ({
    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    statPrefix: 'outbound_0.0.0.0_80',
    rds: { routeConfigName: '80', configSource: { ads: {}, resourceApiVersion: 'V3' } },
    tracing: { customTags: [{ tag: 'istio.canonical_service', literal: { value: tag } }] },
    httpFilters: [
      { name: 'envoy.filters.http.fault', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } },
      {
        name: 'envoy.filters.http.rbac',
        typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', rules: { action: 'DENY', policies: { p: { permissions: [{ any: true }], principals: [{ any: true }] } } } },
      },
      { name: 'envoy.filters.http.router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', startChildSpan: true } },
    ],
  });
  const listener = (tag: string) => ({
    name: '0.0.0.0_80',
    address: { socketAddress: { address: '0.0.0.0', portValue: 80 } },
    metadata: { filterMetadata: { user: { '@type': 'not.an.any/really', value: 3, nested: { '@type': 'x' } } } },
    filterChains: [
      { filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm(tag) }] },
      { filterChainMatch: { transportProtocol: 'tls' }, filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm(tag) }] },
    ],
    listenerFilters: [{ name: 'envoy.filters.listener.tls_inspector', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
  });
  const schema = registry.getMessage('envoy.config.listener.v3.Listener')!;
  const whole = (json: unknown) => Buffer.from(toBinary(schema, fromJson(schema, canonicalize(json) as JsonValue, { registry })));
  for (const tag of ['svc-1', 'svc-22']) {
    const got = Buffer.from(encodeJson(TypeUrl.Listener, listener(tag)));
    assert.deepEqual(got, whole(listener(tag)), tag);
  }
  const back = decodeToJson(TypeUrl.Listener, encodeJson(TypeUrl.Listener, listener('svc-1'))) as { metadata: unknown };
  assert.deepEqual(back.metadata, listener('svc-1').metadata, 'a Struct holding "@type" keys is data, not an Any');
  // An Any of a type the registry lacks is refused as before, naming it.
  assert.throws(() => encodeJson(TypeUrl.Listener, { name: 'x', listenerFilters: [{ name: 'f', typedConfig: { '@type': 'type.googleapis.com/google.protobuf.UInt32Value', value: 1 } }] }), /UInt32Value is not in the type registry/);
});

test('typed Anys inside resources are packed and expanded with @type', () => {
  const listener = {
    name: '0.0.0.0_9080',
    address: { socketAddress: { address: '0.0.0.0', portValue: 9080 } },
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typedConfig: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              statPrefix: 'outbound_0.0.0.0_9080',
              rds: { routeConfigName: '9080', configSource: { ads: {}, resourceApiVersion: 'V3' } },
              httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
  const back = decodeToJson(TypeUrl.Listener, encodeJson(TypeUrl.Listener, listener));
  assert.deepEqual(back, listener);
});

test('bad JSON is refused with the type and the reason', () => {
  assert.throws(() => encodeJson(TypeUrl.Cluster, { name: 'x', connectTimeout: 'ten seconds' }), /envoy\.config\.cluster\.v3\.Cluster.*/);
  assert.throws(() => encodeJson(TypeUrl.Cluster, { nmae: 'x' }), /cannot encode envoy\.config\.cluster\.v3\.Cluster/);
});

test('framed responses decode to the same resources as a normal encoder would give', () => {
  const a = encodeResource(TypeUrl.Cluster, 'a', { ...cluster, name: 'a' });
  const b = encodeResource(TypeUrl.Cluster, 'b', { ...cluster, name: 'b' });
  const frame = encodeDiscoveryResponse({ typeUrl: TypeUrl.Cluster, nonce: 'n1', versionInfo: 'v1' }, [a.any, b.any]);
  const msg = fromBinary(DiscoveryResponseSchema, frame);
  assert.equal(msg.versionInfo, 'v1');
  assert.equal(msg.nonce, 'n1');
  assert.equal(msg.typeUrl, TypeUrl.Cluster);
  assert.equal(msg.resources.length, 2);
  assert.equal(msg.resources[0]?.typeUrl, TypeUrl.Cluster);
  assert.deepEqual(Buffer.from(msg.resources[1]!.value), Buffer.from(b.value));

  const delta = encodeDeltaDiscoveryResponse(
    { typeUrl: TypeUrl.Cluster, nonce: 'n2', versionInfo: 'sys' },
    [a, b],
    ['gone-1', 'gone-2'],
  );
  const d = fromBinary(DeltaDiscoveryResponseSchema, delta);
  assert.equal(d.systemVersionInfo, 'sys');
  assert.equal(d.resources[0]?.name, 'a');
  assert.equal(d.resources[0]?.version, a.version);
  assert.deepEqual(Buffer.from(d.resources[0]!.resource!.value), Buffer.from(a.value));
  assert.equal(d.resources[1]?.name, 'b');
  assert.equal(d.resources[1]?.resource?.typeUrl, TypeUrl.Cluster);
  assert.deepEqual(Buffer.from(d.resources[1]!.resource!.value), Buffer.from(b.value));
  assert.deepEqual(d.removedResources, ['gone-1', 'gone-2']);
});

test('ResourceEncoder encodes identical content once and forgets what a cycle did not use', () => {
  const enc = new ResourceEncoder();
  const first = enc.encode(TypeUrl.Cluster, 'a', { ...cluster, name: 'a' });
  const again = enc.encode(TypeUrl.Cluster, 'a', { ...cluster, name: 'a' });
  assert.equal(first, again);
  assert.equal(enc.misses, 1);
  enc.sweep();
  assert.equal(enc.encode(TypeUrl.Cluster, 'a', { ...cluster, name: 'a' }), first); // kept across one cycle
  enc.sweep();
  enc.sweep();
  assert.equal(enc.size, 0);
});

test('ResourceEncoder keeps the encoding of a JSON object it saw for as long as the object lives, across sweeps', () => {
  const enc = new ResourceEncoder();
  const shared = { ...cluster, name: 'shared' };
  const first = enc.encode(TypeUrl.Cluster, 'shared', shared);
  for (let i = 0; i < 5; i++) enc.sweep();
  assert.equal(enc.size, 0, 'the generations forgot it');
  assert.equal(enc.encode(TypeUrl.Cluster, 'shared', shared), first, 'the same object: the same encoding, not encoded again');
  assert.equal(enc.misses, 1);
  // Equal content in another object after the sweeps: encoded again (the generations are what key by content).
  assert.notEqual(enc.encode(TypeUrl.Cluster, 'shared', { ...shared }), first);
  assert.equal(enc.misses, 2);
  // Another name for the same object is another resource.
  assert.equal(enc.encode(TypeUrl.Cluster, 'other', shared).name, 'other');
});

test('route configurations are composed from cached virtual hosts: the same message as a whole encoding, and an edit re-encodes one virtual host', () => {
  const vhost = (i: number, prefix = '/') => ({
    name: `svc-${i}.ns.svc.cluster.local:80`,
    domains: [`svc-${i}.ns.svc.cluster.local`, `svc-${i}.ns`],
    routes: [{ match: { prefix }, route: { cluster: `outbound|80||svc-${i}.ns.svc.cluster.local`, timeout: '0s' } }],
  });
  const rc = (hosts: unknown[]) => ({ name: '80', virtualHosts: hosts, validateClusters: false, ignorePortInHostMatching: true });
  const hosts = Array.from({ length: 10 }, (_, i) => vhost(i));
  const enc = new ResourceEncoder();
  const a = enc.encode(TypeUrl.RouteConfiguration, '80', rc(hosts));
  assert.deepEqual(decodeToJson(TypeUrl.RouteConfiguration, a.value), decodeToJson(TypeUrl.RouteConfiguration, encodeJson(TypeUrl.RouteConfiguration, rc(hosts))));
  assert.equal(enc.partsEncoded, 10);
  // Another route configuration holding the same virtual hosts, one of them edited: one virtual host encoded.
  const edited = [...hosts.slice(0, 3), vhost(3, '/v2'), ...hosts.slice(4)];
  const b = enc.encode(TypeUrl.RouteConfiguration, '80', rc(edited));
  assert.equal(enc.partsEncoded, 11);
  assert.notEqual(b.version, a.version);
  assert.deepEqual(decodeToJson(TypeUrl.RouteConfiguration, b.value), decodeToJson(TypeUrl.RouteConfiguration, encodeJson(TypeUrl.RouteConfiguration, rc(edited))));
  // Deterministic: equal content, equal bytes (so equal versions) from a fresh encoder.
  assert.equal(new ResourceEncoder().encode(TypeUrl.RouteConfiguration, '80', rc(edited)).version, b.version);
});
