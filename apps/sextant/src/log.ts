import pino from 'pino';
import { containsPrivateKey } from '@sextant/admin';
import type { Logger } from '@sextant/api';

/**
 * JSON lines on stderr: level, time, msg, and the proxy or object where one
 * applies. A line that would carry a private key (PEM, or PEM in base64) is
 * replaced by an error line saying so: the last line of defence behind code
 * that never logs secrets.
 */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger {
  return pino(
    {
      level,
      base: undefined,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        streamWrite: (line) =>
          containsPrivateKey(line) ? `${JSON.stringify({ level: 'error', time: Date.now(), msg: 'log line withheld: it would have carried a private key' })}\n` : line,
      },
    },
    destination,
  ) as unknown as Logger;
}
