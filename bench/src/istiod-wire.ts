/**
 * gRPC message framing for the benchmark's simulated sidecars
 * (istiod-clients.ts): a length-prefixed message is reassembled from the
 * HTTP/2 DATA chunks it arrives in with one copy, however many chunks it
 * spans. (Concatenating everything received on every chunk, as an earlier
 * version did, copies a 10 MB CDS response hundreds of times over; at S =
 * 1000 that kept the clients' process so busy that it answered the control
 * plane's keepalive pings late and its connections were dropped.)
 */

/** One gRPC message: the 5-byte prefix (uncompressed flag, length) and the message. */
export function frame(msg: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + msg.length);
  b[0] = 0;
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

export class Deframer {
  private chunks: Buffer[] = [];
  private have = 0;
  /** Length of the message being received; -1 until its prefix is complete. */
  private need = -1;
  /** Bytes copied to reassemble messages (for the test of the one-copy bound). */
  copied = 0;
  constructor(private readonly onMessage: (m: Buffer) => void) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.have += chunk.length;
    for (;;) {
      if (this.need < 0) {
        if (this.have < 5) return;
        if (this.chunks[0]!.length < 5) this.join();
        this.need = this.chunks[0]!.readUInt32BE(1);
      }
      if (this.have < 5 + this.need) return;
      if (this.chunks[0]!.length < 5 + this.need) this.join();
      const buf = this.chunks[0]!;
      const end = 5 + this.need;
      this.onMessage(buf.subarray(5, end));
      this.need = -1;
      if (buf.length > end) this.chunks[0] = buf.subarray(end);
      else this.chunks.shift();
      this.have -= end;
    }
  }

  /** Everything received so far as one buffer (done once per message, when it is complete). */
  private join(): void {
    const b = Buffer.concat(this.chunks, this.have);
    this.copied += this.have;
    this.chunks = [b];
  }
}

/**
 * The delay before a client opens a stream again after the control plane
 * ended it, as Envoy's gRPC mux retries: exponential from 500 ms, capped at
 * 30 s, full jitter on the upper half; `previousMs` 0 starts over (a stream
 * that received data resets it).
 */
export function retryDelay(previousMs: number, random: () => number = Math.random): { nextMs: number; delayMs: number } {
  const nextMs = Math.min(30_000, previousMs ? previousMs * 2 : 500);
  return { nextMs, delayMs: nextMs * (0.5 + random() / 2) };
}
