#!/usr/bin/env node
// Generates TypeScript for the Envoy API from the protos that ship inside the
// pinned @grpc/grpc-js-xds package (see docs/envoy-protos.md).
//
// The bundled protoc-gen-validate is older than the Envoy API that uses it:
// `StringRules.ignore_empty` is missing, and buf refuses to resolve the option.
// Sextant never evaluates PGV rules, so the copy in build/ gets that one field
// declared; the Envoy files themselves are used unchanged.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const require = createRequire(import.meta.url);
const xdsPkg = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const build = join(pkg, 'build');
const protoRoot = join(build, 'proto');
const out = join(pkg, 'src', 'gen');

// The Envoy messages Sextant builds or reads; everything they import comes along.
const ENTRY_PROTOS = [
  'service/discovery/v3/ads.proto',
  'service/discovery/v3/discovery.proto',
  'service/secret/v3/sds.proto',
  'service/status/v3/csds.proto',
  'admin/v3/config_dump.proto',
  'config/bootstrap/v3/bootstrap.proto',
  'config/listener/v3/listener.proto',
  'config/route/v3/route.proto',
  'config/cluster/v3/cluster.proto',
  'config/endpoint/v3/endpoint.proto',
  'extensions/transport_sockets/tls/v3/tls.proto',
  'extensions/transport_sockets/tls/v3/secret.proto',
  'extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'extensions/upstreams/http/v3/http_protocol_options.proto',
  'extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'extensions/filters/network/rbac/v3/rbac.proto',
  'extensions/filters/network/ext_authz/v3/ext_authz.proto',
  'extensions/filters/network/direct_response/v3/config.proto',
  'extensions/filters/network/dubbo_proxy/v3/dubbo_proxy.proto',
  'extensions/filters/network/sni_cluster/v3/sni_cluster.proto',
  'extensions/filters/network/mongo_proxy/v3/mongo_proxy.proto',
  'extensions/filters/http/router/v3/router.proto',
  'extensions/filters/http/fault/v3/fault.proto',
  'extensions/filters/http/cors/v3/cors.proto',
  'extensions/filters/http/rbac/v3/rbac.proto',
  'extensions/filters/http/jwt_authn/v3/config.proto',
  'extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'extensions/path/match/uri_template/v3/uri_template_match.proto',
  'extensions/filters/http/lua/v3/lua.proto',
  'extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'extensions/filters/http/grpc_stats/v3/config.proto',
  'extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'extensions/filters/listener/original_dst/v3/original_dst.proto',
  'extensions/access_loggers/file/v3/file.proto',
  'extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  // DNS clusters: the c-ares resolver settings istiod writes in typed_dns_resolver_config.
  'extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto',
  'extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
  // Telemetry: tracers, the UUID request ID, access-log filters and the OpenTelemetry access logger.
  'config/trace/v3/zipkin.proto',
  'config/trace/v3/opentelemetry.proto',
  'config/trace/v3/datadog.proto',
  'config/trace/v3/skywalking.proto',
  'extensions/request_id/uuid/v3/uuid.proto',
  'extensions/access_loggers/filters/cel/v3/cel.proto',
  'extensions/access_loggers/open_telemetry/v3/logs_service.proto',
];

// Protos from outside Envoy's API, relative to the build's proto root: the
// TypedStruct istiod wraps Istio's own filter configs in, and (from this
// repository's proto/) Istio's stats filter config and the OpenTelemetry value
// types the OpenTelemetry access logger refers to.
const EXTRA_PROTOS = [
  'xds/udpa/type/v1/typed_struct.proto',
  'sextant/istio/envoy/extensions/stats/config.proto',
  'sextant/istio/envoy/config/filter/http/alpn/v2alpha1/config.proto',
];
const REPO_PROTOS = ['istio/envoy/extensions/stats/config.proto', 'istio/envoy/config/filter/http/alpn/v2alpha1/config.proto', 'opentelemetry/proto/common/v1/common.proto'];

const versionOf = (pkgName) => JSON.parse(readFileSync(require.resolve(`${pkgName}/package.json`), 'utf8')).version;

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// Regenerate when the protos, the generator, the runtime or this script change.
function stamp() {
  return JSON.stringify({
    xds: versionOf('@grpc/grpc-js-xds'),
    protocGenEs: versionOf('@bufbuild/protoc-gen-es'),
    buf: versionOf('@bufbuild/buf'),
    entries: ENTRY_PROTOS,
    extra: EXTRA_PROTOS,
    // Content hashes, not lengths: an edit that keeps a file's length must regenerate too.
    repo: REPO_PROTOS.map((p) => sha256(readFileSync(join(pkg, '..', '..', 'proto', p)))),
    script: sha256(readFileSync(fileURLToPath(import.meta.url))),
  });
}

