import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sdsDownstreamTls } from './filters.js';

test('a Gateway minProtocolVersion/maxProtocolVersion becomes Envoy enum names (TLSv1_2, not TLSV1_2)', () => {
  const socket = sdsDownstreamTls('kubernetes://cert', { minVersion: 'TLSV1_2', maxVersion: 'TLSV1_3' });
  const params = (socket.typedConfig as { commonTlsContext: { tlsParams: Record<string, string> } }).commonTlsContext.tlsParams;
  assert.deepEqual(params, { tlsMinimumProtocolVersion: 'TLSv1_2', tlsMaximumProtocolVersion: 'TLSv1_3' });
});
