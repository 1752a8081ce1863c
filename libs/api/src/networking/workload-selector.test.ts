import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DestinationRuleSpec } from './destination-rule.js';
import { EnvoyFilterSpec } from './envoy-filter.js';
import { ServiceEntrySpec } from './service-entry.js';
import { SidecarSpec } from './sidecar.js';

test('Sidecar, ServiceEntry and EnvoyFilter select with workloadSelector.labels (networking WorkloadSelector); DestinationRule with matchLabels', () => {
  const se = { hosts: ['vm.example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC' };
  assert.ok(SidecarSpec.safeParse({ workloadSelector: { labels: { app: 'ratings' } }, egress: [{ hosts: ['./*'] }] }).success);
  assert.ok(ServiceEntrySpec.safeParse({ ...se, workloadSelector: { labels: { app: 'vm' } } }).success);
  assert.ok(EnvoyFilterSpec.safeParse({ workloadSelector: { labels: { app: 'reviews' } } }).success);
  assert.ok(DestinationRuleSpec.safeParse({ host: 'r', workloadSelector: { matchLabels: { app: 'r' } } }).success);
  // The other selector's field name is an unknown field, as the API server's schema says.
  const sc = SidecarSpec.safeParse({ workloadSelector: { matchLabels: { app: 'ratings' } } });
  assert.equal(sc.success, false);
  assert.deepEqual(sc.error!.issues[0]!.path, ['workloadSelector']);
  assert.equal(ServiceEntrySpec.safeParse({ ...se, workloadSelector: { matchLabels: { app: 'vm' } } }).success, false);
  assert.equal(DestinationRuleSpec.safeParse({ host: 'r', workloadSelector: { labels: { app: 'r' } } }).success, false);
});
