#!/usr/bin/env node
// Production bundle of kmod-ts for a root filesystem:
//   build/bundle/kmod-ts.cjs           src/cli/entry.ts and every pure-JS dependency (yargs-parser) in one file
//   build/bundle/modinfo-worker.js     modinfo's decompression worker
//   build/bundle/node_modules/...      only the native addons (koffi, lzma-native, zstd-napi) and
//                                      their runtime dependencies, pruned to linux-x64 (glibc)
// No dev dependencies, no sources, no other platforms' prebuilt binaries.
//
// CLI: node scripts/bundle.mjs [--out DIR] [--no-minify]
//      node scripts/bundle.mjs --js-only [--out DIR]   JS files only (default dist/bundle/), used by npm run build

import * as esbuild from 'esbuild';
import fs from 'node:fs/promises';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Packages with native code: never bundled, copied next to the bundle instead. */
export const NATIVE_PACKAGES = ['koffi', 'lzma-native', 'zstd-napi'];

// Declared as dependencies but used only to compile or download addons at install time.
const BUILD_TIME_ONLY = new Set(['node-addon-api', 'prebuild-install', 'node-gyp', 'cnoke']);

// The one target we ship for: prebuilt-binary directory names per packaging convention.
const TARGET = { prebuilds: 'linux-x64', koffiTriplet: 'linux_x64', koffiPkg: '@koromix/koffi-linux-x64' };

/**
 * Should `rel` (path inside a copied package) be left out of the bundle?
 * Drops sources, docs, type declarations, build intermediates and other platforms' binaries.
 */
export function pruned(rel) {
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
    // koffi: build/koffi/<triplet>/ and @koromix/koffi-linux-x64/{linux_x64,musl_x64}/
    if (parts[i - 1] === 'koffi' && parts[i - 2] === 'build' && dir !== TARGET.koffiTriplet) return true;
    if (dir === 'musl_x64') return true;
    // lzma-native built from source (scripts/build-lzma.mjs): only build/Release/*.node is used.
    if (parts[i - 1] === 'build' && dir === 'liblzma') return true;
  }
  if (parts.includes('prebuilds') && base.startsWith('electron.')) return true;
  return false;
}

/** The runtime dependency closure of `names`, as absolute package directories. */
function closure(names, fromDir) {
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

/** The modinfo worker, a second entry beside the main file (modinfo.ts finds it by URL). */
const WORKER_ENTRY = 'src/ops/modinfo-worker.ts';

/**
 * Bundle the JavaScript only: `kmod-ts.cjs` and `modinfo-worker.js` in `outDir`, native
 * packages left as imports (resolved from the node_modules around `outDir`).
 * @param {string} outDir
 * @param {{ entry?: string, minify?: boolean }} [opts]
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
  await esbuild.build({
    ...common,
    entryPoints: [entry],
    outfile: file,
    format: 'cjs',
    define: { 'import.meta.url': '__kmodTsUrl' },
    banner: { js: '#!/usr/bin/env node\nvar __kmodTsUrl=require("url").pathToFileURL(__filename).href;' },
  });
  await esbuild.build({
    ...common,
    entryPoints: [path.join(projectDir, WORKER_ENTRY)],
    outfile: path.join(outDir, 'modinfo-worker.js'),
    format: 'esm',
    // Bundled CommonJS code (if any) still calls require() for Node built-ins.
    banner: { js: "import{createRequire as __kmodTsCreateRequire}from'node:module';const require=__kmodTsCreateRequire(import.meta.url);" },
  });
  return file;
}

/**
 * Build the production bundle.
 * @param {{ outDir?: string, entry?: string, minify?: boolean, quiet?: boolean }} [opts]
 * @returns {Promise<{ outDir: string, file: string, jsBytes: number, totalBytes: number }>}
 * @throws {Error} when esbuild fails or a native package is missing from node_modules.
 * @example const { file } = await bundle(); // build/bundle/kmod-ts.cjs
 */
export async function bundle(opts = {}) {
  const outDir = path.resolve(opts.outDir ?? path.join(projectDir, 'build', 'bundle'));
  const entry = path.resolve(projectDir, opts.entry ?? 'src/cli/entry.ts');
  const file = path.join(outDir, 'kmod-ts.cjs');
  if (!existsSync(entry)) throw new Error(`entry point ${path.relative(projectDir, entry)} does not exist yet`);
  await fs.rm(outDir, { recursive: true, force: true });
  await fs.mkdir(outDir, { recursive: true });

  const version = JSON.parse(readFileSync(path.join(projectDir, 'package.json'), 'utf8')).version;
  await buildJs(outDir, { entry, minify: opts.minify });
  await fs.chmod(file, 0o755);
  // A package.json beside the bundle so Node treats nothing here as CommonJS by accident.
  await fs.writeFile(path.join(outDir, 'package.json'), JSON.stringify({ name: 'kmod-ts-bundle', version, type: 'module', private: true }, null, 2) + '\n');

  const pkgs = closure(NATIVE_PACKAGES, projectDir);
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
      filter: (src) => src === dir || !pruned(path.relative(dir, src)) && !path.relative(dir, src).startsWith('node_modules'),
    });
  }
  // Drop directories the filter emptied.
  const dirs = (await fs.readdir(path.join(outDir, 'node_modules'), { withFileTypes: true, recursive: true }))
    .filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath ?? e.path, e.name)).sort((a, b) => b.length - a.length);
  for (const d of dirs) if ((await fs.readdir(d)).length === 0) await fs.rmdir(d);

  return { outDir, file, jsBytes: (await fs.stat(file)).size, totalBytes: await dirSize(outDir), packages: [...pkgs.values()] };
}

/** Check that the bundle's native addons load from the bundle directory alone (copied elsewhere). */
export async function selfTest(outDir) {
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
    process.stdout.write(`bundle: ${path.relative(process.cwd(), file)} ${mib((await fs.stat(file)).size)}\n`);
    return 0;
  }
  const r = await bundle({ outDir: outIdx >= 0 ? argv[outIdx + 1] : undefined, minify: !argv.includes('--no-minify') });
  await selfTest(r.outDir);
  const rel = path.relative(process.cwd(), r.outDir) || '.';
  process.stdout.write(`bundle: ${path.join(rel, 'kmod-ts.cjs')} ${mib(r.jsBytes)}; native addons: ${r.packages.join(', ')}\n` +
    `bundle: total ${rel}/ ${mib(r.totalBytes)} (${r.totalBytes} bytes)\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`bundle: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
