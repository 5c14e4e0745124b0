#!/usr/bin/env node
// Build test/vm/param_printer.c with kbuild against exactly the headers of a Debian kernel that
// scripts/kernels.mjs fetched (linux-headers-KVER + linux-headers-ABI-common + linux-kbuild,
// unpacked into one tree, whose per-flavour Makefile kernels.mjs already points at its sibling).
//
// Debian 12: the host (bookworm) gcc-12 and the bookworm kbuild tools build it directly.
// Debian 13: the headers record gcc-14 (`CC = x86_64-linux-gnu-gcc-14`, flags such as
// -fmin-function-alignment that gcc-12 rejects) and linux-kbuild's objtool/modpost/fixdep are
// linked against trixie's glibc 2.41 (`GLIBC_2.38' not found` on bookworm). So the module is built
// inside a chroot of trixie's own toolchain (gcc-14, binutils, make, libc6-dev and what they need),
// fetched with the same private apt state as the kernels, unpacked with `dpkg -x` and cached.
// Building in that chroot needs root (chroot(2)); the error says so otherwise.
//
// Output: <cache>/param_printer/KVER-SRCHASH/param_printer.ko, reused while the source is unchanged.
//
// arm64 kernels (d12-arm64, d13-arm64, or --arch arm64): kbuild cross-compiles with ARCH=arm64
// CROSS_COMPILE=aarch64-linux-gnu-, with the kernels' own linux-kbuild programs built for this
// machine (scripts/kernels.mjs): Debian 12's with the host's aarch64-linux-gnu-gcc-12
// (gcc-aarch64-linux-gnu), Debian 13's in the trixie chroot with trixie's gcc-14-aarch64-linux-gnu.
//
// CLI: node scripts/build-param-printer.mjs [d12|d13|all] [--arch amd64|arm64]

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKernel, cacheDir, projectDir, KERNELS, privateApt, downloadAndUnpack } from './kernels.mjs';
import { archOf } from './arch.mjs';

const run = promisify(execFile);

/** The module's sources, relative to the project. */
export const SOURCES = ['test/vm/param_printer.c', 'test/vm/Kbuild'];

function log(msg) {
  if (!process.env.KMOD_TS_QUIET) process.stderr.write(`build-param-printer: ${msg}\n`);
}

function sourceHash() {
  const h = crypto.createHash('sha256');
  for (const s of SOURCES) h.update(readFileSync(path.join(projectDir, s)));
  return h.digest('hex').slice(0, 12);
}

/** The compiler the headers were configured for, from their .kernelvariables (Debian) or .config. */
function configuredCompiler(k) {
  const vars = path.join(k.headersDir, '.kernelvariables');
  const text = existsSync(vars) ? readFileSync(vars, 'utf8') : '';
  const m = text.match(/^CC\s*=.*?(gcc-\d+)\s*$/m);
  const cfg = readFileSync(path.join(k.headersDir, '.config'), 'utf8').match(/^CONFIG_CC_VERSION_TEXT="([^"]*)"/m);
  return { gcc: m?.[1], versionText: cfg?.[1] };
}

/** The major version of the host's gcc for the kernel's architecture (a cross gcc for arm64). */
async function hostGccMajor(k) {
  const gcc = k.arch && k.arch !== 'amd64' ? `${archOf(k.arch).triplet}-gcc` : 'gcc';
  try {
    return Number((await run(gcc, ['-dumpversion'])).stdout.trim().split('.')[0]);
  } catch {
    return undefined;
  }
}

async function kbuild(cwdArgs, env) {
  try {
    const r = await run('make', cwdArgs, { env, maxBuffer: 64 << 20 });
    return r.stdout + r.stderr;
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`kbuild failed: make ${cwdArgs.join(' ')}\n${out}`);
  }
}

/**
 * kbuild's cross-compilation variables for another architecture's kernel. Debian 13's headers
 * set them themselves (`override`); Debian 12's derive CROSS_COMPILE from dpkg-architecture
 * variables that are not set here, so they are given on the command line.
 */
function crossArgs(k) {
  if (!k.arch || k.arch === 'amd64') return [];
  const a = archOf(k.arch);
  return [`ARCH=${a.kbuildArch}`, `CROSS_COMPILE=${a.triplet}-`];
}

/** Build with the host's toolchain (the kernel's own compiler major version must be the host's). */
async function buildOnHost(k, workDir) {
  const { gcc } = configuredCompiler(k);
  const env = { ...process.env };
  const cross = crossArgs(k);
  await kbuild(['-C', k.headersDir, `M=${workDir}`, ...cross, 'modules'], env);
  return `host ${cross.length ? `${archOf(k.arch).triplet}-` : ''}${gcc ?? 'gcc'}, make -C ${path.relative(cacheDir(), k.headersDir)} M=... ${cross.join(' ')}${cross.length ? ' ' : ''}modules`;
}

