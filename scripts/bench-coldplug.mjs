#!/usr/bin/env node
// Coldplug in a real kernel: `modprobe -a -b` over every device's modalias in the guest (QEMU,
// TCG), Debian's modprobe against kmod-ts's (/sbin/modprobe) with and without `-j 2`, in one
// boot. Debian's modprobe is the guest's own Debian release's: kmod 34.2 in the Debian 13 guest
// (/opt/kmod-ref/bin), kmod 30 in the Debian 12 one (/opt/kmod/bin; scripts/mkrootfs.mjs
// kmodRefBin); the output names the version. Every run starts from the same state: all modules unloaded with kmod's
// rmmod until nothing more goes (the kernel keeps a few the coldplug loaded, e.g.
// crct10dif_pclmul, which the crc-t10dif library holds). Runs alternate, the order rotating each
// round; the first round is a warm-up (the first coldplug after boot is several times slower:
// the kernel's first initialisation of those drivers). Wall time from /proc/uptime (10 ms), CPU
// time from the shell's `times` (the modprobe's user+sys, the kernel's work in init_module
// included), read with shell builtins only; medians.
//
// CLI: node scripts/bench-coldplug.mjs [--kernel d13|d12]... [--runs N] [--smp N] [--json]
// Needs `npm run build`; scripts/bench.mjs imports benchColdplug() for its table. Not part of
// `npm test`.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInVm, imageFor } from './vm.mjs';
import { kmodRefBin } from './mkrootfs.mjs';
import { parseKernel } from './kernels.mjs';
import { median } from './bench-modinfo.mjs';

/** What is compared: a label and the command, the modaliases appended (`$REF`: the reference kmod's directory). */
export const COLDPLUG_CONTENDERS = [
  { name: "Debian's modprobe -a -b", cmd: '$REF/modprobe -a -b' },
  { name: 'kmod-ts modprobe -a -b', cmd: '/sbin/modprobe -a -b' },
  { name: 'kmod-ts modprobe -a -b -j 2', cmd: '/sbin/modprobe -a -b -j 2' },
];

/**
 * The guest script: warm-up round plus `runs` rounds, one `@@CP` line per run.
 * @param {number} runs
 * @param {string} [setup] shell lines run first (e.g. another modprobe put in place of ours)
 */
export function coldplugScript(runs, setup = '', ref = '/opt/kmod/bin') {
  const lines = [
    setup,
    `REF=${ref}`,
    'echo "@@REF $($REF/kmod --version | head -n 1)@@"',
    'dmesg -n 1',
    'set -- $(find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u)',
    'echo "@@ALIASES $#@@"',
    'unload() { prev=; while :; do cur=$(cut -d" " -f1 /proc/modules); [ "$cur" = "$prev" ] && break; prev=$cur; for m in $cur; do /opt/kmod/bin/rmmod "$m" 2>/dev/null; done; done; }',
    // Builtins only between the two readings (a fork costs tens of ms under TCG): uptime for the
    // wall clock, ash's `times` (children's user and sys) for CPU, both parsed on the host.
    'run() {',
    '  unload; times >/tmp/c0; read t0 _ </proc/uptime',
    '  "$@" >/dev/null 2>&1; rc=$?',
    '  read t1 _ </proc/uptime; times >/tmp/c1',
    '  { read _ _; read u0 s0; } </tmp/c0; { read _ _; read u1 s1; } </tmp/c1',
    '  echo "@@CP $R $I $rc $t0 $t1 $u0 $s0 $u1 $s1 $(grep -c . /proc/modules)@@"',
    '}',
    'A="$*"',
  ];
  const n = COLDPLUG_CONTENDERS.length;
  for (let r = 0; r <= runs; r++) {
    for (let j = 0; j < n; j++) {
      const i = (r + j) % n;
      lines.push(`R=${r}; I=${i}; run ${COLDPLUG_CONTENDERS[i].cmd} $A`);
    }
  }
  lines.push('unload; echo "@@BASE $(cut -d" " -f1 /proc/modules | sort | tr "\\n" " ")@@"');
  return `${lines.join('\n')}\n`;
}

