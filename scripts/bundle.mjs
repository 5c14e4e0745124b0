#!/usr/bin/env node
// Production bundle of kmod-ts for a root filesystem:
//   build/bundle/kmod-ts.cjs           the entry point: a loader that compiles kmod-ts-main.cjs with the
//                                      V8 code cache made at build time (kmod-ts-main.HASH.v8cache; not for
//                                      a cross-built bundle)
//   build/bundle/kmod-ts-main.cjs      src/cli/entry.ts and every pure-JS dependency (yargs-parser) in one file
//   build/bundle/kmod-ts-surface.cjs   the yargs surface (help, completion), loaded only on those paths
//   build/bundle/module-worker.cjs     the module-reading worker (modinfo of many modules, depmod)
//   build/bundle/node_modules/...      only the native addons (koffi, lzma-native, zstd-napi) and
//                                      their runtime dependencies, pruned to linux-x64 (glibc; koffi
//                                      also its musl build)
// No dev dependencies, no sources, no other platforms' prebuilt binaries.
//
// --arch arm64 cross-builds the arm64 bundle (build/bundle-arm64/ by default) on this machine:
// koffi's arm64 package from npm, zstd-napi and lzma-native compiled with g++-aarch64-linux-gnu
// (scripts/cross.mjs; lzma-native's published linux-arm64 prebuilt binary is an x86-64 file). Every .node file in a bundle is checked to be
// an ELF of the target's machine type; a bundle for this machine is also loaded once.
//
// CLI: node scripts/bundle.mjs [--arch amd64|arm64] [--out DIR] [--no-minify]
//      node scripts/bundle.mjs --js-only [--out DIR]   JS files only (default dist/bundle/), used by npm run build

import * as esbuild from 'esbuild';
import fs from 'node:fs/promises';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { archOf, HOST_ARCH } from './arch.mjs';

export const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Packages with native code: never bundled, copied next to the bundle instead. */
export const NATIVE_PACKAGES = ['koffi', 'lzma-native', 'zstd-napi'];

// Declared as dependencies but used only to compile or download addons at install time.
const BUILD_TIME_ONLY = new Set(['node-addon-api', 'prebuild-install', 'node-gyp', 'cnoke']);

/**
 * The target's prebuilt-binary directory names per packaging convention.
 * @param {string} [arch] Debian architecture (default: this machine's)
 */
export function bundleTarget(arch = HOST_ARCH) {
  const a = archOf(arch);
  return {
    arch: a.name,
    prebuilds: `linux-${a.node}`,
    koffiTriplets: [`linux_${a.node}`, `musl_${a.node}`],
    koffiPkg: `@koromix/koffi-linux-${a.node}`,
    elfMachine: a.elfMachine,
    // Another architecture: nothing node-gyp built here (build/) is of use.
    cross: a.name !== HOST_ARCH,
  };
}

/**
 * Should `rel` (path inside a copied package) be left out of the bundle?
 * Drops sources, docs, type declarations, build intermediates and other platforms' binaries.
 * @param {string} rel
 * @param {ReturnType<typeof bundleTarget>} [TARGET]
 */
