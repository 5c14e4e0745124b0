#!/usr/bin/env node
// Build lzma-native's addon from source, optimized (npm run setup runs this after npm ci).
//
//   node scripts/build-lzma.mjs [--force]
//
// Why: lzma-native's published prebuilt binaries compile its bundled liblzma 5.2.3 without
// optimization. Its liblzma-config.sh hands configure CFLAGS="-fPIC $CFLAGS", which replaces
// autoconf's default "-g -O2", so with CFLAGS unset liblzma is built at -O0. Measured on xfs.ko.xz
// (4.2 MB out), warm: 57 ms with the prebuilt binary, 39 ms with this build (xz -dc: 50 ms).
//
// How: `npm rebuild lzma-native` with npm_config_build_from_source=true runs the package's own
// install script (node-gyp-build → node-gyp rebuild) with CFLAGS=-O2, so npm's configuration
// (nodedir, proxies, node-gyp) applies as it does for zstd-napi during npm ci. node-gyp-build
// loads build/Release/ before prebuilds/, so nothing else changes; without this step the
// prebuilt binary is used, slower but correct.
//
// The result is cached in $KMOD_TS_CACHE/lzma-native/<version>-<platform>-<arch>-O2/ (the
// build takes about 75 s on 2 cores), and node_modules/lzma-native/build/kmod-ts-build records
// what was built, so a second run is a no-op.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CFLAGS = '-O2';

/** Where lzma-native is installed, its version and the tag of the build we want. */
export function lzmaNative() {
  const pj = createRequire(path.join(projectDir, 'x.js')).resolve('lzma-native/package.json');
  const dir = path.dirname(pj);
  const { version } = JSON.parse(fs.readFileSync(pj, 'utf8'));
  const tag = `${version}-${process.platform}-${process.arch}${CFLAGS}`;
  return { dir, version, tag, addon: path.join(dir, 'build', 'Release', 'lzma_native.node'), marker: path.join(dir, 'build', 'kmod-ts-build') };
}

/** The addon loads and its liblzma answers (a broken build must not replace the prebuilt one). */
function works(dir) {
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(require('node-gyp-build')(${JSON.stringify(dir)}).versionString())`], {
    cwd: dir,
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout : undefined;
}

function main() {
  const force = process.argv.includes('--force');
  const { dir, tag, addon, marker } = lzmaNative();
  if (!force && fs.existsSync(addon) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === tag) {
    console.log(`build-lzma: ${path.relative(projectDir, addon)} is already the ${tag} build`);
    return;
  }
  const cacheRoot = process.env.KMOD_TS_CACHE ?? path.join(projectDir, '.cache');
  const cached = path.join(cacheRoot, 'lzma-native', tag, 'lzma_native.node');
  if (!force && fs.existsSync(cached)) {
    fs.mkdirSync(path.dirname(addon), { recursive: true });
    fs.copyFileSync(cached, addon);
    fs.writeFileSync(marker, `${tag}\n`);
    const version = works(dir);
    if (version) {
      console.log(`build-lzma: ${path.relative(projectDir, addon)} from the cache (${tag}, liblzma ${version})`);
      return;
    }
    console.log('build-lzma: the cached build does not load; building again');
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
  }

  console.log(`build-lzma: building lzma-native from source with CFLAGS=${CFLAGS} (about a minute)`);
  const started = performance.now();
  const npm = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];
  const r = spawnSync(npm[0], [...npm[1], 'rebuild', 'lzma-native', '--foreground-scripts', '--no-audit', '--no-fund'], {
    cwd: projectDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, CFLAGS, npm_config_build_from_source: 'true', MAKEFLAGS: `-j${os.availableParallelism()}` },
  });
  const version = r.status === 0 && fs.existsSync(addon) ? works(dir) : undefined;
  if (!version) {
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-40).join('\n'));
    // Leave no half-built directory: node-gyp-build would pick it over the prebuilt binary.
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    console.error('build-lzma: the build failed (output above); lzma-native falls back to its prebuilt, unoptimized binary');
    process.exit(1);
  }
  // Keep only the addon: the unpacked xz sources and objects are ~30 MB of nothing at run time.
  for (const e of fs.readdirSync(path.join(dir, 'build'))) if (e !== 'Release') fs.rmSync(path.join(dir, 'build', e), { recursive: true, force: true });
  for (const e of fs.readdirSync(path.dirname(addon))) if (e !== 'lzma_native.node') fs.rmSync(path.join(path.dirname(addon), e), { recursive: true, force: true });
  fs.writeFileSync(marker, `${tag}\n`);
  fs.mkdirSync(path.dirname(cached), { recursive: true });
  fs.copyFileSync(addon, `${cached}.tmp`);
  fs.renameSync(`${cached}.tmp`, cached);
  console.log(`build-lzma: built in ${((performance.now() - started) / 1000).toFixed(0)} s (liblzma ${version}, CFLAGS=${CFLAGS}); cached in ${path.dirname(cached)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
