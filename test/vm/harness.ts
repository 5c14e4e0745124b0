/**
 * Host side of the real-kernel suite: fixture files for the guest, the image, the guest script
 * that runs every cell's steps, and the parser of its `@@STEP ...@@` lines.
 *
 * The kernels, images and VM runs come from scripts/kernels.mjs, mkrootfs.mjs and vm.mjs
 * (shared with `npm run demo`); param_printer.ko from scripts/build-param-printer.mjs.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The project's root (this file runs as dist/test/vm/harness.js). */
export const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Kernels the suite can boot: Debian 12 and 13, amd64 and (`-arm64`) arm64. */
export type KernelName = 'd12' | 'd13' | 'd12-arm64' | 'd13-arm64';
export const ALL_KERNEL_NAMES: readonly KernelName[] = ['d12', 'd13', 'd12-arm64', 'd13-arm64'];
/**
 * Kernels `npm test` boots: both amd64 kernels with every cell, and Debian 13 arm64 with the
 * cells of {@link ARM64_CELLS} (arm64 under TCG is slower; `npm run test:arm64` runs the whole
 * matrix on both arm64 kernels).
 */
export const KERNEL_NAMES: readonly KernelName[] = ['d12', 'd13', 'd13-arm64'];

/**
 * What the suite expects of each kernel, fixed so that cell names exist before anything is
 * downloaded; a cell checks them in the guest (`/sys/module/compression`).
 */
export const KERNEL_FACTS: Readonly<Record<KernelName, { label: string; inKernel: 'xz' | undefined; other: KernelName; arch: 'amd64' | 'arm64' }>> = {
  d12: { label: 'Debian 12', inKernel: undefined, other: 'd13', arch: 'amd64' },
  d13: { label: 'Debian 13', inKernel: 'xz', other: 'd12', arch: 'amd64' },
  'd12-arm64': { label: 'Debian 12 arm64', inKernel: undefined, other: 'd13-arm64', arch: 'arm64' },
  'd13-arm64': { label: 'Debian 13 arm64', inKernel: 'xz', other: 'd12-arm64', arch: 'arm64' },
};

/**
 * The cells `npm test` runs on an arm64 kernel (by name; every name must exist, so a renamed
 * cell fails here instead of silently leaving the subset): each loading path (mmap, read, finit
 * of a plain file, in-kernel xz, and each userspace decoder: liblzma direct, the xz stream
 * binding, gzip, zstd) once, the fallback from the kernel's xz to userspace, parameters through
 * param_printer built for arm64, -f on both paths, the error texts kmod-ts shares with kmod,
 * lsmod and rmmod. The rest of the matrix (every format variant, bad inputs, concurrency,
 * non-root) is architecture-independent code already run on amd64: `npm run test:arm64`.
 */
export const ARM64_CELLS: readonly RegExp[] = [
  /^parity: lsmod with no module loaded/,
  /^paths: the kernel's \/sys\/module\/compression/,
  /^paths: an uncompressed \.ko takes mmap\+init_module by default$/,
  /^paths: KMOD_TS_PATH=read forces read\+init_module on a \.ko$/,
  /^paths: KMOD_TS_PATH=finit forces finit_module on a \.ko$/,
  /^paths: read\+xz with liblzma called directly/,
  /^paths: read\+xz with the lzma-native stream binding/,
  /^paths: (a kbuild \.ko\.xz takes finit_module \(in-kernel xz\) by default|a \.ko\.xz is decompressed in userspace by default)/,
  /^formats: gzip, one member$/,
  /^formats: zstd with the content size in the frame header$/,
  /^formats: xz, two streams/,
  /^params: int, bool, charp, int array and a charp with spaces/,
  /^errors: unknown symbol \(vfat without fat\)$/,
  /^errors: module built for the other kernel$/,
  /^errors: rmmod of a module in use by a holder$/,
  /^bad input: corrupt xz$/,
  /^parity: lsmod with seven modules and holders/,
  /^force: -f on Debian's signed module, xz-compressed$/,
];


