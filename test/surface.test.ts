import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { APPLET_NAMES } from '../src/cli/main.js';
import { MULTICALL_OPTIONS } from '../src/cli/multicall.js';
import type { Applet } from '../src/cli/applet.js';
import type { OptionSpec } from '../src/cli/options.js';
import { fixtureModule, tempDir, writeTree } from './helpers/modules.js';
import { runMain } from './helpers/run.js';

const BIN = resolve('bin/kmod-ts.js');
const MAN = resolve('dist/man');
const KVER = os.release();

const applets: Applet[] = await Promise.all(APPLET_NAMES.map(async (n) => (await import(`../applets/${n}.js`)).default as Applet));

/** A system root with a module database for the running kernel's release and a /proc/modules. */
const root = writeTree(tempDir('kmod-ts-surface-'), {
  [`lib/modules/${KVER}/modules.dep`]: 'kernel/fs/fat/fat.ko.xz:\nkernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz\nkernel/drivers/net/vxlan.ko.xz:\n',
  [`lib/modules/${KVER}/modules.alias`]: 'alias fs-vfat vfat\nalias pci:v*d*sv*sd*bc02sc00i* vxlan\nalias net-pf-99 vxlan\n',
  [`lib/modules/${KVER}/modules.builtin`]: 'kernel/fs/ext4/ext4.ko\n',
  [`lib/modules/${KVER}/kernel/fs/fat/fat.ko.xz`]: 'x',
  [`lib/modules/${KVER}/kernel/fs/fat/vfat.ko.xz`]: 'x',
  'lib/modules/6.1.0-other/modules.dep': 'kernel/drivers/net/dummy.ko:\n',
  'proc/modules': 'fat 73728 1 vfat, Live 0x0\nvfat 20480 0 - Live 0x0\ndummy 12288 0 - Live 0x0\n',
});
/** `kmod-ts` on PATH, as the completion script calls it. */
const binDir = tempDir('kmod-ts-path-');
symlinkSync(BIN, join(binDir, 'kmod-ts'));
/** Module files for insmod. */
const files = writeTree(tempDir('kmod-ts-files-'), {
  'a.ko': fixtureModule(),
  'b.ko.xz': 'x',
  'c.txt': 'x',
  'sub/d.ko.zst': 'x',
});

/**
 * Complete each line in one real bash that sourced `kmod-ts completion bash`: COMP_WORDS,
 * COMP_CWORD, COMP_LINE and COMP_POINT set as readline sets them, then the function that
 * `complete -p WORD` names for the command, called as bash calls it.
 */
