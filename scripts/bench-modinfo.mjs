#!/usr/bin/env node
// Wall time of `modinfo` over every module of a kernel: kmod's (host /sbin/modinfo) against
// kmod-ts (node bin/kmod-ts.js modinfo), one invocation with all files as arguments, output to
// /dev/null. Runs alternate (kmod, ours, kmod, ours, ...) in the same sitting; reports medians
// and the ratio kmod-ts/kmod.
//
// CLI: node scripts/bench-modinfo.mjs [d12] [d13] [--runs N] [--json]
// Needs `npm run build` first; kernels come from scripts/kernels.mjs (cached).

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ensureKernel, projectDir } from './kernels.mjs';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const RUNS = runsAt === -1 ? 7 : Number(args[runsAt + 1]);
const which = args.filter((a, i) => /^d1[23]$/.test(a) && args[i - 1] !== '--runs');
const kernels = which.length > 0 ? which : ['d12', 'd13'];
const BIN = path.join(projectDir, 'bin', 'kmod-ts.js');
const KMOD = ['/usr/sbin/modinfo', '/sbin/modinfo'].find((p) => existsSync(p));
if (!KMOD) {
  process.stderr.write('bench-modinfo: kmod modinfo not found (apt-get install kmod)\n');
  process.exit(1);
}

function moduleFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.push(p);
    }
  };
  walk(path.join(dir, 'kernel'));
  return out.sort();
}

function time(cmd, argv) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'ignore'], argv0: 'modinfo' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (const name of kernels) {
  const k = await ensureKernel(name);
  const files = moduleFiles(k.modulesDir);
  // one warm-up each: page cache, node's compile cache
  time(KMOD, files);
  time(process.execPath, [BIN, 'modinfo', ...files]);
  const kmod = [];
  const ours = [];
  for (let i = 0; i < RUNS; i++) {
    kmod.push(time(KMOD, files));
    ours.push(time(process.execPath, [BIN, 'modinfo', ...files]));
  }
  const r = { kernel: name, label: k.label, modules: files.length, runs: RUNS, kmodMs: median(kmod), oursMs: median(ours) };
  r.ratio = r.oursMs / r.kmodMs;
  results.push(r);
  if (!args.includes('--json')) {
    process.stdout.write(
      `${name} (${k.label}, ${files.length} modules, ${RUNS} runs): kmod ${r.kmodMs.toFixed(0)} ms, kmod-ts ${r.oursMs.toFixed(0)} ms, ratio ${r.ratio.toFixed(2)}\n` +
        `  kmod    ${kmod.map((x) => x.toFixed(0)).join(' ')}\n  kmod-ts ${ours.map((x) => x.toFixed(0)).join(' ')}\n`,
    );
  }
}
if (args.includes('--json')) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