/** One step's result in the guest. */
export interface Step {
  rc: number;
  out: string;
  err: string;
  ms: number;
}

/** One matrix cell: shell steps run in order in the guest (as root, cwd /root), then checked. */
export interface Cell {
  name: string;
  steps: string[];
  check: (steps: Step[]) => void;
}

/** The results of one boot: steps by cell index, plus the whole serial log for diagnosis. */
export interface RunResult {
  kernel: KernelName;
  kver: string;
  steps: Map<number, Step[]>;
  serial: string;
  output: string;
  exitCode: number;
  bootMs: number;
  totalMs: number;
  prepMs: number;
  notes: string[];
  problems: string[];
}

// The scripts are plain JavaScript modules without declarations.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Js = any;
const script = async (name: string): Promise<Js> => import(pathToFileURL(path.join(projectDir, 'scripts', name)).href);

function sh(cmd: string, args: string[], opts: { input?: Buffer; cwd?: string } = {}): Buffer {
  return execFileSync(cmd, args, { input: opts.input, cwd: opts.cwd, maxBuffer: 256 << 20, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The uncompressed bytes of a module file of the kernel's tree (`.ko` or `.ko.xz`). */
function moduleBytes(modulesDir: string, rel: string): Buffer {
  const base = path.join(modulesDir, 'kernel', rel);
  if (existsSync(`${base}.ko`)) return readFileSync(`${base}.ko`);
  if (existsSync(`${base}.ko.xz`)) return sh('xz', ['-dc', `${base}.ko.xz`]);
  throw new Error(`no ${rel}.ko[.xz] under ${modulesDir}`);
}

const halves = (b: Buffer): [Buffer, Buffer] => [b.subarray(0, b.length >> 1), b.subarray(b.length >> 1)];

/**
 * The files the guest finds under /t: param_printer builds, dummy in every format, bad inputs,
 * the runas helper and small scripts on PATH (/t/bin).
 */
export async function prepareFixtures(kernel: KernelName, dir: string, notes: string[], problems: string[]): Promise<void> {
  const { ensureKernel } = await script('kernels.mjs');
  const { buildParamPrinter } = await script('build-param-printer.mjs');
  const k = await ensureKernel(kernel);
  const other = await ensureKernel(KERNEL_FACTS[kernel].other);
  const arch = KERNEL_FACTS[kernel].arch;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const put = (name: string, data: Buffer | string, mode = 0o644) => writeFileSync(path.join(dir, name), data, { mode });

  // Without param_printer the kernel's other cells still run; its parameter cells then fail
  // (no /t/pp.ko) and so does the boot cell, with kbuild's reason.
  try {
    const pp = await buildParamPrinter(k);
    notes.push(`param_printer for ${k.kver}: ${pp.how}${pp.cached ? ' (cached)' : ''}`);
    copyFileSync(pp.ko, path.join(dir, 'pp.ko'));
  } catch (e) {
    problems.push(`param_printer could not be built for ${k.kver}: ${(e as Error).message}`);
  }
  // "A module built for the other kernel": param_printer if it builds there, else its dummy.
  try {
    const ppo = await buildParamPrinter(other);
    copyFileSync(ppo.ko, path.join(dir, 'other.ko'));
    notes.push(`other-kernel module: param_printer for ${other.kver}`);
  } catch (e) {
    put('other.ko', moduleBytes(other.modulesDir, 'drivers/net/dummy'));
    notes.push(`other-kernel module: dummy.ko of ${other.kver} (param_printer did not build there: ${(e as Error).message.split('\n')[0]})`);
  }

  // Debian's dummy.ko, signed (the signature is inside the compressed data on Debian 13).
  const ko = moduleBytes(k.modulesDir, 'drivers/net/dummy');
  const [a, b] = halves(ko);
  const gz = (d: Buffer) => sh('gzip', ['-n', '-9', '-c'], { input: d });
  const xzKbuild = (d: Buffer) => sh('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: d });
  const xzPlain = (d: Buffer) => sh('xz', ['-c'], { input: d });
  // zstd writes the content size when it knows the input size: a file argument, not a pipe.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kmod-ts-vmfix-'));
  try {
    const zstd = (d: Buffer, extra: string[] = []) => {
      const f = path.join(tmp, 'in');
      writeFileSync(f, d);
      return sh('zstd', ['-q', '-19', '-c', ...extra, f]);
    };
    put('dummy.ko', ko);
    put('dummy.ko.gz', gz(ko));
    put('dummy-members.ko.gz', Buffer.concat([gz(a), gz(b)]));
    put('dummy.ko.xz', xzKbuild(ko));
    put('dummy-plain.ko.xz', xzPlain(ko));
    put('dummy-streams.ko.xz', Buffer.concat([xzKbuild(a), xzKbuild(b)]));
    put('dummy.ko.zst', zstd(ko));
    put('dummy-nosize.ko.zst', zstd(ko, ['--no-content-size']));
    put('dummy-frames.ko.zst', Buffer.concat([zstd(a), zstd(b)]));
    // Names that lie: the magic decides.
    put('dummy-xz.ko.gz', xzKbuild(ko));
    put('dummy-gz.ko', gz(ko));
    put('dummy-zst.ko.xz', zstd(ko));
    // Bad inputs.
    put('empty.ko', Buffer.alloc(0));
    put('tiny.ko', Buffer.from([0x7f]));
    put('notelf.ko', 'this is not a kernel module\n'.repeat(100));
    const cut = (d: Buffer) => d.subarray(0, Math.floor(d.length * 0.6));
    put('trunc.ko.gz', cut(gz(ko)));
    put('trunc.ko.xz', cut(xzKbuild(ko)));
    put('trunc.ko.zst', cut(zstd(ko)));
    put('trunc.ko', ko.subarray(0, 4096));
    const corrupt = (d: Buffer) => {
      const c = Buffer.from(d);
      for (let i = c.length >> 1; i < (c.length >> 1) + 16; i++) c[i] ^= 0x55;
      return c;
    };
    put('corrupt.ko.gz', corrupt(gz(ko)));
    put('corrupt.ko.xz', corrupt(xzKbuild(ko)));
    put('corrupt.ko.zst', corrupt(zstd(ko)));
    // runas: see runas.c.
    sh(arch === 'amd64' ? 'gcc' : 'aarch64-linux-gnu-gcc', ['-static', '-O2', '-o', path.join(dir, 'bin', 'runas'), path.join(projectDir, 'test', 'vm', 'runas.c')]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  // mod PATH-UNDER-kernel/ → the module file of this kernel's tree, whatever its extension.
  put('bin/mod', '#!/bin/sh\nfor f in /lib/modules/$(uname -r)/kernel/"$1".ko*; do echo "$f"; done\n', 0o755);
  // sysparams: every param_printer parameter as NAME=VALUE, one a line.
  put('bin/sysparams', '#!/bin/sh\ncd /sys/module/param_printer/parameters || exit 1\nfor f in *; do printf "%s=%s\\n" "$f" "$(cat "$f")"; done\n', 0o755);
  // unload everything (kmod's rmmod, so a kmod-ts bug cannot leave state for the next cell);
  // /proc files have no size, so test for a line rather than with -s.
  // It also undoes what modprobe cells set up: test configurations, mounts, loop devices, the
  // kernel's modprobe path (the guest script keeps the one to restore in /tmp/modprobe-path).
  put('bin/reset', [
    '#!/bin/sh',
    // (builtins where possible: every fork costs ~50 ms under TCG and reset runs after every cell)
    'set -- /etc/modprobe.d/*; [ -e "$1" ] && rm -f "$@"',
    'while read -r _ m _; do [ "$m" = /mnt ] && umount -d /mnt; done </proc/mounts',
    'read -r p </tmp/modprobe-path; read -r c </proc/sys/kernel/modprobe; [ "$p" = "$c" ] || echo "$p" >/proc/sys/kernel/modprobe',
    'i=0',
    'while grep -q . /proc/modules && [ $i -lt 6 ]; do',
    '  for m in $(cut -d" " -f1 /proc/modules); do /opt/kmod/bin/rmmod "$m" 2>/dev/null; done',
    '  i=$((i+1))',
    'done',
    '',
  ].join('\n'), 0o755);
  // conf LINE...: /etc/modprobe.d/test.conf with these lines (reset removes it).
  put('bin/conf', '#!/bin/sh\nprintf "%s\\n" "$@" >/etc/modprobe.d/test.conf\n', 0o755);
  // modorder: the loaded modules' names, newest first (the kernel's /proc/modules order).
  put('bin/modorder', '#!/bin/sh\necho $(cut -d" " -f1 /proc/modules)\n', 0o755);
  // mplog: a /proc/sys/kernel/modprobe that logs the kernel's arguments and what the real
  // modprobe path resolves to, then runs it.
  put('bin/mplog', '#!/bin/sh\nread -r mp </tmp/modprobe-path\necho "$* → $(readlink -f "$mp")" >>/tmp/mplog\nexec "$mp" "$@"\n', 0o755);
  // modaliases: every device's modalias under /sys/devices, sorted, duplicates dropped.
  put('bin/modaliases', '#!/bin/sh\nfind /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u\n', 0o755);
  // modnames: the loaded modules' names, sorted, on one line.
  put('bin/modnames', '#!/bin/sh\necho $(cut -d" " -f1 /proc/modules | sort)\n', 0o755);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The dry-run switch for modprobe cells: with `KMOD_TS_VM_MODPROBE=kmod`, the guest runs Debian's
 * modprobe wherever the cells run ours (first on PATH, and as /proc/sys/kernel/modprobe), so that
 * the cells themselves can be checked against kmod before kmod-ts's applet exists.
 */
export const MODPROBE_DRY = process.env.KMOD_TS_VM_MODPROBE === 'kmod';

/** Where "our" modprobe is in the guest, and what it resolves to. */
export const OUR_MODPROBE = MODPROBE_DRY
  ? { path: '/tmp/dry/modprobe', real: '/opt/kmod/bin/kmod' }
  : { path: '/sbin/modprobe', real: '/usr/lib/kmod-ts/kmod-ts.cjs' };

/** The guest payload: every step of every cell, `reset` between cells, one result line a step. */
export function guestScript(cells: readonly Cell[]): string {
  const lines = [
    'dmesg -n 1',
    ...(MODPROBE_DRY
      ? ['mkdir -p /tmp/dry', 'ln -s /opt/kmod/bin/kmod /tmp/dry/modprobe', 'echo /tmp/dry/modprobe >/proc/sys/kernel/modprobe', 'export PATH=/tmp/dry:/t/bin:/sbin:/usr/sbin:/bin:/usr/bin']
      : ['export PATH=/t/bin:/sbin:/usr/sbin:/bin:/usr/bin']),
    // What `reset` restores after a cell changed the kernel's modprobe path.
    'cat /proc/sys/kernel/modprobe >/tmp/modprobe-path',
    'ms() { read u _ </proc/uptime; echo "${u%.*}${u#*.}0"; }',
    // A subshell, not `timeout sh -c`: every fork+exec costs ~50 ms under TCG and there are ~190
    // steps a kernel. A step that may hang carries its own `timeout`; the VM timeout is the backstop.
    'b64() { [ -s "$1" ] && base64 -w0 <"$1"; }',
    'step() {',
    '  s=$(ms)',
    '  ( eval "$3" ) >/tmp/o 2>/tmp/e </dev/null; rc=$?',
    '  e=$(ms)',
    '  echo "@@STEP $1 $2 $rc $((e-s)) $(b64 /tmp/o) $(b64 /tmp/e)@@"',
    '}',
    'echo "@@KVER $(uname -r)@@"',
  ];
  cells.forEach((c, i) => {
    c.steps.forEach((s, j) => lines.push(`step ${i} ${j} ${quote(s)}`));
    lines.push('reset');
  });
  lines.push('echo "@@DONE@@"');
  return lines.join('\n') + '\n';
}

/** Parse the guest's `@@STEP cell step rc ms out err@@` lines. */
export function parseSteps(serial: string): Map<number, Step[]> {
  const steps = new Map<number, Step[]>();
  for (const m of serial.matchAll(/@@STEP (\d+) (\d+) (\d+) (\d+) ([A-Za-z0-9+/=]*) ([A-Za-z0-9+/=]*)@@/g)) {
    const cell = Number(m[1]);
    const list = steps.get(cell) ?? [];
    list[Number(m[2])] = {
      rc: Number(m[3]),
      ms: Number(m[4]),
      out: Buffer.from(m[5], 'base64').toString('utf8'),
      err: Buffer.from(m[6], 'base64').toString('utf8'),
    };
    steps.set(cell, list);
  }
  return steps;
}

/** One bundle per architecture, shared by its kernels' images. */
const bundled = new Map<string, Promise<unknown>>();

/** A kernel's image, ready to boot. */
export interface Prepared {
  kernel: KernelName;
  image: string;
  script: string;
  notes: string[];
  /** what could not be prepared (the boot cell fails with it) */
  problems: string[];
  prepMs: number;
}

/**
 * Fetch the kernel (cached), build param_printer and the fixtures, and the image with them at /t.
 * @throws {Error} when QEMU is missing, a download or a build fails (the suite then fails)
 */
export async function prepareKernel(kernel: KernelName, cells: readonly Cell[]): Promise<Prepared> {
  const t0 = Date.now();
  const notes: string[] = [];
  const vm = await script('vm.mjs');
  const arch = KERNEL_FACTS[kernel].arch;
  vm.checkQemu(arch);
  const { buildRootfs } = await script('mkrootfs.mjs');
  const { bundle } = await script('bundle.mjs');
  const work = path.join(projectDir, 'build', 'vmtest');
  mkdirSync(work, { recursive: true });
  const fixtures = path.join(work, `t-${kernel}`);
  const problems: string[] = [];
  await prepareFixtures(kernel, fixtures, notes, problems);
  // One bundle per architecture for its images, in a directory of its own (`npm run bundle` or a
  // demo may be writing build/bundle at the same time).
  const bundleDir = path.join(work, arch === 'amd64' ? 'bundle' : `bundle-${arch}`);
  if (!bundled.has(arch)) bundled.set(arch, bundle({ outDir: bundleDir, arch }));
  await bundled.get(arch);
  // Uncompressed: the guest does not gunzip ~60 MiB under TCG (a few seconds per boot).
  const out = path.join(work, `rootfs-${kernel}.cpio`);
  const r = await buildRootfs({ kernel, out, compress: 'none', bundleDir, demoFiles: false, add: [{ src: fixtures, dest: '/t' }] });
  notes.push(`image ${(statSync(r.image).size / 1048576).toFixed(1)} MiB`);
  return { kernel, image: r.image, script: guestScript(cells), notes, problems, prepMs: Date.now() - t0 };
}

/**
 * Boot a prepared image once and run every cell.
 * @throws {VmError} on timeout, QEMU failure or no exit marker
 */
export async function bootKernel(p: Prepared, opts: { smp?: number; timeoutMs?: number } = {}): Promise<RunResult> {
  const vm = await script('vm.mjs');
  const t0 = Date.now();
  const res = await vm.runInVm({
    kernel: p.kernel,
    image: p.image,
    script: p.script,
    // ~5 min for an amd64 kernel on an idle 2-core machine, several times that when the machine
    // is shared (every cell took 640-730 s at load 18); an arm64 guest under TCG runs the matrix
    // about twice as slowly.
    timeoutMs: opts.timeoutMs ?? (KERNEL_FACTS[p.kernel].arch === 'amd64' ? 1_200_000 : 2_400_000),
    memory: 1536,
    smp: opts.smp ?? 1,
  });
  return {
    kernel: p.kernel,
    kver: res.kver,
    steps: parseSteps(res.serial),
    serial: res.serial,
    output: res.output,
    exitCode: res.exitCode,
    bootMs: res.bootMs,
    totalMs: Date.now() - t0 + p.prepMs,
    prepMs: p.prepMs,
    notes: p.notes,
    problems: p.problems,
  };
}
