#!/usr/bin/env node
// `npm run bench`: one table of kmod-ts's start-up, decompression, memory and bulk modinfo figures,
// each against its reference measured side by side in the same run (issue 6).
//
//   npm run build && node scripts/bench.mjs [--quick] [--runs N] [--no-guest] [--coldplug-kernels d12,d13] [--json]
//
// - start-up: `kmod-ts lsmod` over a generated sysroot (KMOD_TS_SYSROOT), `rmmod` of a module
//   that is not loaded, `insmod` on its error paths (a missing file, an empty file: both fail
//   before any module syscall), `--version` and `modinfo` of one .ko; then, reported without a
//   target, the paths that load yargs: `--help`, `completion bash`, a completion request, through the shipped entry (bin/kmod-ts.js → the bundle) and the
//   compiled modules (dist/src/cli/entry.js), each against `node -e 0`. Runs alternate
//   (node, bundle, dist, node, ...; the order rotates every round) and the medians of wall time
//   and of the child's user+sys CPU time (getrusage(RUSAGE_CHILDREN) deltas, microseconds) are
//   reported; CPU time is the steadier figure on a shared machine.
// - decompression: the largest module of the Debian 12 kernel (xfs.ko) compressed as kbuild does
//   (scripts/bench-decompress.mjs: xz --check=crc32 --lzma2=dict=1MiB, zstd, gzip -n).
//   Ours: one decompressSync of xfs timed inside a fresh node process whose codec is already
//   loaded (on dummy.ko), as insmod pays it; "warm" is the median of 5 more in that process;
//   "with codec load" is import + first call in a fresh process. Against `TOOL -dc FILE
//   >/dev/null`, alternating with a spawn of /bin/true whose median wall time is taken off the C
//   tool's. Ratio = throughput relative to the C tool (C time / our time). A second row gives
//   the C tool writing into a tmpfs file (/dev/shm), i.e. holding the whole image in memory as
//   insmod must, which pays for fresh pages as we do.
// - memory: peak RSS (VmHWM) of a node child that runs loadModule() on xfs on each loading path
//   with a syscall layer whose init_module only touches the image (mmap path: the real
//   mmap/munmap, init_module a no-op), against a bare `node` child; ratio (peak − bare) / the
//   module's size, and the marginal ratio against the same path loading dummy.ko (what the
//   library, koffi and the codecs cost on their own is not per-module memory).
// - depmod (scripts/bench-depmod.mjs): the full Debian 12 (.ko) and Debian 13 (.ko.xz) trees,
//   kmod 34.2's depmod (Debian 13's, through its own loader) against kmod-ts's, alternating,
//   each writing with -o into a scratch directory; medians of wall and CPU, and peak RSS. The
//   .ko.xz tree three times: each with its own liblzma (kmod 34.2 Debian 13's 5.8.1, kmod-ts this
//   machine's), then both with Debian 13's, then both with this machine's (the like-for-like
//   pairs the target applies to: liblzma's version is most of the cost of that tree).
// - bulk modinfo (scripts/bench-modinfo.mjs): every Debian 12 .ko and Debian 13 .ko.xz in one
//   invocation, kmod's modinfo against kmod-ts's (ours decodes in worker threads, so its CPU time
//   can exceed its wall time). `--quick` skips it.
// - modprobe: `modprobe --show-depends vfat` over the Debian 13 tree (-d -S, -C /dev/null) in the
//   start-up rows; and coldplug in a real kernel (scripts/bench-coldplug.mjs): Debian 13 booted in
//   QEMU, `modprobe -a -b` over every device's modalias with Debian's modprobe, kmod-ts's, and
//   kmod-ts's with `-j 2`, alternating, all modules unloaded before each run, medians of
//   `--coldplug-runs` (4; 2 with --quick) after a warm-up round. `--coldplug-kernels d12,d13`
//   boots both; `--no-guest` skips it (a few minutes under TCG). Not part of `npm test`.
//
// A benchmark, not a test: nothing is asserted; exit status 0 unless something failed to run.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { ensureKernel, projectDir } from './kernels.mjs';
import { child, compressKbuild, PEAK_RSS_JS } from './bench-decompress.mjs';
import { benchModinfoKernel, KMOD, median } from './bench-modinfo.mjs';
import { benchDepmodKernel } from './bench-depmod.mjs';
import { benchColdplug, COLDPLUG_CONTENDERS } from './bench-coldplug.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const at = args.indexOf(name);
  return at === -1 ? dflt : Number(args[at + 1]);
};
const QUICK = args.includes('--quick');
const STARTUP_RUNS = opt('--runs', 17);
const DECOMPRESS_RUNS = opt('--decompress-runs', 21);
const MEMORY_RUNS = opt('--memory-runs', 5);
const MODINFO_RUNS = opt('--modinfo-runs', 5);
const DEPMOD_RUNS = opt('--depmod-runs', 7);
const COLDPLUG_RUNS = opt('--coldplug-runs', QUICK ? 2 : 4);

