import { test } from 'node:test';
import assert from 'node:assert/strict';
import { egressPortProtocol, isHttp, isSniffed, sidecarIngressProtocol } from './protocol.js';

test('Sidecar ingress protocols: Istio names, UDP/HTTP_PROXY/unknown/missing are sniffed', () => {
  assert.equal(sidecarIngressProtocol('http'), 'HTTP');
  assert.equal(sidecarIngressProtocol('GRPC-WEB'), 'GRPC-Web');
  assert.equal(sidecarIngressProtocol('MONGO'), 'Mongo');
  for (const p of ['UDP', 'HTTP_PROXY', 'bogus', undefined, '']) assert.ok(isSniffed(sidecarIngressProtocol(p)), String(p));
});

test('Sidecar egress protocols override the service port only for the HTTP and TCP families', () => {
  assert.equal(egressPortProtocol('HTTP', 'TCP'), 'HTTP');
  assert.equal(egressPortProtocol('grpc-web', 'TCP'), 'GRPC-Web');
  assert.equal(egressPortProtocol('TLS', 'HTTP'), 'TLS');
  assert.equal(egressPortProtocol(undefined, 'HTTP2'), 'HTTP2');
  assert.equal(egressPortProtocol('MONGO', 'TCP'), 'TCP');
  assert.ok(isHttp(egressPortProtocol('', 'GRPC')));
});
