/**
 * Declared Service ports without a protocol (sniffed), through a stock sidecar
 * in iptables mode, as istiod serves them: virtualInbound has an HTTP chain
 * (matched on the ALPN the HTTP inspector or the mTLS handshake reports) next
 * to the TCP one, and security policy applies to each. Istio's pilot-agent
 * (root namespace, certificates from Sextant's CA) runs a real Envoy inside a
 * network namespace this test creates, where Istio's inbound capture REDIRECTs
 * the pod's TCP to 15006; virtualInbound has no use_original_dst, so the
 * chains are picked by the destination the original_dst listener filter
 * restores. The Service `web` declares 7070 (an HTTP app that reports the
 * headers it got) and 7071 (a TCP echo), both without a protocol. The client
 * is this process on the veth's host end: plaintext, and mTLS with the
 * certificate Sextant issued to the agent (OUTPUT_CERTS).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { until } from './backends.js';
import { startNetnsSidecar, type NetnsSidecar } from './fixtures/agent-netns.js';
import { endpointSlice, namespace, pod, service, type K8sObject } from './fixtures/mesh.js';
import { canNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

const HTTP_PORT = 7070;
const TCP_PORT = 7071;
const LABELS = { app: 'web', 'security.istio.io/tlsMode': 'istio' };
// Port names that name no protocol: Istio sniffs both.
const PORTS = [
  { name: 'web', port: HTTP_PORT },
  { name: 'echo', port: TCP_PORT },
];

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** What the app saw: its request headers. */
  seen: Record<string, string>;
}
type Answer = HttpAnswer | string; // 'refused', or what a TCP echo sent back

