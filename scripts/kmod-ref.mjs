#!/usr/bin/env node
// Debian 13's kmod (34.2), the reference for depmod and modprobe, runnable on any x86-64 Linux
// without installing it: `kmod` and the libraries it loads are fetched from the `trixie` suite
// with the private apt state of scripts/kernels.mjs, unpacked with `dpkg -x` into
// $KMOD_TS_CACHE/kmod-ref/root, and run through that root's own dynamic loader
// (`ld-linux-x86-64.so.2 --library-path ROOT/usr/lib/x86_64-linux-gnu --argv0 NAME ROOT/usr/bin/kmod`),
// so the host's older glibc and libkmod are never involved. kmod picks the applet from argv[0].
//
// CLI:  node scripts/kmod-ref.mjs                      fetch (once) and print the root
//       node scripts/kmod-ref.mjs depmod|modprobe|modinfo ARGS...   run it (exit status passed on)

import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, privateApt, downloadAndUnpack } from './kernels.mjs';

const execFileP = promisify(execFile);

/** The packages whose files kmod 34.2 needs at run time (kmod dlopen()s liblzma and libzstd). */
const PACKAGES = ['kmod', 'libkmod2', 'libc6', 'libgcc-s1', 'libssl3t64', 'liblzma5', 'libzstd1', 'zlib1g'];
const STAMP_VERSION = 1;

/** The applets kmod answers to by argv[0]. */
export const KMOD_TOOLS = ['depmod', 'modprobe', 'modinfo', 'insmod', 'rmmod', 'lsmod', 'kmod'];

/**
 * Fetch (once) Debian 13's kmod and describe how to run it.
 * @returns {Promise<{ root: string, version: string, loader: string, libraryPath: string, kmod: string }>}
 * @throws {Error} when apt cannot resolve or download the packages.
 * @example const ref = await ensureKmodRef(); // ref.version === '34.2-2'
 */
export async function ensureKmodRef() {
  const dir = path.join(cacheDir(), 'kmod-ref');
  const root = path.join(dir, 'root');
  const stamp = path.join(dir, 'stamp.json');
  let info;
  try {
    info = JSON.parse(readFileSync(stamp, 'utf8'));
    if (info.stampVersion !== STAMP_VERSION || !existsSync(path.join(root, 'usr', 'bin', 'kmod'))) info = undefined;
  } catch { /* not fetched yet */ }
  if (!info) {
    const apt = await privateApt('trixie');
    await apt.update();
    const tmp = path.join(dir, `root.tmp-${process.pid}`);
    await fs.rm(tmp, { recursive: true, force: true });
    const debs = await downloadAndUnpack(apt, PACKAGES, path.join(dir, 'debs'), tmp);
    await fs.rm(root, { recursive: true, force: true });
    await fs.rename(tmp, root);
    const version = path.basename(debs[0]).split('_')[1].replace(/%3a/g, ':');
    info = { stampVersion: STAMP_VERSION, version, packages: debs.map((d) => path.basename(d)) };
    await fs.writeFile(stamp, JSON.stringify(info, null, 2) + '\n');
  }
  const libraryPath = path.join(root, 'usr', 'lib', 'x86_64-linux-gnu');
  const loader = [path.join(root, 'usr', 'lib64', 'ld-linux-x86-64.so.2'), path.join(libraryPath, 'ld-linux-x86-64.so.2')]
    .find((p) => existsSync(p));
  if (!loader) throw new Error(`no ld-linux-x86-64.so.2 in ${root}`);
  return { root, version: info.version, loader, libraryPath, kmod: path.join(root, 'usr', 'bin', 'kmod') };
}

/**
 * The argv (program first) that runs kmod 34.2 as TOOL.
 * @param {{ loader: string, libraryPath: string, kmod: string }} ref from ensureKmodRef()
 * @param {string} tool 'depmod', 'modprobe', 'modinfo', ...
 * @param {string[]} args
 * @returns {string[]}
 * @example spawnSync(...((a) => [a[0], a.slice(1)])(kmodRefArgv(ref, 'depmod', ['-b', root, kver])))
 */
export function kmodRefArgv(ref, tool, args = []) {
  return [ref.loader, '--library-path', ref.libraryPath, '--argv0', tool, ref.kmod, ...args];
}

/**
 * Run kmod 34.2 as TOOL and collect its output.
 * @param {string} tool 'depmod', 'modprobe', 'modinfo', ...
 * @param {string[]} args
 * @param {{ input?: string|Buffer, env?: object, cwd?: string }} [opts]
 * @returns {Promise<{ status: number, stdout: Buffer, stderr: Buffer }>}
 * @example const r = await runKmodRef('depmod', ['-n', '-b', root, kver]);
 */
export async function runKmodRef(tool, args = [], opts = {}) {
  const ref = await ensureKmodRef();
  const [prog, ...rest] = kmodRefArgv(ref, tool, args);
  return new Promise((resolve, reject) => {
    const child = spawn(prog, rest, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out = []; const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({
      status: code ?? 128 + (signal ? 9 : 0), stdout: Buffer.concat(out), stderr: Buffer.concat(err),
    }));
    if (child.stdin) {
      // a tool that exits without reading its input must not fail the caller with EPIPE
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** Synchronous form of runKmodRef for a reference already fetched (ensureKmodRef() resolved). */
export function runKmodRefSync(ref, tool, args = [], opts = {}) {
  const [prog, ...rest] = kmodRefArgv(ref, tool, args);
  const r = spawnSync(prog, rest, { cwd: opts.cwd, env: opts.env ?? process.env, input: opts.input ?? '', maxBuffer: 1 << 30 });
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

async function main(argv) {
  const ref = await ensureKmodRef();
  if (argv.length === 0) {
    const { stdout } = await execFileP(...((a) => [a[0], a.slice(1)])(kmodRefArgv(ref, 'kmod', ['--version'])));
    process.stdout.write(`kmod ${ref.version} in ${ref.root}\n${stdout}`);
    return 0;
  }
  if (argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write('usage: node scripts/kmod-ref.mjs [depmod|modprobe|modinfo|... ARGS...]\n');
    return 0;
  }
  const [prog, ...rest] = kmodRefArgv(ref, argv[0], argv.slice(1));
  const r = spawnSync(prog, rest, { stdio: 'inherit' });
  return r.status ?? 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`kmod-ref: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
