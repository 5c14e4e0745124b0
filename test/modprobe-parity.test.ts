/**
 * Dry-run parity of `kmod-ts modprobe` with Debian 13's kmod 34.2 (scripts/kmod-ref.mjs) on the
 * cached Debian 12 and 13 kernels: `--show-depends`, `-R`, `-n -v` and `-c`, always with
 * `-d ROOT -S KVER -C CONF` (the host's /proc/cmdline and /sys/module are read by both, the same
 * way). stdout, stderr and exit status compared byte for byte.
 *
 * Every module name, a wide sample of aliases (each modules.alias pattern made concrete),
 * `symbol:` names, built-ins, built-in aliases and names that resolve to nothing go through one
 * `-a` run per tool, mode and configuration (kmod frees its module objects between arguments, so
 * a batch prints what the single runs would); a set of single runs checks the non-batch paths:
 * FATAL words and exit statuses, `-q`, parameters on the command line, options from the
 * configuration.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it, before, after } from 'node:test';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { debianKernels, kmodRefScript, type Kernel, type RefRun } from './helpers/kernels.js';
import { runMain } from './helpers/run.js';
import { compress } from './helpers/modules.js';
import { pathToModname } from '../src/db/names.js';
import { SyscallError } from '../src/errors.js';
import type { Syscalls } from '../src/kernel/syscalls.js';
import { seededRandom } from './helpers/random.js';

/** A configuration using every modprobe.d keyword, bad lines and kmod's parsing quirks included. */
const KEYWORDS_CONF = {
  'a-aliases.conf': [
    'alias my-wild* btrfs',
    'alias my_vfat vfat',
    'alias fs-vfat loop',
    'alias two-of-them dummy',
    'alias two-of-them tun',
    'alias bad[ x',
    'alias onlyname',
    '',
  ].join('\n'),
  'b-options.conf': [
    'options vfat utf8=1\tshortname=mixed',
    'options my_vfat codepage=850',
    'options dummy numdummies=3',
    'options dummy  two_spaces=1',
    'options loop max_loop=8 \\',
    '  max_part=2',
    'options nosuchmodule x=1',
    'options onlyname',
    '   # indented comment is a bad line',
    '',
  ].join('\n'),
  'c-commands.conf': [
    'install tun /sbin/modprobe --ignore-install tun $CMDLINE_OPTS && echo tun',
    'install nosuch-installed /bin/true',
    'install xfs /bin/true',
    'remove dummy /bin/echo removing dummy',
    'remove removeonly /bin/true',
    'install virtio_net /bin/false',
    'include /etc/other.conf',
    'config foo',
    'frobnicate x y',
    '',
  ].join('\n'),
  'd-softdeps.conf': [
    'softdep virtio_net pre: loop post: tun nosuchsoft',
    'softdep vfat  pre: dummy',
    'softdep xfs pre: crc32c post: dummy',
    'softdep ext* pre: mbcache',
    'softdep cifs gcm',
    'softdep btrfs pre: zstd',
    'weakdep xfs loop  tun ',
    '',
  ].join('\n'),
  'e-blacklist.conf': ['blacklist tun', 'blacklist btrfs', 'blacklist snd-pcm', 'blacklist dummy', ''].join('\n'),
  'modules.softdep': 'softdep vfat pre: loop\n',
  'ignored.txt': 'alias ignored-file dummy\n',
};

interface Fixture {
  k: Kernel;
  /** every module name, in modules.dep order */
  names: string[];
  /** every query of the batch: names, aliases, symbols, built-ins, not-found */
  queries: string[];
}

function modulesOf(k: Kernel): string[] {
  const out: string[] = [];
  for (const line of readFileSync(path.join(k.modulesDir, 'modules.dep'), 'latin1').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out.push(pathToModname(line.slice(0, colon))!);
  }
  return out;
}

