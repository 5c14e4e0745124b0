/**
 * `kmod-ts depmod` against Debian 13's kmod 34.2 (scripts/kmod-ref.mjs, run from its own root):
 * the eleven files for the Debian 12 (.ko) and 13 (.ko.xz) cloud kernels' module trees byte for
 * byte (and the text files against the kmod 30 files of the cached trees), `-n`, repeated runs,
 * depmod.d, `-A`, `-e -E/-F`, and the errors and exit codes; then a kill test.
 *
 * Both tools read the cached trees in place and write with `-o` into fresh directories, so
 * nothing is copied and the generated files of the trees themselves are never read.
 */
import assert from 'node:assert/strict';
import { describe, it, before, after } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildElf } from './helpers/elf-builder.js';
import { debianKernels, kmodRefScript, type Kernel, type RefRun } from './helpers/kernels.js';
import { runMain } from './helpers/run.js';
import { IndexTrie } from '../src/db/index-trie.js';
import { DEPMOD_FILES } from '../src/ops/depmod.js';
import { seededRandom } from './helpers/random.js';

const PROJECT = path.resolve('.');
const TEXT_FILES_30 = ['modules.dep', 'modules.alias', 'modules.softdep', 'modules.symbols', 'modules.devname'];

let ref: (args: string[]) => Promise<RefRun>;
const work = mkdtempSync(path.join(tmpdir(), 'depmod-parity-'));

/** Our depmod in-process; stdout/stderr as bytes like the reference's. */
async function ours(args: string[]): Promise<RefRun> {
  const r = await runMain(['depmod', ...args], { root: '/' });
  return { status: r.status, stdout: Buffer.from(r.stdout, 'latin1'), stderr: Buffer.from(r.stderr, 'latin1') };
}

function sameRun(label: string, want: RefRun, got: RefRun): void {
  assert.equal(got.stderr.toString(), want.stderr.toString(), `${label}: stderr`);
  assert.equal(got.status, want.status, `${label}: exit status`);
  assert.ok(got.stdout.equals(want.stdout), `${label}: stdout differs\n--- kmod\n${want.stdout.toString().slice(0, 800)}\n--- ours\n${got.stdout.toString().slice(0, 800)}`);
}

function sameFiles(label: string, wantDir: string, gotDir: string, names: readonly string[] = DEPMOD_FILES): void {
  for (const f of names) {
    const w = path.join(wantDir, f);
    const g = path.join(gotDir, f);
    assert.equal(existsSync(g), existsSync(w), `${label}: ${f} exists in one only`);
    if (!existsSync(w)) continue;
    const a = readFileSync(w);
    const b = readFileSync(g);
    assert.ok(a.equals(b), `${label}: ${f} differs (kmod ${a.length} bytes, ours ${b.length})`);
  }
}

// ---- synthetic modules -------------------------------------------------------------------------

interface SynthSpec {
  exports?: string[];
  needs?: string[];
  weak?: string[];
  modinfo?: string[];
  versions?: Array<[string, number]>;
}

/** A relocatable ELF that kmod's reader takes as a module: .modinfo, __ksymtab_strings, .symtab. */
function synthModule(s: SynthSpec): Buffer {
  let strtab = '\0';
  const syms: Buffer[] = [Buffer.alloc(24)];
  const und = [...(s.needs ?? []).map((n) => [n, 1] as const), ...(s.weak ?? []).map((n) => [n, 2] as const)];
  for (const [name, bind] of und) {
    const e = Buffer.alloc(24);
    e.writeUInt32LE(strtab.length, 0);
    e[4] = bind << 4;
    strtab += `${name}\0`;
    syms.push(e);
  }
  const sections = [
    { name: '.modinfo', data: (s.modinfo ?? []).map((x) => `${x}\0`).join('') || 'license=GPL\0' },
    { name: '__ksymtab_strings', data: (s.exports ?? []).map((x) => `${x}\0`).join('') },
    { name: '.strtab', data: strtab, type: 3 },
    { name: '.symtab', data: Buffer.concat(syms), type: 2 },
  ];
  if (s.versions) {
    const v = Buffer.alloc(64 * s.versions.length);
    s.versions.forEach(([name, crc], i) => {
      v.writeBigUInt64LE(BigInt(crc), i * 64);
      v.write(name, i * 64 + 8, 'latin1');
    });
    sections.push({ name: '__versions', data: v as unknown as string });
  }
  return buildElf({ sections }).image;
}

const KVER = '6.1.0-synthetic';

