import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { TypeUrl, decodeToJson, encodeJson } from '@sextant/envoy';
import { REDACTED, buildClustersView, buildConfigDump, buildSextantDump, canonicalConfigDump, containsPrivateKey, encodeConfigDump, redact, type ProxyState } from './config-dump.js';

const keyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const keyB64 = Buffer.from(keyPem).toString('base64');
const REDACTED_B64 = Buffer.from(REDACTED).toString('base64');

function state(types: ProxyState['types']): ProxyState {
  return { connectionId: 'c1', proxyId: 'router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local', delta: false, node: {}, namespace: 'istio-system', types };
}
const res = (typeUrl: string, name: string, json: unknown) => ({ name, version: 'v1', value: encodeJson(typeUrl, json) });

test('secrets are redacted as Envoy does: TLS private key, password, generic secret, session ticket keys', () => {
  const secret = {
    name: 'kubernetes://shop-cert',
    tlsCertificate: {
      certificateChain: { inlineBytes: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64') },
      privateKey: { inlineBytes: keyB64 },
      password: { inlineString: 'hunter2' },
    },
  };
  const out = JSON.stringify(redact(TypeUrl.Secret, decodeToJson(TypeUrl.Secret, encodeJson(TypeUrl.Secret, secret))));
  assert.ok(!out.includes(keyB64) && !out.includes('hunter2'), out);
  assert.ok(out.includes(REDACTED_B64) && out.includes(REDACTED), out);
  assert.ok(out.includes(secret.tlsCertificate.certificateChain.inlineBytes), 'the certificate stays');
  const generic = JSON.stringify(redact(TypeUrl.Secret, { name: 'g', genericSecret: { secret: { inlineString: keyPem } } }));
  assert.ok(!generic.includes('PRIVATE KEY') && generic.includes(REDACTED), generic);
  const tickets = JSON.stringify(redact(TypeUrl.Secret, { name: 't', sessionTicketKeys: { keys: [{ inlineBytes: keyB64 }] } }));
  assert.ok(!tickets.includes(keyB64), tickets);
});

test('a key inline in a listener\'s transport socket (inside an Any) is redacted too', () => {
  const listener = {
    name: 'l1',
    filterChains: [
      {
        transportSocket: {
          name: 'envoy.transport_sockets.tls',
          typedConfig: {
            '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
            commonTlsContext: { tlsCertificates: [{ privateKey: { inlineString: keyPem } }] },
          },
        },
      },
    ],
  };
  const json = decodeToJson(TypeUrl.Listener, encodeJson(TypeUrl.Listener, listener));
  const out = JSON.stringify(redact(TypeUrl.Listener, json));
  assert.ok(!containsPrivateKey(out), out);
  assert.ok(out.includes(REDACTED));
});

test('the config dump is an Envoy ConfigDump: typed entries, dynamic_active_* with version and time, secrets redacted', () => {
  const sentAt = '2026-01-02T03:04:05Z';
  const st = state([
    { typeUrl: TypeUrl.Cluster, versionSent: 'p1', sentAt, resources: [res(TypeUrl.Cluster, 'outbound|80||a.default.svc.cluster.local', { name: 'outbound|80||a.default.svc.cluster.local', type: 'EDS' })] },
    { typeUrl: TypeUrl.ClusterLoadAssignment, versionSent: 'p1', sentAt, resources: [res(TypeUrl.ClusterLoadAssignment, 'outbound|80||a.default.svc.cluster.local', { clusterName: 'outbound|80||a.default.svc.cluster.local' })] },
    { typeUrl: TypeUrl.Listener, versionSent: 'p1', sentAt, resources: [res(TypeUrl.Listener, '0.0.0.0_80', { name: '0.0.0.0_80' })] },
    { typeUrl: TypeUrl.RouteConfiguration, versionSent: 'p1', sentAt, resources: [res(TypeUrl.RouteConfiguration, '80', { name: '80' })] },
    {
      typeUrl: TypeUrl.Secret,
      versionSent: 's1',
      sentAt,
      resources: [res(TypeUrl.Secret, 'kubernetes://shop-cert', { name: 'kubernetes://shop-cert', tlsCertificate: { privateKey: { inlineBytes: keyB64 } } })],
    },
  ]);
  const dump = canonicalConfigDump(buildConfigDump(st)) as { configs: Array<Record<string, unknown>> };
  const text = JSON.stringify(dump);
  assert.ok(!text.includes(keyB64) && !containsPrivateKey(text));
  const byType = new Map(dump.configs.map((c) => [String(c['@type']).split('.').pop(), c]));
  const clusters = byType.get('ClustersConfigDump') as { versionInfo: string; dynamicActiveClusters: Array<{ versionInfo: string; lastUpdated: string; cluster: { name: string } }> };
  assert.equal(clusters.versionInfo, 'p1');
  assert.deepEqual(clusters.dynamicActiveClusters.map((c) => [c.cluster.name, c.versionInfo, c.lastUpdated]), [['outbound|80||a.default.svc.cluster.local', 'p1', sentAt]]);
  const listeners = byType.get('ListenersConfigDump') as { dynamicListeners: Array<{ name: string; activeState: { listener: { name: string } } }> };
  assert.equal(listeners.dynamicListeners[0]!.activeState.listener.name, '0.0.0.0_80');
  const secrets = byType.get('SecretsConfigDump') as { dynamicActiveSecrets: Array<{ name: string; secret: { tlsCertificate: { privateKey: { inlineBytes: string } } } }> };
  assert.equal(secrets.dynamicActiveSecrets[0]!.secret.tlsCertificate.privateKey.inlineBytes, REDACTED_B64);
  assert.ok(byType.has('EndpointsConfigDump') && byType.has('RoutesConfigDump') && byType.has('BootstrapConfigDump'));
  // The xDS form: one encoded admin message per entry.
  const encoded = encodeConfigDump(buildConfigDump(st));
  assert.equal(encoded.length, 7);
  assert.ok(!Buffer.concat(encoded.map((e) => Buffer.from(e.value))).includes(Buffer.from(keyPem)));
  // Sextant's own dump is redacted too.
  const own = JSON.stringify(buildSextantDump(st));
  assert.ok(!own.includes(keyB64) && own.includes(REDACTED_B64), own);
});

test('the clusters view (Envoy /clusters JSON) lists each cluster with the endpoints EDS sent', () => {
  const name = 'outbound|80||a.default.svc.cluster.local';
  const st = state([
    { typeUrl: TypeUrl.Cluster, resources: [res(TypeUrl.Cluster, name, { name, type: 'EDS', edsClusterConfig: { edsConfig: { ads: {} } } }), res(TypeUrl.Cluster, 'BlackHoleCluster', { name: 'BlackHoleCluster', type: 'STATIC' })] },
    {
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resources: [
        res(TypeUrl.ClusterLoadAssignment, name, {
          clusterName: name,
          endpoints: [{ locality: { region: 'r1' }, lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '10.0.0.7', portValue: 8080 } } }, healthStatus: 'HEALTHY', loadBalancingWeight: 3 }, { endpoint: { address: { socketAddress: { address: '10.0.0.8', portValue: 8080 } } }, healthStatus: 'DRAINING' }] }],
        }),
      ],
    },
  ]);
  const view = buildClustersView(st) as { cluster_statuses: Array<{ name: string; host_statuses: Array<{ address: { socket_address: { address: string; port_value: number } }; health_status: { eds_health_status: string }; weight: number; locality: unknown }> }> };
  const a = view.cluster_statuses.find((c) => c.name === name)!;
  assert.deepEqual(
    a.host_statuses.map((h) => [h.address.socket_address.address, h.address.socket_address.port_value, h.health_status.eds_health_status, h.weight]),
    [
      ['10.0.0.7', 8080, 'HEALTHY', 3],
      ['10.0.0.8', 8080, 'DRAINING', 1],
    ],
  );
  assert.deepEqual(a.host_statuses[0]!.locality, { region: 'r1' });
  assert.deepEqual(view.cluster_statuses.find((c) => c.name === 'BlackHoleCluster')!.host_statuses, []);
});