const stampFile = join(out, '.stamp');
try {
  if (readFileSync(stampFile, 'utf8') === stamp()) process.exit(0); // up to date
} catch { /* not generated yet */ }

rmSync(build, { recursive: true, force: true });
rmSync(out, { recursive: true, force: true });
mkdirSync(protoRoot, { recursive: true });
cpSync(join(xdsPkg, 'deps'), protoRoot, { recursive: true });
for (const p of REPO_PROTOS) {
  mkdirSync(dirname(join(protoRoot, 'sextant', p)), { recursive: true });
  cpSync(join(pkg, '..', '..', 'proto', p), join(protoRoot, 'sextant', p));
}
// The bundled Cluster predates `dns_jitter` (field 58), which istiod sets on DNS clusters;
// the build copy declares it (Envoy's own field number and type).
const clusterProto = join(protoRoot, 'envoy-api/envoy/config/cluster/v3/cluster.proto');
const clusterText = readFileSync(clusterProto, 'utf8');
const dnsResolverField = /^  core\.v3\.TypedExtensionConfig typed_dns_resolver_config = 55;\r?$/m;
if (!/ dns_jitter = 58;/.test(clusterText)) {
  if (!dnsResolverField.test(clusterText)) throw new Error('cluster.proto: typed_dns_resolver_config not found; cannot declare dns_jitter');
  writeFileSync(clusterProto, clusterText.replace(dnsResolverField, (line) => `${line}\n  google.protobuf.Duration dns_jitter = 58;`));
}
const validateProto = join(protoRoot, 'protoc-gen-validate/validate/validate.proto');
const validateText = readFileSync(validateProto, 'utf8');
if (!/ignore_empty/.test(validateText.split('message StringRules {')[1]?.split('\n}')[0] ?? '')) {
  writeFileSync(validateProto, validateText.replace('message StringRules {', 'message StringRules {\n  optional bool ignore_empty = 26;'));
}

writeFileSync(join(build, 'buf.yaml'), [
  'version: v2', 'modules:',
  '  - path: proto/envoy-api', '  - path: proto/xds', '  - path: proto/googleapis', '  - path: proto/protoc-gen-validate', '  - path: proto/sextant', '',
].join('\n'));
const plugin = require.resolve('@bufbuild/protoc-gen-es/bin/protoc-gen-es');
writeFileSync(join(build, 'buf.gen.yaml'), [
  'version: v2', 'plugins:',
  `  - local: ["node", "${plugin}"]`,
  `    out: ${out}`,
  '    opt: [target=ts, json_types=true, import_extension=js]', '',
].join('\n'));
const buf = require.resolve('@bufbuild/buf/bin/buf');
const paths = [...ENTRY_PROTOS.map((p) => `proto/envoy-api/envoy/${p}`), ...EXTRA_PROTOS.map((p) => `proto/${p}`)].flatMap((p) => ['--path', p]);
const image = join(build, 'envoy.binpb');
execFileSync(process.execPath, [buf, 'build', '-o', image, ...paths], { cwd: build, stdio: 'inherit' });
execFileSync(process.execPath, [buf, 'generate', image, '--include-imports'], { cwd: build, stdio: 'inherit' });

// One module that registers every generated file, for Any packing and JSON.
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('_pb.ts')) files.push(p);
  }
})(out);
const lines = ['// Generated by libs/envoy/scripts/gen.mjs. Do not edit.', "import type { DescFile } from '@bufbuild/protobuf';"];
const names = [];
files.forEach((f, i) => {
  const rel = './' + relative(out, f).replace(/\.ts$/, '.js');
  const src = readFileSync(f, 'utf8');
  const m = /export const (file_[A-Za-z0-9_]+): GenFile/.exec(src);
  if (!m) return;
  lines.push(`import { ${m[1]} as f${i} } from '${rel}';`);
  names.push(`f${i}`);
});
lines.push(`export const allFiles: readonly DescFile[] = [${names.join(', ')}];`, '');
writeFileSync(join(out, 'all-files.ts'), lines.join('\n'));
writeFileSync(stampFile, stamp());
console.error(`libs/envoy: generated ${files.length} files into src/gen`);