const started = performance.now();
const BIN = path.join(projectDir, 'bin', 'kmod-ts.js');
const CLI = path.join(projectDir, 'dist', 'src', 'cli', 'entry.js');
// bin/kmod-ts.js falls back to dist/src silently; the table should say which one it measured.
const BUNDLE = ['kmod-ts.cjs', 'kmod-ts.mjs'].map((f) => path.join(projectDir, 'dist', 'bundle', f)).find((f) => fs.existsSync(f));
if (!fs.existsSync(CLI) || !BUNDLE) {
  process.stderr.write('bench: dist/src/cli/entry.js or dist/bundle/kmod-ts.{cjs,mjs} missing: run npm run build first\n');
  process.exit(1);
}
const lib = (name) => pathToFileURL(path.join(projectDir, 'dist', 'src', name)).href;
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Timing a child: wall time around spawnSync, CPU time from getrusage(RUSAGE_CHILDREN), which
// grows by exactly the reaped child's user+sys. Through koffi (already a dependency) for
// microseconds; /proc/self/stat's cutime+cstime (clock ticks) if koffi cannot load.

const childCpuMs = (() => {
  try {
    const koffi = createRequire(import.meta.url)('koffi');
    const getrusage = koffi.load('libc.so.6').func('int getrusage(int who, _Out_ uint8_t *usage)');
    const buf = Buffer.alloc(144); // struct rusage on 64-bit Linux: 2 timevals + 14 longs
    const RUSAGE_CHILDREN = -1;
    return () => {
      if (getrusage(RUSAGE_CHILDREN, buf) !== 0) throw new Error('getrusage failed');
      const l = new BigInt64Array(buf.buffer, buf.byteOffset, 4);
      return Number(l[0] + l[2]) * 1e3 + Number(l[1] + l[3]) / 1e3;
    };
  } catch {
    const hz = 100; // USER_HZ on every Linux architecture Node runs on
    return () => {
      const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
      return ((Number(f[14]) + Number(f[15])) * 1000) / hz; // cutime, cstime (fields 16, 17)
    };
  }
})();

const devnull = fs.openSync('/dev/null', 'w');

/** Run `cmd argv` with stdout to /dev/null (or to the fd `stdout`); its wall and CPU milliseconds. */
function measure(cmd, argv, { env, expect = [0], stdout = devnull } = {}) {
  const cpu0 = childCpuMs();
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', stdout, 'pipe'], env: env ?? process.env });
  const wall = performance.now() - t0;
  const cpu = childCpuMs() - cpu0;
  if (r.error) throw r.error;
  if (!expect.includes(r.status)) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { wall, cpu };
}

/** Medians of wall and CPU over samples. */
const medians = (samples) => ({ wall: median(samples.map((s) => s.wall)), cpu: median(samples.map((s) => s.cpu)) });

// ---------------------------------------------------------------------------------------------
// Fixtures

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kmod-ts-bench-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

const d12 = await ensureKernel('d12');
const xfs = path.join(d12.modulesDir, 'kernel/fs/xfs/xfs.ko');
const dummy = path.join(d12.modulesDir, 'kernel/drivers/net/dummy.ko');
const xfsSize = fs.statSync(xfs).size;
const dummySize = fs.statSync(dummy).size;

