/**
 * The daemon's TLS xDS port (15012) refuses an address in cooldown at TCP
 * accept, as the plaintext port does: the client's TLS handshake never starts
 * (no byte of a ServerHello), so a client that keeps going over the limits
 * cannot make the daemon do TLS handshakes for it either.
 */
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '@sextant/envoy';
import { SotwClient } from '@sextant/testing/xds-client';
import { startSextant } from './sextant.js';

const BOOKINFO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'bookinfo');

/** Whether a TLS handshake with the port completes (false: the connection was closed or reset first, or 5 s passed). */
function tlsHandshake(address: string): Promise<{ handshake: boolean; error?: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (r: { handshake: boolean; error?: string }) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ handshake: false, error: 'timeout' }), 5000);
    s.once('secureConnect', () => done({ handshake: true }));
    s.once('error', (err: NodeJS.ErrnoException) => done({ handshake: false, error: err.code ?? err.message }));
    s.once('close', () => done({ handshake: false, error: 'closed' }));
  });
}

test('an address in cooldown is reset at TCP accept on the TLS port too, before the handshake', async () => {
  const sextant = await startSextant({ configDir: BOOKINFO, args: ['--xds-max-names-per-request', '10', '--xds-limit-cooldown', '20s'] });
  try {
    assert.deepEqual(await tlsHandshake(sextant.secureAddress), { handshake: true }, 'the TLS port handshakes with an address not in cooldown');
    // Three requests over the names limit (on the plaintext port) put 127.0.0.1 in cooldown.
    for (let i = 0; i < 3; i++) {
      const c = new SotwClient(sextant.xdsAddress, { node: { id: `greedy-${i}` } });
      c.request(TypeUrl.ClusterLoadAssignment, { resourceNames: Array.from({ length: 11 }, (_, j) => `n${j}`) });
      const st = await c.status();
      c.close();
      assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED, `status ${grpc.status[st.code]}: ${st.details}`);
    }
    const refused = await tlsHandshake(sextant.secureAddress);
    assert.equal(refused.handshake, false, 'no TLS handshake for an address in cooldown');
    assert.ok(refused.error === 'ECONNRESET' || refused.error === 'closed', `reset at accept: ${refused.error}`);
    const metrics = await (await fetch(`${sextant.monitoringUrl}/metrics`)).text();
    assert.match(metrics, /limit="address_cooldown"\} [1-9]/, 'the refused connection is counted');
  } finally {
    assert.equal(await sextant.stop(), 0, 'SIGTERM exits 0');
  }
});