export function pruned(rel, TARGET = bundleTarget()) {
  const parts = rel.split(path.sep);
  const base = parts[parts.length - 1];
  if (/^(README|CHANGELOG|HISTORY)(\..*)?$/i.test(base)) return true;
  if (/\.(md|d\.ts|d\.cts|d\.mts|map|c|cc|cpp|h|hh|hpp|inc|gyp|gypi|a|o|mk|sh|py|ts|S|asm|def|Makefile)$/.test(base) && !base.endsWith('.node')) return true;
  // cnoke.cjs is koffi's install-time build tool.
  if (['CMakeLists.txt', 'Makefile', 'cnoke.cjs', '.deps'].includes(base)) return true;
  for (let i = 0; i < parts.length - 1; i++) {
    const dir = parts[i];
    if (['deps', 'doc', 'docs', 'test', 'tests', 'vendor', 'obj.target', 'example', 'examples', '.github', 'bin'].includes(dir)) return true;
    // prebuildify layout (lzma-native): prebuilds/<platform>-<arch>/; keep only Node's own binary.
    if (parts[i - 1] === 'prebuilds' && dir !== TARGET.prebuilds) return true;
    // koffi: build/koffi/<triplet>/ and @koromix/koffi-linux-x64/{linux_x64,musl_x64}/; the musl
    // build stays (kmod-ts reaches libc through the running process, so a musl Node works)
    if (parts[i - 1] === 'koffi' && parts[i - 2] === 'build' && !TARGET.koffiTriplets.includes(dir)) return true;
    // addons node-gyp built on this machine (zstd-napi, lzma-native): not for another architecture
    if (TARGET.cross && i === 0 && dir === 'build') return true;
    // lzma-native built from source (scripts/build-lzma.mjs): only build/Release/*.node is used.
    if (parts[i - 1] === 'build' && dir === 'liblzma') return true;
  }
  if (parts.includes('prebuilds') && base.startsWith('electron.')) return true;
  return false;
}

/** The runtime dependency closure of `names`, as absolute package directories. */
function closure(names, fromDir, TARGET) {
  const seen = new Map(); // dir → name
  const visit = (name, from) => {
    if (BUILD_TIME_ONLY.has(name) || name.startsWith('@types/')) return;
    // Other platforms' koffi packages are optional dependencies that npm did not install.
    if (name.startsWith('@koromix/koffi-') && name !== TARGET.koffiPkg) return;
    let pj;
    try {
      pj = createRequire(path.join(from, 'x.js')).resolve(`${name}/package.json`);
    } catch {
      // Packages whose "exports" hide package.json: walk node_modules directories up by hand.
      for (let d = from; ; d = path.dirname(d)) {
        const cand = path.join(d, 'node_modules', name, 'package.json');
        if (existsSync(cand)) { pj = cand; break; }
        if (d === path.dirname(d)) break;
      }
    }
    if (!pj) return; // an uninstalled optional dependency
    const dir = path.dirname(pj);
    if (seen.has(dir)) return;
    seen.set(dir, name);
    const meta = JSON.parse(readFileSync(pj, 'utf8'));
    for (const dep of Object.keys({ ...meta.dependencies, ...meta.optionalDependencies })) visit(dep, dir);
  };
  for (const n of names) visit(n, fromDir);
  return seen;
}

async function dirSize(dir) {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return total;
}

/**
 * The yargs surface (`kmod-ts --help`, completion): a file of its own beside the main one, so an
 * applet's start-up neither loads nor parses yargs (about 110 KB of minified code).
 */
const SURFACE_ENTRY = 'src/cli/surface.ts';
const SURFACE_FILE = 'kmod-ts-surface.cjs';

/**
 * esbuild plugin: main.ts's `import('./surface.js')` becomes a plain require() of the surface
 * file, made on first use. (Left as an external import(), Node's ESM loader would load the
 * CommonJS file and scan all of it for named exports first: about 40 ms.)
 */
const surfaceApart = {
  name: 'surface-apart',
  setup(build) {
    build.onResolve({ filter: /^\.\/surface\.js$/ }, (args) =>
      path.resolve(args.resolveDir, 'surface.ts') === path.join(projectDir, SURFACE_ENTRY) ? { path: 'surface', namespace: 'surface-apart' } : undefined);
    build.onLoad({ filter: /.*/, namespace: 'surface-apart' }, () => ({ contents: `module.exports = require('./${SURFACE_FILE}');`, loader: 'js', resolveDir: projectDir }));
    build.onResolve({ filter: new RegExp(`^\\./${SURFACE_FILE.replaceAll('.', '\\.')}$`) }, (args) => ({ path: args.path, external: true }));
  },
};

/** The bundled program; kmod-ts.cjs is the small loader that compiles it (see LOADER). */
const MAIN_FILE = 'kmod-ts-main.cjs';