/** A sysroot with 60 loaded modules (names and sizes from Debian 12's), a few with holders. */
function makeSysroot(dir) {
  const names = execFileSync('find', [path.join(d12.modulesDir, 'kernel'), '-name', '*.ko'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .sort()
    .filter((_, i) => i % 18 === 0)
    .slice(0, 60)
    .map((f) => path.basename(f, '.ko').replaceAll('-', '_'));
  const lines = [];
  names.forEach((name, i) => {
    const holders = i % 7 === 0 ? names.slice(i + 1, i + 3) : [];
    const size = 8192 * (1 + ((i * 37) % 50));
    lines.push(`${name} ${size} ${holders.length} ${holders.map((h) => h + ',').join('') || '-'} Live 0x0000000000000000`);
    const m = path.join(dir, 'sys/module', name);
    fs.mkdirSync(path.join(m, 'holders'), { recursive: true });
    fs.writeFileSync(path.join(m, 'coresize'), `${size}\n`);
    fs.writeFileSync(path.join(m, 'refcnt'), `${holders.length}\n`);
    fs.writeFileSync(path.join(m, 'initstate'), 'live\n');
    for (const h of holders) fs.writeFileSync(path.join(m, 'holders', h), '');
  });
  fs.mkdirSync(path.join(dir, 'proc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'proc/modules'), lines.join('\n') + '\n');
  return dir;
}
const sysroot = makeSysroot(path.join(work, 'root'));
const empty = path.join(work, 'empty.ko');
fs.writeFileSync(empty, '');

const rows = []; // [section, what, ours, reference, ratio, target]
const fmt = (x, d = 0) => x.toFixed(d);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// ---------------------------------------------------------------------------------------------
// Start-up

const STARTUP = [
  ['lsmod (60-module sysroot)', ['lsmod'], [0]],
  ['rmmod not-loaded', ['rmmod', 'not_loaded'], [1]],
  ['insmod /nonexistent.ko', ['insmod', '/nonexistent.ko'], [1]],
  ['insmod EMPTY.ko', ['insmod', empty], [1]],
  ['--version', ['--version'], [0]],
  ['modinfo dummy.ko', ['modinfo', dummy], [0]],
];
// The yargs surface (src/cli/surface.ts): loaded only by these; their own figures, no target.
const SURFACE = [
  ['kmod-ts --help (yargs)', ['--help'], [0]],
  ['kmod-ts completion bash (yargs)', ['completion', 'bash'], [0]],
  ['completion request: rmmod <TAB> (yargs)', ['--get-yargs-completions', 'rmmod', ''], [0]],
];
// modprobe's start-up: one look-up through the Debian 13 tree's indexes (read lazily, not parsed
// whole), no configuration of this machine's.
const APPLETS = execFileSync(process.execPath, [BIN, '--list'], { encoding: 'utf8' }).split('\n');
const d13 = await ensureKernel('d13');
if (APPLETS.includes('modprobe')) {
  STARTUP.push([`modprobe --show-depends vfat (${d13.label} tree)`, ['modprobe', '-d', d13.root, '-S', d13.kver, '-C', '/dev/null', '--show-depends', 'vfat'], [0]]);
}
const ENTRIES = [
  [`bin/kmod-ts.js (${path.basename(BUNDLE)})`, BIN],
  ['dist/src/cli/entry.js', CLI],
];
log(`start-up: ${STARTUP.length + SURFACE.length} commands × (node -e 0, ${ENTRIES.length} entries) × ${STARTUP_RUNS} runs`);
const env = { ...process.env, KMOD_TS_SYSROOT: sysroot };
delete env.NODE_OPTIONS;
for (const [what, argv, expect, target = '≤ 1.25×'] of [...STARTUP, ...SURFACE.map((r) => [...r, 'reported'])]) {
  const contenders = [
    { name: 'node -e 0', run: () => measure(process.execPath, ['-e', '0'], { env }) },
    ...ENTRIES.map(([name, entry]) => ({ name, run: () => measure(process.execPath, [entry, ...argv], { env, expect }) })),
  ];
  for (const c of contenders) c.run(); // warm-up: page cache, node's code cache
  const samples = contenders.map(() => []);
  for (let i = 0; i < STARTUP_RUNS; i++) {
    for (let j = 0; j < contenders.length; j++) {
      const k = (i + j) % contenders.length; // rotate the order each round
      samples[k].push(contenders[k].run());
    }
  }
  const [base, ...ours] = samples.map(medians);
  ours.forEach((m, j) => {
    rows.push([
      'start-up',
      `${what}, ${ENTRIES[j][0]}`,
      `${fmt(m.wall)} ms wall, ${fmt(m.cpu)} ms cpu`,
      `node -e 0: ${fmt(base.wall)} / ${fmt(base.cpu)}`,
      `${fmt(m.wall / base.wall, 2)}× / ${fmt(m.cpu / base.cpu, 2)}×`,
      target,
    ]);
  });
}

// ---------------------------------------------------------------------------------------------
// Decompression

log(`decompression: xfs.ko (${xfsSize} bytes) × xz, zstd, gzip × ${DECOMPRESS_RUNS} runs`);
const compressed = compressKbuild(xfs, work);
const warmups = Object.fromEntries(compressKbuild(dummy, work).map((c) => [c.format, c.file]));
const { decompressSync } = await import(lib('file/compression/index.js'));
const xfsData = fs.readFileSync(xfs);
const spawnCosts = [];
// Ours is timed inside fresh node processes, as insmod runs it: the codec is loaded first (on
// dummy.ko of the same format), then ONE decode of xfs is timed, wall and CPU, into memory the
// process has never touched. A loop in this process would flatter (freed buffers reused) or
// wrong us (every spawnSync forks this process, and each page it writes afterwards faults once
// more for copy-on-write). `warm` is the median of 5 more decodes in the same child.
const decodeChild = path.join(work, 'decode-child.mjs');
fs.writeFileSync(
  decodeChild,
  `import fs from 'node:fs';
const [format, file, warmup] = process.argv.slice(2);
const { decompressSync } = await import(${JSON.stringify(lib('file/compression/index.js'))});
decompressSync(format, fs.readFileSync(warmup));
const input = fs.readFileSync(file);
const time = () => { const c = process.cpuUsage(); const t = performance.now(); const n = decompressSync(format, input).length; const c1 = process.cpuUsage(c); return { wall: performance.now() - t, cpu: (c1.user + c1.system) / 1e3, n }; };
const first = time();
const warm = Array.from({ length: 5 }, time);
const med = (k) => warm.map((w) => w[k]).sort((a, b) => a - b)[2];
console.log(JSON.stringify({ first, warm: { wall: med('wall'), cpu: med('cpu') } }));
`,
);
const inMemoryDir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const inMemoryFile = path.join(inMemoryDir, `kmod-ts-bench-${process.pid}.out`);
const inMemoryFd = fs.openSync(inMemoryFile, 'w');
process.on('exit', () => fs.rmSync(inMemoryFile, { force: true }));
const runDecodeChild = (format, file) => {
  const r = spawnSync(process.execPath, [decodeChild, format, file, warmups[format]], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`decode child (${format}): ${r.stderr}`);
  return JSON.parse(r.stdout);
};
for (const { tool, format, file } of compressed) {
  const input = fs.readFileSync(file);
  const coldSamples = [0, 1, 2].map(() =>
    child(`
      import fs from 'node:fs';
      const input = fs.readFileSync(${JSON.stringify(file)});
      const t = performance.now();
      const { decompressSync } = await import(${JSON.stringify(lib('file/compression/index.js'))});
      decompressSync(${JSON.stringify(format)}, input);
      console.log(JSON.stringify(performance.now() - t));`),
  );
  if (!decompressSync(format, input).equals(xfsData)) throw new Error(`${format}: wrong output`);
  const ours = [];
  const warm = [];
  const theirs = [];
  const theirsInMemory = [];
  const spawn = [];
  const steps = [
    () => {
      const r = runDecodeChild(format, file);
      if (r.first.n !== xfsSize) throw new Error(`${format}: decoded ${r.first.n} bytes, want ${xfsSize}`);
      ours.push(r.first);
      warm.push(r.warm);
    },
    () => theirs.push(measure(tool, ['-dc', file])),
    () => {
      // The C tool writing the whole image into memory (a tmpfs file emptied first), as insmod
      // must hold it: a second reference that pays for fresh pages as we do.
      fs.ftruncateSync(inMemoryFd, 0);
      theirsInMemory.push(measure(tool, ['-dc', file], { stdout: inMemoryFd }));
    },
    () => spawn.push(measure('true', [])), // what spawning costs the C tool, in the same rounds
  ];
  for (let i = 0; i < DECOMPRESS_RUNS; i++) for (let j = 0; j < steps.length; j++) steps[(i + j) % steps.length]();
  const o = medians(ours);
  const w = medians(warm);
  const t = medians(theirs);
  const m = medians(theirsInMemory);
  const s = medians(spawn);
  spawnCosts.push(s.wall);
  // The C tool's figures, spawn cost taken off its wall time, and our throughput relative to
  // them. Past noise the difference can vanish: then there is no wall figure to give.
  const against = (c) => {
    const wall = c.wall - s.wall;
    return {
      time: `${wall > 0 ? fmt(wall, 1) : 'n/a'} / ${fmt(c.cpu, 1)}`,
      ratio: `${wall > 0 ? `${fmt(wall / o.wall, 2)}×` : 'n/a'} / ${fmt(c.cpu / o.cpu, 2)}×`,
    };
  };
  const [toNull, toMemory] = [against(t), against(m)];
  rows.push([
    'decompress',
    `xfs.ko${path.extname(file)} (${input.length} → ${xfsSize} B)`,
    `${fmt(o.wall, 1)} ms wall, ${fmt(o.cpu, 1)} cpu; warm ${fmt(w.wall, 1)}; with codec load ${fmt(median(coldSamples), 0)}`,
    `${tool} -dc: ${toNull.time}`,
    toNull.ratio,
    '≥ 0.9×',
  ]);
  rows.push(['', `  same, the C tool writing into ${inMemoryDir} (in memory)`, '', `${tool} -dc >FILE: ${toMemory.time}`, toMemory.ratio, '']);
}
fs.closeSync(inMemoryFd);
fs.rmSync(inMemoryFile, { force: true });
rows.push(['decompress', `(C wall: minus /bin/true's spawn, ${spawnCosts.map((x) => fmt(x, 1)).join(' / ')} ms)`, '', '', '', '']);

// ---------------------------------------------------------------------------------------------
// Peak memory per loading path

const emptyRoot = path.join(work, 'empty-root');
fs.mkdirSync(emptyRoot);
const byExt = Object.fromEntries(compressed.map((c) => [c.format, c.file]));
for (const c of compressKbuild(dummy, work)) byExt[`dummy-${c.format}`] = c.file;
const PATHS = [
  ['mmap+init_module', 'mmap', xfs, dummy, '≈ 0×'],
  ['read+init_module', 'read', xfs, dummy, '≈ 1× (a copy)'],
  ['read+xz+init_module', 'read', byExt.xz, byExt['dummy-xz'], '≤ 1.5×'],
  ['read+zstd+init_module', 'read', byExt.zstd, byExt['dummy-zstd'], '≤ 1.5×'],
  ['read+gzip+init_module', 'read', byExt.gzip, byExt['dummy-gzip'], '≤ 1.5×'],
  ['finit_module (in-kernel xz)', 'finit', byExt.xz, byExt['dummy-xz'], '≈ 0×'],
];
/** Peak RSS of a child that loads FILE on PATH with a no-op kernel. */
const loadPeak = (loadPath, file) =>
  child(`
    import fs from 'node:fs';
    const { loadModule } = await import(${JSON.stringify(lib('index.js'))});
    const { nativeSyscalls } = await import(${JSON.stringify(lib('kernel/syscalls.js'))});
    const real = nativeSyscalls();
    let touched = 0;
    const sys = {
      ...real,
      initModule(image) {
        // the kernel's copy_from_user reads every page; a mapping is left alone (not copied)
        if (image instanceof Uint8Array) for (let i = 0; i < image.length; i += 4096) touched += image[i];
      },
      finitModule() {},
      deleteModule() {},
    };
    const r = await loadModule(${JSON.stringify(file)}, { sys, path: ${JSON.stringify(loadPath)}, root: ${JSON.stringify(emptyRoot)} });
    console.log(JSON.stringify({ peak: ${PEAK_RSS_JS}, via: r.via, touched }));`);
const barePeak = () => child(`import fs from 'node:fs'; console.log(JSON.stringify(${PEAK_RSS_JS}));`);
log(`memory: ${PATHS.length} loading paths × (bare node, xfs, dummy) × ${MEMORY_RUNS} runs`);
for (const [label, loadPath, file, small, target] of PATHS) {
  const bare = [];
  const big = [];
  const little = [];
  let via;
  for (let i = 0; i < MEMORY_RUNS; i++) {
    bare.push(barePeak());
    const r = loadPeak(loadPath, file);
    via = r.via;
    big.push(r.peak);
    little.push(loadPeak(loadPath, small).peak);
  }
  const [b, p, s] = [median(bare), median(big), median(little)];
  rows.push([
    'memory',
    `${via}, xfs`,
    `peak ${mb(p)} (dummy.ko ${mb(s)})`,
    `bare node ${mb(b)}`,
    `${fmt((p - b) / xfsSize, 2)}× / ${fmt((p - s) / (xfsSize - dummySize), 2)}×`,
    target,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Bulk modinfo

if (QUICK) {
  rows.push(['modinfo', 'bulk modinfo skipped (--quick)', '', '', '', '']);
} else if (!KMOD) {
  rows.push(['modinfo', 'bulk modinfo skipped: no kmod modinfo on this machine', '', '', '', '']);
} else {
  for (const name of ['d12', 'd13']) {
    log(`modinfo: ${name} × ${MODINFO_RUNS} runs`);
    const r = await benchModinfoKernel(name, { runs: MODINFO_RUNS, warmup: false, timer: (cmd, argv) => measure(cmd, argv) });
    const k = medians(r.kmod);
    const o = medians(r.ours);
    rows.push([
      'modinfo',
      `${r.label}: ${r.modules} ${name === 'd12' ? '.ko' : '.ko.xz'} in one call`,
      `${fmt(o.wall)} ms wall, ${fmt(o.cpu)} ms cpu`,
      `kmod modinfo: ${fmt(k.wall)} / ${fmt(k.cpu)}`,
      `${fmt(o.wall / k.wall, 2)}× / ${fmt(o.cpu / k.cpu, 2)}×`,
      '',
    ]);
  }
}

// ---------------------------------------------------------------------------------------------
// depmod

// The .ko.xz tree three ways (see scripts/bench-depmod.mjs): each tool with its own liblzma (kmod
// 34.2 with Debian 13's 5.8.1, kmod-ts with this machine's), then both with the same one, Debian
// 13's and this machine's: the like-for-like pairs, since the decoder's version is most of the cost.
const DEPMOD_CASES = [
  { name: 'd12' },
  { name: 'd13' },
  { name: 'd13', lzma: 'ref' },
  { name: 'd13', lzma: 'host' },
];
for (const { name, lzma } of DEPMOD_CASES) {
  log(`depmod: ${name}${lzma ? ` (liblzma: ${lzma})` : ''} × ${DEPMOD_RUNS} runs`);
  try {
    const r = await benchDepmodKernel(name, { runs: DEPMOD_RUNS, lzma, timer: (cmd, argv, o) => measure(cmd, argv, o) });
    const k = medians(r.kmod);
    const o = medians(r.ours);
    const libs = name === 'd12' ? '' : r.lzma.kmod === r.lzma.ours ? `, both with liblzma ${r.lzma.ours}` : `, liblzma: kmod ${r.lzma.kmod}, kmod-ts ${r.lzma.ours}`;
    rows.push([
      'depmod',
      `${r.label}: ${r.modules} ${name === 'd12' ? '.ko' : '.ko.xz'}, all 11 files${libs}; peak RSS ${fmt(r.oursPeakKiB / 1024, 1)} MiB (kmod ${fmt(r.kmodPeakKiB / 1024, 1)})`,
      `${fmt(o.wall)} ms wall, ${fmt(o.cpu)} ms cpu`,
      `kmod 34.2 depmod: ${fmt(k.wall)} / ${fmt(k.cpu)}`,
      `${fmt(o.wall / k.wall, 2)}× / ${fmt(o.cpu / k.cpu, 2)}×`,
      name === 'd12' ? '≤ 1.5× wall' : lzma ? '≤ 0.8× wall' : '(mixed liblzma)',
    ]);
  } catch (e) {
    rows.push(['depmod', `${name}: not measured (${e.message.split('\n')[0]})`, '', '', '', '']);
  }
}

// ---------------------------------------------------------------------------------------------
// Coldplug in a real kernel (scripts/bench-coldplug.mjs)

if (!APPLETS.includes('modprobe')) {
  rows.push(['coldplug', 'skipped: no modprobe applet in kmod-ts --list', '', '', '', '']);
} else if (args.includes('--no-guest')) {
  rows.push(['coldplug', 'skipped (--no-guest)', '', '', '', '']);
} else {
  const kernels = (args.includes('--coldplug-kernels') ? args[args.indexOf('--coldplug-kernels') + 1] : 'd13').split(',');
  for (const kernel of kernels) {
    log(`coldplug: ${kernel} in QEMU, ${COLDPLUG_RUNS} rounds + 1 warm-up × ${COLDPLUG_CONTENDERS.length} contenders`);
    const r = await benchColdplug({ kernel, runs: COLDPLUG_RUNS });
    const [ref, ...ours] = r.contenders;
    for (const c of ours) {
      rows.push([
        'coldplug',
        `${r.kver}: ${c.name.replace(/^kmod-ts /, '')}, ${r.aliases} modaliases → ${c.modules.join('/')} modules`,
        `${fmt(c.wall)} ms wall, ${fmt(c.cpu)} ms cpu`,
        `${ref.name.replace(/ -a -b$/, '')} (${r.reference.replace(/ version/, '')}): ${fmt(ref.wall)} / ${fmt(ref.cpu)} (→ ${ref.modules.join('/')})`,
        `${fmt(c.wall / ref.wall, 2)}× / ${fmt(c.cpu / ref.cpu, 2)}×`,
        '≤ 1.0× wall',
      ]);
    }
    if (r.baseline) rows.push(['coldplug', `  (left loaded after unloading, in every run's start: ${r.baseline})`, '', '', '', '']);
  }
}

// ---------------------------------------------------------------------------------------------
// The table

const elapsed = (performance.now() - started) / 1000;
const HEAD = ['', 'measurement', 'kmod-ts', 'reference (wall / cpu ms)', 'ratio wall / cpu', 'target'];
if (args.includes('--json')) {
  process.stdout.write(JSON.stringify({ rows, elapsed }, null, 2) + '\n');
} else {
  const widths = HEAD.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const out = [
    `kmod-ts bench: node ${process.version}, ${os.cpus().length} CPUs, load ${load}; medians of ${STARTUP_RUNS} (start-up), ` +
      `${DECOMPRESS_RUNS} (decompression), ${MEMORY_RUNS} (memory)${QUICK ? '' : `, ${MODINFO_RUNS} (modinfo)`} alternating runs`,
    'ratios: start-up, depmod and modinfo = ours / reference (lower is better); decompression = reference / ours (throughput, higher is better);',
    'memory = (peak − bare node) / module size, then the marginal (peak − same path with dummy.ko) / size difference',
    '',
    line(HEAD),
    line(widths.map((w) => '-'.repeat(w))),
  ];
  let section;
  for (const r of rows) {
    out.push(line([r[0] === section ? '' : r[0], ...r.slice(1)]));
    section = r[0];
  }
  out.push('', `elapsed ${elapsed.toFixed(0)} s`);
  process.stdout.write(out.join('\n') + '\n');
}
