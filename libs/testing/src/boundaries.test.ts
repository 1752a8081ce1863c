// The import-boundary check (ARCHITECTURE.md "House rules / Boundaries"):
// first the checker on small in-memory trees with one violation each, then the
// real workspace, which must have none. e2e/ and bench/ are harnesses: only the
// dist/-reach rule applies to them (see boundaries.ts).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkBoundaries, formatViolation, importSpecifiers, loadTree, type PackageInfo, type Tree, type Violation } from './boundaries.js';

const packages: PackageInfo[] = [
  { name: '@sextant/api', dir: 'libs/api', exports: ['.'] },
  { name: '@sextant/sources', dir: 'libs/sources', exports: ['.', './kube/status'] },
  { name: '@sextant/xds', dir: 'libs/xds', exports: ['.', './compare'] },
  { name: '@sextant/ca', dir: 'libs/ca', exports: ['.'] },
  { name: '@sextant/model', dir: 'libs/model', exports: ['.'] },
  { name: '@sextant/sextant', dir: 'apps/sextant', exports: ['.', './generators'] },
  { name: '@sextant/kube', dir: 'libs/kube', exports: ['.'] },
  { name: '@sextant/testing', dir: 'libs/testing', exports: ['.', './xds-client'] },
];

/** Checks one file holding `source`, in an otherwise clean tree. */
function check(path: string, source: string, pkgs: PackageInfo[] = packages): Violation[] {
  const tree: Tree = { packages: pkgs, files: [{ path, text: source }] };
  return checkBoundaries(tree);
}

const rules = (vs: Violation[]): string[] => vs.map((v) => v.rule);

describe('importSpecifiers (TypeScript parser)', () => {
  it('finds static, type-only, re-export, dynamic, import-equals, require and import-type specifiers with their lines', () => {
    const src = [
      "import a from 'a';",
      "import type { B } from 'b';",
      "export { c } from 'c';",
      "export * from 'd';",
      "const e = await import('e');",
      "import f = require('f');",
      "let g: typeof import('g');",
      "const i = require('i');",
      "// import j from 'not-an-import';",
      "const s = \"import k from 'not-an-import-either'\";",
    ].join('\n');
    assert.deepEqual(importSpecifiers('x.ts', src), [
      { specifier: 'a', line: 1 },
      { specifier: 'b', line: 2 },
      { specifier: 'c', line: 3 },
      { specifier: 'd', line: 4 },
      { specifier: 'e', line: 5 },
      { specifier: 'f', line: 6 },
      { specifier: 'g', line: 7 },
      { specifier: 'i', line: 8 },
    ]);
  });
});