/**
 * The entry point, `kmod-ts.cjs`: compiles MAIN_FILE as Node's CommonJS loader would (same
 * wrapper, file name, require and module), but with V8's code cache made when the bundle was
 * built, so that a start-up deserializes the compiled top level instead of parsing 150 KB of
 * JavaScript and compiling the functions a start-up runs. The cache's name carries a hash of the main file's bytes, so a cache never
 * meets another build's code; V8 itself refuses one made by another V8 or with other flags, and
 * a missing or refused cache only means a normal compile.
 */
const LOADER = (cacheName) => `#!/usr/bin/env node
'use strict';
// kmod-ts: ${MAIN_FILE} compiled with the code cache made when it was built (scripts/bundle.mjs).
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');
const Module = require('node:module');
const file = join(__dirname, '${MAIN_FILE}');
let cachedData;
try { cachedData = readFileSync(join(__dirname, '${cacheName}')); } catch {}
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(__dirname);
new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData }).runInThisContext()
  .call(m.exports, m.exports, Module.createRequire(file), m, file, __dirname);
`;

/**
 * Write V8's code cache for the main file with this machine's node, which must be the node that
 * will run it (same version and architecture; V8 refuses the cache otherwise). The cache is taken
 * after `modprobe -a --show-depends` of a name and a modalias (the tree has text files and .bin
 * indexes), `depmod`, `modinfo` and `lsmod` over a two-module tree made here, run one after the
 * other in the same process, so that it holds the functions their start-ups compile (the CLI, the
 * option system, the module database and index reader, each applet): a cache of the top level
 * alone saved 1-2% of `modprobe --show-depends vfat`'s CPU time, one made after modprobe about
 * 12% (and 10% of `rmmod`'s). modprobe's switch to V8's interpreters (entry.ts) is skipped
 * in that run: V8 ties a cache to the flags it was made with, and the loader compiles with the
 * default ones.
 */
