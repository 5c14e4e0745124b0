#!/usr/bin/env node
// Fetch and cache Debian's cloud kernels (12 "bookworm", 13 "trixie") with their modules and the
// linux-headers/linux-kbuild packages an out-of-tree module build needs.
//
// Nothing here names a mirror: the archive URIs are read at run time from the machine's apt
// sources (/etc/apt/sources.list.d/debian.sources, or /etc/apt/sources.list), and each kernel gets
// its own private apt state (sources list, lists, cache) so the machine's own apt state is never
// touched. The exact package is resolved at run time through `linux-image-cloud-ARCH`, because
// Debian bumps the kernel ABI number in every point release.
//
// Architectures (scripts/arch.mjs): amd64, and arm64 through an apt state set to that
// architecture. An arm64 kernel's headers come with the amd64 linux-kbuild package of the same
// version (fixdep, modpost and objtool must run here; kbuild cross-compiles with ARCH=arm64), and
// its vmlinuz is checked to be what QEMU's -kernel boots: Debian 12's and 13's are plain arm64
// `Image`s (EFI stub header, no compression); a gzip'd one or an EFI zboot image (which QEMU
// 7.2 cannot boot) would be unpacked into `Image-KVER` beside it. `ensureUserland('arm64')` fetches the arm64 busybox,
// Debian's kmod and the C libraries (libc6, libstdc++6) an arm64 image needs.
//
// Cache: $KMOD_TS_CACHE, else <project>/.cache. A stamp file makes a second run instant.
//
// CLI:  node scripts/kernels.mjs [d12|d13|all] [--arch amd64|arm64] [--json]

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { archOf, HOST_ARCH } from './arch.mjs';

const run = promisify(execFile);

/** The project's root directory (this file lives in <project>/scripts). */
export const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every module file (.ko, .ko.xz, .ko.zst, .ko.gz) under MODULESDIR/kernel, sorted. */
export function moduleFiles(modulesDir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.push(p);
    }
  };
  walk(path.join(modulesDir, 'kernel'));
  return out.sort();
}

/** The download/unpack cache: $KMOD_TS_CACHE, else <project>/.cache. */
export function cacheDir() {
  return process.env.KMOD_TS_CACHE ? path.resolve(process.env.KMOD_TS_CACHE) : path.join(projectDir, '.cache');
}

/** Kernels we know, by short name. */
export const KERNELS = {
  d12: { codename: 'bookworm', label: 'Debian 12' },
  d13: { codename: 'trixie', label: 'Debian 13' },
};

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const STAMP_VERSION = 3;
// arm64 kernels: stamp version 4 checks (and if need be unpacks) the `Image`.
const STAMP_VERSION_CROSS = 4;

function log(msg) {
  if (!process.env.KMOD_TS_QUIET) process.stderr.write(`kernels: ${msg}\n`);
}

/**
 * The archive URIs this machine's apt uses, split into the main archive and the security archive.
 * Reads deb822 (`debian.sources`) first, then one-line `sources.list`.
 * @returns {{ main: string, security: string | undefined }}
 */
export function archiveUris() {
  const entries = []; // { uri, suites[] }
  const deb822 = '/etc/apt/sources.list.d/debian.sources';
  if (existsSync(deb822)) {
    for (const stanza of readFileSync(deb822, 'utf8').split(/\n\s*\n/)) {
      const field = (name) => {
        const m = stanza.match(new RegExp(`^${name}:\\s*(.*)$`, 'mi'));
        return m ? m[1].trim().split(/\s+/) : [];
      };
      if (!field('Types').includes('deb')) continue;
      for (const uri of field('URIs')) entries.push({ uri, suites: field('Suites') });
    }
  }
  if (entries.length === 0 && existsSync('/etc/apt/sources.list')) {
    for (const line of readFileSync('/etc/apt/sources.list', 'utf8').split('\n')) {
      const m = line.match(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/);
      if (m) entries.push({ uri: m[1], suites: [m[2]] });
    }
  }
  const isSecurity = (e) => e.suites.some((s) => /-security$/.test(s)) || /security/.test(e.uri);
  const main = entries.find((e) => !isSecurity(e));
  const security = entries.find(isSecurity);
  if (!main) throw new Error('no Debian archive URI found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list');
  return { main: main.uri.replace(/\/+$/, ''), security: security?.uri.replace(/\/+$/, '') };
}

