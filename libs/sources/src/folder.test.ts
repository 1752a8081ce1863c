import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatIssue, keyString, recordingLogger, type LogEntry } from '@sextant/api';
import { createFolderSource, type FolderSource } from './folder.js';
import type { ConfigBatch, ConfigEvent } from './types.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sextant-folder-'));
  dirs.push(d);
  return d;
}

/** Collects batches; `next` waits for the next one (with a deadline, never a sleep). */
class Batches {
  private readonly queue: ConfigBatch[] = [];
  private waiter: ((b: ConfigBatch) => void) | undefined;
  constructor(src: FolderSource) {
    src.onBatch((b) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(b);
      } else this.queue.push(b);
    });
  }
  next(deadlineMs = 5000): Promise<ConfigBatch> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no batch within ${deadlineMs} ms`));
      }, deadlineMs);
      this.waiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }
  pending(): number {
    return this.queue.length;
  }
}

const summary = (events: ConfigEvent[]) => events.map((e) => `${e.type} ${keyString({ kind: e.object.kind, namespace: e.object.metadata.namespace, name: e.object.metadata.name })}`);

const pa = (name: string, mode: string, ns?: string) => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: ${name}
${ns ? `  namespace: ${ns}\n` : ''}spec:
  mtls:
    mode: ${mode}
`;

const svcJson = (name: string, port: number) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ port, name: 'http' }] } });

async function started(dir: string, log = recordingLogger()) {
  const src = createFolderSource({ dir, log, debounceMs: 150 });
  const batches = new Batches(src);
  await src.start();
  const initial = await batches.next();
  return { src, batches, initial, log };
}

test('initial load: multi-document YAML, JSON, Lists, nested folders, default namespace; other files ignored', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'nested', 'deeper'), { recursive: true });
  await mkdir(join(dir, '.hidden'));
  await writeFile(join(dir, 'a.yaml'), `${pa('one', 'STRICT')}---\n${pa('two', 'PERMISSIVE', 'prod')}---\n`);
  await writeFile(join(dir, 'nested', 'svc.json'), svcJson('web', 8080));
  await writeFile(
    join(dir, 'nested', 'deeper', 'list.yml'),
    `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cm1, namespace: x}
  data: {a: b}
- apiVersion: v1
  kind: Namespace
  metadata: {name: prod}
`,
  );
  await writeFile(join(dir, 'README.md'), 'not config');
  await writeFile(join(dir, '.hidden', 'x.yaml'), pa('hidden', 'STRICT'));
  const { src, initial } = await started(dir);
  try {
    assert.ok(src.hasSynced());
    assert.equal(initial.source, 'folder');
    assert.deepEqual(summary(initial.events), [
      'add ConfigMap/x/cm1',
      'add Namespace/prod',
      'add PeerAuthentication/default/one',
      'add PeerAuthentication/prod/two',
      'add Service/shop/web',
    ]);
    assert.deepEqual(src.rejected(), []);
  } finally {
    await src.stop();
  }
});

test('an empty folder syncs with an empty batch', async () => {
  const dir = await tempDir();
  const { src, initial } = await started(dir);
  try {
    assert.deepEqual(initial.events, []);
    assert.ok(src.hasSynced());
  } finally {
    await src.stop();
  }
});

