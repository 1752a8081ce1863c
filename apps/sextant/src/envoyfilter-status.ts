/**
 * The `PatchesApplied` condition Sextant writes on EnvoyFilters (istiod
 * writes none; docs/envoyfilter.md): per EnvoyFilter, whether each patch
 * matched something in the config built for the proxies of this replica
 * since the EnvoyFilters last changed, or could not apply. Translation
 * records, per PushContext, the patches that matched (`envoyFilterPatchesApplied`)
 * and those that failed on a proxy's config (`envoyFilterApplyIssues`); this
 * folds them together across the contexts of one EnvoyFilter generation (a
 * class's config is built once and reused by later contexts) and hands each
 * changed condition to the status writer.
 */
import type { ValidationIssue } from '@sextant/api';
import type { PushContext } from '@sextant/model';
import { envoyFilterApplyIssues, envoyFilterIssues, envoyFilterPatchesApplied } from '@sextant/translate';

export interface PatchesAppliedCondition {
  status: 'True' | 'False';
  reason: 'Applied' | 'NotApplied';
  message: string;
}

/**
 * How long a new EnvoyFilter generation is given before its conditions are
 * written: the proxies' configs are rebuilt after the push, and a patch
 * would otherwise show "matched nothing" until then.
 */
export const SETTLE_MS = 3000;

/** Longest condition message written (the rest is cut with a count). */
const MAX_MESSAGE = 4000;

/** `namespace/name#index` of the patch an issue's field names (`spec.configPatches[N]…`). */
function issueKey(i: ValidationIssue): string | undefined {
  const m = /^spec\.configPatches\[(\d+)\]/.exec(i.field ?? '');
  return m ? `${i.namespace}/${i.name}#${m[1]}` : undefined;
}

const generations = new WeakMap<PushContext, string>();

/**
 * Identity of the EnvoyFilters of a context: a change starts a new generation
 * (every proxy's config is rebuilt). Once per context: the 2 s tick asks again.
 */
function generationOf(ctx: PushContext): string {
  let g = generations.get(ctx);
  if (g === undefined) {
    g = ctx
      .configs('EnvoyFilter')
      .map((f) => `${f.namespace}/${f.name}:${JSON.stringify(f.spec)}`)
      .sort()
      .join('\n');
    generations.set(ctx, g);
  }
  return g;
}

export class EnvoyFilterStatus {
  private generation: string | undefined;
  /** When the current generation was first seen (ms). */
  private since = 0;
  private readonly applied = new Set<string>();
  private readonly failures = new Map<string, Set<string>>();
  /** What the last computed conditions came from: nothing changed, nothing to recompute (the 2 s tick is then almost free). */
  private lastInput: { ctx: PushContext; applied: number; failures: number } | undefined;
  /** The condition last handed over, by `namespace/name`. */
  private readonly given = new Map<string, string>();

  constructor(private readonly write: (object: { namespace: string; name: string }, condition: PatchesAppliedCondition | undefined) => void) {}

  /** Folds in what was built with `ctx` so far (call it for a context about to be replaced, and for the current one). */
  harvest(ctx: PushContext, now = Date.now()): void {
    const generation = generationOf(ctx);
    if (generation !== this.generation) {
      this.generation = generation;
      this.since = now;
      this.applied.clear();
      this.failures.clear();
    }
    for (const k of envoyFilterPatchesApplied(ctx)) this.applied.add(k);
    for (const i of envoyFilterApplyIssues(ctx)) {
      const k = issueKey(i);
      if (!k) continue;
      let set = this.failures.get(k);
      if (!set) this.failures.set(k, (set = new Set()));
      set.add(i.reason);
    }
  }

  /** Every EnvoyFilter's condition from `ctx` (harvested first); changed ones go to the writer. */
  update(ctx: PushContext, now = Date.now()): void {
    this.harvest(ctx, now);
    if (now - this.since < SETTLE_MS) return;
    let failures = 0;
    for (const set of this.failures.values()) failures += set.size;
    const last = this.lastInput;
    if (last && last.ctx === ctx && last.applied === this.applied.size && last.failures === failures) return;
    this.lastInput = { ctx, applied: this.applied.size, failures };
    const checks = new Map<string, string[]>();
    for (const i of envoyFilterIssues(ctx)) {
      const k = issueKey(i);
      if (!k) continue;
      const list = checks.get(k) ?? [];
      list.push(i.reason);
      checks.set(k, list);
    }
    const seen = new Set<string>();
    for (const f of ctx.configs('EnvoyFilter')) {
      const id = `${f.namespace}/${f.name}`;
      seen.add(id);
      const patches = (f.spec.configPatches ?? []) as Array<{ applyTo?: string; patch?: { operation?: string } }>;
      const problems: string[] = [];
      patches.forEach((p, index) => {
        const k = `${id}#${index}`;
        const what = `spec.configPatches[${index}] (${p.applyTo ?? '?'} ${p.patch?.operation ?? '?'})`;
        const reasons = [...(checks.get(k) ?? []), ...(this.failures.get(k) ?? [])];
        if (reasons.length > 0) problems.push(`${what} could not apply: ${reasons.join('; ')}`);
        else if (!this.applied.has(k)) problems.push(`${what} matched nothing in the config built for the proxies connected to this Sextant`);
      });
      let condition: PatchesAppliedCondition;
      if (problems.length === 0) {
        condition = { status: 'True', reason: 'Applied', message: `all ${patches.length} patches matched in the config built for connected proxies` };
      } else {
        let message = `${problems.length} of ${patches.length} patches did not apply: ${problems.join('; ')}`;
        if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}… (cut; see /debug/config_issues)`;
        condition = { status: 'False', reason: 'NotApplied', message };
      }
      const text = JSON.stringify(condition);
      if (this.given.get(id) === text) continue;
      this.given.set(id, text);
      this.write({ namespace: f.namespace, name: f.name }, condition);
    }
    // Deleted EnvoyFilters: the writer forgets them (a write finds the object gone).
    for (const id of [...this.given.keys()]) {
      if (seen.has(id)) continue;
      this.given.delete(id);
      const slash = id.indexOf('/');
      this.write({ namespace: id.slice(0, slash), name: id.slice(slash + 1) }, undefined);
    }
  }
}