describe('checkBoundaries on in-memory fixtures', () => {
  it('confines @kubernetes/client-node to libs/sources and libs/kube', () => {
    const bad = check('libs/model/src/a.ts', "import * as k8s from '@kubernetes/client-node';\n");
    assert.deepEqual(rules(bad), ['kube-client']);
    assert.deepEqual(check('libs/sources/src/kube/client.ts', "import * as k8s from '@kubernetes/client-node';\n"), []);
    assert.deepEqual(check('libs/kube/src/lease.ts', "import type { V1Lease } from '@kubernetes/client-node';\n"), []);
    assert.deepEqual(rules(check('apps/sextant/src/kube.ts', "import { KubeConfig } from '@kubernetes/client-node';\n")), ['kube-client']);
    // The test scaffolding reaches the API server through @sextant/sources' KubeClient, not the client library.
    assert.deepEqual(rules(check('libs/testing/src/kube-apiserver.ts', "import { KubeConfig } from '@kubernetes/client-node';\n")), ['kube-client']);
  });

  it('confines @grpc/grpc-js to libs/xds, libs/ca, libs/testing and apps/*', () => {
    assert.deepEqual(rules(check('libs/model/src/a.ts', "import type { Metadata } from '@grpc/grpc-js';\n")), ['grpc']);
    assert.deepEqual(rules(check('libs/sources/src/a.ts', "export { status } from '@grpc/grpc-js/build/src/constants.js';\n")), ['grpc']);
    assert.deepEqual(rules(check('libs/kube/src/a.ts', "import * as grpc from '@grpc/grpc-js';\n")), ['grpc']);
    for (const path of ['libs/xds/src/server.ts', 'libs/ca/src/service.ts', 'libs/testing/src/xds-client.ts', 'apps/sextant/src/discovery.ts']) {
      assert.deepEqual(check(path, "import * as grpc from '@grpc/grpc-js';\n"), [], path);
    }
  });

  it('keeps @sextant/testing (and the grpc-js it brings) out of shipped code: tests and harnesses only', () => {
    const imp = "import { SotwClient } from '@sextant/testing/xds-client';\n";
    assert.deepEqual(rules(check('libs/xds/src/server.ts', imp)), ['test-only']);
    assert.deepEqual(rules(check('apps/sextant/src/discovery.ts', "import { readYamlDocs } from '@sextant/testing';\n")), ['test-only']);
    assert.deepEqual(rules(check('libs/translate/src/a.ts', "const t = await import('@sextant/testing');\n")), ['test-only']);
    for (const path of ['libs/xds/src/sotw.test.ts', 'apps/sextant/src/log.test.ts', 'libs/testing/src/feature/harness.ts', 'e2e/src/daemon.test.ts', 'bench/src/abuse.ts']) {
      assert.deepEqual(check(path, imp), [], path);
    }
  });

  it("rejects reaching into another package's dist/ or src/, by name or by relative path", () => {
    assert.deepEqual(rules(check('libs/xds/src/a.ts', "import { x } from '@sextant/api/dist/index.js';\n")), ['internal-reach']);
    assert.deepEqual(rules(check('libs/xds/src/a.ts', "import { x } from '@sextant/api/src/index.js';\n")), ['internal-reach']);
    assert.deepEqual(rules(check('libs/xds/src/a.ts', "import { x } from '../../model/src/push-context.js';\n")), ['internal-reach']);
    assert.deepEqual(rules(check('apps/sextant/src/a.ts', "const m = await import('../../../libs/ca/dist/ca.js');\n")), ['internal-reach']);
    // Leaving the package without landing in another one is still leaving it.
    assert.deepEqual(rules(check('libs/api/src/a.ts', "import crds from '../../../crds/x.json';\n")), ['internal-reach']);
    // Inside its own package a relative import is fine.
    assert.deepEqual(check('libs/xds/src/sotw/stream.ts', "import { x } from '../server.js';\n"), []);
  });

  it('allows cross-package imports only through the entry points package.json exports names', () => {
    assert.deepEqual(check('apps/sextant/src/a.ts', "import { x } from '@sextant/xds';\nimport { y } from '@sextant/xds/compare';\n"), []);
    const bad = check('apps/sextant/src/a.ts', "import { DiscoveryServer } from '@sextant/xds/server';\n");
    assert.deepEqual(rules(bad), ['entry-point']);
    assert.match(bad[0]!.reason, /exports no entry point "\.\/server" \(it names: \., \.\/compare\)/);
    // Its own package, by name, is not a cross-package import.
    assert.deepEqual(check('libs/xds/src/a.ts', "import { x } from '@sextant/xds/server';\n"), []);
    // Packages outside the workspace are not this rule's business.
    assert.deepEqual(check('libs/xds/src/a.ts', "import { create } from '@bufbuild/protobuf/wire';\n"), []);
  });

  it('rejects "./*" patterns in package.json exports', () => {
    const pkgs = [...packages, { name: '@sextant/admin', dir: 'libs/admin', exports: ['.', './*'] }];
    const vs = checkBoundaries({ packages: pkgs, files: [] });
    assert.deepEqual(rules(vs), ['named-exports']);
    assert.equal(vs[0]!.file, 'libs/admin/package.json');
    // A pattern key never counts as naming an entry point.
    assert.deepEqual(rules(check('apps/sextant/src/a.ts', "import { w } from '@sextant/admin/webhooks';\n", pkgs)), ['named-exports', 'entry-point']);
  });

  it('applies only the dist/-reach rule to the e2e/ and bench/ harnesses', () => {
    const harnessOk = [
      "import * as grpc from '@grpc/grpc-js';",
      "import * as k8s from '@kubernetes/client-node';",
      "import { x } from '@sextant/xds/compare';",
      "import { h } from './helpers.js';",
    ].join('\n');
    assert.deepEqual(check('e2e/src/a.test.ts', harnessOk), []);
    assert.deepEqual(check('bench/src/scale.ts', harnessOk), []);
    assert.deepEqual(rules(check('bench/src/scale.ts', "import { TranslationGenerators } from '@sextant/sextant/dist/generators.js';\n")), ['internal-reach']);
    assert.deepEqual(rules(check('e2e/src/a.test.ts', "import { x } from '../../libs/xds/dist/server.js';\n")), ['internal-reach']);
  });

  it('names the file, line, specifier and rule in the failure message', () => {
    const [v] = check('libs/translate/src/cds.ts', "\nimport { x } from '@sextant/sextant/dist/generators.js';\n");
    assert.ok(v);
    assert.equal(
      formatViolation(v),
      `libs/translate/src/cds.ts:2: "@sextant/sextant/dist/generators.js" breaks internal-reach: reaches into @sextant/sextant's dist/; import it through an entry point its package.json exports names`,
    );
  });
});

/** The repository root: the nearest ancestor whose package.json declares workspaces. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object)) return dir;
    const up = dirname(dir);
    assert.notEqual(up, dir, 'no workspace root above this test');
    dir = up;
  }
}

describe('the workspace', () => {
  const tree = loadTree(repoRoot());

  it('is scanned in full (packages, their sources and the harnesses)', () => {
    // Guards against a check that passes because it read nothing.
    for (const dir of ['libs/api', 'libs/sources', 'libs/xds', 'libs/ca', 'libs/testing', 'apps/sextant']) {
      assert.ok(tree.packages.some((p) => p.dir === dir), `package ${dir} found`);
    }
    assert.ok(tree.files.some((f) => f.path === 'libs/xds/src/server/lifecycle.ts'), 'libs/xds sources read');
    assert.ok(tree.files.some((f) => f.path.startsWith('e2e/src/')), 'e2e sources read');
    assert.ok(tree.files.some((f) => f.path.startsWith('bench/src/')), 'bench sources read');
    assert.ok(!tree.files.some((f) => /\/(dist|gen)\//.test(f.path)), 'no build output or generated code read');
    const server = tree.files.find((f) => f.path === 'libs/xds/src/server/lifecycle.ts');
    assert.ok(server && importSpecifiers(server.path, server.text).some((s) => s.specifier === '@grpc/grpc-js'), 'a known @grpc/grpc-js import is seen');
  });

  it('keeps every import boundary', () => {
    const violations = checkBoundaries(tree);
    assert.deepEqual(violations.map(formatViolation), [], `import-boundary violations:\n${violations.map(formatViolation).join('\n')}`);
  });
});