/**
 * Private apt state for one Debian suite (sources list, lists, cache under <cache>/apt/CODENAME,
 * or <cache>/apt/CODENAME-ARCH for another architecture than amd64), so the machine's own apt state
 * is never touched and no root is needed.
 * @param {string} codename e.g. 'bookworm', 'trixie'
 * @param {string} [arch] Debian architecture of the packages (default amd64)
 * @returns {Promise<{ opts: string[], keyrings: string[], get: Function, cache: Function,
 *   update: () => Promise<void> }>}
 */
export async function privateApt(codename, arch = 'amd64') {
  const { main, security } = archiveUris();
  const aptDir = path.join(cacheDir(), 'apt', arch === 'amd64' ? codename : `${codename}-${arch}`);
  await fs.mkdir(path.join(aptDir, 'lists', 'partial'), { recursive: true });
  await fs.mkdir(path.join(aptDir, 'cache', 'archives', 'partial'), { recursive: true });
  await fs.mkdir(path.join(aptDir, 'state'), { recursive: true });

  // debian-archive-keyring (2023.3+deb12u1 on bookworm) already carries the trixie keys; the
  // per-release keyrings are listed too for machines with an older keyring package.
  const keyrings = [KEYRING, `/usr/share/keyrings/debian-archive-${codename}-automatic.gpg`,
    `/usr/share/keyrings/debian-archive-${codename}-security-automatic.gpg`,
    `/usr/share/keyrings/debian-archive-${codename}-stable.gpg`].filter((k) => existsSync(k));
  const signedBy = keyrings.join(' ');
  let sources = `Types: deb\nURIs: ${main}\nSuites: ${codename} ${codename}-updates\nComponents: main\nSigned-By: ${signedBy}\n`;
  if (security) sources += `\nTypes: deb\nURIs: ${security}\nSuites: ${codename}-security\nComponents: main\nSigned-By: ${signedBy}\n`;
  const sourcesFile = path.join(aptDir, `${codename}.sources`);
  await fs.writeFile(sourcesFile, sources);
  // Another architecture's packages are never installed here: plan against an empty system.
  const status = arch === 'amd64' ? '/var/lib/dpkg/status' : path.join(aptDir, 'state', 'empty-status');
  if (arch !== 'amd64') await fs.writeFile(status, '');

  const opts = [
    '-o', `Dir::Etc::SourceList=${sourcesFile}`,
    '-o', 'Dir::Etc::SourceParts=-',
    '-o', `Dir::State=${path.join(aptDir, 'state')}`,
    '-o', `Dir::State::status=${status}`,
    '-o', `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${path.join(aptDir, 'cache')}`,
    '-o', `APT::Architecture=${arch}`,
    '-o', 'Debug::NoLocking=1',
  ];
  if (arch !== 'amd64') opts.push('-o', `APT::Architectures=${arch}`);
  // As root, apt drops to the _apt user for downloads, which cannot write into our cache.
  if (process.getuid?.() === 0) opts.push('-o', 'APT::Sandbox::User=root');
  const apt = {
    opts,
    keyrings,
    async get(...args) { return run('apt-get', [...opts, ...args], { maxBuffer: 64 << 20 }); },
    async cache(...args) { return (await run('apt-cache', [...opts, ...args], { maxBuffer: 64 << 20 })).stdout; },
    /** Fetch the lists unless a previous run did. */
    async ensureLists() {
      const have = (await fs.readdir(path.join(aptDir, 'lists'))).some((f) => f.includes('_Packages'));
      if (!have) await apt.update();
    },
    async update() {
      log(`apt-get update (${codename} ${arch}, private lists in ${aptDir})`);
      try {
        await apt.get('update', '-qq');
      } catch (e) {
        throw new Error(`apt-get update for ${codename} failed (keyrings: ${keyrings.join(', ')}):\n${e.stderr || e.message}`);
      }
    },
  };
  return apt;
}

/**
 * `apt-get download` packages of a suite into `destDir` and unpack them with `dpkg -x` into
 * `rootDir`. Refreshes the private lists first (the archive drops superseded versions).
 * @returns {Promise<string[]>} the .deb files
 */
