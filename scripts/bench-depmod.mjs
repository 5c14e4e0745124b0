#!/usr/bin/env node
// depmod over a whole Debian cloud kernel tree: kmod 34.2 (Debian 13's, scripts/kmod-ref.mjs, run
// through its own dynamic loader) against kmod-ts (node bin/kmod-ts.js depmod), each writing with
// -o into its own scratch directory (the tree itself is only read). Runs alternate (kmod, ours,
// kmod, ...) in the same sitting after one warm-up each; medians of wall and CPU time, and each
// tool's peak RSS (one more run of each under /usr/bin/time -f %M, or getrusage's ru_maxrss).
//
// CLI: node scripts/bench-depmod.mjs [d12] [d13] [--runs N] [--json]
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
function wallOnly(cmd, argv) {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { wall: performance.now() - t, cpu: NaN };
}

/** Peak RSS in KiB of one run of `cmd argv`. */
function peakKiB(cmd, argv) {
  if (!TIME) return NaN;
  const r = spawnSync(TIME, ['-f', '%M', cmd, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}\n${r.stderr}`);
  return Number(r.stderr.toString().trim().split('\n').pop());
}

/**
 * kmod 34.2's depmod against kmod-ts's over one kernel's tree, alternating.
 * @param {'d12'|'d13'} name
 * @param {{ runs?: number, timer?: (cmd: string, argv: string[]) => { wall: number, cpu: number } }} [opts]
 * @returns {Promise<{ kernel: string, label: string, modules: number, kmod: object[], ours: object[],
 *   kmodPeakKiB: number, oursPeakKiB: number }>}
 */
export async function benchDepmodKernel(name, { runs = 7, timer = wallOnly } = {}) {
  const k = await ensureKernel(name);
  const ref = await ensureKmodRef();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `bench-depmod-${name}-`));
  try {
    const kmodArgv = kmodRefArgv(ref, 'depmod', ['-b', k.root, '-o', path.join(work, 'kmod'), k.kver]);
    const oursArgv = [BIN, 'depmod', '-b', k.root, '-o', path.join(work, 'ours'), k.kver];
    const kmodRun = () => timer(kmodArgv[0], kmodArgv.slice(1));
    const oursRun = () => timer(process.execPath, oursArgv);
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
      oursPeakKiB: peakKiB(process.execPath, oursArgv),
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function cli() {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt === -1 ? 7 : Number(args[runsAt + 1]);
  const which = args.filter((a, i) => /^d1[23]$/.test(a) && args[i - 1] !== '--runs');
  const results = [];
  for (const name of which.length > 0 ? which : ['d12', 'd13']) {
    const r = await benchDepmodKernel(name, { runs });
    const kw = median(r.kmod.map((s) => s.wall));
    const ow = median(r.ours.map((s) => s.wall));
    results.push({ ...r, kmodMs: kw, oursMs: ow, ratio: ow / kw });
    if (!args.includes('--json')) {
      process.stdout.write(
        `${name} (${r.label}, ${r.modules} modules, ${runs} runs): kmod 34.2 ${kw.toFixed(0)} ms, kmod-ts ${ow.toFixed(0)} ms, ratio ${(ow / kw).toFixed(2)}; ` +
          `peak RSS kmod ${(r.kmodPeakKiB / 1024).toFixed(1)} MiB, kmod-ts ${(r.oursPeakKiB / 1024).toFixed(1)} MiB\n` +
          `  kmod    ${r.kmod.map((s) => s.wall.toFixed(0)).join(' ')}\n  kmod-ts ${r.ours.map((s) => s.wall.toFixed(0)).join(' ')}\n`,
      );
    }
  }
  if (args.includes('--json')) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli();