/** A modules.alias pattern as a device would present it: `*` matching nothing, `?` one char. */
function concrete(pattern: string): string | undefined {
  if (pattern.includes('[')) return undefined;
  return pattern.replaceAll('*', '').replaceAll('?', 'X');
}

function queriesOf(k: Kernel, names: string[]): string[] {
  const q = [...names];
  const aliases = readFileSync(path.join(k.modulesDir, 'modules.alias'), 'latin1').split('\n');
  aliases.forEach((line, i) => {
    if (!line.startsWith('alias ')) return;
    const pattern = line.slice(6, line.lastIndexOf(' '));
    const c = concrete(pattern);
    if (c !== undefined) q.push(c);
    // and every 7th pattern as written (a glob matching itself, brackets and all)
    if (i % 7 === 0) q.push(pattern);
  });
  const symbols = readFileSync(path.join(k.modulesDir, 'modules.symbols'), 'latin1').split('\n');
  symbols.forEach((line, i) => {
    if (line.startsWith('alias ') && i % 5 === 0) q.push(line.slice(6, line.lastIndexOf(' ')));
  });
  for (const line of readFileSync(path.join(k.modulesDir, 'modules.builtin'), 'latin1').split('\n')) {
    const n = line.trim() === '' ? undefined : pathToModname(line.trim());
    if (n !== undefined) q.push(n, n.replaceAll('_', '-'));
  }
  const modinfo = readFileSync(path.join(k.modulesDir, 'modules.builtin.modinfo'), 'latin1').split('\0');
  modinfo.forEach((s, i) => {
    const m = /^[^.]+\.alias=(.*)$/.exec(s);
    if (m && i % 3 === 0) q.push(m[1]);
  });
  q.push('nosuchmodule', 'symbol:nosuchsymbol', 'pci:v0000FFFFd0000FFFF', 'fs-nosuch', 'bad]name', 'bad[name', 'a.b', 'snd-pcm', 'crypto-md5', 'fs-ext4', 'my-wildthing', 'two-of-them', 'nosuch-installed', 'removeonly');
  return q;
}

/** Every module syscall refused (EPERM): these tests never insert or remove anything. */
const NO_KERNEL: Syscalls = {
  initModule: () => {
    throw new SyscallError('init_module', 1);
  },
  finitModule: () => {
    throw new SyscallError('finit_module', 1);
  },
  deleteModule: () => {
    throw new SyscallError('delete_module', 1);
  },
  mmap: () => {
    throw new SyscallError('mmap', 1);
  },
  munmap: () => {},
  syslog: () => {},
};

let ref: unknown;
let argvOf: (tool: string, args: string[]) => string[];

