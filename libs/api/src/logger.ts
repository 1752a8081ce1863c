/**
 * The logging shape every library accepts. It is pino's (the daemon passes a
 * pino logger that writes JSON lines to stderr); tests pass `silentLogger` or
 * a recording logger.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

/**
 * A child's bindings and a call's fields as one object, each key once: the
 * later value wins (a call's field over its logger's binding, an inner child's
 * binding over its parent's). Every Logger implementation merges this way so
 * that no log line carries a key twice.
 */
export function mergeLogFields(bindings: Readonly<Record<string, unknown>>, fields: object): Record<string, unknown> {
  return { ...bindings, ...(fields as Record<string, unknown>) };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** A logger that keeps every entry, for tests that assert on what was reported. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string | undefined;
  [key: string]: unknown;
}
export function recordingLogger(entries: LogEntry[] = [], bindings: object = {}): Logger & { entries: LogEntry[] } {
  const at = (level: LogEntry['level']) => (obj: object, msg?: string) => {
    entries.push({ ...mergeLogFields(bindings as Record<string, unknown>, obj), level, msg });
  };
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b: object) => recordingLogger(entries, mergeLogFields(bindings as Record<string, unknown>, b)),
  };
}