/** Writes a module tree under `<root>/lib/modules/KVER` (files: relpath → contents; null: hard link to a d12 module). */
function synthTree(name: string, files: Record<string, Buffer | string>, extra: { order?: string; builtin?: string | null; builtinModinfo?: string | null } = {}): string {
  const root = path.join(work, name);
  const dir = path.join(root, 'lib', 'modules', KVER);
  mkdirSync(dir, { recursive: true });
  for (const [rel, data] of Object.entries(files)) {
    const p = rel.startsWith('/') ? rel : path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, data);
  }
  if (extra.order !== undefined) writeFileSync(path.join(dir, 'modules.order'), extra.order);
  if (extra.builtin !== null) writeFileSync(path.join(dir, 'modules.builtin'), extra.builtin ?? 'kernel/fs/binfmt_script.ko\nkernel/crypto/aes_generic.ko\n');
  if (extra.builtinModinfo !== null) {
    writeFileSync(path.join(dir, 'modules.builtin.modinfo'), extra.builtinModinfo ?? 'aes_generic.alias=crypto-aes\0aes_generic.alias=aes\0aes_generic.license=GPL\0binfmt_script.license=GPL\0broken\0x.alias=bad]one\0');
  }
  return root;
}

/** Runs kmod 34.2 and ours over the same tree (each writing with -o into its own directory) and compares everything. */
async function compareTree(label: string, root: string, args: string[], opts: { files?: boolean } = {}): Promise<void> {
  const outK = path.join(work, `${label}-kmod`);
  const outO = path.join(work, `${label}-ours`);
  const a = ['-b', root, ...args];
  const want = await ref(opts.files === false ? a : ['-o', outK, ...a]);
  const got = await ours(opts.files === false ? a : ['-o', outO, ...a]);
  // libkmod's -vv lines about its own context carry pointers: not something to copy
  const ctxLines = /^depmod: INFO: (custom logging function 0x[0-9a-f]+ registered|context 0x[0-9a-f]+ released)\n/gm;
  const norm = (r: RefRun) => ({ ...r, stderr: Buffer.from(r.stderr.toString().replace(ctxLines, '').replaceAll(outK, 'OUT').replaceAll(outO, 'OUT')) });
  sameRun(label, norm(want), norm(got));
  if (opts.files !== false) sameFiles(label, path.join(outK, 'lib', 'modules', KVER), path.join(outO, 'lib', 'modules', KVER));
}

// at the file's end, after both suites (the kill test below writes there too)
after(() => rmSync(work, { recursive: true, force: true }));

