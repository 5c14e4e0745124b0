/**
 * Byte-for-byte parity of `kmod-ts modinfo` with Debian 12's kmod 30 `modinfo` over every module
 * of the Debian 12 (.ko) and Debian 13 (.ko.xz) cloud kernels: default output, `-0`, `-F` for
 * every field seen, `-p/-a/-d/-l/-n`, names, aliases, built-ins and bad files. One invocation of
 * each tool per case, all files as arguments; stdout, stderr and exit status compared.
 *
 * kmod's modinfo comes from apt's `kmod` (installed here when missing and running as root). The
 * kernels come from scripts/kernels.mjs (cached). KMOD_TS_PARITY_FIELDS=N limits the `-F` runs
 * per kernel to the N most common fields (default: all).
 */
import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const PROJECT = path.resolve('.');
const BIN = path.join(PROJECT, 'bin', 'kmod-ts.js');

interface Kernel {
  name: string;
  label: string;
  kver: string;
  root: string;
  modulesDir: string;
}

interface RunResult {
  status: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** Runs a command to completion, keeping stdout/stderr as bytes. */
function run(cmd: string, args: string[], cwd = PROJECT): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // argv[0] 'modinfo', as from $PATH: getopt prefixes its messages with it
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], argv0: cmd === process.execPath ? undefined : 'modinfo' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
}