export async function downloadAndUnpack(apt, pkgs, destDir, rootDir) {
  await fs.mkdir(destDir, { recursive: true });
  log(`apt-get download ${pkgs.join(' ')}`);
  await run('apt-get', [...apt.opts, 'download', '-qq', ...pkgs], { cwd: destDir, maxBuffer: 64 << 20 });
  const debs = [];
  await fs.mkdir(rootDir, { recursive: true });
  const files = await fs.readdir(destDir);
  for (const pkg of pkgs) {
    const deb = files.filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb')).sort().pop();
    if (!deb) throw new Error(`${pkg} was not downloaded`);
    log(`dpkg -x ${deb}`);
    await run('dpkg', ['-x', path.join(destDir, deb), rootDir]);
    debs.push(path.join(destDir, deb));
  }
  return debs;
}

/** `apt-cache depends PKG` → names of its Depends (first alternative). */
async function depends(apt, pkg) {
  const out = await apt.cache('depends', pkg);
  return [...out.matchAll(/^\s+\|?Depends: (\S+)/gm)].map((m) => m[1]).filter((n) => !n.startsWith('<'));
}

/** Read a kernel config and say what it does with compressed modules. */
export function moduleCompressionOf(configText) {
  const has = (k) => new RegExp(`^${k}=y$`, 'm').test(configText);
  const format = has('CONFIG_MODULE_COMPRESS_XZ') ? 'xz'
    : has('CONFIG_MODULE_COMPRESS_ZSTD') ? 'zstd'
      : has('CONFIG_MODULE_COMPRESS_GZIP') ? 'gzip' : 'none';
  return { compression: format, decompressInKernel: has('CONFIG_MODULE_DECOMPRESS') };
}

/**
 * Make absolute symlinks under `dir` point inside `root`, so a headers tree unpacked with
 * `dpkg -x` works where it lies (Debian links e.g. scripts → /usr/lib/linux-kbuild-6.1/scripts).
 */
async function relativizeSymlinks(root, dir) {
  let entries;
  try { entries = await fs.readdir(dir, { withFileTypes: true }); } catch { return; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) {
      const target = await fs.readlink(p);
      if (target.startsWith('/')) {
        await fs.unlink(p);
        await fs.symlink(path.relative(path.dirname(p), path.join(root, target)), p);
      }
    } else if (e.isDirectory()) {
      await relativizeSymlinks(root, p);
    }
  }
}

/**
 * Debian's per-flavour headers Makefile is one line, `include /usr/src/linux-headers-ABI-common/Makefile`;
 * point it at its sibling directory wherever the tree lies, so `make -C headersDir M=...` works.
 */
async function relocateHeadersMakefile(file) {
  let text;
  try { text = await fs.readFile(file, 'utf8'); } catch { return; }
  await fs.writeFile(file, text.replace(/^include \/usr\/src\/([^/\s]+)\//m,
    'include $(dir $(lastword $(MAKEFILE_LIST)))../$1/'));
}

/**
 * A kernel by short name: `d13` (this machine's architecture, amd64), or `d13-arm64` / `d13` with
 * `arch`, for another architecture.
 * @param {string} id
 * @param {string} [arch]
 * @returns {{ name: string, arch: string, id: string }} `id` is `d13` for amd64, `d13-arm64` otherwise
 * @throws {Error} for a kernel or architecture we do not know
 * @example parseKernel('d12-arm64') // { name: 'd12', arch: 'arm64', id: 'd12-arm64' }
 */
export function parseKernel(id, arch) {
  const m = String(id).match(/^(\w+?)(?:-(\w+))?$/);
  const name = m?.[1];
  if (!name || !KERNELS[name]) throw new Error(`unknown kernel '${id}' (want ${Object.keys(KERNELS).join(', ')}, optionally with -arm64)`);
  if (m[2] && arch && archOf(m[2]).name !== archOf(arch).name) throw new Error(`kernel '${id}' is not for --arch ${arch}`);
  const a = archOf(m[2] ?? arch ?? 'amd64').name;
  return { name, arch: a, id: a === 'amd64' ? name : `${name}-${a}` };
}

/**
 * An arm64 `vmlinuz` as QEMU's `-kernel` wants it: a plain `Image` (Debian 12's and 13's cloud
 * kernels already are one). A gzip'd Image or an EFI zboot image (a PE/COFF stub whose header
 * says where the compressed Image lies, `zimg` at offset 4; QEMU boots those only from 8.1 on)
 * is unpacked.
 * @param {Buffer} vmlinuz
 * @returns {Buffer} the uncompressed Image (`ARM\x64` at offset 56): `vmlinuz` itself if it is one
 * @throws {Error} for a compression we do not unpack, or a result that is not an arm64 Image
 */
