#!/usr/bin/env node
// Boot a kmod-ts image (scripts/mkrootfs.mjs) under QEMU with software emulation (TCG; no KVM),
// either running a script and returning its output and exit status, or giving an interactive shell.
//
// A script runs as /etc/kmod-ts/payload: it travels in a small cpio archive appended to the image
// (the kernel unpacks concatenated archives in order), so one image serves every run. /init prints
// a begin marker, runs the payload, prints `@@KMOD-TS-EXIT=<status>@@` and powers off.
//
// --arch arm64 boots Debian's arm64 kernel and an arm64 image under qemu-system-aarch64
// (`-M virt`, console on the PL011 UART ttyAMA0); see scripts/arch.mjs.
//
// CLI: node scripts/vm.mjs [--arch amd64|arm64] [--kernel d12|d13] [--shell | --script FILE] [--image FILE]
//        [--add SRC:DEST]... [--timeout SECONDS] [--no-build]
//      npm run vm -- --kernel d13 --shell      (quit QEMU: Ctrl-A x; or `exit` in the shell)

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRootfs, overlayArchive, concatArchives, parseAdd, MARKERS } from './mkrootfs.mjs';
import { ensureKernel, projectDir, KERNELS, parseKernel } from './kernels.mjs';
import { archOf } from './arch.mjs';

import { qemuArgs, qemuBinary } from './qemu.mjs';

export { QEMU, QEMU_ACCEL, KERNEL_APPEND, qemuArgs, qemuBinary, kernelAppend } from './qemu.mjs';

/** A run that did not finish: timeout, QEMU failure, or no exit marker. Carries the serial log. */
export class VmError extends Error {
  constructor(message, { serial, kind }) {
    super(message);
    this.name = 'VmError';
    this.serial = serial;
    this.kind = kind;
  }
}

/** Check QEMU can start at all (so a test suite fails loudly instead of skipping). */
export function checkQemu(arch = 'amd64') {
  const qemu = qemuBinary(arch);
  try {
    return execFileSync(qemu, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  } catch (e) {
    throw new VmError(`${qemu} cannot run (${e.code === 'ENOENT' ? 'not installed: npm run setup' : e.message})`, { kind: 'qemu' });
  }
}

const imageCache = new Map();

/**
 * The image for a kernel: `build/rootfs-<kernel>.cpio`, built once per process (the bundle is
 * rebuilt then too) unless `build` is false and the file exists. Uncompressed by default: under
 * TCG the kernel needs ~4 s to gunzip the ~62 MiB image and ~1.5 s to unpack the plain ~130 MiB
 * one (Debian 13 kernel, measured), so every boot starts 2-3 s sooner.
 */
export async function imageFor(kernel, { build = true, compress = 'none', arch } = {}) {
  const { id, arch: a } = parseKernel(kernel, arch);
  const key = `${id}:${compress}`;
  if (!imageCache.has(key)) {
    const out = path.join(projectDir, 'build', `rootfs-${id}.cpio${compress === 'gzip' ? '.gz' : ''}`);
    imageCache.set(key, !build && existsSync(out)
      ? Promise.resolve(out)
      : buildRootfs({ kernel, arch: a, compress, out }).then((r) => r.image));
  }
  return imageCache.get(key);
}

/**
 * Boot a kernel with an image, run `script` (busybox sh) as the payload, return what it printed.
 * @param {{ kernel?: string, arch?: 'amd64'|'arm64', script: string, files?: {src?: string, content?: string|Buffer,
 *   dest: string, mode?: number}[], image?: string, timeoutMs?: number, memory?: number,
 *   smp?: number, append?: string, onLine?: (line: string, ms: number) => void }} opts
 *   `files` are added to the image for this run only; `onLine` sees each serial line as it comes,
 *   with milliseconds since QEMU started.
 * @returns {Promise<{ output: string, exitCode: number, serial: string, bootMs: number,
 *   totalMs: number, lines: {ms: number, text: string}[], kver: string }>}
 *   `output` is what the payload wrote (stdout and stderr, interleaved as on the console);
 *   `bootMs` is the time from QEMU start to the payload starting.
 * @throws {VmError} on timeout, when QEMU fails, or when the guest stops without an exit marker.
 * @example const { output, exitCode } = await runInVm({ kernel: 'd13', script: 'lsmod' });
 * @example await runInVm({ kernel: 'd13', arch: 'arm64', script: 'uname -m' }) // aarch64
 */
export async function runInVm(opts) {
  const kernel = opts.kernel ?? 'd13';
  const k = await ensureKernel(kernel, opts.arch);
  const image = opts.image ?? await imageFor(k.id);
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-vm-'));
  try {
    const overlay = await overlayArchive({ files: opts.files, payload: opts.script, out: path.join(tmp, 'overlay.cpio') });
    // QEMU takes one -initrd file: the image followed by the overlay archive.
    const initrd = path.join(tmp, 'initrd');
    await concatArchives(initrd, [image, overlay]);
    return await boot({ k, initrd, timeoutMs, ...opts });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

function boot({ k, initrd, timeoutMs, memory, smp, append, onLine }) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const qemu = qemuBinary(k.arch);
    const child = spawn(qemu, qemuArgs({ vmlinuz: k.image, initrd, memory, smp, append, arch: k.arch }), { stdio: ['pipe', 'pipe', 'pipe'] });
    let serial = '';
    let stderr = '';
    let partial = '';
    const lines = [];
    let beginMs;
    let exitCode;
    let settled = false;
    const finish = (fn) => { if (!settled) { settled = true; clearTimeout(timer); clearTimeout(grace); fn(); } };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(() => reject(new VmError(`${k.label} guest did not finish within ${timeoutMs / 1000} s; serial tail:\n${serial.slice(-2000)}`, { serial, kind: 'timeout' })));
    }, timeoutMs);
    let grace;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      serial += chunk;
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const text = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(nl + 1);
        const ms = Date.now() - t0;
        lines.push({ ms, text });
        // The console may put terminal escapes in front of the marker.
        if (beginMs === undefined && text.endsWith(MARKERS.begin)) beginMs = ms;
        const m = text.match(/^@@KMOD-TS-EXIT=(\d+)@@$/);
        if (m && exitCode === undefined) {
          exitCode = Number(m[1]);
          // poweroff -f should end QEMU at once; don't wait forever if it does not.
          grace = setTimeout(() => child.kill('SIGKILL'), 15_000);
        }
        onLine?.(text, ms);
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', (e) => finish(() => reject(new VmError(`${qemu}: ${e.message}`, { serial, kind: 'qemu' }))));
    child.on('close', (code, signal) => finish(() => {
      if (exitCode === undefined) {
        reject(new VmError(`${k.label} guest stopped without an exit marker (QEMU ${signal ?? `exit ${code}`})` +
          `${stderr ? `; QEMU said: ${stderr.trim()}` : ''}; serial tail:\n${serial.slice(-2000)}`, { serial, kind: 'no-marker' }));
        return;
      }
      const b = serial.indexOf(`${MARKERS.begin}\n`);
      const e = serial.lastIndexOf(MARKERS.exit);
      const output = b >= 0 && e >= b ? serial.slice(b + MARKERS.begin.length + 1, e) : '';
      resolve({ output, exitCode, serial, bootMs: beginMs ?? NaN, totalMs: Date.now() - t0, lines, kver: k.kver });
    }));
  });
}

