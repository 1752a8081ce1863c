import pino from 'pino';
import type { Logger } from '@sextant/api';

/** JSON lines on stderr: level, time, msg, and the proxy or object where one applies. */
export function createLogger(level: string): Logger {
  return pino(
    { level, base: undefined, formatters: { level: (label) => ({ level: label }) } },
    pino.destination({ fd: 2, sync: false }),
  ) as unknown as Logger;
}