function bashComplete(lines: string[][], opts: { cwd?: string } = {}): string[][] {
  const q = (w: string) => `'${w.replaceAll("'", `'\\''`)}'`;
  const script = [
    'source <(kmod-ts completion bash) || exit 9',
    't() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()',
    // bash looks up a full path's compspec, then its basename's
    '  local fn; fn=$({ complete -p "$1" || complete -p "${1##*/}"; } 2>/dev/null | sed -E "s/.* -F ([^ ]+) .*/\\1/") || return',
    '  "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
    '  echo "${COMPREPLY[*]}"; }',
    ...lines.map((l) => `t ${l.map(q).join(' ')}`),
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {
    encoding: 'utf8',
    cwd: opts.cwd,
    env: { PATH: `${binDir}:${process.env.PATH}`, KMOD_TS_SYSROOT: root, HOME: tempDir() },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout.split('\n').slice(0, lines.length).map((l) => (l === '' ? [] : l.split(' ')));
}

/** The spellings of an option on a command line. */
function spellings(o: OptionSpec): string[] {
  return [o.short && `-${o.short}`, o.long && `--${o.long}`].filter((s): s is string => Boolean(s));
}

describe('kmod-ts through yargs', () => {
  it('--help lists every applet with its summary and the multi-call options, on stdout', async () => {
    const r = await runMain([BIN, '--help']);
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
    for (const a of applets) assert.match(r.stdout, new RegExp(`kmod-ts ${a.name} +${a.summary}`), `${a.name} in:\n${r.stdout}`);
    for (const o of MULTICALL_OPTIONS) for (const s of spellings(o)) assert.ok(r.stdout.includes(s), `${s} in:\n${r.stdout}`);
    assert.match(r.stdout, /--install DIR/);
  });

  it('kmod-ts alone prints the help on stderr and exits 1', async () => {
    const r = await runMain([BIN]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /\nUsage: kmod-ts APPLET/);
  });

  const errors: Array<[string[], string]> = [
    [['insmd'], "kmod-ts: ERROR: unknown command 'insmd'\nDid you mean insmod?\n"],
    [['lsmdo'], "kmod-ts: ERROR: unknown command 'lsmdo'\nDid you mean lsmod?\n"],
    [['--instal', 'x'], "kmod-ts: ERROR: unrecognized option '--instal'\nDid you mean --install?\n"],
    [['--lst'], "kmod-ts: ERROR: unrecognized option '--lst'\nDid you mean --list?\n"],
    [['frobnicate'], "kmod-ts: ERROR: unknown command 'frobnicate'\n"],
  ];
  for (const [args, want] of errors) {
    it(`kmod-ts ${args.join(' ')} is a usage error with yargs's suggestion`, async () => {
      const r = await runMain([BIN, ...args]);
      assert.deepEqual(r, { status: 1, stdout: '', stderr: `${want}Run 'kmod-ts --help' for the applets and options.\n` });
    });
  }

  it('completion prints the bash script for kmod-ts and every link name', async () => {
    const r = await runMain([BIN, 'completion', 'bash']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^###-begin-kmod-ts-completions-###\n/);
    assert.ok(r.stdout.includes(`-F _kmod-ts_yargs_completions kmod-ts ${APPLET_NAMES.join(' ')}\n`), r.stdout);
  });

  it('completion zsh prints the zsh script, registered for the link names too', async () => {
    const r = await runMain([BIN, 'completion', 'zsh']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.startsWith(`#compdef kmod-ts ${APPLET_NAMES.join(' ')}\n`), r.stdout);
    assert.ok(r.stdout.includes(`compdef _kmod-ts_yargs_completions kmod-ts ${APPLET_NAMES.join(' ')}\n`), r.stdout);
  });

  it('completion --help says how to call it', async () => {
    const r = await runMain([BIN, 'completion', '--help']);
    assert.deepEqual([r.status, r.stderr], [0, '']);
    assert.match(r.stdout, /^Usage: kmod-ts completion \[bash\|zsh\]\n/);
  });

  it('completion of an unknown shell is an error', async () => {
    const r = await runMain([BIN, 'completion', 'fish']);
    assert.deepEqual(r, { status: 1, stdout: '', stderr: "kmod-ts: ERROR: completion: unknown shell 'fish' (bash or zsh)\n" });
  });
});

