import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the real binaries the e2e tests use live. `make tools` (scripts/install-*.sh)
 * builds or installs each one by version under $SEXTANT_CACHE and links it as
 * $SEXTANT_CACHE/bin/<name>.
 */
export const cacheDir = process.env.SEXTANT_CACHE ?? join(homedir(), '.cache', 'sextant');

export type ToolName =
  | 'envoy'
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kwok'
  | 'helm'
  | 'pilot-agent'
  | 'pilot-discovery'
  | 'istioctl'
  | 'mosn';

/**
 * The path of a tool, or undefined when it is not installed. Under CI a missing
 * tool is an error: the e2e tier must never pass by skipping.
 */
export function toolPath(name: ToolName): string | undefined {
  const p = join(cacheDir, 'bin', name);
  if (existsSync(p)) return p;
  if (process.env.CI === 'true') throw new Error(`${name} is not installed at ${p}; run \`make tools\``);
  return undefined;
}

/** For `test(name, { skip: skipUnless('envoy') }, ...)` when running a tier by hand. */
export function skipUnless(...names: ToolName[]): string | false {
  const missing = names.filter((n) => toolPath(n) === undefined);
  return missing.length ? `not installed: ${missing.join(', ')} (run make tools)` : false;
}