test('add, edit, break, fix, delete: each save is one batch and bad input never drops valid objects', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.yaml'), pa('one', 'STRICT'));
  const entries: LogEntry[] = [];
  const { src, batches } = await started(dir, recordingLogger(entries));
  try {
    // add
    await writeFile(join(dir, 'b.yaml'), `${pa('two', 'STRICT')}---\n${pa('three', 'STRICT')}`);
    assert.deepEqual(summary((await batches.next()).events), ['add PeerAuthentication/default/three', 'add PeerAuthentication/default/two']);

    // edit
    await writeFile(join(dir, 'b.yaml'), `${pa('two', 'PERMISSIVE')}---\n${pa('three', 'STRICT')}`);
    const edit = await batches.next();
    assert.deepEqual(summary(edit.events), ['update PeerAuthentication/default/two']);
    const ev = edit.events[0]!;
    assert.equal(ev.type, 'update');
    if (ev.type === 'update') {
      assert.deepEqual(ev.object.body, { spec: { mtls: { mode: 'PERMISSIVE' } } });
      assert.deepEqual(ev.old.body, { spec: { mtls: { mode: 'STRICT' } } });
    }

    // break one object while editing its sibling: the sibling's update goes out, the broken one keeps serving
    await writeFile(join(dir, 'b.yaml'), `${pa('two', 'STRIKT')}---\n${pa('three', 'DISABLE')}`);
    assert.deepEqual(summary((await batches.next()).events), ['update PeerAuthentication/default/three']);
    assert.deepEqual(
      src.rejected().map((r) => `${r.file}: ${formatIssue(r)}`),
      ['b.yaml: PeerAuthentication/default/two: spec.mtls.mode: must be one of "UNSET", "DISABLE", "PERMISSIVE", "STRICT"; got a string "STRIKT"'],
    );
    assert.deepEqual(
      src.objects().find((o) => o.metadata.name === 'two')?.body,
      { spec: { mtls: { mode: 'PERMISSIVE' } } },
      'the last valid version keeps serving',
    );
    const warn = entries.find((e) => e.msg === 'invalid object rejected');
    assert.ok(warn);
    assert.equal(warn.kind, 'PeerAuthentication');
    assert.equal(warn.namespace, 'default');
    assert.equal(warn.name, 'two');
    assert.equal(warn.field, 'spec.mtls.mode');
    assert.equal(warn.file, 'b.yaml');

    // fix
    await writeFile(join(dir, 'b.yaml'), `${pa('two', 'STRICT')}---\n${pa('three', 'DISABLE')}`);
    assert.deepEqual(summary((await batches.next()).events), ['update PeerAuthentication/default/two']);
    assert.deepEqual(src.rejected(), []);

    // delete
    await rm(join(dir, 'b.yaml'));
    assert.deepEqual(summary((await batches.next()).events), ['delete PeerAuthentication/default/three', 'delete PeerAuthentication/default/two']);
    assert.deepEqual(src.objects().map((o) => o.metadata.name), ['one']);
  } finally {
    await src.stop();
  }
});

test('a file that stops parsing keeps all of its objects until it parses again', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.yaml'), `${pa('one', 'STRICT')}---\n${pa('two', 'STRICT')}`);
  const { src, batches } = await started(dir);
  try {
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: [unclosed\n  metadata: {\n');
    // A marker change in another file: its batch must carry nothing from the broken file.
    await writeFile(join(dir, 'marker.yaml'), pa('marker', 'STRICT'));
    const b = await batches.next();
    assert.deepEqual(summary(b.events), ['add PeerAuthentication/default/marker']);
    assert.equal(src.fileErrors().length, 1);
    assert.equal(src.fileErrors()[0]!.file, 'a.yaml');
    assert.ok(src.fileErrors()[0]!.line! >= 1);
    assert.deepEqual(src.objects().map((o) => o.metadata.name), ['marker', 'one', 'two']);

    await writeFile(join(dir, 'a.yaml'), pa('one', 'DISABLE'));
    assert.deepEqual(summary((await batches.next()).events), ['update PeerAuthentication/default/one', 'delete PeerAuthentication/default/two']);
    assert.deepEqual(src.fileErrors(), []);
  } finally {
    await src.stop();
  }
});

test('moving an object to another file is an update, and renaming a file is not a delete and add', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.yaml'), `${pa('one', 'STRICT')}---\n${pa('two', 'STRICT')}`);
  const { src, batches } = await started(dir);
  try {
    await rename(join(dir, 'a.yaml'), join(dir, 'z.yaml'));
    const b = await batches.next();
    assert.deepEqual(summary(b.events), ['update PeerAuthentication/default/one', 'update PeerAuthentication/default/two']);

    // Move one object into another file, changing it on the way; both files saved in one burst.
    await writeFile(join(dir, 'z.yaml'), pa('two', 'STRICT'));
    await writeFile(join(dir, 'm.yaml'), pa('one', 'PERMISSIVE'));
    const moved = await batches.next();
    assert.deepEqual(summary(moved.events), ['update PeerAuthentication/default/one']);
    assert.deepEqual(moved.events[0]!.object.body, { spec: { mtls: { mode: 'PERMISSIVE' } } });
  } finally {
    await src.stop();
  }
});

