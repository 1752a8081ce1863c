import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import { CRD_HEADER, crdFor, renderCrdFiles, structuralProblems, structuralSchema } from './crd.js';
import { ISTIO_KINDS } from './kinds.js';

const crdsDir = new URL('../../../crds/', import.meta.url);
const REGEN = 'npx tsc -b libs/api && node libs/api/scripts/gen-crds.mjs';

test('crds/ is up to date with the zod schemas', () => {
  const files = renderCrdFiles();
  const stale: string[] = [];
  for (const { file, content } of files) {
    const url = new URL(file, crdsDir);
    if (!existsSync(url) || readFileSync(url, 'utf8') !== content) stale.push(file);
  }
  const wanted = new Set(files.map((f) => f.file));
  for (const file of readdirSync(crdsDir)) {
    if (file.endsWith('.yaml') && !wanted.has(file) && readFileSync(new URL(file, crdsDir), 'utf8').startsWith(CRD_HEADER)) stale.push(file);
  }
  assert.deepEqual(stale, [], `crds/ is out of date: ${stale.join(', ')}. Regenerate with: ${REGEN}`);
});

// Names, scope and versions as Istio's base chart has them.
const ISTIO = [
  ['networking.istio.io', 'VirtualService', 'virtualservices', ['vs'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'DestinationRule', 'destinationrules', ['dr'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'Gateway', 'gateways', ['gw'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'ServiceEntry', 'serviceentries', ['se'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'WorkloadEntry', 'workloadentries', ['we'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'WorkloadGroup', 'workloadgroups', ['wg'], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'Sidecar', 'sidecars', [], ['v1', 'v1alpha3', 'v1beta1'], 'v1'],
  ['networking.istio.io', 'EnvoyFilter', 'envoyfilters', [], ['v1alpha3'], 'v1alpha3'],
  ['security.istio.io', 'PeerAuthentication', 'peerauthentications', ['pa'], ['v1', 'v1beta1'], 'v1'],
  ['security.istio.io', 'RequestAuthentication', 'requestauthentications', ['ra'], ['v1', 'v1beta1'], 'v1'],
  ['security.istio.io', 'AuthorizationPolicy', 'authorizationpolicies', ['ap'], ['v1', 'v1beta1'], 'v1'],
  ['telemetry.istio.io', 'Telemetry', 'telemetries', ['telemetry'], ['v1', 'v1alpha1'], 'v1alpha1'],
] as const;

test('every Istio CRD has Istio names, scope, versions and a status subresource', () => {
  assert.equal(ISTIO_KINDS.length, ISTIO.length);
  for (const [group, kind, plural, shortNames, versions, storage] of ISTIO) {
    const info = ISTIO_KINDS.find((k) => k.kind === kind);
    assert.ok(info, kind);
    const crd = crdFor(info) as any;
    assert.equal(crd.metadata.name, `${plural}.${group}`);
    assert.equal(crd.spec.group, group);
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.deepEqual(crd.spec.names.shortNames ?? [], [...shortNames]);
    assert.deepEqual(crd.spec.names.categories, ['istio-io', `${group.replace(/\./g, '-')}`]);
    assert.equal(crd.spec.names.listKind, `${kind}List`);
    assert.equal(crd.spec.names.singular, kind.toLowerCase());
    assert.deepEqual(crd.spec.versions.map((v: any) => v.name), [...versions]);
    assert.deepEqual(crd.spec.versions.filter((v: any) => v.storage).map((v: any) => v.name), [storage]);
    for (const v of crd.spec.versions) {
      assert.equal(v.served, true);
      assert.deepEqual(v.subresources, { status: {} });
      assert.deepEqual(structuralProblems(v.schema.openAPIV3Schema), [], `${kind} ${v.name} is not structural`);
    }
  }
});

test('printer columns match Istio', () => {
  const cols = (kind: string) => (crdFor(ISTIO_KINDS.find((k) => k.kind === kind)!) as any).spec.versions[0].additionalPrinterColumns?.map((c: any) => `${c.name}=${c.jsonPath}`);
  assert.deepEqual(cols('VirtualService'), ['Gateways=.spec.gateways', 'Hosts=.spec.hosts', 'Age=.metadata.creationTimestamp']);
  assert.deepEqual(cols('DestinationRule'), ['Host=.spec.host', 'Age=.metadata.creationTimestamp']);
  assert.deepEqual(cols('ServiceEntry'), ['Hosts=.spec.hosts', 'Location=.spec.location', 'Resolution=.spec.resolution', 'Age=.metadata.creationTimestamp']);
  assert.deepEqual(cols('PeerAuthentication'), ['Mode=.spec.mtls.mode', 'Age=.metadata.creationTimestamp']);
  assert.deepEqual(cols('AuthorizationPolicy'), ['Action=.spec.action', 'Age=.metadata.creationTimestamp']);
  assert.equal(cols('Gateway'), undefined);
  assert.equal(cols('EnvoyFilter'), undefined);
});

test('structural conversion: int-or-string, maps, free-form, nullable', () => {
  const s = structuralSchema(
    z.strictObject({
      port: z.union([z.int(), z.string()]).optional(),
      labels: z.record(z.string(), z.string()).optional(),
      value: z.record(z.string(), z.unknown()).optional(),
      anything: z.unknown().optional(),
      pct: z.number().min(0).max(100).nullable().optional(),
      count: z.int().optional(),
      mode: z.literal('X').optional(),
    }),
  );
  assert.deepEqual(s, {
    type: 'object',
    properties: {
      anything: { 'x-kubernetes-preserve-unknown-fields': true },
      count: { type: 'integer' },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      mode: { type: 'string', enum: ['X'] },
      pct: { type: 'number', minimum: 0, maximum: 100, nullable: true },
      port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
      value: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
  });
  assert.deepEqual(structuralProblems(s), []);
});

test('structural conversion: a union of objects becomes one object with a oneOf of required fields', () => {
  const s = structuralSchema(
    z.union([z.strictObject({ exact: z.string() }), z.strictObject({ prefix: z.string() }), z.strictObject({ regex: z.string() })]),
  );
  assert.deepEqual(s, {
    type: 'object',
    properties: { exact: { type: 'string' }, prefix: { type: 'string' }, regex: { type: 'string' } },
    oneOf: [{ required: ['exact'] }, { required: ['prefix'] }, { required: ['regex'] }],
  });
  assert.deepEqual(structuralProblems(s), []);
});

test('structural conversion: recursion is cut to a free-form object, never a $ref', () => {
  interface Node {
    name?: string;
    children?: Node[];
  }
  const N: z.ZodType<Node> = z.lazy(() => z.strictObject({ name: z.string().optional(), children: z.array(N).optional() }));
  const s = structuralSchema(z.strictObject({ root: N }));
  assert.ok(!JSON.stringify(s).includes('$ref'));
  assert.deepEqual(structuralProblems(s), []);
});

test('structuralProblems finds what the API server would reject', () => {
  assert.deepEqual(structuralProblems({ properties: { a: {} } }), ['openAPIV3Schema: type is missing', 'openAPIV3Schema.properties.a: type is missing']);
  assert.deepEqual(structuralProblems({ type: 'object', oneOf: [{ type: 'string' }] }), [
    'openAPIV3Schema.oneOf[0]: type is not allowed inside a oneOf/anyOf/allOf/not',
  ]);
  assert.deepEqual(structuralProblems({ type: 'object', $ref: '#/x' }), ['openAPIV3Schema: $ref is not allowed']);
});