describe('depmod parity with kmod 34.2', { timeout: 10 * 60 * 1000 }, () => {
  let kernels: Kernel[] = [];
  before(async () => {
    kernels = await debianKernels();
    const k = await kmodRefScript();
    await k.ensureKmodRef();
    ref = (args) => k.runKmodRef('depmod', args);
  });
  it('uses kmod 34.2 as the reference', async () => {
    const r = await ref(['--version']);
    assert.match(r.stdout.toString(), /^kmod version 34\.2\n/);
  });

  for (const which of ['d12', 'd13']) {
    it(`writes kmod 34.2's eleven files for ${which === 'd12' ? 'Debian 12 (.ko)' : 'Debian 13 (.ko.xz)'}, kmod 30's text files, the same again on a second run`, async () => {
      const k = kernels.find((x) => x.name === which)!;
      const outK = path.join(work, `${which}-kmod`);
      const outO = path.join(work, `${which}-ours`);
      const args = ['-b', k.root, k.kver];
      const want = await ref(['-o', outK, ...args]);
      const got = await ours(['-o', outO, ...args]);
      sameRun(which, want, got);
      const dirK = path.join(outK, 'lib', 'modules', k.kver);
      const dirO = path.join(outO, 'lib', 'modules', k.kver);
      sameFiles(which, dirK, dirO);
      // the cached tree's own files were written by Debian 12's kmod 30
      sameFiles(`${which} vs kmod 30`, k.modulesDir, dirO, TEXT_FILES_30);
      const again = await ours(['-o', outO, ...args]);
      sameRun(`${which} second run`, want, again);
      sameFiles(`${which} second run`, dirK, dirO);
      assert.deepEqual(readdirSync(dirO).sort(), [...DEPMOD_FILES].sort(), 'no temporary files left');
    });
  }

  it('prints what kmod prints with -n (Debian 12), and -v lines', async () => {
    const k = kernels.find((x) => x.name === 'd12')!;
    sameRun('-n', await ref(['-n', '-b', k.root, k.kver]), await ours(['-n', '-b', k.root, k.kver]));
    sameRun('-n -v', await ref(['-nv', '-b', k.root, k.kver]), await ours(['-nv', '-b', k.root, k.kver]));
    sameRun('-A -n', await ref(['-A', '-n', '-b', k.root, k.kver]), await ours(['-A', '-n', '-b', k.root, k.kver]));
  });

  it('agrees on a synthetic tree: aliases, devnames, softdeps, weakdeps, weak symbols, unlisted modules, bad brackets', async () => {
    const root = synthTree('synth', {
      'kernel/a/ma.ko': synthModule({ exports: ['sa', 'shared'], needs: ['sb'], modinfo: ['alias=pci:v00001234d*', 'alias=devname:foo', 'alias=char-major-10-99', 'softdep=pre: mb', 'weakdep=mc'] }),
      'kernel/b/mb.ko': synthModule({ exports: ['sb'], weak: ['sc'], modinfo: ['alias=bad]bracket', 'alias=usb:v*p*d*', 'alias=block-major-7-*', 'alias=devname:orphan'] }),
      'kernel/c/mc.ko': synthModule({ exports: ['sc', 'shared'], modinfo: ['alias=devname:loop-control', 'alias=char-major-10-237', 'alias'] }),
      'extra/md-x.ko': synthModule({ needs: ['shared', 'sa', 'unknown_sym', '.sb'] }),
      'updates/me.ko': synthModule({ needs: ['sc'] }),
      'kernel/bad.ko': 'not an ELF file at all\n',
    }, { order: 'kernel/c/mc.ko\nkernel/a/ma.ko\nkernel/c/mc.ko\nkernel/b/mb.ko\n' });
    await compareTree('synth', root, [KVER, '-C', '/nonexistent']);
    await compareTree('synth-n', root, ['-n', KVER, '-C', '/nonexistent'], { files: false });
    await compareTree('synth-w', root, ['-w', '-v', KVER, '-C', '/nonexistent']);
  });

  it('agrees on a tree of many modules named .ko.xz (read on worker threads too): the files, and a symbol that is not ASCII after a warning', async () => {
    // plain ELF under .xz names: the names bring the workers in, each file's magic says how to read it
    const files: Record<string, Buffer | string> = {};
    for (let i = 0; i < 60; i++) {
      files[`kernel/m/m${i}.ko.xz`] = synthModule({ exports: [`s${i}`, `t${i}`], needs: i > 0 ? [`s${i - 1}`] : [], modinfo: [`alias=m${i}-alias`, ...(i === 7 ? ['alias=bad]bracket'] : [])] });
    }
    const root = synthTree('many', files);
    await compareTree('many', root, [KVER, '-C', '/nonexistent']);
    const bad = synthTree('many-bad', { ...files, 'kernel/m/m30.ko.xz': synthModule({ exports: ['caf\u00e9'], modinfo: ['alias=bad]again'] }) });
    await compareTree('many-bad', bad, [KVER, '-C', '/nonexistent'], { files: false });
  });

  it('agrees on depmod.d: search, built-in, external, override, exclude, precedence, bad lines', async () => {
    const ext = path.join(work, 'external-mods');
    const files = {
      'kernel/fs/xfs.ko': synthModule({ needs: ['crc'], modinfo: ['alias=fs-xfs'] }),
      'kernel/lib/libcrc.ko': synthModule({ exports: ['crc'] }),
      'updates/xfs.ko': synthModule({ modinfo: ['alias=fs-xfs-updates'] }),
      'extra/xfs.ko.xz': synthModule({ modinfo: ['alias=fs-xfs-extra'] }),
      'extra/libcrc.ko': synthModule({ exports: ['crc'], modinfo: ['alias=extra-crc'] }),
      'extra/sub/extra/dummy.ko': synthModule({}),
      [`${ext}/loop.ko`]: synthModule({ needs: ['crc'] }),
      [`${ext}/xfs.ko`]: synthModule({ modinfo: ['alias=fs-xfs-external'] }),
    } as Record<string, Buffer | string>;
    const root = synthTree('conf', files, { order: 'kernel/fs/xfs.ko\nkernel/lib/libcrc.ko\n' });
    const conf = (name: string, text: Record<string, string>) => {
      const d = path.join(work, name);
      for (const [f, t] of Object.entries(text)) {
        mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
        writeFileSync(path.join(d, f), t);
      }
      return d;
    };
    const cases: Array<[string, string[]]> = [
      ['default search updates', ['-C', '/nonexistent']],
      ['search extra built-in + override', ['-C', conf('c1', { 'a.conf': 'search extra built-in\noverride xfs * kernel/fs\n' })]],
      ['external', ['-C', conf('c2', { 'a.conf': `external * ${ext}\nsearch external built-in\n` })]],
      ['external version mismatch, override regex', ['-C', conf('c3', { 'a.conf': `external ^5\\. ${ext}\noverride xfs 6\\.1 extra\n` })]],
      ['exclude', ['-C', conf('c4', { 'a.conf': 'exclude extra updates\n' })]],
      ['bad lines and continuations', ['-C', conf('c5', { 'a.conf': 'bogus line here\nsearch \\\nupdates \\\n extra\n  # not a comment\noverride xfs\nexternal\ninclude /x\nmake_map_files\n#comment\n\nweak\\dep x\nsearch\tkernel built-in' })]],
      ['file precedence', ['-C', conf('c6a', { 'b.conf': 'search extra\n', 'x.cfg': 'bogus\n', '.hidden.conf': 'bogus\n', 'sub.conf/z.conf': 'bogus\n' }), '-C', conf('c6b', { 'b.conf': 'bogus\n', 'a.conf': 'search updates\n', '.conf': 'bogus\n' }), '-C', path.join(conf('c6c', { 'c.conf': 'search built-in extra\n' }), 'c.conf')]],
      ['-vv info lines', ['-vv', '-C', conf('c7', { 'a.conf': 'include foo\noverride xfs 99 extra\nx\n', 'skip.txt': '' })]],
      // a relative external directory is read from the working directory, and its modules are listed with it before them
      ['external, relative directory', ['-C', conf('c8', { 'a.conf': `external * ${path.relative(process.cwd(), ext)}\nsearch external built-in\n` })]],
    ];
    for (const [label, args] of cases) await compareTree(`conf ${label}`, root, [KVER, ...args]);
  });

  it('agrees on 300 random depmod.d configurations (search, override, external, exclude; absolute and relative directories; dry runs)', async () => {
    const ext = path.join(work, 'random-external');
    const root = synthTree('random', {
      'kernel/fs/fat.ko': synthModule({ exports: ['fat_fn'], modinfo: ['alias=fs-fat'] }),
      'kernel/fs/vfat.ko': synthModule({ needs: ['fat_fn'], modinfo: ['alias=fs-vfat'] }),
      'kernel/drivers/dummy.ko': synthModule({ modinfo: ['alias=rtnl-link-dummy'] }),
      'updates/x/fat.ko': synthModule({ exports: ['fat_fn'], modinfo: ['alias=fs-fat-updates'] }),
      'extra/vfat.ko.xz': synthModule({ needs: ['fat_fn', 'nosuch_fn'] }),
      [`${ext}/dummy.ko`]: synthModule({ modinfo: ['alias=dummy-external'] }),
    }, { order: 'kernel/fs/fat.ko\nkernel/fs/vfat.ko\n' });
    const conf = path.join(work, 'random-conf');
    mkdirSync(conf, { recursive: true });
    const rnd = seededRandom(1);
    const pick = (xs: readonly string[]) => xs[rnd(xs.length)];
    const dirs = ['updates', 'extra', 'built-in', 'external', 'kernel', 'kernel/fs', 'updates/x', 'x'];
    const versions = ['*', KVER, '6.*', '^6', '^5\\.', '[', '('];
    const places = [ext, path.relative(process.cwd(), ext), '/nonexistent', 'x'];
    const names = ['fat', 'vfat', 'dummy', 'x'];
    const junk = ['\\', '+', '#', '*', 'include', 'make_map_files', 'bogus'];
    // mostly well-formed lines (so that search, override, external and exclude take effect), some junk
    const line = (): string => {
      switch (rnd(6)) {
        case 0: return `search ${Array.from({ length: rnd(4) }, () => pick(dirs)).join(' ')}`;
        case 1: return `override ${pick(names)} ${pick(versions)} ${pick(dirs)}`;
        case 2: return `external ${pick(versions)} ${pick(places)}`;
        case 3: return `exclude ${pick(dirs)}`;
        case 4: return `${pick(['search', 'override', 'external', 'exclude'])} ${Array.from({ length: rnd(4) }, () => pick([...junk, ...dirs, ...names])).join(' ')}`;
        default: return pick(junk);
      }
    };
    const modes = [[], ['-a'], ['-v'], ['-e'], ['-w'], ['-P', '_'], ['-e', '-E', '/nonexistent']];
    for (let i = 0; i < 300; i++) {
      let text = '';
      for (let l = rnd(5); l >= 0; l--) text += line() + (rnd(8) ? '\n' : ' \\\n');
      writeFileSync(path.join(conf, 'a.conf'), text);
      await compareTree(`random ${JSON.stringify(text)}`, root, ['-n', '-C', conf, ...modes[rnd(modes.length)], KVER], { files: false });
    }
  });

  it('agrees on -A: fresh tree, nothing newer, a touched module', async () => {
    const root = synthTree('quick', { 'kernel/a.ko': synthModule({ exports: ['x'] }), 'kernel/b.ko': synthModule({ needs: ['x'] }) }, { order: 'kernel/a.ko\n' });
    const dir = path.join(root, 'lib', 'modules', KVER);
    // no modules.dep: an error, then a full run (both write into the tree itself here)
    const rootK = root;
    const rootO = path.join(work, 'quick-ours');
    synthTree('quick-ours', { 'kernel/a.ko': synthModule({ exports: ['x'] }), 'kernel/b.ko': synthModule({ needs: ['x'] }) }, { order: 'kernel/a.ko\n' });
    const dirO = path.join(rootO, 'lib', 'modules', KVER);
    const norm = (r: RefRun, from: string) => ({ ...r, stderr: Buffer.from(r.stderr.toString().replaceAll(from, 'ROOT')) });
    sameRun('-A fresh', norm(await ref(['-A', '-b', rootK, KVER]), rootK), norm(await ours(['-A', '-b', rootO, KVER]), rootO));
    sameFiles('-A fresh', dir, dirO);
    const old = new Date(Date.now() - 100_000);
    for (const d of [dir, dirO]) {
      for (const f of readdirSync(path.join(d, 'kernel'))) utimesSync(path.join(d, 'kernel', f), old, old);
    }
    const before = statSync(path.join(dirO, 'modules.dep')).mtimeMs;
    sameRun('-A up to date', await ref(['-A', '-b', rootK, KVER]), await ours(['-A', '-b', rootO, KVER]));
    assert.equal(statSync(path.join(dirO, 'modules.dep')).mtimeMs, before, '-A with nothing newer must not rewrite modules.dep');
    const future = new Date(Date.now() + 100_000);
    for (const d of [dir, dirO]) {
      writeFileSync(path.join(d, 'kernel', 'c.ko'), synthModule({ needs: ['x'] }));
      utimesSync(path.join(d, 'kernel', 'c.ko'), future, future);
    }
    sameRun('-A newer module', await ref(['-A', '-b', rootK, KVER]), await ours(['-A', '-b', rootO, KVER]));
    sameFiles('-A newer module', dir, dirO);
  });

  it('agrees on -e with -E Module.symvers and -F System.map, and -e alone', async () => {
    const root = synthTree('syms', {
      'kernel/a.ko': synthModule({ exports: ['x'], needs: ['printk', 'missing_fn', '__this_module'], weak: ['weak_missing'], versions: [['printk', 0x1111], ['module_layout', 0x2222]] }),
      'kernel/b.ko': synthModule({ needs: ['x', 'kfree'], versions: [['x', 0], ['kfree', 0x3333]] }),
    }, { order: 'kernel/a.ko\nkernel/b.ko\n' });
    const symvers = path.join(work, 'Module.symvers');
    writeFileSync(symvers, '0x00001111\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00009999\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n0xZZ\tbad\tvmlinux\tEXPORT_SYMBOL\t\n0x1\tnotvmlinux\tdrivers/x\tEXPORT_SYMBOL\t\n0x2 three vmlinux\n');
    const sysmap = path.join(work, 'System.map');
    writeFileSync(sysmap, 'ffffffff81000000 R __ksymtab_printk\nffffffff81000010 r __ksymtab_kfree\nffffffff81000020 T printk\nbadline\n');
    await compareTree('syms -e -E', root, ['-e', '-E', symvers, KVER]);
    await compareTree('syms -e -F', root, ['-e', '-F', sysmap, KVER]);
    await compareTree('syms -E -F', root, ['-E', symvers, '-F', sysmap, KVER]);
    await compareTree('syms -e', root, ['-e', KVER]);
    await compareTree('syms -e -E missing', root, ['-e', '-E', '/nonexistent/Module.symvers', KVER]);
  });

  it('agrees on errors and exit codes', async () => {
    const cycle = synthTree('cycle', {
      'kernel/ma.ko': synthModule({ exports: ['sa'], needs: ['sb'] }),
      'kernel/mb.ko': synthModule({ exports: ['sb'], needs: ['sa'] }),
      'kernel/mc.ko': synthModule({ exports: ['sc'], needs: ['sa'] }),
      'kernel/md.ko': synthModule({ exports: ['sd'], needs: ['se'] }),
      'kernel/me.ko': synthModule({ exports: ['se'], needs: ['sd'] }),
    }, { order: '' });
    const bare = synthTree('bare', { 'kernel/a.ko': synthModule({}), 'kernel/b-c.ko': synthModule({ modinfo: ['alias=devname:x'] }) }, { builtin: null, builtinModinfo: null });
    const corrupt = synthTree('corrupt-order', { 'kernel/a.ko': synthModule({}), 'kernel/b.ko': synthModule({}) }, { order: 'kernel/b.ko\nkernel/a.ko' });
    const cases: Array<[string, string, string[]]> = [
      ['cycle', cycle, [KVER]],
      ['no modules.order, modules.builtin, modules.builtin.modinfo', bare, [KVER]],
      ['modules.order without a final newline', corrupt, [KVER]],
      ['bad version', bare, ['notaversion']],
      ['relative module file', bare, [KVER, 'relative.ko']],
      ['explicit module files', bare, [KVER, path.join(bare, 'lib/modules', KVER, 'kernel/a.ko')]],
      ['-P of two characters', bare, ['-P', 'ab', KVER]],
      ['missing directory', path.join(work, 'nothing-here'), [KVER]],
      ['unknown option', bare, ['-x', KVER]],
      ['unknown long option', bare, ['--bogus', KVER]],
      ['missing argument', bare, [KVER, '-b']],
      ['ambiguous long option', bare, ['--s', 'x', KVER]],
      ['help', bare, ['-h']],
    ];
    for (const [label, root, args] of cases) await compareTree(label, root, args, { files: label !== 'help' && !label.includes('option') && !label.includes('argument') });
  });
});