export function arm64Image(vmlinuz) {
  let img = vmlinuz;
  if (vmlinuz.subarray(0, 2).toString('latin1') === 'MZ' && vmlinuz.subarray(4, 8).toString('latin1') === 'zimg') {
    const off = vmlinuz.readUInt32LE(8);
    const size = vmlinuz.readUInt32LE(12);
    const type = vmlinuz.subarray(24, 32).toString('latin1').replace(/\0.*$/s, '');
    const payload = vmlinuz.subarray(off, off + size);
    if (type === 'gzip') img = zlib.gunzipSync(payload);
    else if (type === 'zstd' || type === 'zstd22') img = zlib.zstdDecompressSync?.(payload) ?? execZstd(payload);
    else throw new Error(`EFI zboot image compressed with '${type}': not supported here`);
  } else if (vmlinuz[0] === 0x1f && vmlinuz[1] === 0x8b) {
    img = zlib.gunzipSync(vmlinuz);
  }
  if (img.subarray(56, 60).toString('latin1') !== 'ARM\x64') throw new Error('not an arm64 kernel Image (no ARM\\x64 magic at offset 56)');
  return img;
}

function execZstd(data) {
  return execFileSync('zstd', ['-dc'], { input: data, maxBuffer: 512 << 20 });
}

async function fetchAndUnpack(name, dir, arch) {
  const { codename, label } = KERNELS[name];
  const flavour = `cloud-${arch}`;
  const apt = await privateApt(codename, arch);
  await apt.update();

  const metaName = `linux-image-${flavour}`;
  const meta = (await depends(apt, metaName)).find((n) => new RegExp(`^linux-image-.*-${flavour}$`).test(n));
  if (!meta) throw new Error(`${label}: cannot resolve ${metaName}`);
  // linux-image-6.1.0-56-cloud-amd64 → ABI 6.1.0-56; on trixie linux-image-6.12.48+deb13-cloud-amd64.
  const abi = meta.replace(/^linux-image-/, '').replace(new RegExp(`-${flavour}(-unsigned)?$`), '');
  const headers = `linux-headers-${abi}-${flavour}`;
  // The headers also depend on linux-compiler-gcc-*: that is the compiler, not files we unpack.
  const headerDeps = (await depends(apt, headers)).filter((n) => /^linux-(headers|kbuild)-/.test(n));
  const pkgs = [meta, headers, ...headerDeps];

  const tmpRoot = path.join(dir, `root.tmp-${process.pid}`);
  await fs.rm(tmpRoot, { recursive: true, force: true });
  if (arch === 'amd64') {
    await downloadAndUnpack(apt, pkgs, path.join(dir, 'debs'), tmpRoot);
  } else {
    // linux-kbuild holds programs kbuild runs (fixdep, modpost, objtool): this machine's own
    // architecture's build of the same version, from the amd64 apt state.
    const kbuild = headerDeps.filter((n) => n.startsWith('linux-kbuild-'));
    await downloadAndUnpack(apt, pkgs.filter((p) => !kbuild.includes(p)), path.join(dir, 'debs'), tmpRoot);
    if (kbuild.length) {
      const host = await privateApt(codename);
      await host.ensureLists();
      try {
        await downloadAndUnpack(host, kbuild, path.join(dir, 'debs-host'), tmpRoot);
      } catch {
        await host.update();
        await downloadAndUnpack(host, kbuild, path.join(dir, 'debs-host'), tmpRoot);
      }
    }
  }
  // Debian 13 is usr-merged and ships modules under usr/lib/modules; make /lib → usr/lib so the
  // same /lib/modules/KVER path works for depmod -b here and inside the rootfs.
  if (!existsSync(path.join(tmpRoot, 'lib'))) await fs.symlink('usr/lib', path.join(tmpRoot, 'lib'));
  const kvers = await fs.readdir(path.join(tmpRoot, 'lib', 'modules'));
  const kver = kvers.find((k) => k.startsWith(abi) && k.endsWith(flavour));
  if (!kver) throw new Error(`${label}: no lib/modules/${abi}*-${flavour} in the package (found ${kvers.join(', ')})`);
  await relativizeSymlinks(tmpRoot, path.join(tmpRoot, 'usr', 'src'));
  await relocateHeadersMakefile(path.join(tmpRoot, 'usr', 'src', `linux-headers-${kver}`, 'Makefile'));
  // modules/KVER/build points at /usr/src/linux-headers-KVER: make it resolve inside the cache too.
  await relativizeSymlinks(tmpRoot, path.join(tmpRoot, 'lib', 'modules', kver));
  if (arch === 'arm64') {
    const vmlinuz = await fs.readFile(path.join(tmpRoot, 'boot', `vmlinuz-${kver}`));
    const img = arm64Image(vmlinuz);
    if (img !== vmlinuz) await fs.writeFile(path.join(tmpRoot, 'boot', `Image-${kver}`), img);
  }
  log(`${label} ${arch}: depmod -b ROOT ${kver}`);
  await run('depmod', ['-b', tmpRoot, kver]);

  const root = path.join(dir, 'root');
  await fs.rm(root, { recursive: true, force: true });
  await fs.rename(tmpRoot, root);
  return { kver, abi, arch, packages: pkgs };
}