async function writeCodeCache(outDir, cacheName) {
  const tree = mkdtempSync(path.join(os.tmpdir(), 'kmod-ts-cache-'));
  try {
    const mods = path.join(tree, 'lib', 'modules', '0.0');
    mkdirSync(path.join(mods, 'kernel'), { recursive: true });
    // the .bin indexes too (written by the library's own writer), so the cache holds their reader
    const { outputFiles: [writer] } = await esbuild.build({
      stdin: { contents: "export { IndexTrie } from './src/db/index-trie.ts';", resolveDir: projectDir, loader: 'ts' },
      bundle: true, platform: 'node', format: 'cjs', write: false, logLevel: 'warning',
    });
    const lib = { exports: {} };
    new Function('module', 'exports', 'require', writer.text)(lib, lib.exports, createRequire(import.meta.url));
    const files = {
      dep: ['modules.dep', 'kernel/vfat.ko: kernel/fat.ko\nkernel/fat.ko:\n'],
      alias: ['modules.alias', 'alias fs-vfat vfat\nalias pci:v00008086d*sv*sd*bc01sc*i* vfat\n'],
    };
    for (const [kind, [name, text]] of Object.entries(files)) {
      writeFileSync(path.join(mods, name), text);
      writeFileSync(path.join(mods, `${name}.bin`), lib.exports.IndexTrie.fromText(text, kind).toBuffer());
    }
    writeFileSync(path.join(mods, 'kernel', 'vfat.ko'), '');
    writeFileSync(path.join(mods, 'kernel', 'fat.ko'), '');
    // what depmod reads besides the modules (the modules themselves are empty: they fail to parse)
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) writeFileSync(path.join(mods, f), '');
    mkdirSync(path.join(tree, 'depmod.d'));
    const produce = `const fs=require('node:fs'),vm=require('node:vm'),M=require('node:module'),path=require('node:path');
require('node:v8').setFlagsFromString=()=>{};
const [dir,cache,tree]=process.argv.slice(1),f=path.join(dir,'${MAIN_FILE}');
const s=new vm.Script(M.wrap(fs.readFileSync(f,'utf8')),{filename:f});
const m=new M(f,module);m.filename=f;m.paths=M._nodeModulePaths(dir);
const runs=[['modprobe','-a','-d',tree,'-S','0.0','-C','/dev/null','--show-depends','vfat','pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80'],['depmod','-b',tree,'-C',path.join(tree,'depmod.d'),'0.0'],['modinfo','-b',tree,'-k','0.0','vfat'],['lsmod']];
const next=()=>{const a=runs.shift();if(!a)return;process.argv=[process.argv[0],path.join(dir,'kmod-ts.cjs'),...a];s.runInThisContext().call(m.exports,m.exports,M.createRequire(f),m,f,dir);};
process.on('beforeExit',next);
process.on('exit',()=>{fs.writeFileSync(cache,s.createCachedData());process.exitCode=0;});
next();`;
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    execFileSync(process.execPath, ['-e', produce, outDir, path.join(outDir, cacheName), tree], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

/** The module-reading worker, a second entry beside the main file (module-pool.ts finds it by URL). */
const WORKER_ENTRY = 'src/ops/module-worker.ts';

/**
 * Bundle the JavaScript only: `kmod-ts.cjs` (the loader), `kmod-ts-main.cjs` with its code cache,
 * the surface and `module-worker.cjs` in `outDir`, native packages left as imports (resolved from
 * the node_modules around `outDir`).
 * @param {string} outDir
 * @param {{ entry?: string, minify?: boolean, codeCache?: boolean }} [opts] `codeCache: false`
 *   for a bundle another architecture's node runs (default true)
 * @example await buildJs('dist/bundle') // what `npm run build` ships as bin/kmod-ts.js's target
 */
export async function buildJs(outDir, opts = {}) {
  const entry = path.resolve(projectDir, opts.entry ?? 'src/cli/entry.ts');
  const common = {
    bundle: true,
    platform: 'node',
    target: 'node20',
    external: NATIVE_PACKAGES,
    minify: opts.minify ?? true,
    // Error classes are told apart by name in places; keep names through minification.
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  };
  // The main file is CommonJS: Node's CommonJS loader starts faster than its ESM loader, and
  // esbuild turns the imports of lazily loaded applets into require() calls made on first use,
  // so an lsmod never loads zlib, worker_threads or the codecs (measured: 1.12x `node -e 0`
  // against 1.36x for the same code as one ESM file). import.meta.url becomes the file's URL.
  const file = path.join(outDir, 'kmod-ts.cjs');
  const cjs = {
    ...common,
    format: 'cjs',
    define: { 'import.meta.url': '__kmodTsUrl' },
    banner: { js: 'var __kmodTsUrl=require("url").pathToFileURL(__filename).href;' },
    // import() of a Node built-in becomes require(): the loader's vm.Script has no module loader
    // for dynamic imports
    supported: { 'dynamic-import': false },
  };
  await esbuild.build({ ...cjs, entryPoints: [entry], outfile: path.join(outDir, MAIN_FILE), plugins: [surfaceApart] });
  await esbuild.build({ ...cjs, entryPoints: [path.join(projectDir, SURFACE_ENTRY)], outfile: path.join(outDir, SURFACE_FILE) });
  const hash = createHash('sha256').update(readFileSync(path.join(outDir, MAIN_FILE))).digest('hex').slice(0, 16);
  const cacheName = `kmod-ts-main.${hash}.v8cache`;
  for (const f of await fs.readdir(outDir)) if (/^kmod-ts-main\.\w+\.v8cache$/.test(f)) await fs.rm(path.join(outDir, f));
  await fs.writeFile(file, LOADER(cacheName), { mode: 0o755 });
  if (opts.codeCache ?? true) await writeCodeCache(outDir, cacheName);
  // The worker is CommonJS too: a worker thread starts about 8 ms sooner from it than from ESM
  // (each worker of a depmod or bulk modinfo pays that).
  await esbuild.build({ ...cjs, entryPoints: [path.join(projectDir, WORKER_ENTRY)], outfile: path.join(outDir, 'module-worker.cjs'), banner: { js: 'var __kmodTsUrl=require("url").pathToFileURL(__filename).href;' } });
  return file;
}

/**
 * Build the production bundle.
 * @param {{ outDir?: string, entry?: string, minify?: boolean, quiet?: boolean, arch?: string }} [opts]
 *   `arch`: the target architecture (default this machine's); another one is cross-built
 * @returns {Promise<{ outDir: string, file: string, jsBytes: number, totalBytes: number, arch: string }>}
 * @throws {Error} when esbuild fails, a native package is missing from node_modules, or (cross)
 *   npm or the cross compiler fails.
 * @example const { file } = await bundle(); // build/bundle/kmod-ts.cjs
 * @example await bundle({ arch: 'arm64' }) // build/bundle-arm64/
 */
export async function bundle(opts = {}) {
  const TARGET = bundleTarget(opts.arch);
  const outDir = path.resolve(opts.outDir ?? path.join(projectDir, 'build', TARGET.cross ? `bundle-${TARGET.arch}` : 'bundle'));
  const entry = path.resolve(projectDir, opts.entry ?? 'src/cli/entry.ts');
  const file = path.join(outDir, 'kmod-ts.cjs');
  if (!existsSync(entry)) throw new Error(`entry point ${path.relative(projectDir, entry)} does not exist yet`);
  await fs.rm(outDir, { recursive: true, force: true });
  await fs.mkdir(outDir, { recursive: true });

  const version = JSON.parse(readFileSync(path.join(projectDir, 'package.json'), 'utf8')).version;
  await buildJs(outDir, { entry, minify: opts.minify, codeCache: !TARGET.cross });
  await fs.chmod(file, 0o755);
  // A package.json beside the bundle so Node treats nothing here as CommonJS by accident.
  await fs.writeFile(path.join(outDir, 'package.json'), JSON.stringify({ name: 'kmod-ts-bundle', version, type: 'module', private: true }, null, 2) + '\n');

  const pkgs = closure(NATIVE_PACKAGES, projectDir, TARGET);
  for (const n of NATIVE_PACKAGES) {
    if (![...pkgs.values()].includes(n)) throw new Error(`native package ${n} is not installed (run npm ci)`);
  }
  // Real paths on both sides: node_modules may be a symlink (a git worktree sharing the main
  // checkout's), and require.resolve answers with real paths.
  const nm = realpathSync(path.join(projectDir, 'node_modules'));
  for (const [dir] of pkgs) {
    const rel = path.relative(nm, realpathSync(dir)); // keeps any nesting npm chose
    if (rel.startsWith('..')) throw new Error(`native package directory ${dir} is outside ${nm}`);
    await fs.cp(dir, path.join(outDir, 'node_modules', rel), {
      recursive: true,
      filter: (src) => src === dir || !pruned(path.relative(dir, src), TARGET) && !path.relative(dir, src).startsWith('node_modules'),
    });
  }
  if (TARGET.cross) {
    // koffi's build for the target (an optional dependency npm skipped here), and zstd-napi's and
    // lzma-native's addons cross-compiled (lzma-native's published linux-arm64 prebuilt binary is
    // an x86-64 file), each where its loader looks first (build/Release/).
    const { npmPackage, crossAddon, CROSS_ADDONS } = await import('./cross.mjs');
    const koffiDir = [...pkgs].find(([, n]) => n === 'koffi')[0];
    const { version: koffiVersion } = JSON.parse(readFileSync(path.join(koffiDir, 'package.json'), 'utf8'));
    const kp = await npmPackage(TARGET.koffiPkg, koffiVersion);
    await fs.cp(kp, path.join(outDir, 'node_modules', TARGET.koffiPkg), { recursive: true, filter: (src) => src === kp || !pruned(path.relative(kp, src), TARGET) });
    for (const [name, built] of Object.entries(CROSS_ADDONS)) {
      const dir = path.join(outDir, 'node_modules', path.relative(nm, realpathSync([...pkgs].find(([, n]) => n === name)[0])));
      await fs.rm(path.join(dir, 'prebuilds'), { recursive: true, force: true });
      await fs.mkdir(path.dirname(path.join(dir, built)), { recursive: true });
      await fs.copyFile(await crossAddon(name, TARGET.arch), path.join(dir, built));
    }
  }
  // Drop directories the filter emptied.
  const dirs = (await fs.readdir(path.join(outDir, 'node_modules'), { withFileTypes: true, recursive: true }))
    .filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath ?? e.path, e.name)).sort((a, b) => b.length - a.length);
  for (const d of dirs) if ((await fs.readdir(d)).length === 0) await fs.rmdir(d);

  const wrong = await foreignAddons(outDir, TARGET.arch);
  if (wrong.length) throw new Error(`addons of another architecture in the ${TARGET.arch} bundle: ${wrong.join(', ')}`);
  return { outDir, file, arch: TARGET.arch, jsBytes: (await fs.stat(path.join(outDir, MAIN_FILE))).size, totalBytes: await dirSize(outDir), packages: [...pkgs.values()] };
}

