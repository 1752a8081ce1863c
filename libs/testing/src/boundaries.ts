// The import-boundary check of ARCHITECTURE.md "House rules / Boundaries".
// Specifiers are read with the TypeScript parser (not regexes), so comments,
// strings and template text never count as imports, and type-only imports,
// `export ... from`, dynamic `import()`, `require('x')` and `import("x").T`
// types all do.
//
// Rules, each reported by name:
//   kube-client     `@kubernetes/client-node` only in libs/sources and libs/kube
//   grpc            `@grpc/grpc-js` only in libs/xds, libs/ca, libs/testing and apps/*
//                   (libs/testing holds the xDS and CA test clients; test-only keeps
//                   it, and so its grpc-js, out of everything that ships)
//   test-only       `@sextant/testing` only in test files (`*.test.ts`), libs/testing
//                   itself and the e2e/ and bench/ harnesses
//   internal-reach  no specifier reaches into another package's dist/ or src/
//                   (`@sextant/x/dist/...`, `../../x/src/...`), and no relative
//                   specifier leaves its own package at all
//   entry-point     `@sextant/x[/sub]` must be an entry point named in x's
//                   package.json `exports`
//   named-exports   a package's `exports` names its entry points: no patterns ("./*")
// e2e/ and bench/ are test and benchmark harnesses that drive every package from
// outside: only the dist/ part of internal-reach applies to them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import ts from 'typescript';

export type Rule = 'kube-client' | 'grpc' | 'test-only' | 'internal-reach' | 'entry-point' | 'named-exports';

/** A workspace package: `dir` is repo-relative with forward slashes (e.g. `libs/xds`). */
export interface PackageInfo {
  name: string;
  dir: string;
  /** The keys of package.json `exports` (e.g. `.`, `./compare`); empty when it has none. */
  exports: string[];
}

/** A source file: `path` is repo-relative with forward slashes. */
export interface SourceFile {
  path: string;
  text: string;
}

export interface Tree {
  packages: PackageInfo[];
  files: SourceFile[];
}

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  rule: Rule;
  reason: string;
}

export interface ImportSpecifier {
  specifier: string;
  line: number;
}

/** Packages allowed to import each restricted third-party module (by directory). */
const KUBE_DIRS = ['libs/sources', 'libs/kube'];
const GRPC_DIRS = ['libs/xds', 'libs/ca', 'libs/testing'];
/** The test-scaffolding package: importable from tests and harnesses only. */
const TESTING_PKG = '@sextant/testing';
const TESTING_DIR = 'libs/testing';
const isTestFile = (path: string): boolean => /\.test\.(c|m)?tsx?$/.test(path);
const HARNESS_DIRS = ['e2e', 'bench'];

/** `import(...)`, or `require(...)` (as made by `createRequire`, which loads grpc-js internals, for example). */
const isLoader = (callee: ts.Expression): boolean =>
  callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');