describe('bash completion, through the generated script in a real bash', () => {
  const cases: Array<{ line: string[]; want: string[]; needs?: string }> = [
    { line: ['kmod-ts', ''], want: [...APPLET_NAMES, 'completion'] },
    { line: ['kmod-ts', 'mod'], want: APPLET_NAMES.filter((n) => n.startsWith('mod')) },
    { line: ['modprobe', 'vf'], want: ['vfat'], needs: 'modprobe' },
    { line: ['modprobe', 'fs-'], want: ['fs-vfat'], needs: 'modprobe' },
    { line: ['modprobe', '-r', ''], want: ['dummy', 'fat', 'vfat'], needs: 'modprobe' },
    { line: ['modprobe', '-S', '6.1.0-other', 'd'], want: ['dummy'], needs: 'modprobe' },
    { line: ['kmod-ts', 'modprobe', 'vx'], want: ['vxlan'], needs: 'modprobe' },
    { line: ['modinfo', 'vf'], want: ['vfat'] },
    { line: ['modinfo', 'e'], want: ['ext4'] },
    { line: ['modinfo', 'net-'], want: ['net-pf-99'] },
    { line: ['modinfo', '-k', ''], want: ['6.1.0-other', KVER].sort() },
    { line: ['modinfo', '-k', '6.1.0-other', ''], want: ['dummy'] },
    { line: ['/sbin/modinfo', 'fa'], want: ['fat'] },
    { line: ['rmmod', ''], want: ['dummy', 'fat', 'vfat'] },
    { line: ['kmod-ts', 'rmmod', 'd'], want: ['dummy'] },
    { line: ['rmmod', 'fat', 'v'], want: ['vfat'] },
    { line: ['insmod', ''], want: ['a.ko', 'b.ko.xz', 'sub/'] },
    { line: ['insmod', 'sub/'], want: ['sub/d.ko.zst'] },
    { line: ['insmod', 'a.ko', ''], want: [] },
  ];
  const run = cases.filter((c) => !c.needs || APPLET_NAMES.includes(c.needs));
  it(`completes ${run.length} command lines as a person at a terminal expects`, () => {
    const got = bashComplete(run.map((c) => c.line), { cwd: files });
    run.forEach((c, i) => assert.deepEqual(got[i], c.want, `${c.line.join(' ')}<TAB>: got ${JSON.stringify(got[i])}, want ${JSON.stringify(c.want)}`));
  });
});

/**
 * zsh: an interactive zsh under zpty types each line, Tab, then ^X, bound to a widget that
 * appends "[BUFFER]" to a file: what the line became. One line at a time (typeahead would reach
 * the completion's child process). `how`: the script as a file in $fpath (autoloaded by
 * compinit), or sourced after compinit as a .zshrc does.
 */
