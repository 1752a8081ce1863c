/**
 * Real Dubbo and SOFARPC (bolt) peers on loopback, from npm: sofa-rpc-node's
 * RpcServer/RpcClient with the dubbo-remoting protocol (Dubbo) or
 * sofa-bolt-node (bolt). No registry: consumers dial a fixed address (the
 * MOSN egress listener). Each provider answers with its own name, the
 * interface version it was called as and the method, so a test sees where a
 * call went.
 */
import { createRequire } from 'node:module';
import { freePort } from './backends.js';

const require = createRequire(import.meta.url);
// CommonJS packages without type declarations: only the calls used here are typed.
interface RpcServerLike {
  addService(info: { interfaceName: string; version?: string; group?: string }, impl: Record<string, (...args: any[]) => Promise<unknown>>): void;
  start(): Promise<void>;
  close(): Promise<void>;
}
interface ConsumerLike {
  ready(): Promise<void>;
  invoke(method: string, args: unknown[], opts?: { responseTimeout?: number }): Promise<unknown>;
}
interface RpcClientLike {
  createConsumer(opts: { interfaceName: string; version?: string; group?: string; serverHost: string; retryFaultInterval?: number }): ConsumerLike;
  close(): Promise<void>;
}
const { RpcServer } = require('sofa-rpc-node').server as { RpcServer: new (o: Record<string, unknown>) => RpcServerLike };
const { RpcClient } = require('sofa-rpc-node').client as { RpcClient: new (o: Record<string, unknown>) => RpcClientLike };
const dubboProtocol = require('dubbo-remoting') as unknown;
const boltProtocol = require('sofa-bolt-node') as unknown;

export type RpcProtocol = 'dubbo' | 'bolt';

/** `p`, or a clear error after `ms`: the peers' ready()/close() wait on events that may never come. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
const protocolOf = (p: RpcProtocol) => (p === 'dubbo' ? dubboProtocol : boltProtocol);
// SEXTANT_TEST_LOGS=1 shows the peers' own logs.
const quiet = process.env.SEXTANT_TEST_LOGS ? console : { info() {}, warn() {}, debug() {}, error() {} };

export interface RpcProvider {
  name: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A provider of `interfaceName` in each of `versions`, methods `sayHello` and
 * `sayHelloAsync`, answering `<name>|<version>|<method>|<arg>`, on a free port.
 * sofa-rpc-node listens on every address at a port given in advance, so the
 * port is chosen first; another test's socket can take it before the listen
 * (a parallel test file's connection once did), so a taken port is replaced,
 * a few times at most.
 */
export async function startRpcProvider(opts: { protocol: RpcProtocol; name: string; host: string; interfaceName: string; versions: string[] }): Promise<RpcProvider> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(opts.host);
    const server = new RpcServer({ logger: quiet, port, protocol: protocolOf(opts.protocol) });
    for (const version of opts.versions) {
      server.addService(
        { interfaceName: opts.interfaceName, version },
        {
          async sayHello(arg: unknown) {
            return `${opts.name}|${version}|sayHello|${String(arg)}`;
          },
          async sayHelloAsync(arg: unknown) {
            return `${opts.name}|${version}|sayHelloAsync|${String(arg)}`;
          },
        },
      );
    }
    try {
      await within(server.start(), 10_000, `${opts.protocol} provider ${opts.name} start`);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EADDRINUSE' || attempt >= PROVIDER_PORT_ATTEMPTS) throw err;
      await within(server.close(), 5000, `${opts.protocol} provider ${opts.name} close`).catch(() => undefined);
      continue;
    }
    return { name: opts.name, host: opts.host, port, close: () => within(server.close(), 5000, `${opts.protocol} provider ${opts.name} close`) };
  }
}
const PROVIDER_PORT_ATTEMPTS = 5;

export interface RpcCaller {
  /** Calls `method` on `interfaceName`@`version` through `serverHost`; resolves with the answering provider's name. */
  call(interfaceName: string, version: string, method: string): Promise<string>;
  close(): Promise<void>;
}

export function rpcCaller(protocol: RpcProtocol, serverHost: string): RpcCaller {
  // connectionOpts of our own: RpcClient writes `protocol` into a connectionOpts object shared by
  // every client that does not bring one, so a bolt client would turn a Dubbo client into bolt.
  const client = new RpcClient({ logger: quiet, connectionOpts: { protocol: protocolOf(protocol), noDelay: true, connectTimeout: 3000 } });
  const consumers = new Map<string, Promise<ConsumerLike>>();
  return {
    async call(interfaceName, version, method) {
      const key = `${interfaceName}@${version}`;
      let c = consumers.get(key);
      if (!c) {
        // The address group sleeps retryFaultInterval (30 s by default) even after close(), holding the test process open that long.
        const consumer = client.createConsumer({ interfaceName, version, serverHost, retryFaultInterval: 500 });
        c = within(consumer.ready(), 10_000, `${protocol} consumer of ${key} via ${serverHost}: ready()`).then(() => consumer);
        // A consumer that never got ready is not kept: the next call tries again.
        c.catch(() => consumers.delete(key));
        consumers.set(key, c);
      }
      const answer = String(await (await c).invoke(method, ['mosn'], { responseTimeout: 5000 }));
      const [name, v, m] = answer.split('|');
      if (v !== version || m !== method) throw new Error(`provider ${name} answered ${answer} to ${method}@${version}`);
      return name!;
    },
    close: () => within(client.close(), 5000, `${protocol} client close`),
  };
}
