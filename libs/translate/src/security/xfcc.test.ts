import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxy } from '@sextant/model';
import { gatewayClientCertSettings } from './xfcc.js';

const gw = (metadata: Record<string, unknown> = {}) => parseProxy('router~10.1.0.9~gw-0.istio-system~istio-system.svc.cluster.local', metadata);

test('gateway XFCC: SANITIZE_SET with the current certificate by default; ProxyConfig gatewayTopology wins', () => {
  assert.deepEqual(gatewayClientCertSettings(gw()), { forwardClientCertDetails: 'SANITIZE_SET', setCurrentClientCertDetails: { subject: true, cert: true, dns: true, uri: true } });
  assert.deepEqual(gatewayClientCertSettings(gw({ PROXY_CONFIG: { gatewayTopology: { forwardClientCertDetails: 'FORWARD_ONLY', numTrustedProxies: 2 } } })), { forwardClientCertDetails: 'FORWARD_ONLY', xffNumTrustedHops: 2 });
  assert.deepEqual(gatewayClientCertSettings(gw({ PROXY_CONFIG: JSON.stringify({ gatewayTopology: { forwardClientCertDetails: 'APPEND_FORWARD' } }) })).forwardClientCertDetails, 'APPEND_FORWARD');
});
