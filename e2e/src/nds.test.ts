/**
 * NDS from the real daemon over real gRPC ADS streams (SotW and Delta, as
 * pilot-agent uses): a sidecar with DNS capture asks for
 * `istio.networking.nds.v1.NameTable` and gets every service it sees, by host
 * name. ServiceEntries without addresses get a deterministic address in
 * 240.240.0.0/16 (with DNS auto-allocation), the same one its TCP listener is
 * named after; Kubernetes services carry name and namespace for the short
 * forms. The table is decoded with protobufjs from the repository's own
 * proto/istio/networking/nds/v1/nds.proto. An edit pushes a new table.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { DeltaClient, SotwClient, resourceNames } from '@sextant/testing/xds-client';
import { TypeUrl } from '@sextant/envoy';
import { configDir, istio, namespace, service, type ConfigDir, type K8sObject } from './fixtures/mesh.js';
import { startSextant, type RunningSextant } from './sextant.js';

const NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NameTable = protobuf.loadSync(join(repo, 'proto/istio/networking/nds/v1/nds.proto')).lookupType('istio.networking.nds.v1.NameTable');
type Table = Record<string, { ips?: string[]; registry?: string; shortname?: string; namespace?: string }>;
const decode = (value: Uint8Array): Table => (NameTable.toObject(NameTable.decode(value), { defaults: false }) as { table?: Table }).table ?? {};
const NODE = 'sidecar~10.244.1.10~productpage-v1-abc.default~default.svc.cluster.local';
const META = { NAMESPACE: 'default', DNS_CAPTURE: 'true', DNS_AUTO_ALLOCATE: 'true' };

describe('NDS: the name table for a sidecar with DNS capture', () => {
  let cfg: ConfigDir;
  let sextant: RunningSextant;
  const se = (name: string, spec: Record<string, unknown>) => istio('ServiceEntry', name, 'default', { location: 'MESH_EXTERNAL', ...spec });
  const objects = (extra: K8sObject[] = []): K8sObject[] => [
    namespace('default'),
    service('reviews', 'default', '10.96.2.13', [{ name: 'http', port: 9080 }]),
    se('api', { hosts: ['api.example.com'], resolution: 'DNS', ports: [{ number: 443, name: 'tls', protocol: 'TLS' }] }),
    se('db', { hosts: ['db.internal'], addresses: ['192.168.50.10'], resolution: 'STATIC', ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], endpoints: [{ address: '192.168.50.11' }] }),
    se('wild', { hosts: ['*.wild.example.com'], resolution: 'DNS', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] }),
    se('none', { hosts: ['none.example.com'], resolution: 'NONE', ports: [{ number: 8080, name: 'tcp', protocol: 'TCP' }] }),
    ...extra,
  ];

  before(async () => {
    cfg = configDir({ 'config.yaml': objects() });
    sextant = await startSextant({ configDir: cfg.dir });
  });
  after(async () => {
    await sextant?.stop();
    cfg?.remove();
  });

  test('SotW: every visible service by host name; ServiceEntries without addresses get 240.240.0.0/16; wildcard and NONE hosts are left out', async () => {
    const c = new SotwClient(sextant.xdsAddress, { node: { id: NODE, metadata: META } });
    try {
      c.request(NDS);
      const r = await c.next();
      assert.equal(r.typeUrl, NDS);
      assert.equal(r.resources.length, 1);
      const table = decode(r.resources[0]!.value);
      assert.deepEqual(table['reviews.default.svc.cluster.local'], { ips: ['10.96.2.13'], registry: 'Kubernetes', shortname: 'reviews', namespace: 'default' });
      assert.deepEqual(table['db.internal'], { ips: ['192.168.50.10'], registry: 'External' });
      const api = table['api.example.com']!;
      assert.equal(api.registry, 'External');
      assert.equal(api.ips!.length, 1);
      assert.match(api.ips![0]!, /^240\.240\.([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-5][0-9])\.([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$/);
      assert.equal(table['*.wild.example.com'], undefined);
      assert.equal(table['none.example.com'], undefined);
      // The same address names the ServiceEntry's TCP listener for this proxy (istiod's GetAddressForProxy).
      c.ack(r);
      c.request(TypeUrl.Listener);
      const lds = await c.next();
      assert.ok(resourceNames(lds).includes(`${api.ips![0]}_443`), `${resourceNames(lds)}`);
    } finally {
      c.close();
    }
  });

  test('the allocation is deterministic: a second daemon on the same config gives the same address', async () => {
    const other = await startSextant({ configDir: cfg.dir });
    try {
      const ask = async (addr: string) => {
        const c = new SotwClient(addr, { node: { id: NODE, metadata: META } });
        try {
          c.request(NDS);
          return decode((await c.next()).resources[0]!.value)['api.example.com']!.ips;
        } finally {
          c.close();
        }
      };
      assert.deepEqual(await ask(other.xdsAddress), await ask(sextant.xdsAddress));
    } finally {
      await other.stop();
    }
  });

  test('without auto-allocation the address-less ServiceEntry is not in the table (as istiod)', async () => {
    const c = new SotwClient(sextant.xdsAddress, { node: { id: NODE, metadata: { NAMESPACE: 'default', DNS_CAPTURE: 'true' } } });
    try {
      c.request(NDS);
      const table = decode((await c.next()).resources[0]!.value);
      assert.equal(table['api.example.com'], undefined);
      assert.ok(table['reviews.default.svc.cluster.local']);
    } finally {
      c.close();
    }
  });

  test('Delta (what pilot-agent speaks): the table arrives, and a new ServiceEntry is pushed', async () => {
    const c = new DeltaClient(sextant.xdsAddress, { node: { id: NODE, metadata: META } });
    try {
      c.request(NDS, { subscribe: [] });
      const first = await c.next();
      assert.equal(first.resources.length, 1);
      assert.ok(decode(first.resources[0]!.resource!.value)['api.example.com']);
      c.ack(first);
      cfg.write('config.yaml', objects([se('cache', { hosts: ['cache.example.com'], resolution: 'DNS', ports: [{ number: 6379, name: 'tcp', protocol: 'TCP' }] })]));
      const next = await c.next(15_000);
      const table = decode(next.resources[0]!.resource!.value);
      assert.match(table['cache.example.com']!.ips![0]!, /^240\.240\./);
      assert.notEqual(table['cache.example.com']!.ips![0], table['api.example.com']!.ips![0]);
    } finally {
      c.close();
    }
  });
});
