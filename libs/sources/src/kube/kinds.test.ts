import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultKinds, preferVersions } from './kinds.js';

test('version preference: GA, then beta, then alpha', () => {
  assert.deepEqual(preferVersions(['v1alpha3', 'v1', 'v1beta1']), ['v1', 'v1beta1', 'v1alpha3']);
  assert.deepEqual(preferVersions(['v1alpha1', 'v1']), ['v1', 'v1alpha1']);
});

test('default kinds come from the registry: core kinds always, Istio kinds behind their CRD', () => {
  const by = new Map(defaultKinds.map((k) => [k.kind, k]));
  for (const k of ['Service', 'EndpointSlice', 'Pod', 'Namespace', 'Node', 'Secret', 'ConfigMap']) assert.equal(by.get(k)?.crd, false, k);
  for (const k of ['VirtualService', 'DestinationRule', 'Gateway', 'ServiceEntry', 'Sidecar', 'AuthorizationPolicy', 'PeerAuthentication']) {
    assert.equal(by.get(k)?.crd, true, k);
  }
  assert.equal(by.get('VirtualService')?.versions[0], 'v1');
  assert.equal(by.get('EndpointSlice')?.group, 'discovery.k8s.io');
});
