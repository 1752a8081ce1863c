import pino from 'pino';
import { mergeLogFields, type Logger } from '@sextant/api';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** Keys pino writes itself on every line; a field of the same name is kept as `_<key>`. */
const RESERVED = ['level', 'time', 'msg'] as const;

/**
 * JSON lines on stderr: level, time, msg, and the proxy or object where one
 * applies, each key once. pino writes a child's bindings and the call's fields
 * as they come, so a child of a child that binds `component` again, or a call
 * that names a bound key, would print the key twice; here bindings and fields
 * are merged into one object first (the innermost value wins) and pino's own
 * root writes it.
 */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger {
  const root = pino({ level, base: undefined, formatters: { level: (label) => ({ level: label }) } }, destination);
  return bound(root, {});
}

function bound(root: pino.Logger, bindings: Readonly<Record<string, unknown>>): Logger {
  const at = (lvl: Level) => (obj: object, msg?: string) => {
    if (!root.isLevelEnabled(lvl)) return;
    const fields = mergeLogFields(bindings, obj);
    for (const k of RESERVED) {
      // A field named like one of pino's keys: keep its value under another name. (`msg` alone is pino's own message.)
      if (!(k in fields) || (k === 'msg' && msg === undefined)) continue;
      fields[`_${k}`] = fields[k];
      delete fields[k];
    }
    root[lvl](fields, msg);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b: object) => bound(root, mergeLogFields(bindings, b)),
  };
}
