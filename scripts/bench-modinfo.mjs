#!/usr/bin/env node
// Wall time of `modinfo` over every module of a kernel: kmod's (host /sbin/modinfo) against
// kmod-ts (node bin/kmod-ts.js modinfo), one invocation with all files as arguments, output to
// /dev/null. Runs alternate (kmod, ours, kmod, ours, ...) in the same sitting; reports medians
// and the ratio kmod-ts/kmod.
//
// CLI: node scripts/bench-modinfo.mjs [d12] [d13] [--runs N] [--json]
// Needs `npm run build` first; kernels come from scripts/kernels.mjs (cached).
// scripts/bench.mjs imports benchModinfoKernel() for its table.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKernel, moduleFiles, projectDir } from './kernels.mjs';

const BIN = path.join(projectDir, 'bin', 'kmod-ts.js');
/** kmod's modinfo on this machine, or undefined. */
export const KMOD = ['/usr/sbin/modinfo', '/sbin/modinfo'].find((p) => existsSync(p));

export { moduleFiles };

/** Wall milliseconds of one `cmd argv...` with no output. */
export function time(cmd, argv) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'ignore'], argv0: 'modinfo' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}`);
  return ms;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * kmod's modinfo against kmod-ts's over one kernel's modules, alternating.
 * @param {string} name 'd12' | 'd13'
 * @param {{ runs?: number, warmup?: boolean, timer?: (cmd: string, argv: string[]) => any }} [opts]
 *   `timer` returns one sample (default: wall ms from {@link time}); the result's kmodMs/oursMs
 *   are medians when samples are numbers
 */
export async function benchModinfoKernel(name, { runs = 7, warmup = true, timer = time } = {}) {
  if (!KMOD) throw new Error('kmod modinfo not found (apt-get install kmod)');
  const k = await ensureKernel(name);
  const files = moduleFiles(k.modulesDir);
  if (warmup) {
    // one warm-up each: page cache, node's compile cache
    timer(KMOD, files);
    timer(process.execPath, [BIN, 'modinfo', ...files]);
  }
  const kmod = [];
  const ours = [];
  for (let i = 0; i < runs; i++) {
    kmod.push(timer(KMOD, files));
    ours.push(timer(process.execPath, [BIN, 'modinfo', ...files]));
  }
  const r = { kernel: name, label: k.label, modules: files.length, runs, kmod, ours };
  if (typeof kmod[0] === 'number') {
    r.kmodMs = median(kmod);
    r.oursMs = median(ours);
    r.ratio = r.oursMs / r.kmodMs;
  }
  return r;
}

async function cli() {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt === -1 ? 7 : Number(args[runsAt + 1]);
  const which = args.filter((a, i) => /^d1[23]$/.test(a) && args[i - 1] !== '--runs');
  const kernels = which.length > 0 ? which : ['d12', 'd13'];
  if (!KMOD) {
    process.stderr.write('bench-modinfo: kmod modinfo not found (apt-get install kmod)\n');
    process.exit(1);
  }
  const results = [];
  for (const name of kernels) {
    const { kmod, ours, ...r } = await benchModinfoKernel(name, { runs });
    results.push(r);
    if (!args.includes('--json')) {
      process.stdout.write(
        `${name} (${r.label}, ${r.modules} modules, ${runs} runs): kmod ${r.kmodMs.toFixed(0)} ms, kmod-ts ${r.oursMs.toFixed(0)} ms, ratio ${r.ratio.toFixed(2)}\n` +
          `  kmod    ${kmod.map((x) => x.toFixed(0)).join(' ')}\n  kmod-ts ${ours.map((x) => x.toFixed(0)).join(' ')}\n`,
      );
    }
  }
  if (args.includes('--json')) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli();
