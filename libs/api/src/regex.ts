import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Regexes as Envoy judges them. Envoy compiles every `safe_regex` (route,
 * header, query and CORS origin matchers, regex rewrites) with Google RE2
 * (`RE2::Quiet`, default options) and then refuses any whose RE2 program size
 * is over the runtime key `re2.max_program_size.error_level` (100 unless the
 * bootstrap raises it). One such regex makes Envoy NACK the whole update, so
 * Sextant runs the same two checks with the same library: a Node-API binding
 * to RE2 built from the sources the npm package `re2` vendors
 * (libs/api/native, `make re2`). JavaScript's RegExp is not used: its syntax
 * differs from RE2's both ways.
 */

/** Envoy's default for `re2.max_program_size.error_level`. */
export const ENVOY_MAX_PROGRAM_SIZE = 100;

/** istiod's own limit on a regex's length (its validation runs before Envoy sees it). */
export const MAX_REGEX_LENGTH = 1024;

interface Re2Binding {
  check(pattern: string): { error: string } | { programSize: number };
  search(pattern: string, subject: string): { error: string } | { match: boolean };
}

/** Where `make re2` puts the addon (libs/api/build/re2.node; this module lives in libs/api/dist). */
export const RE2_BINDING_PATH = fileURLToPath(new URL('../build/re2.node', import.meta.url));

let binding: Re2Binding | Error | undefined;

function load(): Re2Binding | Error {
  if (binding === undefined) {
    try {
      if (!existsSync(RE2_BINDING_PATH)) throw new Error(`${RE2_BINDING_PATH} does not exist`);
      binding = createRequire(import.meta.url)(RE2_BINDING_PATH) as Re2Binding;
    } catch (err) {
      binding = new Error(`the RE2 binding could not be loaded (${(err as Error).message}); run \`make re2\``);
    }
  }
  return binding;
}

/** Whether the RE2 binding loads (regexes are refused, never guessed at, when it does not). */
export function re2Available(): boolean {
  return !(load() instanceof Error);
}

export type Re2Result = { ok: true; programSize: number } | { ok: false; error: string };

/** Compiles `pattern` with RE2 as Envoy does; throws only when the binding is missing. */
export function compileRe2(pattern: string): Re2Result {
  const b = load();
  if (b instanceof Error) throw b;
  const r = b.check(pattern);
  return 'error' in r ? { ok: false, error: r.error } : { ok: true, programSize: r.programSize };
}

/**
 * Whether `pattern` matches anywhere in `subject`, with RE2 (the syntax and
 * semantics of Go's regexp, which istiod uses for its own matches such as an
 * EnvoyFilter's proxyVersion). Throws only when the binding is missing.
 */
export function searchRe2(pattern: string, subject: string): { ok: true; match: boolean } | { ok: false; error: string } {
  const b = load();
  if (b instanceof Error) throw b;
  const r = b.search(pattern, subject);
  return 'error' in r ? { ok: false, error: r.error } : { ok: true, match: r.match };
}

// RE2's own messages name the construct ("invalid perl operator: (?="); these say why it is there.
const HINTS: Array<[RegExp, string]> = [
  [/\(\?<?[=!]/, 'lookahead and lookbehind are not supported by RE2'],
  [/(^|[^\\])(\\\\)*\\[1-9]/, 'backreferences are not supported by RE2'],
  [/\\k</, 'named backreferences are not supported by RE2'],
  [/\(\?>/, 'atomic groups are not supported by RE2'],
  [/[*+?}][+]/, 'possessive quantifiers are not supported by RE2'],
];

export interface RegexCheckOptions {
  /** Largest RE2 program size accepted; default: the process-wide limit (setRegexProgramSizeLimit). */
  maxProgramSize?: number;
}

let processLimit = ENVOY_MAX_PROGRAM_SIZE;

/**
 * Sets the program-size limit every regex check in this process uses
 * (`--regex-max-program-size`): it must match the `re2.max_program_size.error_level`
 * of the proxies served. Schemas run inside zod, so this is process-wide.
 */
export function setRegexProgramSizeLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`regex program size limit must be a positive integer, got ${limit}`);
  processLimit = limit;
}

export function regexProgramSizeLimit(): number {
  return processLimit;
}

/**
 * Why Envoy would refuse `re` as a `safe_regex`, or undefined when it would
 * compile it. Never throws.
 */
export function checkEnvoyRegex(re: string, opts: RegexCheckOptions = {}): string | undefined {
  const max = opts.maxProgramSize ?? processLimit;
  if (re.length === 0) return 'regex must not be empty';
  if (re.length > MAX_REGEX_LENGTH) return `regex is too large, max length allowed is ${MAX_REGEX_LENGTH}`;
  let r: Re2Result;
  try {
    r = compileRe2(re);
  } catch (err) {
    return `cannot check regex ${JSON.stringify(re)}: ${(err as Error).message}`;
  }
  if (!r.ok) {
    const hint = HINTS.find(([p]) => p.test(re));
    return `${JSON.stringify(re)} is not a valid RE2 regex: ${r.error}${hint ? ` (${hint[1]})` : ''}`;
  }
  if (r.programSize > max)
    return `${JSON.stringify(re)}: RE2 program size ${r.programSize} is over the limit of ${max} (Envoy's re2.max_program_size.error_level, --regex-max-program-size); Envoy would reject the whole update`;
  return undefined;
}