/** Every module specifier in a TypeScript source, with its 1-based line. */
export function importSpecifiers(fileName: string, text: string): ImportSpecifier[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: ImportSpecifier[] = [];
  const add = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node)) {
      out.push({ specifier: node.text, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      add(node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.arguments[0] && isLoader(node.expression)) {
      add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const within = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
const isModule = (specifier: string, name: string): boolean => specifier === name || specifier.startsWith(`${name}/`);

/** The package (or harness tree) a repo-relative path belongs to. */
function ownerDir(path: string, packages: PackageInfo[]): string | undefined {
  const pkg = packages.find((p) => within(path, p.dir));
  if (pkg) return pkg.dir;
  return HARNESS_DIRS.find((d) => within(path, d));
}

/** Checks every file of the tree; returns the violations, in file order. */
export function checkBoundaries(tree: Tree): Violation[] {
  const violations: Violation[] = [];
  const byName = new Map(tree.packages.map((p) => [p.name, p]));
  for (const pkg of tree.packages) {
    for (const key of pkg.exports) {
      if (key.includes('*')) {
        violations.push({
          file: `${pkg.dir}/package.json`,
          line: 0,
          specifier: `${pkg.name}/${key.replace(/^\.\//, '')}`,
          rule: 'named-exports',
          reason: `exports pattern "${key}" exposes every module; name each public entry point instead`,
        });
      }
    }
  }
  for (const file of tree.files) {
    const own = ownerDir(file.path, tree.packages);
    const harness = own !== undefined && HARNESS_DIRS.includes(own);
    const flag = (s: ImportSpecifier, rule: Rule, reason: string): void => {
      violations.push({ file: file.path, line: s.line, specifier: s.specifier, rule, reason });
    };
    for (const s of importSpecifiers(file.path, file.text)) {
      const spec = s.specifier;
      if (spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(file.path), spec));
        if (own !== undefined && within(target, own)) continue;
        const into = tree.packages.find((p) => within(target, p.dir));
        const rest = into ? target.slice(into.dir.length + 1) : '';
        if (harness) {
          if (into && within(rest, 'dist')) flag(s, 'internal-reach', `reaches into ${into.dir}/dist (another package's build output)`);
        } else if (into) {
          flag(s, 'internal-reach', `reaches into ${into.dir}${rest ? `/${rest.split('/')[0]}` : ''} of another package; import ${into.name} through its exports`);
        } else {
          flag(s, 'internal-reach', `relative import leaves ${own ?? 'its package'}`);
        }
        continue;
      }
      if (!harness && isModule(spec, '@kubernetes/client-node') && !KUBE_DIRS.some((d) => own === d)) {
        flag(s, 'kube-client', `only ${KUBE_DIRS.join(' and ')} may import @kubernetes/client-node`);
      }
      if (!harness && isModule(spec, '@grpc/grpc-js') && !(own !== undefined && (GRPC_DIRS.includes(own) || own.startsWith('apps/')))) {
        flag(s, 'grpc', `only ${GRPC_DIRS.join(', ')} and apps/* may import @grpc/grpc-js`);
      }
      if (!harness && isModule(spec, TESTING_PKG) && own !== TESTING_DIR && !isTestFile(file.path)) {
        flag(s, 'test-only', `${TESTING_PKG} is test scaffolding: only test files (*.test.ts), e2e/ and bench/ may import it`);
      }
      const parts = spec.split('/');
      if (!spec.startsWith('@') || parts.length < 2) continue;
      const pkg = byName.get(`${parts[0]}/${parts[1]}`);
      if (!pkg || pkg.dir === own) continue;
      const sub = parts.slice(2).join('/');
      if (sub === 'dist' || sub.startsWith('dist/') || (!harness && (sub === 'src' || sub.startsWith('src/')))) {
        flag(s, 'internal-reach', `reaches into ${pkg.name}'s ${parts[2]}/; import it through an entry point its package.json exports names`);
        continue;
      }
      if (harness) continue;
      const key = sub ? `./${sub}` : '.';
      if (!pkg.exports.includes(key) || key.includes('*')) {
        const named = pkg.exports.filter((k) => !k.includes('*'));
        flag(s, 'entry-point', `${pkg.name} exports no entry point "${key}" (it names: ${named.length ? named.join(', ') : 'none'})`);
      }
    }
  }
  return violations;
}

/** One line per violation: file:line, specifier, rule and why. */
export function formatViolation(v: Violation): string {
  return `${v.file}${v.line ? `:${v.line}` : ''}: "${v.specifier}" breaks ${v.rule}: ${v.reason}`;
}

/** The subpaths package.json `exports` names; `{}` names none (an application, say). */
function exportKeys(exports: unknown): string[] {
  if (typeof exports === 'string') return ['.'];
  if (!exports || typeof exports !== 'object') return [];
  const keys = Object.keys(exports);
  if (keys.length === 0) return [];
  const subpaths = keys.filter((k) => k.startsWith('.'));
  // An object of conditions only ({ types, default }) is the single entry point ".".
  return subpaths.length ? subpaths : ['.'];
}

function listTs(root: string, dir: string, out: string[]): void {
  const abs = posix.join(root, dir);
  if (!existsSync(abs)) return;
  for (const entry of readdirSync(abs).sort()) {
    const rel = `${dir}/${entry}`;
    if (entry === 'dist' || entry === 'gen' || entry === 'node_modules') continue;
    if (statSync(posix.join(root, rel)).isDirectory()) listTs(root, rel, out);
    else if (/\.(c|m)?tsx?$/.test(entry)) out.push(rel);
  }
}

/** Reads the workspace at `root`: packages from libs/* and apps/*, sources from their src/ and the harnesses' src/. */
export function loadTree(root: string): Tree {
  const packages: PackageInfo[] = [];
  const srcDirs: string[] = [];
  for (const group of ['libs', 'apps']) {
    for (const name of readdirSync(posix.join(root, group)).sort()) {
      const dir = `${group}/${name}`;
      const manifest = posix.join(root, dir, 'package.json');
      if (!existsSync(manifest)) continue;
      const json = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; exports?: unknown };
      packages.push({ name: json.name, dir, exports: exportKeys(json.exports) });
      srcDirs.push(`${dir}/src`);
    }
  }
  for (const d of HARNESS_DIRS) srcDirs.push(`${d}/src`);
  const paths: string[] = [];
  for (const d of srcDirs) listTs(root, d, paths);
  return { packages, files: paths.map((path) => ({ path, text: readFileSync(posix.join(root, path), 'utf8') })) };
}
