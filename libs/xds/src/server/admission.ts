/**
 * Which new streams are let in: open streams counted per client address, per
 * TCP connection, and per address while still waiting for their first request
 * (maxStreamsPerAddress, maxStreamsPerConnection, maxOpeningStreamsPerAddress),
 * and the cooldown that refuses an address which keeps going over limits. The
 * counts (limits.ts StreamCounts, AddressCooldowns) keep nothing for a client
 * that is gone.
 */
import { createServer, type Socket } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { AddressCooldowns, StreamCounts, type XdsLimits } from '../limits.js';
import type { Connection } from './stream.js';

/** The TCP listener of an ADS port (see `listenAdmitting`). */
export interface AdsListener {
  port: number;
  /** Stops accepting connections (those already handed to grpc-js are left to its shutdown). */
  close(): Promise<void>;
}

/**
 * The accept queue asked of the kernel, which caps it at net.core.somaxconn:
 * so the port gets the system's maximum, as istiod's does (Go's listener asks
 * for somaxconn). Node's default, 511, is what a reconnect storm of thousands
 * of sidecars outgrows while the event loop is busy pushing: the kernel then
 * drops completed handshakes the queue has no room for.
 */
export const LISTEN_BACKLOG = 65535;

/**
 * Listens for ADS on a TCP port of its own and hands each accepted connection
 * to grpc-js (its public connection injector), unless `refuse` says no for the
 * client's address: such a connection is reset at once, before any HTTP/2 is
 * set up or a byte of it is read. A client in cooldown otherwise costs the
 * server a TCP accept, an HTTP/2 session, a stream and every byte it sends
 * until the stream reset reaches it (megabytes per attempt, see docs/xds.md).
 * `refuse` gets the address as grpc-js reports it in a call's peer.
 */
export async function listenAdmitting(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials, refuse: (address: string) => boolean): Promise<AdsListener> {
  const injector = server.createConnectionInjector(creds);
  const tcp = createServer((socket: Socket) => {
    if (refuse(socket.remoteAddress ?? '')) {
      socket.resetAndDestroy(); // RST: nothing more is read, no FIN handshake or TIME_WAIT on our side
      return;
    }
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const address = tcp.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((r) => tcp.close(() => r())),
  };
}

export class Admission {
  private readonly perAddress = new StreamCounts();
  private readonly perConnection = new StreamCounts();
  private readonly perAddressOpening = new StreamCounts();
  private readonly cooldowns: AddressCooldowns;

  constructor(
    private readonly limits: XdsLimits,
    cooldownMs: number,
  ) {
    this.cooldowns = new AddressCooldowns(cooldownMs);
  }

  /** Until when (epoch ms) new streams from this address are refused, or 0. */
  cooldownUntil(address: string, now: number): number {
    return this.cooldowns.until(address, now);
  }

  /** The stream-count limit one more stream would go over, with the count it would reach; undefined when it fits. */
  over(address: string, connKey: string): { key: keyof XdsLimits; value: number } | undefined {
    const onConn = this.perConnection.get(connKey) + 1;
    if (onConn > this.limits.maxStreamsPerConnection) return { key: 'maxStreamsPerConnection', value: onConn };
    const fromAddr = this.perAddress.get(address) + 1;
    if (fromAddr > this.limits.maxStreamsPerAddress) return { key: 'maxStreamsPerAddress', value: fromAddr };
    const opening = this.perAddressOpening.get(address) + 1;
    if (opening > this.limits.maxOpeningStreamsPerAddress) return { key: 'maxOpeningStreamsPerAddress', value: opening };
    return undefined;
  }

  /** Counts an admitted stream; it is "opening" until its first request (`opened`). */
  admit(c: Connection, address: string, connKey: string): void {
    this.perConnection.add(connKey);
    this.perAddress.add(address);
    this.perAddressOpening.add(address);
    c.address = address;
    c.connKey = connKey;
    c.opening = true;
  }

  /** The stream's first request has arrived (or the stream is gone): it no longer counts as opening. */
  opened(c: Connection): void {
    if (!c.opening) return;
    c.opening = false;
    this.perAddressOpening.remove(c.address!);
  }

  /** Uncounts an ended stream. */
  release(c: Connection): void {
    this.opened(c);
    if (c.connKey !== undefined) this.perConnection.remove(c.connKey);
    if (c.address !== undefined) this.perAddress.remove(c.address);
  }

  /**
   * A stream from this address went over `key`: a strike towards a cooldown;
   * returns the cooldown (ms) it starts, or 0. Many proxies behind one address
   * (NAT, a node-local agent, a load test) open a burst of streams at once; a
   * burst is refused stream by stream and retried, but is not a strike
   * towards refusing the whole address.
   */
  strike(address: string, key: keyof XdsLimits, now: number): number {
    return key === 'maxOpeningStreamsPerAddress' ? 0 : this.cooldowns.hit(address, now);
  }

  sizes(): { addresses: number; openingAddresses: number; cooldownAddresses: number; connections: number } {
    return {
      addresses: this.perAddress.size,
      openingAddresses: this.perAddressOpening.size,
      cooldownAddresses: this.cooldowns.size,
      connections: this.perConnection.size,
    };
  }
}