describe('depmod killed at random moments', { timeout: 5 * 60 * 1000 }, () => {
  it('leaves every file complete-old or complete-new', async () => {
    const k = (await debianKernels()).find((x) => x.name === 'd13')!;
    const out = path.join(work, 'kill');
    const dir = path.join(out, 'lib', 'modules', k.kver);
    mkdirSync(dir, { recursive: true });
    // the old files: kmod 30's (post-order .bin), so old and new differ in every .bin
    const oldFiles = new Map<string, Buffer>();
    for (const f of DEPMOD_FILES) {
      const src = path.join(k.modulesDir, f);
      const data = existsSync(src) ? readFileSync(src) : Buffer.from('old\n');
      writeFileSync(path.join(dir, f), data);
      oldFiles.set(f, data);
    }
    const run = (killAfterMs: number | undefined) =>
      new Promise<number | null>((resolve) => {
        const p = spawn(process.execPath, [path.join(PROJECT, 'bin', 'kmod-ts.js'), 'depmod', '-b', k.root, '-o', out, k.kver], { stdio: 'ignore' });
        if (killAfterMs !== undefined) setTimeout(() => p.kill('SIGKILL'), killAfterMs);
        p.on('close', (code) => resolve(code));
      });
    const t0 = Date.now();
    assert.equal(await run(undefined), 0);
    const full = Date.now() - t0;
    const newFiles = new Map(DEPMOD_FILES.map((f) => [f, readFileSync(path.join(dir, f))]));
    const rounds = 5;
    let killed = 0;
    for (let i = 0; i < rounds; i++) {
      for (const [f, data] of oldFiles) writeFileSync(path.join(dir, f), data);
      const code = await run(Math.floor(Math.random() * full * 1.1));
      if (code === null) killed++;
      for (const f of DEPMOD_FILES) {
        const now = readFileSync(path.join(dir, f));
        assert.ok(now.equals(oldFiles.get(f)!) || now.equals(newFiles.get(f)!), `round ${i}: ${f} is neither the old nor the new file`);
        if (f.endsWith('.bin') && now.length > 0) IndexTrie.fromBuffer(now).lookup('x');
      }
      const dep = readFileSync(path.join(dir, 'modules.dep'), 'latin1');
      assert.ok(dep.split('\n').slice(0, -1).every((l) => /^[^:]+:( \S+)*$/.test(l)), `round ${i}: modules.dep parses`);
    }
    assert.ok(killed > 0, `no run was killed (full run ${full} ms)`);
  });
});