function zshComplete(lines: string[], how: 'fpath' | 'source'): string[] {
  const sq = (w: string) => `'${w.replaceAll("'", `'\\''`)}'`;
  const dir = tempDir('kmod-ts-zsh-');
  const script = spawnSync(process.execPath, [BIN, 'completion', 'zsh'], { encoding: 'utf8' }).stdout;
  writeFileSync(join(dir, '_kmod-ts'), script);
  const out = join(dir, 'out');
  const setup = how === 'fpath' ? `fpath=(${dir} $fpath); autoload -Uz compinit; compinit -u -D` : `autoload -Uz compinit; compinit -u -D; source ${dir}/_kmod-ts`;
  const driver = [
    'zmodload zsh/zpty',
    `: > ${out}`,
    'zpty z zsh -f -i',
    `zpty -w z ${sq(`PS1='> '; ${setup}`)}`,
    `zpty -w z ${sq(`dump() { print -r -- "[$BUFFER]" >> ${out}; BUFFER=''; }; zle -N dump; bindkey '^X' dump`)}`,
    'n=0',
    'for line in "$@"; do',
    `  zpty -w -n z "$line"$'\\t'; sleep 0.2; zpty -w -n z $'\\x18'; n=$((n + 1))`,
    `  for i in {1..300}; do [[ $(wc -l < ${out}) -ge $n ]] && break; sleep 0.1; done`,
    'done',
    'zpty -d z',
  ].join('\n');
  const r = spawnSync('zsh', ['-f', '-c', driver, 'zsh', ...lines], {
    encoding: 'utf8',
    cwd: files,
    env: { PATH: `${binDir}:${process.env.PATH}`, KMOD_TS_SYSROOT: root, HOME: dir, SHELL: '/bin/zsh', TERM: 'dumb' },
  });
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(out, 'utf8').split('\n').filter((l) => l !== '');
}

describe('zsh completion, through the generated script in a real interactive zsh', () => {
  const lines: Array<[string, string]> = [
    ['modinfo vf', 'modinfo vfat '],
    ['rmmod f', 'rmmod fat '],
    ['kmod-ts rmmod dum', 'kmod-ts rmmod dummy '],
    ['kmod-ts insmod --force-v', 'kmod-ts insmod --force-vermagic '],
    ['kmod-ts lsm', 'kmod-ts lsmod '],
    ['insmod su', 'insmod sub/'],
  ];
  if (APPLET_NAMES.includes('modprobe')) lines.push(['modprobe fs-', 'modprobe fs-vfat ']);
  for (const how of ['fpath', 'source'] as const) {
    it(`completes each Tab, the script ${how === 'fpath' ? 'autoloaded from $fpath' : 'sourced after compinit'}`, () => {
      assert.deepEqual(zshComplete(lines.map((l) => l[0]), how), lines.map((l) => `[${l[1]}]`));
    });
  }
});

describe('one table per applet: every option in usage, completion and man page', () => {
  const completions = (words: string[]): string[] => {
    const r = spawnSync(process.execPath, [BIN, '--get-yargs-completions', ...words], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '');
  };
  for (const a of applets) {
    it(`${a.name}: every option of its table`, async () => {
      const usage = (await runMain([BIN, a.name, '--help'])).stdout;
      const offered = [...completions([a.name, '-']), ...completions(['kmod-ts', a.name, '--'])];
      const man = readFileSync(join(MAN, `kmod-ts-${a.name}.8`), 'utf8').replaceAll('\\-', '-').replaceAll('\\e', '\\');
      for (const o of a.options) {
        // usage: each meaning (key) through at least one spelling, since an applet that prints
        // kmod's own help text (depmod) leaves out kmod's undocumented aliases (--dry-run for -n)
        const same = a.options.filter((x) => x.key === o.key).flatMap(spellings);
        assert.ok(same.some((s) => usage.includes(s)), `${same.join(' or ')} in ${a.name} --help:\n${usage}`);
        // man page and completion: every spelling
        for (const s of spellings(o)) {
          assert.ok(man.includes(`\\fB${s}\\fR`), `${s} in kmod-ts-${a.name}.8`);
          assert.ok(offered.includes(s) || (s.length === 2 && offered.includes(`-${s}`)), `${s} offered by completion: ${offered.join(' ')}`);
        }
        assert.ok(man.includes(o.help.slice(0, 16)), `${o.key}'s help in kmod-ts-${a.name}.8`);
      }
    });
  }
  it('kmod-ts: every multi-call option in --help, completion and kmod-ts(8)', async () => {
    const help = (await runMain([BIN, '--help'])).stdout;
    const offered = completions(['kmod-ts', '-']);
    const man = readFileSync(join(MAN, 'kmod-ts.8'), 'utf8').replaceAll('\\-', '-');
    for (const o of MULTICALL_OPTIONS) {
      for (const s of spellings(o)) {
        assert.ok(help.includes(s), `${s} in kmod-ts --help`);
        assert.ok(offered.includes(s), `${s} offered: ${offered.join(' ')}`);
        assert.ok(man.includes(`\\fB${s}\\fR`), `${s} in kmod-ts.8`);
      }
    }
  });
});

describe('man pages', () => {
  const pages = ['kmod-ts.8', ...APPLET_NAMES.map((n) => `kmod-ts-${n}.8`)];
  it("are the ones package.json's man field lists, and exist after the build", () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { man: string[]; files: string[] };
    assert.deepEqual([...pkg.man].sort(), pages.map((p) => `./dist/man/${p}`).sort());
    for (const p of pages) assert.ok(existsSync(join(MAN, p)), p);
    assert.ok(pkg.files.includes('dist/man/'));
  });
  for (const p of pages) {
    it(`${p} renders without a warning (groff -ww, mandoc -T lint)`, () => {
      const groff = spawnSync('groff', ['-ww', '-z', '-man', '-Tutf8', join(MAN, p)], { encoding: 'utf8' });
      assert.deepEqual([groff.status, groff.stderr], [0, '']);
      const mandoc = spawnSync('mandoc', ['-T', 'lint', join(MAN, p)], { encoding: 'utf8' });
      assert.deepEqual([mandoc.status, mandoc.stdout + mandoc.stderr], [0, '']);
    });
  }
});

