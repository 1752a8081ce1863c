import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { formatIssue, validateAll } from '@sextant/api';
import { TypeUrl, decodeToJson, encodeJson } from '@sextant/envoy';
import { ProxyParseError } from '@sextant/model';
import { translateConfig, type XdsShortType } from '@sextant/translate';
import { FlagError, translateFlags } from './flags.js';

const typeUrls: Record<XdsShortType, string> = {
  lds: TypeUrl.Listener,
  rds: TypeUrl.RouteConfiguration,
  cds: TypeUrl.Cluster,
  eds: TypeUrl.ClusterLoadAssignment,
};

function configFiles(path: string): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => {
      const p = join(path, name);
      return statSync(p).isDirectory() ? configFiles(p) : /\.(ya?ml|json)$/i.test(name) ? [p] : [];
    });
}

/** Parsed documents of every file; `List` kinds are expanded. */
function readDocuments(paths: string[]): { docs: unknown[]; errors: string[] } {
  const docs: unknown[] = [];
  const errors: string[] = [];
  for (const file of paths.flatMap(configFiles)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.errors.length) {
        errors.push(`${file}: ${doc.errors[0]!.message}`);
        continue;
      }
      const value = doc.toJS() as { kind?: string; items?: unknown[] } | null;
      if (value && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) docs.push(...value.items);
      else if (value !== null && value !== undefined) docs.push(value);
    }
  }
  return { docs, errors };
}

/**
 * `sextant translate`: what the server would send one proxy, offline. Every
 * resource goes through the same encoder the server uses and back, so the
 * output is Envoy's JSON form of exactly the bytes the server would send.
 */
export async function runTranslate(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({ args: argv, options: translateFlags, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
  const paths = [...(values.f ?? []), ...(values.filename ?? [])];
  if (paths.length === 0) throw new FlagError('translate: give at least one -f PATH (file or directory)');
  if (!values.proxy) throw new FlagError('translate: --proxy NODE_ID is required (e.g. sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local)');
  const type = values.type ?? 'all';
  const types: XdsShortType[] = type === 'all' ? ['lds', 'rds', 'cds', 'eds'] : (type.split(',') as XdsShortType[]);
  for (const t of types) if (!(t in typeUrls)) throw new FlagError(`translate: --type ${t}: expected lds, rds, cds, eds or all`);
  const format = values.output ?? values.o ?? 'json';
  if (format !== 'json' && format !== 'yaml') throw new FlagError(`translate: -o ${format}: expected json or yaml`);
  let metadata: Record<string, unknown> = {};
  if (values.metadata) {
    try {
      metadata = JSON.parse(values.metadata) as Record<string, unknown>;
    } catch (err) {
      throw new FlagError(`translate: --metadata is not JSON: ${(err as Error).message}`);
    }
  }

  const { docs, errors } = readDocuments(paths);
  for (const e of errors) process.stderr.write(`sextant translate: ${e}\n`);
  const { objects, issues } = validateAll(docs);
  for (const i of issues) process.stderr.write(`sextant translate: rejected: ${formatIssue(i)}\n`);
  let out: ReturnType<typeof translateConfig>;
  try {
    out = translateConfig({
      objects,
      nodeId: values.proxy,
      metadata,
      types,
      domainSuffix: values['domain-suffix'] ?? 'cluster.local',
      trustDomain: values['trust-domain'] ?? 'cluster.local',
    });
  } catch (err) {
    if (err instanceof ProxyParseError) throw new FlagError(`translate: --proxy: ${err.message}`);
    throw err;
  }
  for (const i of out.issues) process.stderr.write(`sextant translate: ${formatIssue(i)}\n`);

  const result: Record<string, unknown[]> = {};
  for (const t of types) {
    result[t] = ((out[t] ?? []) as unknown[]).map((json) => decodeToJson(typeUrls[t], encodeJson(typeUrls[t], json)));
  }
  const body = types.length === 1 ? result[types[0]!] : result;
  process.stdout.write(format === 'yaml' ? stringify(body) : JSON.stringify(body, null, 2) + '\n');
  return 0;
}