test('duplicates: the first file in path order wins; the other is reported and takes over when the first goes', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.yaml'), pa('dup', 'STRICT'));
  await writeFile(join(dir, 'b.yaml'), pa('dup', 'DISABLE'));
  const { src, batches, initial } = await started(dir);
  try {
    assert.deepEqual(summary(initial.events), ['add PeerAuthentication/default/dup']);
    assert.deepEqual(initial.events[0]!.object.body, { spec: { mtls: { mode: 'STRICT' } } });
    assert.deepEqual(
      src.rejected().map((r) => `${r.file}: ${formatIssue(r)}`),
      ['b.yaml: PeerAuthentication/default/dup: metadata.name: duplicate: PeerAuthentication/default/dup is already defined in a.yaml; this definition is ignored'],
    );
    await rm(join(dir, 'a.yaml'));
    const b = await batches.next();
    assert.deepEqual(summary(b.events), ['update PeerAuthentication/default/dup']);
    assert.deepEqual(b.events[0]!.object.body, { spec: { mtls: { mode: 'DISABLE' } } });
    assert.deepEqual(src.rejected(), []);
  } finally {
    await src.stop();
  }
});

test('a new invalid object is reported with file, field and reason and never served', async () => {
  const dir = await tempDir();
  const { src, batches } = await started(dir);
  try {
    await writeFile(
      join(dir, 'bad.yaml'),
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: shop}
spec:
  actoin: DENY
---
apiVersion: v1
kind: Service
metadata: {name: ok, namespace: shop}
spec:
  ports: [{port: 80}]
`,
    );
    assert.deepEqual(summary((await batches.next()).events), ['add Service/shop/ok']);
    assert.deepEqual(
      src.rejected().map((r) => `${r.file}: ${formatIssue(r)}`),
      ['bad.yaml: AuthorizationPolicy/shop/ap: spec.actoin: unknown field "actoin" (did you mean "action"?)'],
    );
  } finally {
    await src.stop();
  }
});

test('a burst of saves to many files is one batch', async () => {
  const dir = await tempDir();
  const { src, batches } = await started(dir);
  try {
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFile(join(dir, `f${String(i).padStart(2, '0')}.yaml`), pa(`p${i}`, 'STRICT'))));
    const b = await batches.next();
    assert.equal(b.events.length, 20);
    assert.equal(batches.pending(), 0);
  } finally {
    await src.stop();
  }
});

test('a missing folder fails start() with a clear error', async () => {
  const dir = await tempDir();
  const src = createFolderSource({ dir: join(dir, 'nope') });
  await assert.rejects(src.start(), /config folder .*nope does not exist or is not a directory/);
  assert.equal(src.hasSynced(), false);
  await src.stop();
});

test('a mounted ConfigMap: an atomic swap of the ..data link is seen through the visible symlinks', async () => {
  const dir = await tempDir();
  // The layout kubelet writes: ..<timestamp>/file, ..data -> ..<timestamp>, file -> ..data/file.
  await mkdir(join(dir, '..2026_01_01_v1'));
  await writeFile(join(dir, '..2026_01_01_v1', 'mesh.yaml'), pa('cm', 'STRICT'));
  await symlink('..2026_01_01_v1', join(dir, '..data'));
  await symlink('..data/mesh.yaml', join(dir, 'mesh.yaml'));
  const { src, batches, initial } = await started(dir);
  try {
    assert.deepEqual(summary(initial.events), ['add PeerAuthentication/default/cm'], 'read once, through the visible link only');
    await mkdir(join(dir, '..2026_01_02_v2'));
    await writeFile(join(dir, '..2026_01_02_v2', 'mesh.yaml'), pa('cm', 'DISABLE'));
    await symlink('..2026_01_02_v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    const b = await batches.next();
    assert.deepEqual(summary(b.events), ['update PeerAuthentication/default/cm']);
    assert.deepEqual(b.events[0]!.object.body, { spec: { mtls: { mode: 'DISABLE' } } });
  } finally {
    await src.stop();
  }
});

/** Resolves with `p`, or rejects once `ms` passed (a hung start() fails the test instead of hanging it). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(t));
}

test('a file over the size limit is reported with its path and not read; the other files are served, and its last valid objects stay', async () => {
  const dir = await tempDir();
  const limit = 4096;
  await writeFile(join(dir, 'a.yaml'), pa('small', 'STRICT'));
  // Valid YAML, just too big: comment padding after a valid object.
  await writeFile(join(dir, 'big.yaml'), `${pa('big', 'STRICT')}${'# padding\n'.repeat(1000)}`);
  await writeFile(join(dir, 'grows.yaml'), pa('grows', 'STRICT'));
  const entries: LogEntry[] = [];
  const src = createFolderSource({ dir, log: recordingLogger(entries), debounceMs: 150, maxFileBytes: limit });
  const batches = new Batches(src);
  await src.start();
  try {
    assert.deepEqual(summary((await batches.next()).events), ['add PeerAuthentication/default/grows', 'add PeerAuthentication/default/small']);
    assert.deepEqual(
      src.fileErrors().map((e) => `${e.file}: ${e.reason}`),
      [`big.yaml: file is ${pa('big', 'STRICT').length + 10_000} bytes, over the limit of ${limit} bytes (--config-max-file-size); not read`],
    );
    const logged = entries.filter((e) => e.msg === 'config file over the size limit; keeping its last valid objects');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.file, 'big.yaml');
    assert.equal(logged[0]!.limit, limit);

    // A served file that grows over the limit keeps its objects; a change elsewhere still goes out.
    await writeFile(join(dir, 'grows.yaml'), `${pa('grows', 'DISABLE')}${'#'.repeat(limit)}\n`);
    await writeFile(join(dir, 'marker.yaml'), pa('marker', 'STRICT'));
    assert.deepEqual(summary((await batches.next()).events), ['add PeerAuthentication/default/marker']);
    assert.deepEqual(src.objects().find((o) => o.metadata.name === 'grows')?.body, { spec: { mtls: { mode: 'STRICT' } } });
    assert.deepEqual(src.fileErrors().map((e) => e.file), ['big.yaml', 'grows.yaml']);

    // Rescans do not report the same file again; shrinking it back under the limit serves it again.
    await src.rescan();
    assert.equal(entries.filter((e) => e.msg === 'config file over the size limit; keeping its last valid objects').length, 2);
    await writeFile(join(dir, 'grows.yaml'), pa('grows', 'DISABLE'));
    assert.deepEqual(summary((await batches.next()).events), ['update PeerAuthentication/default/grows']);
    assert.deepEqual(src.fileErrors().map((e) => e.file), ['big.yaml']);
  } finally {
    await src.stop();
  }
});

test('symbolic link loops are reported once and not followed; the folder still syncs and serves the rest', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'a.yaml'), pa('one', 'STRICT'));
  await writeFile(join(dir, 'sub', 'b.yaml'), pa('two', 'STRICT'));
  // Two links back to their own folders (each doubles the paths a naive walk sees, 32 levels deep) and a link to itself.
  await symlink('.', join(dir, 'here'));
  await symlink('..', join(dir, 'sub', 'up'));
  await symlink('self.yaml', join(dir, 'self.yaml'));
  const entries: LogEntry[] = [];
  const src = createFolderSource({ dir, log: recordingLogger(entries), debounceMs: 150 });
  const batches = new Batches(src);
  try {
    await within(src.start(), 15_000, 'start()');
    assert.ok(src.hasSynced());
    assert.deepEqual(summary((await batches.next()).events), ['add PeerAuthentication/default/one', 'add PeerAuthentication/default/two']);
    const loops = () => src.fileErrors().map((e) => `${e.file}: ${e.reason}`);
    assert.deepEqual(loops(), [
      'here: symbolic link loop: the link points to ".", which contains it; not followed',
      'self.yaml: symbolic link loop: the link never resolves (ELOOP); skipped',
      'sub/up: symbolic link loop: the link points to ".", which contains it; not followed',
    ]);
    const logged = () => entries.filter((e) => e.msg === 'symbolic link loop skipped').map((e) => e.file);
    assert.deepEqual(logged().sort(), ['here', 'self.yaml', 'sub/up']);

    // Rescans and unrelated edits neither re-log the loops nor stop changes from going out.
    await src.rescan();
    await writeFile(join(dir, 'sub', 'b.yaml'), pa('two', 'DISABLE'));
    assert.deepEqual(summary((await batches.next()).events), ['update PeerAuthentication/default/two']);
    assert.equal(logged().length, 3);

    // A loop removed is forgotten (and would be reported again if it came back).
    await rm(join(dir, 'here'));
    await src.rescan();
    assert.deepEqual(loops().map((l) => l.split(':')[0]), ['self.yaml', 'sub/up']);
  } finally {
    await src.stop();
  }
});

test('a VirtualService edited to a regex Envoy would refuse is reported at the field and its last valid version keeps serving', async () => {
  const dir = await tempDir();
  const vs = (regex: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rx, namespace: shop}
spec:
  hosts: [web]
  http:
  - match:
    - uri:
        regex: '${regex}'
    route:
    - destination: {host: web}
`;
  await writeFile(join(dir, 'vs.yaml'), vs('/api/[0-9]+'));
  const { src, batches } = await started(dir);
  try {
    await writeFile(join(dir, 'vs.yaml'), vs('/api/[a-z]{1,200}'));
    await writeFile(join(dir, 'marker.yaml'), pa('marker', 'STRICT'));
    assert.deepEqual(summary((await batches.next()).events), ['add PeerAuthentication/default/marker']);
    const rej = src.rejected().map((r) => `${r.file}:${r.line}: ${formatIssue(r)}`);
    assert.equal(rej.length, 1, rej.join('\n'));
    assert.match(rej[0]!, /^vs\.yaml:9: VirtualService\/shop\/rx: spec\.http\[0\]\.match\[0\]\.uri\.regex: "\/api\/\[a-z\]\{1,200\}": RE2 program size \d+ is over the limit of 100/);
    const served = src.objects().find((o) => o.kind === 'VirtualService');
    assert.equal((served?.body as { spec: { http: Array<{ match: Array<{ uri: { regex: string } }> }> } }).spec.http[0]!.match[0]!.uri.regex, '/api/[0-9]+');
  } finally {
    await src.stop();
  }
});

test('a large file within the limit is parsed a document at a time: the event loop keeps turning while it loads', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'many.yaml'), Array.from({ length: 3000 }, (_, i) => pa(`p${i}`, 'STRICT')).join('---\n'));
  const src = createFolderSource({ dir, debounceMs: 150 });
  const batches = new Batches(src);
  // The longest gap between two turns of the event loop while start() runs.
  let longest = 0;
  let last = performance.now();
  let running = true;
  const turn = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  const t0 = performance.now();
  try {
    await src.start();
    const total = performance.now() - t0;
    running = false;
    longest = Math.max(longest, performance.now() - last); // a stall that ends with start() itself
    assert.equal((await batches.next()).events.length, 3000);
    // Parsed in one piece, the file would hold the loop for most of the load; sliced, no gap comes near that.
    assert.ok(longest < total / 4, `longest event-loop gap ${longest.toFixed(0)} ms of a ${total.toFixed(0)} ms load`);
  } finally {
    running = false;
    await src.stop();
  }
});
