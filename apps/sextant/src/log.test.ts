import assert from 'node:assert/strict';
import { test } from 'node:test';
import { duplicateJsonKeys } from '@sextant/testing/json-keys';
import { createLogger } from './log.js';

/** The daemon's logger writing into memory: every line it would print on stderr. */
function capture(level = 'debug') {
  const lines: string[] = [];
  const log = createLogger(level, { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) });
  return { log, lines };
}

test('every log line carries each key once, whatever children and fields repeat', () => {
  const { log, lines } = capture();
  const ca = log.child({ component: 'ca' });
  ca.child({ component: 'ca' }).info({ serial: '01' }, 'issued');
  log.child({ source: 'folder' }).child({ source: 'folder', dir: '/cfg' }).warn({ kind: 'VirtualService' }, 'invalid');
  log.child({ component: 'webhook' }).child({ component: 'webhooks' }).error({ component: 'inject', err: 'boom' }, 'failed');
  ca.info({ level: 'fine', time: 5, msg: 'field' }, 'message');
  ca.debug({ msg: 'only a field' });
  assert.equal(lines.length, 5);
  for (const l of lines) assert.deepEqual(duplicateJsonKeys(l), [], l);
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual([parsed[0]!.component, parsed[0]!.serial, parsed[0]!.msg, parsed[0]!.level], ['ca', '01', 'issued', 'info']);
  assert.deepEqual([parsed[1]!.source, parsed[1]!.dir, parsed[1]!.kind], ['folder', '/cfg', 'VirtualService']);
  // The innermost value wins: the call's field over the bindings, an inner child over its parent.
  assert.equal(parsed[2]!.component, 'inject');
  // A field named like pino's own keys is kept under another name.
  assert.deepEqual([parsed[3]!.level, parsed[3]!.msg, parsed[3]!._level, parsed[3]!._time, parsed[3]!._msg], ['info', 'message', 'fine', 5, 'field']);
  assert.equal(parsed[4]!.msg, 'only a field');
});

test('a level below the threshold writes nothing', () => {
  const { log, lines } = capture('info');
  log.child({ a: 1 }).debug({ b: 2 }, 'hidden');
  assert.deepEqual(lines, []);
});