describe('start-up: no applet loads yargs', () => {
  // every module a process resolves, written by a resolve hook (ESM) or read from require.cache (the bundle)
  const hooks = writeTree(tempDir('kmod-ts-hooks-'), {
    'hooks.mjs': "import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(process.env.KMOD_TS_TRACE, r.url + '\\n'); return r; }\n",
    'register.mjs': "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n",
    'cache.cjs': "process.on('exit', () => require('node:fs').appendFileSync(process.env.KMOD_TS_TRACE, Object.keys(require.cache).join('\\n') + '\\n'));\n",
  });
  const loaded = (preload: string[], entry: string, args: string[]): string => {
    const trace = join(tempDir(), 'trace');
    writeFileSync(trace, '');
    spawnSync(process.execPath, [...preload, entry, ...args], { env: { PATH: process.env.PATH, KMOD_TS_SYSROOT: root, KMOD_TS_TRACE: trace } });
    return readFileSync(trace, 'utf8');
  };
  const runs: string[][] = [['lsmod'], ['rmmod', 'nothere'], ['insmod', '/nonexistent.ko'], ['modinfo', 'vfat'], ['--version'], ['--list'], ['lsmod', '--help']];
  for (const args of runs) {
    it(`kmod-ts ${args.join(' ')} loads neither yargs nor the surface (compiled tree and bundle)`, () => {
      const esm = loaded(['--import', pathToHref(join(hooks, 'register.mjs'))], resolve('dist/src/cli/entry.js'), args);
      assert.match(esm, /cli\/main\.js/);
      assert.doesNotMatch(esm, /node_modules\/yargs\/|surface\.js/);
      const cjs = loaded(['--require', join(hooks, 'cache.cjs')], resolve('dist/bundle/kmod-ts.cjs'), args);
      assert.match(cjs, /kmod-ts\.cjs/);
      assert.doesNotMatch(cjs, /kmod-ts-surface\.cjs|yargs/);
    });
  }
  it('kmod-ts --help does load the surface (the check above can see it)', () => {
    assert.match(loaded(['--require', join(hooks, 'cache.cjs')], resolve('dist/bundle/kmod-ts.cjs'), ['--help']), /kmod-ts-surface\.cjs/);
    assert.match(loaded(['--import', pathToHref(join(hooks, 'register.mjs'))], resolve('dist/src/cli/entry.js'), ['--help']), /node_modules\/yargs\//);
  });
});

function pathToHref(p: string): string {
  return new URL(`file://${p}`).href;
}

describe('--json (kmod-ts extension): the library objects', () => {
  it('lsmod --json is listModules() over the same root', async () => {
    const { listModules } = await import('../src/ops/list-modules.js');
    const r = await runMain([BIN, 'lsmod', '--json'], { root });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(JSON.stringify(listModules({ root }))));
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)[0]), ['name', 'size', 'refcnt', 'holders', 'state', 'address', 'taint']);
  });

  it('modinfo --json is modinfo() of the file, parameters with their types', async () => {
    const { modinfo } = await import('../src/ops/modinfo.js');
    const file = join(files, 'a.ko');
    const r = await runMain([BIN, 'modinfo', '--json', file], { root });
    assert.equal(r.status, 0, r.stderr);
    const [got] = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    const [want] = await modinfo(file);
    assert.deepEqual(Object.keys(got), ['name', 'filename', 'builtin', 'fields', 'signature', 'params', 'invalidParams']);
    assert.deepEqual(got.fields, want.fields);
    assert.deepEqual(got.params, JSON.parse(JSON.stringify(want.params)));
    assert.equal(got.filename, want.filename);
  });

  it('modprobe --show-depends --json lists the actions kmod would print', { skip: !APPLET_NAMES.includes('modprobe') && 'no modprobe applet' }, async () => {
    const r = await runMain([BIN, 'modprobe', '--show-depends', '--json', 'vfat'], { root });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      (JSON.parse(r.stdout) as Array<Record<string, string>>).map((a) => [a.kind, a.module]),
      [['insmod', 'fat'], ['insmod', 'vfat']],
    );
    const plain = await runMain([BIN, 'modprobe', '--json', 'vfat'], { root });
    assert.equal(plain.status, 1);
  });
});
