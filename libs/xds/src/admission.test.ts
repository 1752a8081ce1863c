/**
 * The ADS port's accept queue: the kernel's largest (net.core.somaxconn), as
 * istiod's Go listener gets, not Node's default of 511, which a reconnect
 * storm of thousands of sidecars outgrows while the event loop is busy.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LISTEN_BACKLOG, listenAdmitting } from './server/admission.js';

function somaxconn(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** The accept queue of the listening TCP socket on PORT, as `ss` shows it (Send-Q of a LISTEN socket). */
function acceptQueue(port: number): number | undefined {
  try {
    const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
    return Number(line.split(/\s+/)[2]);
  } catch {
    return undefined;
  }
}

test("the ADS port asks the kernel for its largest accept queue, as istiod's does, not Node's 511", async (t) => {
  const max = somaxconn();
  if (max === undefined || max <= 511) return t.skip(`net.core.somaxconn is ${max ?? 'unreadable'}: no larger queue to ask for`);
  const server = new grpc.Server();
  const listener = await listenAdmitting(server, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure(), () => false);
  try {
    const queue = acceptQueue(listener.port);
    if (queue === undefined) return t.skip('ss (iproute2) is not installed');
    assert.equal(queue, Math.min(LISTEN_BACKLOG, max));
  } finally {
    await listener.close();
    server.forceShutdown();
  }
});