/** kmod 34.2 as modprobe, its stdin closed. */
function runKmod(args: string[], env: Record<string, string> = {}): Promise<RefRun> {
  const [prog, ...rest] = argvOf('modprobe', args);
  return new Promise((resolve, reject) => {
    const p = spawn(prog, rest, { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => err.push(b));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status: status ?? 128, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
}
const fixtures: Fixture[] = [];
let confDir: string;

/** Run both tools with the same arguments; compare everything. */
async function compare(args: string[], label: string, env: Record<string, string> = {}): Promise<void> {
  const kmod = await runKmod(args, env);
  // dry runs only; a syscall layer that refuses everything keeps a slip from reaching this kernel
  const ours = await runMain(['modprobe', ...args], { root: '/', env: { ...cleanEnv(), ...env }, sys: NO_KERNEL });
  assertSame(kmod, ours, label);
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MODPROBE_OPTIONS;
  delete env.KMOD_LOG;
  return env;
}

/** The first differing line with some context, for a readable failure. */
function firstDiff(want: string, got: string): string {
  const a = want.split('\n');
  const b = got.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `line ${i + 1}:\n  kmod: ${JSON.stringify(a.slice(i, i + 3))}\n  ours: ${JSON.stringify(b.slice(i, i + 3))}`;
}

function assertSame(kmod: RefRun, ours: { status: number; stdout: string; stderr: string }, label: string): void {
  const out = kmod.stdout.toString('latin1');
  const err = kmod.stderr.toString('latin1');
  if (out !== ours.stdout) assert.fail(`${label}: stdout differs at ${firstDiff(out, ours.stdout)}`);
  if (err !== ours.stderr) assert.fail(`${label}: stderr differs at ${firstDiff(err, ours.stderr)}`);
  assert.equal(ours.status, kmod.status, `${label}: exit status`);
}

describe('modprobe dry-run parity with kmod 34.2', { concurrency: 2 }, () => {
  before(async () => {
    const script = await kmodRefScript();
    ref = await script.ensureKmodRef();
    argvOf = (tool, args) => script.kmodRefArgv(ref, tool, args);
    for (const k of await debianKernels()) {
      const names = modulesOf(k);
      fixtures.push({ k, names, queries: queriesOf(k, names) });
    }
    confDir = mkdtempSync(path.join(tmpdir(), 'kmod-ts-modprobe-conf-'));
    for (const [name, text] of Object.entries(KEYWORDS_CONF)) writeFileSync(path.join(confDir, name), text);
    mkdirSync(path.join(confDir, 'sub.conf'));
  });
  after(() => rmSync(confDir, { recursive: true, force: true }));

  for (const kernel of ['d12', 'd13']) {
    for (const [mode, flags] of [
      ['--show-depends', ['--show-depends']],
      ['-R', ['-R']],
      ['-n -v', ['-n', '-v']],
    ] as const) {
      for (const conf of ['none', 'keywords'] as const) {
        it(`${kernel}: modprobe -a ${mode} over every module name, aliases, symbols, built-ins and unknown names (${conf === 'none' ? '-C /dev/null' : 'a config using every keyword'})`, async () => {
          const f = fixtures.find((x) => x.k.name === kernel)!;
          const c = conf === 'none' ? '/dev/null' : confDir;
          await compare(['-d', f.k.root, '-S', f.k.kver, '-C', c, '-a', ...flags, ...f.queries], `${kernel} -a ${mode} (${f.queries.length} queries)`);
        });
      }
    }

    it(`${kernel}: modprobe -c prints the configuration and both indexes`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      await compare(['-d', f.k.root, '-S', f.k.kver, '-C', '/dev/null', '-c'], `${kernel} -c`);
      await compare(['-d', f.k.root, '-S', f.k.kver, '-C', confDir, '-C', path.join(confDir, 'ignored.txt'), '--show-config'], `${kernel} -c keywords`);
    });

    it(`${kernel}: --show-modversions and --show-exports of module files (a sample of 12, compressed as shipped)`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      const lines = readFileSync(path.join(f.k.modulesDir, 'modules.dep'), 'latin1').split('\n').filter((l) => l.includes(':'));
      const files = lines.filter((_, i) => i % Math.ceil(lines.length / 12) === 0).map((l) => path.join(f.k.modulesDir, l.slice(0, l.indexOf(':'))));
      for (const file of [...files, '/etc/hostname', path.join(f.k.modulesDir, 'nosuch.ko')]) {
        for (const o of ['--show-modversions', '--show-exports']) await compare([o, file], `${kernel} ${o} ${file}`);
      }
    });

    it(`${kernel}: --show-modversions and --show-exports of files that are no module (empty, short, garbage, a truncated or non-ELF .ko.xz, a directory)`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      const xz = readFileSync(path.join(f.k.modulesDir, readFileSync(path.join(f.k.modulesDir, 'modules.dep'), 'latin1').split(':')[0]));
      const dir = mkdtempSync(path.join(tmpdir(), 'kmod-ts-modversions-'));
      try {
        const files: Record<string, Buffer> = {
          'empty.ko': Buffer.alloc(0),
          'short.ko': Buffer.from('abc'),
          'garbage.ko': Buffer.from('this is not a kernel module, only text: '.repeat(3)),
          'trunc.ko.xz': compress('xz', Buffer.from('\x7fELF'.padEnd(4000, 'x'))).subarray(0, 40),
          'notelf.ko.xz': compress('xz', Buffer.from('hello world, this is not ELF\n')),
          'head.ko': xz.subarray(0, 300),
        };
        for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
        mkdirSync(path.join(dir, 'dir.ko'));
        for (const file of [...Object.keys(files), 'dir.ko']) {
          for (const o of ['--show-modversions', '--show-exports']) await compare([o, path.join(dir, file)], `${kernel} ${o} ${file}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`${kernel}: single runs: FATAL words, -q, module parameters, options, install and softdep lines`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      const base = ['-d', f.k.root, '-S', f.k.kver];
      const cases: string[][] = [
        ['-C', '/dev/null', '--show-depends', 'vfat'],
        ['-C', '/dev/null', '--show-depends', 'nosuchmodule'],
        ['-C', '/dev/null', '-q', '--show-depends', 'nosuchmodule'],
        ['-C', '/dev/null', '--show-depends', 'bad]name'],
        ['-C', '/dev/null', '-R', 'nosuchmodule'],
        ['-C', '/dev/null', '--show-depends', 'dummy', 'numdummies=2', 'name=a b'],
        ['-C', confDir, '--show-depends', 'vfat', 'x=1'],
        ['-C', confDir, '--show-depends', 'my_vfat', 'x=1'],
        ['-C', confDir, '--show-depends', 'two-of-them'],
        ['-C', confDir, '--show-depends', 'tun', 'a=1'],
        ['-C', confDir, '-i', '--show-depends', 'tun'],
        ['-C', confDir, '-i', '--show-depends', 'virtio_net'],
        ['-C', confDir, '--show-depends', 'xfs'],
        ['-C', confDir, '-b', '--show-depends', 'dummy'],
        ['-C', confDir, '-b', '-n', '-v', 'btrfs'],
        ['-C', confDir, '-n', '-v', 'my-wildcard'],
        ['-C', confDir, '-n', '-v', 'nosuch-installed'],
        ['-C', confDir, '-i', '-n', '-v', 'nosuch-installed'],
        ['-C', confDir, '-r', '-n', '-v', 'removeonly'],
        ['-C', confDir, '-r', '-n', '-v', 'dummy'],
        ['-C', confDir, '-r', '-n', '-v', 'nosuchmodule', 'dummy'],
        ['-C', confDir, '-r', '-a', '-n', '-v', 'nosuchmodule', 'dummy'],
        ['-C', '/dev/null', '-r', '-n', '-v', 'ext4'],
        ['-C', '/dev/null', '-r', '--first-time', '-n', 'xfs'],
        ['-C', '/dev/null', '--first-time', '-n', 'ext4'],
        ['-C', '/dev/null', '-n', 'ext4'],
        ['-C', '/dev/null'],
        ['-C', '/dev/null', '-r', '-w', 'abc', 'xfs'],
        ['-C', '/dev/null', '-x', 'xfs'],
        ['-C', '/dev/null', '--frobnicate', 'xfs'],
        ['-C', '/dev/null', '--show-dep', 'vfat'],
        ['-C', '/dev/null', '--show-', 'vfat'],
        ['-C', '/dev/null', '--all=1', 'vfat'],
        ['-C', '/dev/null', '--show-depends', '--', 'vfat', '-x=1'],
        ['-C'],
      ];
      for (const c of cases) await compare([...base, ...c], `${kernel} modprobe ${c.join(' ')}`);

      // MODPROBE_OPTIONS goes before the arguments, split kmod's way (a quoted word then a space
      // gives an empty argument: "Module  not found")
      for (const opts of ['-C /dev/null --show-depends', '-C "/dev/null" --show-depends', "-q -C '/dev/null' -D", '-C /dev/null -R']) {
        await compare([...base, 'vfat'], `${kernel} MODPROBE_OPTIONS='${opts}' modprobe vfat`, { MODPROBE_OPTIONS: opts });
      }
    });

    it(`${kernel}: random modprobe.d configurations and names: 1,000 never end in a BUG, and the first 300 print what kmod 34.2 prints (dry runs: --show-depends, -n -v, -c, -r, -a, -R, -D, -b)`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      const dir = mkdtempSync(path.join(tmpdir(), 'kmod-ts-randconf-'));
      const rnd = seededRandom(1);
      const keywords = ['alias', 'options', 'install', 'remove', 'softdep', 'blacklist', 'weakdep', 'include', '#'];
      const words = ['vfat', 'fat', 'dummy', 'xfs', 'foo*', 'f[a-z]t', 'f[z-a]t', 'pre:', 'post:', 'x=1', 'numdummies=2', '/bin/true', '$CMDLINE_OPTS',
        'fs-vfat', 'symbol:fat_fill_super', '\\', '[', ']', '*', '?', 'pci:v*', '"q"', "'", '=', '-', 'vfat.x=1'];
      const names = ['vfat', 'fat', 'dummy', 'foo', 'fxt', 'fs-vfat', 'symbol:fat_fill_super', 'pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80', 'nosuch', 'f[a-z]t'];
      const modes = [['--show-depends'], ['-n', '-v'], ['-c'], ['-r', '-n', '-v'], ['-a', '-n', '-v'], ['-R'], ['-D', '-i'], ['-n', '-b']];
      const bugs: string[] = [];
      try {
        for (let i = 0; i < 1000; i++) {
          let conf = '';
          for (let l = rnd(6); l >= 0; l--) {
            conf += keywords[rnd(keywords.length)];
            for (let w = rnd(5); w > 0; w--) conf += ` ${words[rnd(words.length)]}`;
            conf += rnd(5) ? '\n' : ' \\\n';
          }
          writeFileSync(path.join(dir, 'a.conf'), conf);
          const mode = modes[rnd(modes.length)];
          const args = mode[0] === '-c' ? [] : mode.includes('-a') ? [names[rnd(names.length)], names[rnd(names.length)]] : [names[rnd(names.length)]];
          const argv = ['-d', f.k.root, '-S', f.k.kver, '-C', dir, ...mode, ...args];
          if (i < 300) {
            await compare(argv, `${kernel} config ${JSON.stringify(conf)} modprobe ${[...mode, ...args].join(' ')}`);
            continue;
          }
          const r = await runMain(['modprobe', ...argv], { root: '/', sys: NO_KERNEL });
          if (/BUG/.test(r.stderr) || r.status > 1) bugs.push(`${JSON.stringify(conf)} ${[...mode, ...args].join(' ')}: ${r.status} ${r.stderr.slice(0, 200)}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assert.deepEqual(bugs.slice(0, 3), []);
    });

    it(`${kernel}: modprobe.d alias patterns glibc's fnmatch reads its own way (a reversed range, an escape, classes, an unterminated bracket)`, async () => {
      const f = fixtures.find((x) => x.k.name === kernel)!;
      const dir = mkdtempSync(path.join(tmpdir(), 'kmod-ts-globs-'));
      try {
        writeFileSync(path.join(dir, 'globs.conf'), 'alias foo[z-a]x dummy\nalias esc\\*d dummy\nalias cls[[:digit:]] dummy\nalias open[ab dummy\nalias neg[!a-c]z dummy\n');
        for (const name of ['foobx', 'fooax', 'esc*d', 'escxd', 'cls1', 'clsa', 'open[ab', 'opena', 'negdz', 'negbz', 'nothing']) {
          await compare(['-d', f.k.root, '-S', f.k.kver, '-C', dir, '--show-depends', name], `${kernel} globs ${name}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
