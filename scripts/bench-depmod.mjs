#!/usr/bin/env node
// depmod over a whole Debian cloud kernel tree: kmod 34.2 (Debian 13's, scripts/kmod-ref.mjs, run
// through its own dynamic loader) against kmod-ts (node bin/kmod-ts.js depmod), each writing with
// -o into its own scratch directory (the tree itself is only read). Runs alternate (kmod, ours,
// kmod, ...) in the same sitting after one warm-up each; medians of wall and CPU time, and each
// tool's peak RSS (one more run of each under /usr/bin/time -f %M, or getrusage's ru_maxrss).
//
// liblzma: kmod 34.2 dlopen()s liblzma.so.5, and kmod-ts loads the system's liblzma.so.5 through
// the FFI; the decoder's version is most of the cost on a .ko.xz tree (5.8, Debian 13's, decodes
// that tree in about 60 % of 5.4's CPU). `lzma: 'ref'` runs both with Debian 13's 5.8.1 (kmod-ts
// through LD_LIBRARY_PATH at a directory holding only that library), as on a Debian 13 system;
// `lzma: 'host'` runs both with this machine's (kmod through its loader's --library-path, that
// library's directory first); without it, each uses its own (kmod 34.2 its 5.8.1, kmod-ts the host's).
//
// CLI: node scripts/bench-depmod.mjs [d12] [d13] [--runs N] [--lzma ref|host] [--json]
// Needs `npm run build` first. scripts/bench.mjs imports benchDepmodKernel() for its table.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKernel, projectDir } from './kernels.mjs';
import { ensureKmodRef, kmodRefArgv } from './kmod-ref.mjs';

const BIN = path.join(projectDir, 'bin', 'kmod-ts.js');
const TIME = ['/usr/bin/time'].find((p) => fs.existsSync(p));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Wall milliseconds of one run (a sample for the default timer). */
function wallOnly(cmd, argv, { env } = {}) {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { wall: performance.now() - t, cpu: NaN };
}

/** Peak RSS in KiB of one run of `cmd argv`. */
function peakKiB(cmd, argv, env) {
  if (!TIME) return NaN;
  const r = spawnSync(TIME, ['-f', '%M', cmd, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}\n${r.stderr}`);
  return Number(r.stderr.toString().trim().split('\n').pop());
}

/** This machine's liblzma.so.5 (what the dynamic loader finds), or undefined. */
export function hostLiblzma() {
  const r = spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
  const m = /^\s*liblzma\.so\.5 \(libc6,x86-64\) => (\S+)$/m.exec(r.stdout ?? '');
  return m ? fs.realpathSync(m[1]) : undefined;
}

/** A directory in `work` holding only `lib` as liblzma.so.5. */
function lzmaDir(work, lib) {
  const dir = path.join(work, 'liblzma');
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(lib, path.join(dir, 'liblzma.so.5'));
  return dir;
}

/** The liblzma versions a pairing uses, e.g. `5.8.1`, from the library's file name. */
const lzmaVersion = (lib) => /liblzma\.so\.(\d+\.\d+\.\d+)$/.exec(lib)?.[1] ?? path.basename(lib);

/**
 * kmod 34.2's depmod against kmod-ts's over one kernel's tree, alternating.
 * @param {'d12'|'d13'} name
 * @param {{ runs?: number, lzma?: 'ref'|'host', timer?: (cmd: string, argv: string[], opts?: { env?: object }) => { wall: number, cpu: number } }} [opts]
 * @returns {Promise<{ kernel: string, label: string, modules: number, kmod: object[], ours: object[],
 *   kmodPeakKiB: number, oursPeakKiB: number, lzma: { kmod: string, ours: string } }>}
 */
export async function benchDepmodKernel(name, { runs = 7, timer = wallOnly, lzma } = {}) {
  const k = await ensureKernel(name);
  const ref = await ensureKmodRef();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `bench-depmod-${name}-`));
  try {
    const refLib = fs.realpathSync(path.join(ref.libraryPath, 'liblzma.so.5'));
    const host = hostLiblzma();
    if (lzma === 'host' && host === undefined) throw new Error('no liblzma.so.5 on this machine');
    let kmodRef = ref;
    let oursEnv;
    if (lzma === 'ref') oursEnv = { ...process.env, LD_LIBRARY_PATH: lzmaDir(work, refLib) };
    if (lzma === 'host') kmodRef = { ...ref, libraryPath: `${lzmaDir(work, host)}:${ref.libraryPath}` };
    const used = { kmod: lzmaVersion(lzma === 'host' ? host : refLib), ours: lzmaVersion(lzma === 'ref' ? refLib : host ?? 'lzma-native') };
    const kmodArgv = kmodRefArgv(kmodRef, 'depmod', ['-b', k.root, '-o', path.join(work, 'kmod'), k.kver]);
    const oursArgv = [BIN, 'depmod', '-b', k.root, '-o', path.join(work, 'ours'), k.kver];
    const kmodRun = () => timer(kmodArgv[0], kmodArgv.slice(1));
    const oursRun = () => timer(process.execPath, oursArgv, { env: oursEnv });
    kmodRun();
    oursRun();
    const kmod = [];
    const ours = [];
    for (let i = 0; i < runs; i++) {
      if (i % 2 === 0) {
        kmod.push(kmodRun());
        ours.push(oursRun());
      } else {
        ours.push(oursRun());
        kmod.push(kmodRun());
      }
    }
    const dep = fs.readFileSync(path.join(work, 'ours', 'lib', 'modules', k.kver, 'modules.dep'), 'latin1');
    return {
      kernel: name,
      label: k.label,
      modules: dep.split('\n').length - 1,
      kmod,
      ours,
      kmodPeakKiB: peakKiB(kmodArgv[0], kmodArgv.slice(1)),
      oursPeakKiB: peakKiB(process.execPath, oursArgv, oursEnv),
      lzma: used,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function cli() {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt === -1 ? 7 : Number(args[runsAt + 1]);
  const lzmaAt = args.indexOf('--lzma');
  const lzma = lzmaAt === -1 ? undefined : args[lzmaAt + 1];
  const which = args.filter((a, i) => /^d1[23]$/.test(a) && args[i - 1] !== '--runs');
  const results = [];
  for (const name of which.length > 0 ? which : ['d12', 'd13']) {
    const r = await benchDepmodKernel(name, { runs, lzma });
    const kw = median(r.kmod.map((s) => s.wall));
    const ow = median(r.ours.map((s) => s.wall));
    results.push({ ...r, kmodMs: kw, oursMs: ow, ratio: ow / kw });
    if (!args.includes('--json')) {
      process.stdout.write(
        `${name} (${r.label}, ${r.modules} modules, ${runs} runs, liblzma kmod ${r.lzma.kmod} / kmod-ts ${r.lzma.ours}): kmod 34.2 ${kw.toFixed(0)} ms, kmod-ts ${ow.toFixed(0)} ms, ratio ${(ow / kw).toFixed(2)}; ` +
          `peak RSS kmod ${(r.kmodPeakKiB / 1024).toFixed(1)} MiB, kmod-ts ${(r.oursPeakKiB / 1024).toFixed(1)} MiB\n` +
          `  kmod    ${r.kmod.map((s) => s.wall.toFixed(0)).join(' ')}\n  kmod-ts ${r.ours.map((s) => s.wall.toFixed(0)).join(' ')}\n`,
      );
    }
  }
  if (args.includes('--json')) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli();
