import { once } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import { workerData } from 'piscina';
import { isKnownKind, validateObject } from '@sextant/api';
import { injectAdmission, validateAdmission, type AdmissionAnswer, type Hook } from './admission.js';
import type { InjectOptions } from './inject.js';

/**
 * One webhook worker thread (run by the pool in webhooks.ts): it parses the
 * AdmissionReview and validates or injects, so that however long that takes,
 * the daemon's event loop (xDS, CSRs, /ready) never waits for it.
 */

export interface WebhookWorkerData {
  inject?: InjectOptions;
}

export interface WebhookTask {
  hook: Hook;
  /** The request body as received (UTF-8 JSON), in the chunks it arrived in. */
  body: Uint8Array[];
  /** For /inject: asks the daemon for a namespace's labels (post the name, receive the labels or null). */
  labels?: MessagePort;
}

const data = (workerData ?? {}) as WebhookWorkerData;

async function askLabels(port: MessagePort, namespace: string): Promise<Record<string, string> | undefined> {
  const reply = once(port, 'message');
  port.postMessage(namespace);
  const [labels] = (await reply) as [Record<string, string> | null];
  return labels ?? undefined;
}

export default async function run(task: WebhookTask): Promise<AdmissionAnswer> {
  const body = task.body.length === 1 ? task.body[0]! : Buffer.concat(task.body);
  if (task.hook === 'validate') {
    return validateAdmission(body, {
      validate: (raw) => {
        const r = validateObject(raw);
        return r.ok ? { ok: true, warnings: r.warnings } : { ok: false, issues: r.issues };
      },
      isKnownKind,
    });
  }
  const port = task.labels;
  try {
    return await injectAdmission(body, { inject: data.inject, ...(port ? { namespaceLabels: (ns: string) => askLabels(port, ns) } : {}) });
  } finally {
    port?.close();
  }
}