/** The kmod `modinfo` to compare with: /sbin/modinfo, installed through apt when missing. */
function kmodModinfo(): string {
  const candidates = ['/usr/sbin/modinfo', '/sbin/modinfo', '/usr/bin/modinfo'];
  let found = candidates.find((c) => existsSync(c));
  if (!found && process.getuid?.() === 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    spawnSync('apt-get', ['install', '-y', 'kmod'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    found = candidates.find((c) => existsSync(c));
  }
  if (!found) throw new Error('kmod modinfo not found (apt-get install kmod)');
  return found;
}

/** From scripts/kernels.mjs (loaded in `before`): every module file of a kernel, sorted. */
let moduleFiles: (modulesDir: string) => string[];

/** Splits default-format output into per-module blocks (each starts at `filename:`). */
function blocks(out: Buffer): string[] {
  return out.toString('latin1').split(/(?=^filename:)/m);
}

interface Case {
  label: string;
  args: string[];
}

const report: string[] = [];

async function compare(c: Case, kmod: string): Promise<{ same: boolean; detail: string }> {
  const [want, got] = await Promise.all([run(kmod, c.args), run(process.execPath, [BIN, 'modinfo', ...c.args])]);
  const same = want.status === got.status && want.stdout.equals(got.stdout) && want.stderr.equals(got.stderr);
  let detail = same ? 'identical' : 'DIFFERENT';
  if (!same) {
    const w = blocks(want.stdout);
    const g = blocks(got.stdout);
    let diff = 0;
    for (let i = 0; i < Math.max(w.length, g.length); i++) if (w[i] !== g[i]) diff++;
    detail += ` (status ${want.status}/${got.status}, stdout ${want.stdout.length}/${got.stdout.length} bytes, ${diff} blocks differ, stderr ${want.stderr.equals(got.stderr) ? 'same' : 'differs'})`;
    const i = w.findIndex((b, k) => b !== g[k]);
    if (i !== -1) detail += `\n--- kmod\n${w[i]?.slice(0, 600)}\n--- ours\n${g[i]?.slice(0, 600)}`;
    else if (!want.stderr.equals(got.stderr)) detail += `\n--- kmod stderr\n${want.stderr.toString().slice(0, 600)}\n--- ours stderr\n${got.stderr.toString().slice(0, 600)}`;
  }
  return { same, detail };
}

describe('modinfo parity with kmod 30 over real Debian kernels', { timeout: 60 * 60 * 1000 }, () => {
  let kmod: string;
  const kernels: Kernel[] = [];
  before(async () => {
    kmod = kmodModinfo();
    const mod = (await import(pathToFileURL(path.join(PROJECT, 'scripts', 'kernels.mjs')).href)) as {
      ensureKernel(n: string): Promise<Kernel>;
      moduleFiles(modulesDir: string): string[];
    };
    moduleFiles = mod.moduleFiles;
    for (const n of ['d12', 'd13']) kernels.push(await mod.ensureKernel(n));
  });

  it('uses kmod version 30 as the reference', () => {
    const v = spawnSync(kmod, ['--version'], { encoding: 'utf8' });
    assert.match(v.stdout, /^kmod version 30\n/, `got ${JSON.stringify(v.stdout)}, want kmod version 30 (Debian 12)`);
  });

  for (const which of ['d12', 'd13']) {
    it(`prints what kmod prints for every module of ${which === 'd12' ? 'Debian 12 (.ko)' : 'Debian 13 (.ko.xz)'}`, async (t) => {
      const k = kernels.find((x) => x.name === which)!;
      const files = moduleFiles(k.modulesDir);
      assert.ok(files.length > 500, `only ${files.length} modules under ${k.modulesDir}`);

      // fields seen, most common first
      const counts = new Map<string, number>();
      const base = await run(kmod, ['-0', ...files]);
      for (const s of base.stdout.toString('latin1').split('\0')) {
        const m = /^([^=:\n]+)=/.exec(s) ?? /^(filename|parm):/.exec(s);
        if (m) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
      }
      // parm/parmtype never show as key=value in -0 output; ask for them, and for a field no module has
      for (const f of ['parmtype', 'no_such_field']) counts.set(f, counts.get(f) ?? 0);
      let fields = [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)! || a.localeCompare(b));
      const limit = Number(process.env.KMOD_TS_PARITY_FIELDS ?? '');
      if (limit > 0) fields = fields.slice(0, limit);

      const names = files.map((f) => path.basename(f).replace(/\.ko(\..*)?$/, ''));
      const builtin = readFileSync(path.join(k.modulesDir, 'modules.builtin'), 'utf8').trim().split('\n').map((l) => path.basename(l).replace(/\.ko$/, ''));
      const aliasLines = readFileSync(path.join(k.modulesDir, 'modules.alias'), 'utf8').trim().split('\n');
      const aliases = aliasLines.filter((_, i) => i % 7 === 0).map((l) => l.split(' ')[1]);
      // concrete keys, as a device would present them: wildcards filled in
      const concrete = aliasLines.filter((_, i) => i % 13 === 5).map((l) => l.split(' ')[1].replace(/\[(.)[^\]]*\]/g, '$1').replace(/\*/g, '').replace(/\?/g, '0'));
      const kb = ['-b', k.root, '-k', k.kver];
      const cases: Case[] = [
        { label: 'default', args: files },
        { label: '-0', args: ['-0', ...files] },
        ...['-p', '-a', '-d', '-l', '-n', '-0p'].map((o) => ({ label: o, args: [o, ...files] })),
        ...fields.map((f) => ({ label: `-F ${f}`, args: ['-F', f, ...files] })),
        { label: 'names', args: [...kb, ...names] },
        { label: '-m names', args: [...kb, '-m', ...names] },
        { label: 'built-in names', args: [...kb, ...builtin, 'nosuchmodule'] },
        { label: '-F name built-ins', args: [...kb, '-F', 'name', ...builtin.slice(0, 50)] },
        { label: 'alias patterns (every 7th line of modules.alias)', args: [...kb, ...aliases] },
        { label: 'concrete aliases (every 13th, wildcards filled)', args: [...kb, ...concrete] },
        { label: 'unknown and malformed', args: [...kb, 'nosuch', 'a]b', 'x[y', '-m', 'nosuch2'] },
      ];
      let identical = 0;
      for (const c of cases) {
        const r = await compare(c, kmod);
        if (r.same) identical++;
        const line = `${which} ${c.label}: ${r.detail.split('\n')[0]}`;
        report.push(line);
        t.diagnostic(r.same ? line : `${line}\n${r.detail}`);
      }
      // per-module count for the default run
      const [want, got] = await Promise.all([run(kmod, files), run(process.execPath, [BIN, 'modinfo', ...files])]);
      const w = blocks(want.stdout);
      const g = blocks(got.stdout);
      const same = w.filter((b, i) => b === g[i]).length;
      const summary = `${which}: modules identical ${same}/${w.length} (default output); option runs identical ${identical}/${cases.length}`;
      report.push(summary);
      t.diagnostic(summary);
      assert.equal(identical, cases.length, `${cases.length - identical} of ${cases.length} runs differ; see diagnostics`);
      assert.equal(same, w.length);
    });
  }

  it('reports bad files as kmod does', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'modinfo-bad-'));
    try {
      const k = kernels.find((x) => x.name === 'd13')!;
      const xz = moduleFiles(k.modulesDir).find((f) => f.endsWith('/dummy.ko.xz'))!;
      const ko = moduleFiles(kernels[0].modulesDir).find((f) => f.endsWith('/dummy.ko'))!;
      const good = readFileSync(xz);
      const w = (n: string, b: Uint8Array) => writeFileSync(path.join(dir, n), b);
      w('trunc.ko.xz', good.subarray(0, 3000));
      const corrupt = Buffer.from(good);
      corrupt.fill(0, 1000, 1004);
      w('corrupt.ko.xz', corrupt);
      w('short.ko', Buffer.from('abc'));
      w('empty.ko', Buffer.alloc(0));
      w('elf4.ko', Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
      w('elfzero.ko', Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(100)]));
      w('random.ko', Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 73 + 11) & 0xff)));
      copyFileSync(ko, path.join(dir, 'unsigned-copy.ko'));
      const kb = readFileSync(ko);
      w('truncated-elf.ko', kb.subarray(0, 4096));
      w('sigless.ko', kb.subarray(0, kb.length - 28)); // magic gone: no signature fields
      const args = ['trunc.ko.xz', 'corrupt.ko.xz', 'short.ko', 'empty.ko', 'elf4.ko', 'elfzero.ko', 'random.ko', 'unsigned-copy.ko', 'truncated-elf.ko', 'sigless.ko', 'missing.ko', path.join(dir, 'short.ko')];
      for (const extra of [[], ['-F', 'filename'], ['-F', 'license'], ['-0']]) {
        const a = [...extra, ...args];
        const [want, got] = await Promise.all([run(kmod, a, dir), run(process.execPath, [BIN, 'modinfo', ...a], dir)]);
        assert.equal(got.stderr.toString(), want.stderr.toString(), `stderr for ${a.join(' ')}`);
        assert.equal(got.stdout.toString('latin1'), want.stdout.toString('latin1'), `stdout for ${a.join(' ')}`);
        assert.equal(got.status, want.status);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const MODINFO_HELP_ADDED =
    'kmod-ts extensions:\n' +
    '\t    --json                  Print the modules as JSON\n' +
    'Environment:\n' +
    '\tKMOD_TS_MAX_SIZE=BYTES   cap on the decompressed size (default 1 GiB)\n';

  it('answers usage errors and -h as kmod does', async () => {
    for (const a of [[], ['--bogus'], ['-z', 'x'], ['-F'], ['--field'], ['--author=x', 'y'], ['-h'], ['--help']]) {
      const [want, got] = await Promise.all([run(kmod, a), run(process.execPath, [BIN, 'modinfo', ...a])]);
      assert.equal(got.status, want.status, `status for ${JSON.stringify(a)}`);
      assert.equal(got.stderr.toString(), want.stderr.toString(), `stderr for ${JSON.stringify(a)}`);
      // -h is kmod's text, byte for byte, followed by what kmod-ts adds (its extensions, the environment)
      const added = want.status === 0 ? MODINFO_HELP_ADDED : '';
      assert.equal(got.stdout.toString(), want.stdout.toString() + added, `stdout for ${JSON.stringify(a)}`);
    }
  });

  it('summary', (t) => {
    for (const l of report) t.diagnostic(l);
  });
});