// Trixie's toolchain as a chroot. Packages beyond gcc/make: the shell and utilities kbuild's
// recipes call (sh, sed, awk, grep, find/xargs, cmp, cat/mkdir/...), libelf for objtool.
const TOOLCHAIN_VERSION = 4;
const TOOLCHAIN_PKGS = ['gcc-14', 'make', 'libc6-dev', 'binutils', 'dash', 'bash', 'coreutils', 'sed', 'grep', 'mawk',
  'findutils', 'diffutils', 'libelf1t64', 'libssl3t64', 'kmod',
  // pahole: Debian 13's headers ship a BTF vmlinux, so kbuild generates module BTF.
  'dwarves'];

/** Every package (with dependencies) an empty system needs to install `pkgs`, from apt's plan. */
async function closure(apt, pkgs) {
  const empty = path.join(os.tmpdir(), `kmod-ts-empty-status-${process.pid}`);
  await fs.writeFile(empty, '');
  try {
    const { stdout } = await run('apt-get', [...apt.opts, '-o', `Dir::State::status=${empty}`, '-s', '-qq',
      '--no-install-recommends', 'install', ...pkgs], { maxBuffer: 64 << 20 });
    return [...stdout.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]);
  } finally {
    await fs.rm(empty, { force: true });
  }
}

/** Move a non-usr-merged /bin, /sbin, /lib, /lib64 into /usr and leave links (trixie is merged). */
async function usrMerge(root) {
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) {
    const top = path.join(root, d);
    const usr = path.join(root, 'usr', d);
    await fs.mkdir(usr, { recursive: true });
    const st = await fs.lstat(top).catch(() => undefined);
    if (st?.isSymbolicLink()) continue;
    if (st?.isDirectory()) {
      await run('cp', ['-a', `${top}/.`, usr]);
      await fs.rm(top, { recursive: true, force: true });
    }
    await fs.symlink(`usr/${d}`, top);
  }
}

/**
 * The cached trixie toolchain root, with the d13 headers unpacked at their real /usr/src paths.
 * The toolchain is fetched once; a new kernel ABI only adds its headers packages.
 */