/**
 * The `.node` files under `dir` that are not ELF shared objects for `arch`.
 * @returns {Promise<string[]>} their paths relative to `dir` (with the machine type found)
 */
export async function foreignAddons(dir, arch = HOST_ARCH) {
  const want = archOf(arch).elfMachine;
  const out = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith('.node')) continue;
    const f = path.join(e.parentPath ?? e.path, e.name);
    const head = Buffer.alloc(20);
    const fh = await fs.open(f);
    try { await fh.read(head, 0, 20, 0); } finally { await fh.close(); }
    const machine = head.readUInt32BE(0) === 0x7f454c46 ? head.readUInt16LE(18) : 'not ELF';
    if (machine !== want) out.push(`${path.relative(dir, f)} (${machine})`);
  }
  return out;
}

/**
 * Check that the bundle's native addons load from the bundle directory alone (copied elsewhere).
 * Only for this machine's architecture (another one's are checked by ELF machine type in bundle()).
 */
export async function selfTest(outDir, arch = HOST_ARCH) {
  if (archOf(arch).name !== HOST_ARCH) return;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kmod-ts-bundle-'));
  try {
    await fs.cp(outDir, tmp, { recursive: true, verbatimSymlinks: true });
    const code = NATIVE_PACKAGES.map((n) => `await import(${JSON.stringify(n)});`).join('');
    execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: tmp, stdio: ['ignore', 'inherit', 'inherit'] });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`;

async function main(argv) {
  const outIdx = argv.indexOf('--out');
  if (argv.includes('--js-only')) {
    const file = await buildJs(path.resolve(outIdx >= 0 ? argv[outIdx + 1] : path.join(projectDir, 'dist', 'bundle')));
    process.stdout.write(`bundle: ${path.relative(process.cwd(), path.join(path.dirname(file), MAIN_FILE))} ${mib((await fs.stat(path.join(path.dirname(file), MAIN_FILE))).size)}\n`);
    return 0;
  }
  const archIdx = argv.indexOf('--arch');
  const arch = archIdx >= 0 ? archOf(argv[archIdx + 1]).name : undefined;
  const r = await bundle({ outDir: outIdx >= 0 ? argv[outIdx + 1] : undefined, minify: !argv.includes('--no-minify'), arch });
  await selfTest(r.outDir, r.arch);
  const rel = path.relative(process.cwd(), r.outDir) || '.';
  process.stdout.write(`bundle: ${path.join(rel, 'kmod-ts.cjs')} ${mib(r.jsBytes)}; native addons (${r.arch}): ${r.packages.join(', ')}\n` +
    `bundle: total ${rel}/ ${mib(r.totalBytes)} (${r.totalBytes} bytes)\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`bundle: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
