import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { formatIssue, validateAll } from '@sextant/api';
import { TypeUrl, decodeToJson, encodeJson } from '@sextant/envoy';
import { ProxyParseError } from '@sextant/model';
import { readConfigDocuments } from '@sextant/sources';
import { translateConfig, type XdsShortType } from '@sextant/translate';
import { FlagError, translateFlags } from './flags.js';

const typeUrls: Record<XdsShortType, string> = {
  lds: TypeUrl.Listener,
  rds: TypeUrl.RouteConfiguration,
  cds: TypeUrl.Cluster,
  eds: TypeUrl.ClusterLoadAssignment,
};

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

  let read: Awaited<ReturnType<typeof readConfigDocuments>>;
  try {
    read = await readConfigDocuments(paths);
  } catch (err) {
    throw new FlagError(`translate: -f: ${(err as Error).message}`);
  }
  for (const e of read.errors) process.stderr.write(`sextant translate: ${e.file}${e.line ? `:${e.line}` : ''}: ${e.reason}\n`);
  const { objects, issues } = validateAll(read.documents);
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
