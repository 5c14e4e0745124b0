#!/usr/bin/env node
// Fuzzing: every parser and decoder that reads untrusted bytes, driven with seeded mutations of
// real small modules (fast-check generates them; see test/fuzz/). Each target runs in its own
// process so that a native crash (a signal) or a hang (no new input for a while) is caught too.
//
//   npm run build && npm run fuzz -- [--time SECONDS | --runs N] [--seed N] [--target a,b]
//                                    [--out DIR] [--hang SECONDS]
//   npm run fuzz -- --target NAME --replay FILE     (run one saved input)
//
// --time: seconds per target (default 10); --runs: a fixed number of inputs per target instead
// (the short pass `npm test` runs); --seed: fast-check's seed (default: random, printed);
// --out: where reproducers go (default ./fuzz-out). Exit status 1 when anything was found.
// Per input: no exception but the target's typed error, time within a budget linear in the
// input's size, memory within the cap (64 MiB) plus a margin.

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runner = path.join(projectDir, 'dist/test/fuzz/run-target.js');
const TARGETS = ['elf', 'modinfo-strings', 'signature', 'pkcs7', 'force-strip', 'gzip', 'xz', 'zstd', 'xz-index', 'modinfo-image', 'depmod-image', 'proc-modules', 'sysfs', 'index-bin', 'modprobe.d', 'fnmatch', 'module-db', 'depmod.d'];

function option(args, name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
}

/**
 * Run one target in a child; resolves to its JSON report, or a crash/hang report.
 * @returns {Promise<{ target: string, runs: number, ms: number, failure?: { message: string, file?: string } }>}
 */
function runTarget(target, { seed, time, runs, out, work, hangMs, replay }) {
  const args = [runner, '--target', target, '--out', out, '--work', work];
  if (replay) args.push('--replay', replay);
  else {
    args.push('--seed', String(seed));
    if (time !== undefined) args.push('--time', String(time));
    else args.push('--runs', String(runs));
  }
  const current = path.join(work, `current-${target}.bin`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const started = Date.now();
    let hung = false;
    // A hang: the input file has not been rewritten for hangMs (the child writes each input).
    const watchdog = setInterval(() => {
      const last = existsSync(current) ? statSync(current).mtimeMs : started;
      if (Date.now() - Math.max(last, started) > hangMs) {
        hung = true;
        child.kill('SIGKILL');
      }
    }, 500);
    child.on('close', (code, signal) => {
      clearInterval(watchdog);
      const line = stdout.trim().split('\n').pop();
      if (code === 0 && line?.startsWith('{')) return resolve(JSON.parse(line));
      // A crash or a hang: the input being run is the reproducer.
      const kind = hung ? 'hang' : signal ? `crash (${signal})` : `exit ${code}`;
      let file;
      if (existsSync(current)) {
        file = path.join(out, `${target}-${hung ? 'hang' : 'crash'}-${Date.now()}.bin`);
        copyFileSync(current, file);
      }
      resolve({ target, runs: NaN, ms: Date.now() - started, failure: { message: `${kind}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, file } });
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  if (!existsSync(runner)) {
    console.error('fuzz: dist/test/fuzz/run-target.js is missing: run `npm run build` first');
    return 2;
  }
  const only = option(args, 'target');
  const targets = only ? only.split(',') : TARGETS;
  const unknown = targets.filter((t) => !TARGETS.includes(t));
  if (unknown.length) {
    console.error(`fuzz: unknown target ${unknown.join(', ')} (targets: ${TARGETS.join(', ')})`);
    return 2;
  }
  const runs = option(args, 'runs');
  const time = runs === undefined ? Number(option(args, 'time', '10')) : undefined;
  const seed = Number(option(args, 'seed', String(Math.floor(Math.random() * 2 ** 31))));
  const out = path.resolve(option(args, 'out', 'fuzz-out'));
  const hangMs = 1000 * Number(option(args, 'hang', '20'));
  const replay = option(args, 'replay');
  mkdirSync(out, { recursive: true });
  // The input under test is rewritten for every run: on tmpfs where there is one.
  const work = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'kmod-ts-fuzz-'));
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
  console.log(`fuzz: seed ${seed}, ${replay ? `replay ${replay}` : time !== undefined ? `${time} s per target` : `${runs} inputs per target`}, reproducers in ${out}`);
  const rows = [];
  for (const target of targets) {
    const r = await runTarget(target, { seed, time, runs: Number(runs), out, work, hangMs, replay });
    rows.push(r);
    const rate = r.runs / (r.ms / 1000);
    console.log(
      `${target.padEnd(16)} ${String(r.runs).padStart(8)} inputs ${(r.ms / 1000).toFixed(1).padStart(6)} s ${Number.isFinite(rate) ? rate.toFixed(0).padStart(7) : '      -'}/s  ${r.failure ? `FOUND: ${r.failure.message}${r.failure.file ? ` → ${r.failure.file}` : ''}` : 'ok'}`,
    );
  }
  const found = rows.filter((r) => r.failure);
  const total = rows.reduce((n, r) => n + (Number.isFinite(r.runs) ? r.runs : 0), 0);
  console.log(`fuzz: ${total} inputs over ${rows.length} targets, ${found.length} finding(s)`);
  return found.length ? 1 : 0;
}

process.exitCode = await main();