/** Boot the image with the console on this terminal: a shell, or the image's own payload. */
export async function interactive({ kernel = 'd13', arch, image, files, memory, smp, append } = {}) {
  const k = await ensureKernel(kernel, arch);
  image ??= await imageFor(k.id);
  let initrd = image;
  let tmp;
  if (files?.length) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-vm-'));
    const overlay = await overlayArchive({ files, out: path.join(tmp, 'overlay.cpio') });
    initrd = path.join(tmp, 'initrd');
    await concatArchives(initrd, [image, overlay]);
  }
  process.stderr.write(`vm: booting ${k.label} ${k.kver} (QEMU TCG, no KVM: allow ~10-30 s); quit QEMU with Ctrl-A x\n`);
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(qemuBinary(k.arch), qemuArgs({ vmlinuz: k.image, initrd, memory, smp, append, arch: k.arch }), { stdio: 'inherit' });
      child.on('error', reject);
      child.on('close', (code) => resolve(code ?? 1));
    });
  } finally {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function main(argv) {
  const opts = { kernel: 'd13', files: [] };
  let script;
  let build = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--kernel') opts.kernel = val();
    else if (a === '--arch') opts.arch = archOf(val()).name;
    else if (a === '--shell') script = undefined;
    else if (a === '--script') script = await fs.readFile(val(), 'utf8');
    else if (a === '--image') opts.image = path.resolve(val());
    else if (a === '--add') { const { src, dest } = parseAdd(val()); opts.files.push({ src, dest }); }
    else if (a === '--timeout') opts.timeoutMs = Number(val()) * 1000;
    else if (a === '--no-build') build = false;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/vm.mjs [--arch amd64|arm64] [--kernel d12|d13] [--shell | --script FILE] [--image FILE]\n' +
        '         [--add SRC:DEST]... [--timeout SECONDS] [--no-build]\n');
      return 0;
    } else throw new Error(`unknown option ${a}`);
  }
  if (!KERNELS[opts.kernel.replace(/-\w+$/, '')]) throw new Error(`--kernel wants ${Object.keys(KERNELS).join('|')}`);
  const { id, arch } = parseKernel(opts.kernel, opts.arch);
  Object.assign(opts, { kernel: id, arch });
  checkQemu(arch);
  opts.image ??= await imageFor(id, { build });
  if (script === undefined) return interactive(opts);
  const r = await runInVm({ ...opts, script });
  process.stdout.write(r.output);
  process.stderr.write(`vm: ${r.kver}: exit ${r.exitCode}; payload started ${(r.bootMs / 1000).toFixed(1)} s after QEMU start, total ${(r.totalMs / 1000).toFixed(1)} s\n`);
  return r.exitCode;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`vm: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