/**
 * Fetch (once) and describe one Debian cloud kernel.
 * @param {string} name `d12`, `d13`, or with an architecture: `d13-arm64`
 * @param {string} [arch] `amd64` (default) or `arm64`
 * @returns {Promise<{name: string, id: string, arch: string, label: string, kver: string, root: string,
 *   vmlinuz: string, image: string, modulesDir: string, headersDir: string, config: string,
 *   compression: 'none'|'xz'|'zstd'|'gzip', decompressInKernel: boolean, packages: string[]}>}
 *   `image` is what QEMU's -kernel boots (the vmlinuz itself on amd64, the unpacked Image on arm64);
 *   `name` is the short name without the architecture, `id` with it (`d13`, `d13-arm64`).
 * @throws {Error} when apt cannot resolve or download the packages.
 * @example const k = await ensureKernel('d13'); // k.vmlinuz, k.modulesDir
 * @example const a = await ensureKernel('d13', 'arm64'); // a.image: boot/vmlinuz-6.12...-cloud-arm64
 */
export async function ensureKernel(name, arch) {
  const { name: short, arch: a, id } = parseKernel(name, arch);
  const dir = path.join(cacheDir(), 'kernels', id);
  const stamp = path.join(dir, 'stamp.json');
  const version = a === 'amd64' ? STAMP_VERSION : STAMP_VERSION_CROSS;
  let info;
  try {
    info = JSON.parse(await fs.readFile(stamp, 'utf8'));
    if (info.stampVersion !== version || !existsSync(path.join(dir, 'root'))) info = undefined;
  } catch { /* not there yet */ }
  if (!info) {
    await fs.mkdir(dir, { recursive: true });
    const got = await fetchAndUnpack(short, dir, a);
    info = { stampVersion: version, ...got };
    await fs.writeFile(stamp, JSON.stringify(info, null, 2) + '\n');
  }
  const root = path.join(dir, 'root');
  const config = path.join(root, 'boot', `config-${info.kver}`);
  const vmlinuz = path.join(root, 'boot', `vmlinuz-${info.kver}`);
  return {
    name: short,
    id,
    arch: a,
    label: a === 'amd64' ? KERNELS[short].label : `${KERNELS[short].label} ${a}`,
    kver: info.kver,
    root,
    vmlinuz,
    image: a === 'arm64' && existsSync(path.join(root, 'boot', `Image-${info.kver}`)) ? path.join(root, 'boot', `Image-${info.kver}`) : vmlinuz,
    modulesDir: path.join(root, 'lib', 'modules', info.kver),
    headersDir: path.join(root, 'usr', 'src', `linux-headers-${info.kver}`),
    config,
    ...moduleCompressionOf(readFileSync(config, 'utf8')),
    packages: info.packages,
  };
}

/** What an arm64 image runs besides Node: Debian's busybox and kmod, and the C libraries. */
export const USERLAND_PACKAGES = ['busybox', 'kmod', 'libc6', 'libstdc++6', 'libgcc-s1'];
const USERLAND_VERSION = 1;