describe('sniffed Service ports: HTTP and TCP chains on virtualInbound, a stock sidecar in iptables mode', { timeout: 300_000, skip: skipUnless('pilot-agent', 'envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  let sidecar: NetnsSidecar | undefined;
  let kube: K8sObject[];
  const ns = () => sidecar!.ns;
  const fail = (e: Error): never => sidecar!.fail(e);

  before(async () => {
    sidecar = await startNetnsSidecar({
      tag: 'sn',
      net: `10.252.${(process.pid + 53) % 200}`,
      app: `const http = require('node:http'), net = require('node:net');
       http.createServer((q, s) => { s.end(JSON.stringify(q.headers)); }).listen(${HTTP_PORT}, '0.0.0.0', () => console.log('http up'));
       net.createServer((c) => c.pipe(c)).listen(${TCP_PORT}, '0.0.0.0', () => console.log('tcp up'));`,
      appReady: ['http up', 'tcp up'],
      files: (podIp) => {
        kube = [namespace('default'), namespace('istio-system'), pod('web-0', 'default', podIp, LABELS, 'web'), service('web', 'default', '10.96.77.7', PORTS), endpointSlice('web', 'default', 'web-0', podIp, PORTS)];
        return { 'kubernetes.yaml': kube, 'istio.yaml': [] };
      },
      workload: { namespace: 'default', serviceAccount: 'web', podName: 'web-0', labels: LABELS },
      outputCerts: true,
    });
  });

  after(async () => {
    await sidecar?.stop();
  });

  const clientCert = () => ({ key: readFileSync(join(sidecar!.certs, 'key.pem')), cert: readFileSync(join(sidecar!.certs, 'cert-chain.pem')), ca: sidecar!.rootPem });
  const plain = (port: number) => () => netConnect({ host: ns().pod, port });
  const mtls = (port: number, alpn: string[]) => () => tlsConnect({ host: ns().pod, port, ...clientCert(), ALPNProtocols: alpn, servername: 'web.default.svc.cluster.local', checkServerIdentity: () => undefined });

  /** Settles with 'refused' when the connection is closed or reset before an answer. */
  function guarded<T>(run: (resolve: (v: T | 'refused') => void) => Socket | TLSSocket): Promise<T | 'refused'> {
    return new Promise((resolve) => {
      const s = run(resolve);
      s.setTimeout(10_000, () => s.destroy());
      s.on('error', () => resolve('refused'));
      s.on('close', () => resolve('refused'));
    });
  }

  /** One HTTP/1.1 request over `socket`. */
  function httpOver(socket: () => Socket | TLSSocket, path: string): Promise<Answer> {
    return guarded<HttpAnswer>((resolve) => {
      const s = socket();
      const go = () => {
        const req = request({ createConnection: () => s, host: ns().pod, path, headers: { host: 'web' } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => {
            let seen: Record<string, string> = {};
            try {
              seen = JSON.parse(body) as Record<string, string>;
            } catch {
              // Not the app's answer (an Envoy local reply): nothing seen.
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, seen });
          });
        });
        req.on('error', () => resolve('refused'));
        req.end();
      };
      if ('encrypted' in s) s.once('secureConnect', go);
      else s.once('connect', go);
      return s;
    });
  }

  /** Writes a line on a TCP (or TLS) connection and reads what comes back. */
  function echoOver(socket: () => Socket | TLSSocket): Promise<Answer> {
    return guarded<string>((resolve) => {
      const s = socket();
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\n')) {
          resolve(got.trim());
          s.end();
        }
      });
      s.once('encrypted' in s ? 'secureConnect' : 'connect', () => s.write('ping\n'));
      return s;
    });
  }

  const http = (a: Answer): HttpAnswer => {
    assert.notEqual(typeof a, 'string', `expected an HTTP answer, got ${String(a)}`);
    return a as HttpAnswer;
  };
  /** Served by the sidecar's HTTP connection manager: Envoy named itself and gave the request an ID the app saw. */
  const viaHcm = (a: Answer) => typeof a !== 'string' && a.status === 200 && a.headers.server === 'istio-envoy' && typeof a.seen['x-request-id'] === 'string';

  test('HTTP to a sniffed port is proxied as HTTP (plaintext and mTLS), raw TCP to a sniffed port still passes (plaintext and mTLS)', async () => {
    const p = http(await until(() => httpOver(plain(HTTP_PORT), '/plain'), viaHcm, 'plaintext HTTP to a sniffed port through the HTTP chain', 120_000).catch(fail));
    assert.equal(p.seen['x-forwarded-client-cert'], undefined, 'plaintext: no peer identity to forward');
    // Over mTLS with Istio's HTTP ALPN: the HTTP chain terminates TLS and forwards the client's identity (XFCC).
    const m = http(await httpOver(mtls(HTTP_PORT, ['istio-http/1.1']), '/mtls'));
    assert.ok(viaHcm(m), JSON.stringify(m));
    assert.match(m.seen['x-forwarded-client-cert'] ?? '', /By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/web;Hash=[0-9a-f]+;Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/web$/);
    // Not HTTP: the TCP chain of the same kind of port.
    assert.equal(await echoOver(plain(TCP_PORT)), 'ping');
    assert.equal(await echoOver(mtls(TCP_PORT, ['istio-peer-exchange', 'istio'])), 'ping');
  });

  test('an AuthorizationPolicy path rule on a sniffed port is enforced on its HTTP chain; raw TCP on the other sniffed port still passes', async () => {
    const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-blocked', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { ports: [String(HTTP_PORT)], paths: ['/blocked'] } }] }] } };
    sidecar!.cfg.write('istio.yaml', [deny]);
    const blocked = http(await until(() => httpOver(plain(HTTP_PORT), '/blocked'), (a) => typeof a !== 'string' && a.status === 403, 'the path rule denying /blocked', 60_000).catch(fail));
    assert.equal(blocked.seen['x-request-id'], undefined, 'denied by the sidecar: the app saw nothing');
    // Another path on the same port passes: the rule is matched on the path, not the whole port.
    assert.ok(viaHcm(await httpOver(plain(HTTP_PORT), '/open')));
    assert.ok(viaHcm(await httpOver(mtls(HTTP_PORT, ['istio-http/1.1']), '/open')));
    assert.equal(http(await httpOver(mtls(HTTP_PORT, ['istio-http/1.1']), '/blocked')).status, 403);
    assert.equal(await echoOver(plain(TCP_PORT)), 'ping');
    assert.equal(await echoOver(mtls(TCP_PORT, ['istio-peer-exchange', 'istio'])), 'ping');
  });
});
