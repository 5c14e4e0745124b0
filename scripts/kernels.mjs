#!/usr/bin/env node
// Fetch and cache Debian's cloud kernels (12 "bookworm", 13 "trixie") with their modules and the
// linux-headers/linux-kbuild packages an out-of-tree module build needs.
//
// Nothing here names a mirror: the archive URIs are read at run time from the machine's apt
// sources (/etc/apt/sources.list.d/debian.sources, or /etc/apt/sources.list), and each kernel gets
// its own private apt state (sources list, lists, cache) so the machine's own apt state is never
// touched. The exact package is resolved at run time through `linux-image-cloud-amd64`, because
// Debian bumps the kernel ABI number in every point release.
//
// Cache: $KMOD_TS_CACHE, else <project>/.cache. A stamp file makes a second run instant.
//
// CLI:  node scripts/kernels.mjs [d12|d13|all] [--json]

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
 * Private apt state for one Debian suite (sources list, lists, cache under <cache>/apt/CODENAME),
 * so the machine's own apt state is never touched and no root is needed.
 * @param {string} codename e.g. 'bookworm', 'trixie'
 * @returns {Promise<{ opts: string[], keyrings: string[], get: Function, cache: Function,
 *   update: () => Promise<void> }>}
 */
export async function privateApt(codename) {
  const { main, security } = archiveUris();
  const aptDir = path.join(cacheDir(), 'apt', codename);
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

  const opts = [
    '-o', `Dir::Etc::SourceList=${sourcesFile}`,
    '-o', 'Dir::Etc::SourceParts=-',
    '-o', `Dir::State=${path.join(aptDir, 'state')}`,
    '-o', 'Dir::State::status=/var/lib/dpkg/status',
    '-o', `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${path.join(aptDir, 'cache')}`,
    '-o', 'APT::Architecture=amd64',
    '-o', 'Debug::NoLocking=1',
  ];
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
      log(`apt-get update (${codename}, private lists in ${aptDir})`);
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

async function fetchAndUnpack(name, dir) {
  const { codename, label } = KERNELS[name];
  const apt = await privateApt(codename);
  await apt.update();

  const meta = (await depends(apt, 'linux-image-cloud-amd64')).find((n) => /^linux-image-.*-cloud-amd64$/.test(n));
  if (!meta) throw new Error(`${label}: cannot resolve linux-image-cloud-amd64`);
  // linux-image-6.1.0-56-cloud-amd64 → ABI 6.1.0-56; on trixie linux-image-6.12.48+deb13-cloud-amd64.
  const abi = meta.replace(/^linux-image-/, '').replace(/-cloud-amd64(-unsigned)?$/, '');
  const headers = `linux-headers-${abi}-cloud-amd64`;
  // The headers also depend on linux-compiler-gcc-*: that is the compiler, not files we unpack.
  const headerDeps = (await depends(apt, headers)).filter((n) => /^linux-(headers|kbuild)-/.test(n));
  const pkgs = [meta, headers, ...headerDeps];

  const tmpRoot = path.join(dir, `root.tmp-${process.pid}`);
  await fs.rm(tmpRoot, { recursive: true, force: true });
  await downloadAndUnpack(apt, pkgs, path.join(dir, 'debs'), tmpRoot);
  // Debian 13 is usr-merged and ships modules under usr/lib/modules; make /lib → usr/lib so the
  // same /lib/modules/KVER path works for depmod -b here and inside the rootfs.
  if (!existsSync(path.join(tmpRoot, 'lib'))) await fs.symlink('usr/lib', path.join(tmpRoot, 'lib'));
  const kvers = await fs.readdir(path.join(tmpRoot, 'lib', 'modules'));
  const kver = kvers.find((k) => k.startsWith(abi) && k.endsWith('cloud-amd64'));
  if (!kver) throw new Error(`${label}: no lib/modules/${abi}*-cloud-amd64 in the package (found ${kvers.join(', ')})`);
  await relativizeSymlinks(tmpRoot, path.join(tmpRoot, 'usr', 'src'));
  await relocateHeadersMakefile(path.join(tmpRoot, 'usr', 'src', `linux-headers-${kver}`, 'Makefile'));
  // modules/KVER/build points at /usr/src/linux-headers-KVER: make it resolve inside the cache too.
  await relativizeSymlinks(tmpRoot, path.join(tmpRoot, 'lib', 'modules', kver));
  log(`${label}: depmod -b ROOT ${kver}`);
  await run('depmod', ['-b', tmpRoot, kver]);

  const root = path.join(dir, 'root');
  await fs.rm(root, { recursive: true, force: true });
  await fs.rename(tmpRoot, root);
  return { kver, abi, packages: pkgs };
}

/**
 * Fetch (once) and describe one Debian cloud kernel.
 * @param {'d12'|'d13'} name
 * @returns {Promise<{name: string, label: string, kver: string, root: string, vmlinuz: string,
 *   modulesDir: string, headersDir: string, config: string, compression: 'none'|'xz'|'zstd'|'gzip',
 *   decompressInKernel: boolean, packages: string[]}>}
 * @throws {Error} when apt cannot resolve or download the packages.
 * @example const k = await ensureKernel('d13'); // k.vmlinuz, k.modulesDir
 */
export async function ensureKernel(name) {
  if (!KERNELS[name]) throw new Error(`unknown kernel '${name}' (want ${Object.keys(KERNELS).join(', ')})`);
  const dir = path.join(cacheDir(), 'kernels', name);
  const stamp = path.join(dir, 'stamp.json');
  let info;
  try {
    info = JSON.parse(await fs.readFile(stamp, 'utf8'));
    if (info.stampVersion !== STAMP_VERSION || !existsSync(path.join(dir, 'root'))) info = undefined;
  } catch { /* not there yet */ }
  if (!info) {
    await fs.mkdir(dir, { recursive: true });
    const got = await fetchAndUnpack(name, dir);
    info = { stampVersion: STAMP_VERSION, ...got };
    await fs.writeFile(stamp, JSON.stringify(info, null, 2) + '\n');
  }
  const root = path.join(dir, 'root');
  const config = path.join(root, 'boot', `config-${info.kver}`);
  return {
    name,
    label: KERNELS[name].label,
    kver: info.kver,
    root,
    vmlinuz: path.join(root, 'boot', `vmlinuz-${info.kver}`),
    modulesDir: path.join(root, 'lib', 'modules', info.kver),
    headersDir: path.join(root, 'usr', 'src', `linux-headers-${info.kver}`),
    config,
    ...moduleCompressionOf(readFileSync(config, 'utf8')),
    packages: info.packages,
  };
}

async function main(argv) {
  const json = argv.includes('--json');
  const which = argv.filter((a) => !a.startsWith('-'));
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node scripts/kernels.mjs [d12|d13|all] [--json]\n');
    return 0;
  }
  const names = which.length === 0 || which.includes('all') ? Object.keys(KERNELS) : which;
  const out = [];
  for (const n of names) out.push(await ensureKernel(n));
  if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else {
    for (const k of out) {
      process.stdout.write(`${k.name} (${k.label}) ${k.kver}\n` +
        `  vmlinuz     ${k.vmlinuz}\n  modules     ${k.modulesDir}\n  headers     ${k.headersDir}\n` +
        `  compression ${k.compression} (in-kernel decompression: ${k.decompressInKernel ? 'yes' : 'no'})\n`);
    }
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`kernels: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