async function trixieToolchain(k) {
  const dir = path.join(cacheDir(), 'toolchain', 'trixie');
  const root = path.join(dir, 'root');
  const stamp = path.join(dir, `stamp-${TOOLCHAIN_VERSION}`);
  if (!existsSync(stamp)) {
    log('fetching the trixie gcc-14 toolchain for the Debian 13 headers (cached afterwards)');
    const apt = await privateApt('trixie');
    await apt.ensureLists();
    let pkgs;
    try {
      pkgs = await closure(apt, TOOLCHAIN_PKGS);
    } catch {
      await apt.update();
      pkgs = await closure(apt, TOOLCHAIN_PKGS);
    }
    const tmp = `${root}.tmp-${process.pid}`;
    await fs.rm(tmp, { recursive: true, force: true });
    await downloadAndUnpack(apt, pkgs, path.join(dir, 'debs'), tmp);
    await usrMerge(tmp);
    // dpkg -x runs no maintainer scripts, so no update-alternatives: awk is mawk's alternative.
    await fs.symlink('mawk', path.join(tmp, 'usr', 'bin', 'awk')).catch(() => {});
    // gcc-14 is installed as x86_64-linux-gnu-gcc-14, the name Debian's headers ask for.
    for (const d of ['dev', 'tmp', 'proc', 'build']) await fs.mkdir(path.join(tmp, d), { recursive: true });
    await fs.rm(root, { recursive: true, force: true });
    await fs.rename(tmp, root);
    await fs.writeFile(stamp, `${pkgs.join('\n')}\n`);
  }
  if (k.arch && k.arch !== 'amd64') await crossCompiler(dir, root, archOf(k.arch), readFileSync(stamp, 'utf8').split('\n'));
  // The headers packages kernels.mjs downloaded, at their own absolute paths this time (an arm64
  // kernel's linux-kbuild, this machine's architecture, lies in debs-host).
  const headersStamp = path.join(dir, `headers-${k.kver}`);
  if (!existsSync(headersStamp)) {
    const debDirs = ['debs', 'debs-host'].map((d) => path.join(path.dirname(k.root), d)).filter((d) => existsSync(d));
    for (const pkg of k.packages.filter((p) => /^linux-(headers|kbuild)-/.test(p))) {
      const deb = debDirs.flatMap((d) => readdirSync(d).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb')).map((f) => path.join(d, f))).sort().pop();
      if (!deb) throw new Error(`${pkg}: .deb not in ${debDirs.join(' or ')}`);
      await run('dpkg', ['-x', deb, root]);
    }
    await fs.writeFile(headersStamp, '');
  }
  return root;
}

/**
 * Trixie's cross gcc-14 for another architecture (gcc-14-aarch64-linux-gnu: the compiler Debian
 * 13's arm64 headers ask for) added to the toolchain root, once: the packages its closure adds
 * to what the root already holds.
 */
async function crossCompiler(dir, root, a, have) {
  const stamp = path.join(dir, `stamp-cross-${a.name}-1`);
  if (existsSync(stamp)) return;
  const want = [`gcc-14-${a.triplet.replace(/_/g, '-')}`];
  log(`adding ${want.join(' ')} to the trixie toolchain (cached afterwards)`);
  const apt = await privateApt('trixie');
  await apt.ensureLists();
  const pkgs = (await closure(apt, [...TOOLCHAIN_PKGS, ...want])).filter((p) => !have.includes(p));
  const tmp = path.join(dir, `cross.tmp-${process.pid}`);
  await fs.rm(tmp, { recursive: true, force: true });
  await downloadAndUnpack(apt, pkgs, path.join(dir, 'debs'), tmp);
  await usrMerge(tmp);
  await run('cp', ['-a', '--remove-destination', `${tmp}/usr/.`, path.join(root, 'usr')]);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.writeFile(stamp, `${pkgs.join('\n')}\n`);
}

/** Build inside the trixie chroot; `workDir` is copied in and the .ko copied out. */
async function buildInChroot(k, workDir) {
  if (process.getuid?.() !== 0) {
    throw new Error('building for Debian 13 needs its gcc-14/glibc 2.41 toolchain in a chroot, and chroot needs root');
  }
  const root = await trixieToolchain(k);
  const inside = path.join(root, 'build', `pp-${process.pid}`);
  await fs.rm(inside, { recursive: true, force: true });
  await fs.cp(workDir, inside, { recursive: true });
  // /dev/null is all kbuild needs from /dev.
  const devNull = path.join(root, 'dev', 'null');
  if (!existsSync(devNull)) await run('mknod', ['-m', '666', devNull, 'c', '1', '3']);
  const headers = `/usr/src/linux-headers-${k.kver}`;
  try {
    await run('chroot', [root, '/usr/bin/make', '-C', headers, `M=/build/${path.basename(inside)}`, ...crossArgs(k), 'modules'],
      { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/', LC_ALL: 'C' }, maxBuffer: 64 << 20 });
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`kbuild in the trixie chroot failed:\n${out}`);
  }
  await fs.copyFile(path.join(inside, 'param_printer.ko'), path.join(workDir, 'param_printer.ko'));
  await fs.rm(inside, { recursive: true, force: true });
  return `trixie chroot (${k.arch && k.arch !== 'amd64' ? `${archOf(k.arch).triplet}-` : ''}gcc-14), make -C ${headers} M=... ${crossArgs(k).join(' ')}${crossArgs(k).length ? ' ' : ''}modules`;
}

/**
 * Build (once per kernel release and source version) param_printer.ko for a Debian kernel.
 * @param {'d12'|'d13'|object} kernel a name for ensureKernel, or what it returned
 * @returns {Promise<{ ko: string, kver: string, how: string, cached: boolean }>}
 * @throws {Error} with kbuild's last lines when the build fails, or why it cannot be attempted.
 * @example const { ko } = await buildParamPrinter('d12');
 */
export async function buildParamPrinter(kernel) {
  const k = typeof kernel === 'string' ? await ensureKernel(kernel) : kernel;
  const outDir = path.join(cacheDir(), 'param_printer', `${k.kver}-${sourceHash()}`);
  const ko = path.join(outDir, 'param_printer.ko');
  const howFile = path.join(outDir, 'how');
  if (existsSync(ko)) return { ko, kver: k.kver, how: readFileSync(howFile, 'utf8').trim(), cached: true };

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-pp-'));
  try {
    for (const s of SOURCES) await fs.copyFile(path.join(projectDir, s), path.join(work, path.basename(s)));
    const { gcc } = configuredCompiler(k);
    const want = Number(gcc?.match(/gcc-(\d+)/)?.[1]);
    const have = await hostGccMajor(k);
    log(`building for ${k.kver} (headers want ${gcc ?? 'gcc'}, host has gcc ${have ?? 'none'})`);
    const how = !want || want === have ? await buildOnHost(k, work) : await buildInChroot(k, work);
    await fs.mkdir(outDir, { recursive: true });
    await fs.copyFile(path.join(work, 'param_printer.ko'), `${ko}.tmp`);
    await fs.writeFile(howFile, `${how}\n`);
    await fs.rename(`${ko}.tmp`, ko);
    return { ko, kver: k.kver, how, cached: false };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function main(argv) {
  const ai = argv.indexOf('--arch');
  const arch = ai >= 0 ? archOf(argv[ai + 1]).name : 'amd64';
  const which = argv.filter((a, i) => !a.startsWith('-') && !(ai >= 0 && i === ai + 1));
  const names = (which.length === 0 || which.includes('all') ? Object.keys(KERNELS) : which)
    .map((n) => (arch === 'amd64' || n.includes('-') ? n : `${n}-${arch}`));
  let rc = 0;
  for (const n of names) {
    try {
      const r = await buildParamPrinter(n);
      process.stdout.write(`${n}: ${r.ko} (${r.how}${r.cached ? ', cached' : ''})\n`);
    } catch (e) {
      process.stderr.write(`build-param-printer: ${n}: ERROR: ${e.message}\n`);
      rc = 1;
    }
  }
  return rc;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c));
}