/**
 * Boot `kernel`, run the coldplug rounds, return the samples and medians per contender.
 * @param {{ kernel?: 'd12'|'d13', runs?: number, smp?: number, image?: string, setup?: string }} [opts]
 * @returns {Promise<{ kernel: string, kver: string, aliases: number, baseline: string, reference: string,
 *   contenders: { name: string, samples: {wall: number, cpu: number, rc: number, modules: number}[],
 *   wall: number, cpu: number, modules: number[] }[] }>}
 * @throws {Error} when the guest does not finish or a contender's runs are missing
 */
export async function benchColdplug({ kernel = 'd13', runs = 5, smp = 2, image, setup } = {}) {
  image ??= await imageFor(kernel);
  // Under TCG on a loaded machine one coldplug can take a minute (unloading as long again).
  const timeoutMs = Math.max(900_000, (runs + 1) * COLDPLUG_CONTENDERS.length * 150_000);
  const { name, arch } = parseKernel(kernel);
  const r = await runInVm({ kernel, image, script: coldplugScript(runs, setup, kmodRefBin({ name, arch })), smp, memory: 1536, timeoutMs });
  // `kmod version 34.2`
  const reference = r.output.match(/@@REF (.*)@@/)?.[1].trim() ?? '';
  const aliases = Number(r.output.match(/@@ALIASES (\d+)@@/)?.[1] ?? NaN);
  const baseline = r.output.match(/@@BASE (.*)@@/)?.[1].trim() ?? '';
  const contenders = COLDPLUG_CONTENDERS.map((c) => ({ name: c.name, samples: [] }));
  // ash's `times`: "XmY.YYYs"
  const sec = (t) => { const m = t.match(/^(\d+)m([\d.]+)s$/); if (!m) throw new Error(`times printed '${t}'`); return Number(m[1]) * 60 + Number(m[2]); };
  for (const m of r.output.matchAll(/@@CP (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) (\S+) (\S+) (\S+) (\S+) (\d+)@@/g)) {
    if (Number(m[1]) === 0) continue; // warm-up round
    const wall = Math.round((Number(m[5]) - Number(m[4])) * 1000);
    const cpu = Math.round((sec(m[8]) + sec(m[9]) - sec(m[6]) - sec(m[7])) * 1000);
    contenders[Number(m[2])].samples.push({ rc: Number(m[3]), wall, cpu, modules: Number(m[10]) });
  }
  for (const c of contenders) {
    if (c.samples.length !== runs) throw new Error(`${c.name}: ${c.samples.length} of ${runs} runs reported; guest output tail:\n${r.output.slice(-2000)}`);
    c.wall = median(c.samples.map((s) => s.wall));
    c.cpu = median(c.samples.map((s) => s.cpu));
    c.modules = [...new Set(c.samples.map((s) => s.modules))];
  }
  return { kernel, kver: r.kver, aliases, baseline, reference, contenders };
}

async function main(argv) {
  const kernels = [];
  let runs = 5;
  let smp = 2;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--kernel') kernels.push(argv[++i]);
    else if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--smp') smp = Number(argv[++i]);
    else if (argv[i] !== '--json') throw new Error(`unknown option ${argv[i]}`);
  }
  const results = [];
  for (const k of kernels.length ? kernels : ['d13']) results.push(await benchColdplug({ kernel: k, runs, smp }));
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return 0;
  }
  for (const r of results) {
    process.stdout.write(`${r.kernel} ${r.kver}: ${r.aliases} modaliases, ${runs} rounds, ${smp} CPUs; reference: Debian's ${r.reference}; left loaded after unloading: ${r.baseline || 'nothing'}\n`);
    const ref = r.contenders[0];
    for (const c of r.contenders) {
      process.stdout.write(`  ${c.name.padEnd(30)} ${String(c.wall).padStart(6)} ms wall ${String(c.cpu).padStart(6)} ms cpu  ` +
        `${(c.wall / ref.wall).toFixed(2)}× / ${(c.cpu / ref.cpu).toFixed(2)}×  modules loaded ${c.modules.join('/')}, exit ${[...new Set(c.samples.map((s) => s.rc))].join('/')}\n`);
    }
  }
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`bench-coldplug: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
