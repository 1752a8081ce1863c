/**
 * PeerAuthentication on ports no Service declares, with real traffic through
 * a stock sidecar in iptables mode: Istio's pilot-agent (root namespace,
 * certificates from Sextant's CA) runs a real Envoy inside a network
 * namespace this test creates, where Istio's inbound capture REDIRECTs the
 * pod's TCP to virtualInbound (15006). The app listens on ports no Service
 * declares: 7070 (HTTP, answers with what it saw) and 7071 (TCP echo). The
 * client is this process on the veth's host end: plaintext, and mTLS with a
 * certificate Sextant issued (the agent's own, written out by OUTPUT_CERTS).
 *
 * Each mode is set at another level (none = PERMISSIVE, mesh STRICT,
 * namespace DISABLE over it, workload STRICT with a port-level DISABLE) and
 * the passthrough chains must enforce it: STRICT refuses plaintext, PERMISSIVE
 * takes both and terminates mTLS (the app sees plaintext), DISABLE takes
 * plaintext only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { until } from './backends.js';
import { startNetnsSidecar, type NetnsSidecar } from './fixtures/agent-netns.js';
import { namespace, pod, type K8sObject } from './fixtures/mesh.js';
import { canNetns } from './fixtures/netns.js';
import { skipUnless } from './tools.js';

type Answer = string; // 'refused' or what came back

const HTTP_PORT = 7070;
const TCP_PORT = 7071;
const LABELS = { app: 'web', 'security.istio.io/tlsMode': 'istio' };
const peerAuth = (name: string, ns: string, spec: Record<string, unknown>): K8sObject => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: ns }, spec });

describe('PeerAuthentication on undeclared ports: a stock sidecar in iptables mode', { timeout: 300_000, skip: skipUnless('pilot-agent', 'envoy') || (!canNetns && 'needs root, ip netns and apt-get') }, () => {
  let sidecar: NetnsSidecar | undefined;
  const ns = () => sidecar!.ns;
  const fail = (e: Error): never => sidecar!.fail(e);

  before(async () => {
    sidecar = await startNetnsSidecar({
      tag: 'pa',
      net: `10.251.${(process.pid + 31) % 200}`,
      // The app: an HTTP server that reports the connection's source and the XFCC header it got, and a TCP echo server.
      app: `const http = require('node:http'), net = require('node:net');
       http.createServer((q, s) => { s.setHeader('x-backend', 'app'); s.end(JSON.stringify({ from: q.socket.remoteAddress, xfcc: q.headers['x-forwarded-client-cert'] ?? null })); }).listen(${HTTP_PORT}, '0.0.0.0', () => console.log('http up'));
       net.createServer((c) => c.pipe(c)).listen(${TCP_PORT}, '0.0.0.0', () => console.log('tcp up'));`,
      appReady: ['http up', 'tcp up'],
      files: (podIp) => ({ 'kubernetes.yaml': [namespace('default'), namespace('istio-system'), pod('web-0', 'default', podIp, LABELS, 'web')], 'istio.yaml': [] }),
      workload: { namespace: 'default', serviceAccount: 'web', podName: 'web-0', labels: LABELS },
      outputCerts: true,
    });
  });

  after(async () => {
    await sidecar?.stop();
  });

  const clientCert = () => ({ key: readFileSync(join(sidecar!.certs, 'key.pem')), cert: readFileSync(join(sidecar!.certs, 'cert-chain.pem')), ca: sidecar!.rootPem });

  /** Settles with 'refused' when the connection is closed or reset before an answer. */
  function guarded<T>(run: (resolve: (v: T | 'refused') => void, reject: (e: Error) => void) => Socket | TLSSocket): Promise<T | 'refused'> {
    return new Promise((resolve) => {
      const s = run(resolve, () => resolve('refused'));
      s.setTimeout(10_000, () => s.destroy());
      s.on('error', () => resolve('refused'));
      s.on('close', () => resolve('refused'));
    });
  }

  /** One HTTP request over `socket`: 'status body'. */
  function httpOver(socket: () => Socket | TLSSocket, path: string): Promise<Answer> {
    return guarded<string>((resolve) => {
      const s = socket();
      const go = () => {
        const req = request({ createConnection: () => s, host: ns().pod, path, headers: { host: 'web', 'x-forwarded-client-cert': 'By=spiffe://forged' } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve(`${res.statusCode} ${body}`));
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

  const plain = (port: number) => () => netConnect({ host: ns().pod, port });
  const mtls = (port: number, alpn: string[]) => () => tlsConnect({ host: ns().pod, port, ...clientCert(), ALPNProtocols: alpn, servername: 'web.default.svc.cluster.local', checkServerIdentity: () => undefined });

  // What a sidecar client sends: HTTP over mTLS with Istio's HTTP ALPN, other TCP with istio-peer-exchange/istio.
  const probes = {
    plainHttp: () => httpOver(plain(HTTP_PORT), '/plain'),
    mtlsHttp: () => httpOver(mtls(HTTP_PORT, ['istio-http/1.1']), '/mtls'),
    plainTcp: () => echoOver(plain(TCP_PORT)),
    mtlsTcp: () => echoOver(mtls(TCP_PORT, ['istio-peer-exchange', 'istio'])),
  };

  const ok = (a: Answer) => a.startsWith('200 ');
  const body = (a: Answer) => JSON.parse(a.slice(4)) as { from: string; xfcc: string | null };

  async function apply(objects: K8sObject[], settled: () => Promise<Answer>, expect: (a: Answer) => boolean, what: string) {
    sidecar!.cfg.write('istio.yaml', objects);
    await until(settled, expect, what, 60_000).catch(fail);
  }

  test('PERMISSIVE (no policy): plaintext and mTLS both reach the app, mTLS terminated by the sidecar', async () => {
    const p = await until(probes.plainHttp, ok, 'plaintext HTTP to an undeclared port through the sidecar', 120_000).catch(fail);
    // Forwarded by Envoy's inbound passthrough (bound to 127.0.0.6), not straight from the client.
    assert.equal(body(p).from, '127.0.0.6', p);
    const m = await probes.mtlsHttp();
    assert.ok(ok(m), m);
    // TLS was terminated: the app got plaintext HTTP, and the sidecar appended the client's identity (APPEND_FORWARD, as istiod).
    assert.match(body(m).xfcc ?? '', /,By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/web;Hash=[0-9a-f]+;Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/web$/, m);
    assert.equal(await probes.plainTcp(), 'ping');
    // mTLS to a TCP app: the echo comes back inside TLS, so the app saw the plaintext bytes.
    assert.equal(await probes.mtlsTcp(), 'ping');
  });

  test('mesh-wide STRICT: plaintext to an undeclared port is refused, mTLS still passes', async () => {
    await apply([peerAuth('default', 'istio-system', { mtls: { mode: 'STRICT' } })], probes.plainHttp, (a) => a === 'refused', 'plaintext HTTP refused under STRICT');
    assert.equal(await probes.plainTcp(), 'refused');
    assert.ok(ok(await probes.mtlsHttp()));
    assert.equal(await probes.mtlsTcp(), 'ping');
  });

  test('namespace DISABLE over mesh STRICT: plaintext only, mTLS refused', async () => {
    const mesh = peerAuth('default', 'istio-system', { mtls: { mode: 'STRICT' } });
    await apply([mesh, peerAuth('default', 'default', { mtls: { mode: 'DISABLE' } })], probes.plainHttp, ok, 'plaintext HTTP accepted under DISABLE');
    assert.equal(await probes.plainTcp(), 'ping');
    assert.equal(await probes.mtlsHttp(), 'refused');
    assert.equal(await probes.mtlsTcp(), 'refused');
  });

  test('workload STRICT with a port-level DISABLE on an undeclared port: each port gets its own mode', async () => {
    const mesh = peerAuth('default', 'istio-system', { mtls: { mode: 'STRICT' } });
    const nsWide = peerAuth('default', 'default', { mtls: { mode: 'DISABLE' } });
    const workload = peerAuth('web', 'default', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [TCP_PORT]: { mode: 'DISABLE' } } });
    await apply([mesh, nsWide, workload], probes.plainHttp, (a) => a === 'refused', 'plaintext HTTP refused under the workload STRICT');
    assert.ok(ok(await probes.mtlsHttp()));
    // Port-level DISABLE on 7071: plaintext passes, mTLS is refused.
    assert.equal(await probes.plainTcp(), 'ping');
    assert.equal(await probes.mtlsTcp(), 'refused');
  });

  test('workload PERMISSIVE under mesh STRICT: both again', async () => {
    const mesh = peerAuth('default', 'istio-system', { mtls: { mode: 'STRICT' } });
    const workload = peerAuth('web', 'default', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'PERMISSIVE' } });
    await apply([mesh, workload], probes.plainHttp, ok, 'plaintext HTTP accepted under the workload PERMISSIVE');
    assert.ok(ok(await probes.mtlsHttp()));
    assert.equal(await probes.plainTcp(), 'ping');
    assert.equal(await probes.mtlsTcp(), 'ping');
  });
});
