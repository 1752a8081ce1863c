/**
 * A Dubbo or bolt consumer as a command, for tests that run it inside a
 * network namespace (`ip netns exec NS node mosn-rpc-cli.js ...`):
 *   mosn-rpc-cli.js <dubbo|bolt> <host:port> <interface> <version> <method> <n>
 * makes n calls (4 at a time) and prints one JSON line, the count of answers
 * per provider, failures counted as `error: <message>`.
 */
import { rpcCaller, type RpcProtocol } from './mosn-rpc.js';

const [protocol, serverHost, iface, version, method, n] = process.argv.slice(2);
if (!protocol || !serverHost || !iface || !version || !method) {
  process.stderr.write('usage: mosn-rpc-cli.js <dubbo|bolt> <host:port> <interface> <version> <method> [n]\n');
  process.exit(2);
}
const caller = rpcCaller(protocol as RpcProtocol, serverHost);
const counts: Record<string, number> = {};
let left = Number(n ?? 1);
const worker = async () => {
  while (left > 0) {
    left--;
    const who = await caller.call(iface, version, method).catch((e: Error) => `error: ${e.message.split('\n')[0]!.slice(0, 120)}`);
    counts[who] = (counts[who] ?? 0) + 1;
  }
};
await Promise.all([worker(), worker(), worker(), worker()]);
process.stdout.write(JSON.stringify(counts) + '\n');
await caller.close().catch(() => undefined);
process.exit(0);