/** This machine's Debian codename (the suite whose busybox and kmod the amd64 image carries). */
export function hostCodename() {
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  return osRelease.match(/^VERSION_CODENAME=(\w+)/m)?.[1] ?? 'bookworm';
}

/**
 * Every package an empty system of the apt state's architecture needs to install `pkgs`
 * (apt's own plan, without recommends).
 */
export async function installClosure(apt, pkgs) {
  const { stdout } = await run('apt-get', [...apt.opts, '-s', '-qq', '--no-install-recommends', 'install', ...pkgs], { maxBuffer: 64 << 20 });
  return [...stdout.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]);
}

/**
 * Fetch (once) another architecture's userland for an image: Debian's `busybox` (the dynamic one,
 * whose shell honours PATH), Debian's kmod, libc6 and libstdc++6 (what Node needs), with their
 * dependencies, unpacked into one tree. Same suite as this machine's own busybox and kmod, so
 * both architectures compare against the same kmod release.
 * @param {string} arch e.g. 'arm64'
 * @returns {Promise<{ root: string, arch: string, codename: string, busybox: string, kmod: string, packages: string[] }>}
 * @throws {Error} when apt cannot resolve or download the packages.
 * @example const u = await ensureUserland('arm64'); // u.busybox: <cache>/userland/bookworm-arm64/root/bin/busybox
 */
export async function ensureUserland(arch) {
  const a = archOf(arch).name;
  const codename = hostCodename();
  const dir = path.join(cacheDir(), 'userland', `${codename}-${a}`);
  const root = path.join(dir, 'root');
  const stamp = path.join(dir, 'stamp.json');
  let info;
  try {
    info = JSON.parse(await fs.readFile(stamp, 'utf8'));
    if (info.version !== USERLAND_VERSION || !existsSync(root)) info = undefined;
  } catch { /* not there yet */ }
  if (!info) {
    const apt = await privateApt(codename, a);
    await apt.ensureLists();
    let pkgs;
    try {
      pkgs = await installClosure(apt, USERLAND_PACKAGES);
    } catch {
      await apt.update();
      pkgs = await installClosure(apt, USERLAND_PACKAGES);
    }
    const tmp = `${root}.tmp-${process.pid}`;
    await fs.rm(tmp, { recursive: true, force: true });
    await downloadAndUnpack(apt, pkgs, path.join(dir, 'debs'), tmp);
    await fs.rm(root, { recursive: true, force: true });
    await fs.rename(tmp, root);
    info = { version: USERLAND_VERSION, packages: pkgs };
    await fs.writeFile(stamp, JSON.stringify(info, null, 2) + '\n');
  }
  const find = (...cands) => cands.map((p) => path.join(root, p)).find((p) => existsSync(p));
  const busybox = find('bin/busybox', 'usr/bin/busybox');
  const kmod = find('bin/kmod', 'usr/bin/kmod');
  if (!busybox || !kmod) throw new Error(`${codename} ${a}: busybox or kmod missing from ${root}`);
  return { root, arch: a, codename, busybox, kmod, packages: info.packages };
}

async function main(argv) {
  const json = argv.includes('--json');
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node scripts/kernels.mjs [d12|d13|all] [--arch amd64|arm64] [--json]\n');
    return 0;
  }
  const ai = argv.indexOf('--arch');
  const arch = ai >= 0 ? archOf(argv[ai + 1]).name : 'amd64';
  const which = argv.filter((a, i) => !a.startsWith('-') && !(ai >= 0 && i === ai + 1));
  const names = which.length === 0 || which.includes('all') ? Object.keys(KERNELS) : which;
  const out = [];
  for (const n of names) out.push(await ensureKernel(n, arch));
  if (arch !== HOST_ARCH) out.userland = await ensureUserland(arch);
  if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else {
    for (const k of out) {
      process.stdout.write(`${k.id} (${k.label}) ${k.kver}\n` +
        `  vmlinuz     ${k.vmlinuz}\n${k.image !== k.vmlinuz ? `  image       ${k.image}\n` : ''}  modules     ${k.modulesDir}\n  headers     ${k.headersDir}\n` +
        `  compression ${k.compression} (in-kernel decompression: ${k.decompressInKernel ? 'yes' : 'no'})\n`);
    }
    if (out.userland) process.stdout.write(`userland ${out.userland.codename} ${arch}: ${out.userland.root} (${out.userland.packages.length} packages)\n`);
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`kernels: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
