import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultXdsLimits } from '@sextant/xds';
import { FlagError, parseBytes, parseDiscoveryFlags } from './flags.js';

const base = ['--config-dir', '/tmp/x'];

test('xDS limit flags: defaults, command line, SEXTANT_* variables, sizes with units', () => {
  const d = parseDiscoveryFlags(base, {});
  assert.deepEqual(d.xdsLimits, defaultXdsLimits);
  assert.equal(d.xdsMaxRequestBytes, 4 * 1024 * 1024);
  assert.equal(d.xdsLimitCooldownMs, 1000);
  assert.equal(parseDiscoveryFlags(base, { SEXTANT_XDS_LIMIT_COOLDOWN: '0' }).xdsLimitCooldownMs, 0);
  assert.equal(d.xdsReclaimAfterMs, 1000);
  assert.equal(parseDiscoveryFlags(base, { SEXTANT_XDS_RECLAIM_AFTER: '0' }).xdsReclaimAfterMs, 0);
  assert.equal(parseDiscoveryFlags([...base, '--xds-reclaim-after', '250ms'], {}).xdsReclaimAfterMs, 250);
  assert.equal(d.xdsReclaimAfterPushedBytes, 2 ** 30);
  assert.equal(parseDiscoveryFlags([...base, '--xds-reclaim-after-pushed', '0'], {}).xdsReclaimAfterPushedBytes, 0);

  const c = parseDiscoveryFlags([...base, '--xds-max-names-per-request', '10', '--xds-max-pending-bytes', '64Ki', '--xds-max-request-bytes=1MiB'], {});
  assert.equal(c.xdsLimits.maxNamesPerRequest, 10);
  assert.equal(c.xdsLimits.maxPendingBytes, 65536);
  assert.equal(c.xdsMaxRequestBytes, 1 << 20);

  const e = parseDiscoveryFlags(base, { SEXTANT_XDS_MAX_STREAMS_PER_ADDRESS: '7', SEXTANT_XDS_MAX_NODE_BYTES: '2048', SEXTANT_XDS_MAX_OPENING_STREAMS_PER_ADDRESS: '3' });
  assert.equal(e.xdsLimits.maxStreamsPerAddress, 7);
  assert.equal(e.xdsLimits.maxNodeBytes, 2048);
  assert.equal(e.xdsLimits.maxOpeningStreamsPerAddress, 3);
  // The command line wins over the environment.
  assert.equal(parseDiscoveryFlags([...base, '--xds-max-unknown-types', '4'], { SEXTANT_XDS_MAX_UNKNOWN_TYPES: '9' }).xdsLimits.maxUnknownTypes, 4);
});

test('xDS limit flags: a bad value names the flag', () => {
  assert.throws(() => parseDiscoveryFlags([...base, '--xds-max-names-per-stream', 'lots'], {}), (err: Error) => err instanceof FlagError && /--xds-max-names-per-stream: "lots" is not a positive integer/.test(err.message));
  assert.throws(() => parseDiscoveryFlags([...base, '--xds-max-streams-per-connection', '0'], {}), /--xds-max-streams-per-connection/);
  assert.throws(() => parseBytes('xds-max-node-bytes', '1MB'), /--xds-max-node-bytes: "1MB" is not a size in bytes/);
  assert.equal(parseBytes('x', '4Mi'), parseBytes('x', '4MiB'));
});

test('--eds-debounce: leading by default, true as istiod, anything else named', () => {
  assert.equal(parseDiscoveryFlags(base, {}).edsDebounce, 'leading');
  assert.equal(parseDiscoveryFlags([...base, '--eds-debounce', 'true'], {}).edsDebounce, 'true');
  assert.equal(parseDiscoveryFlags(base, { SEXTANT_EDS_DEBOUNCE: 'true' }).edsDebounce, 'true');
  assert.throws(() => parseDiscoveryFlags([...base, '--eds-debounce', 'off'], {}), (err: Error) => err instanceof FlagError && /--eds-debounce: "off" is not one of leading/.test(err.message));
});
