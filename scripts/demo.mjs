#!/usr/bin/env node
// `npm run demo`: boot Debian 13, then Debian 12, under QEMU (software emulation) in an image
// whose /sbin/insmod, rmmod, lsmod and modprobe are kmod-ts, and run a narrated session on each:
// insmod/rmmod/lsmod, then modprobe (dependencies, removal, an options line from /etc/modprobe.d,
// a module the kernel itself asks for, a coldplug of the guest's devices against Debian's
// modprobe). Every step is checked on the host from what the guest printed; exit 0 only if all of
// them did what they say.
//
// --arch arm64: the same session on Debian's arm64 kernels under qemu-system-aarch64.
//
// CLI: node scripts/demo.mjs [--arch amd64|arm64] [--kernel d13|d12]... [--no-build]

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInVm, imageFor, checkQemu } from './vm.mjs';
import { ensureKernel } from './kernels.mjs';
import { archOf } from './arch.mjs';

const STEP = /^@@STEP (\d+)@@$/;
const RC = /^@@RC (\d+) (\d+)@@$/;

const LOADED = /^insmod: INFO: loaded (\S+) via (.+)$/m;

/** lsmod row for `name`, as `{ size, used, holders }`, or undefined. */
function lsmodRow(out, name) {
  const m = out.match(new RegExp(`^${name} +(\\d+) +(\\d+)(?: (\\S+))?$`, 'm'));
  return m ? { size: Number(m[1]), used: Number(m[2]), holders: m[3] ? m[3].split(',') : [] } : undefined;
}

function expectLoaded(path_) {
  return (out, rc) => {
    if (rc !== 0) return `exit status ${rc}`;
    const m = out.match(LOADED);
    if (!m) return 'no "insmod: INFO: loaded ... via ..." line';
    if (path_ && m[2] !== path_) return `loaded via ${m[2]}, expected via ${path_}`;
    return undefined;
  };
}

/**
 * The session for one kernel: each step is a command, what it claims, and a check of its output.
 * @param {{ kver: string, compression: string, decompressInKernel: boolean }} k
 */
export function demoSteps(k) {
  const mod = (rel) => `/lib/modules/${k.kver}/kernel/${rel}${k.compression === 'xz' ? '.xz' : ''}`;
  const firstPath = k.compression === 'xz' && k.decompressInKernel ? 'finit_module (in-kernel xz)'
    : k.compression === 'none' ? 'mmap+init_module' : undefined;
  const netUp = (out, rc) => (rc !== 0 ? `exit status ${rc}` : ['dummy0', 'dummy1'].filter((i) => !new RegExp(`\\b${i}\\b`).test(out)).map((i) => `${i} missing`).join(', ') || undefined);
  const steps = [
    { cmd: `insmod -v ${mod('drivers/net/dummy.ko')} numdummies=2`, says: `load dummy with numdummies=2${firstPath ? ` via ${firstPath}` : ''}`, check: expectLoaded(firstPath), firstInsmod: true },
    { cmd: 'lsmod', says: 'dummy is listed, used by nobody', check: (out) => (lsmodRow(out, 'dummy')?.used === 0 ? undefined : 'no "dummy ... 0" row') },
    { cmd: 'ls /sys/class/net', says: 'two dummy interfaces exist', check: netUp },
    { cmd: 'ip link show', says: 'ip sees dummy0 and dummy1', check: netUp },
    { cmd: `insmod -v ${mod('fs/fat/fat.ko')}`, says: 'load fat', check: expectLoaded(firstPath) },
    { cmd: `insmod -v ${mod('fs/fat/vfat.ko')}`, says: 'load vfat, which needs fat', check: expectLoaded(firstPath) },
    {
      cmd: 'lsmod', says: 'fat is held by vfat',
      check: (out) => {
        const fat = lsmodRow(out, 'fat');
        const vfat = lsmodRow(out, 'vfat');
        if (!fat) return 'no fat row';
        if (!vfat) return 'no vfat row';
        if (fat.used !== 1 || fat.holders.join(',') !== 'vfat') return `fat row says used ${fat.used} by "${fat.holders.join(',')}", expected "1 vfat"`;
        return undefined;
      },
    },
    { cmd: 'rmmod vfat fat dummy', says: 'remove all three', check: (out, rc) => (rc !== 0 ? `exit status ${rc}: ${out.trim()}` : undefined) },
    {
      cmd: 'lsmod; ls /sys/class/net', says: 'the modules and interfaces are gone',
      check: (out) => {
        const left = ['dummy', 'fat', 'vfat'].filter((m) => lsmodRow(out, m));
        if (left.length) return `still loaded: ${left.join(' ')}`;
        if (/\bdummy[01]\b/.test(out)) return 'dummy interfaces still present';
        if (!/^Module +Size +Used by$/m.test(out)) return 'no lsmod header';
        return undefined;
      },
    },
  ];
  steps.push(...modprobeSteps(k));
  if (k.compression === 'none') {
    // Debian 12 ships plain .ko and its kernel cannot decompress modules: show a compressed one too.
    steps.push(
      { cmd: 'insmod -v /root/dummy.ko.xz numdummies=2', says: 'load a kbuild-style dummy.ko.xz via read+xz+init_module', check: expectLoaded('read+xz+init_module') },
      { cmd: 'ls /sys/class/net', says: 'two dummy interfaces exist again', check: netUp },
      { cmd: 'rmmod dummy && lsmod', says: 'and it goes away', check: (out, rc) => (rc !== 0 ? `exit status ${rc}` : lsmodRow(out, 'dummy') ? 'dummy still loaded' : undefined) },
    );
  }
  return steps;
}

/** `insmod PATH …` lines as modprobe -v prints them: the modules' base names, in order. */
const insmodNames = (out) => [...out.matchAll(/^insmod \/lib\/modules\/\S+\/([^/ ]+)\.ko(?:\.\w+)? /gm)].map((m) => m[1]);

/** Every device's modalias under /sys/devices, sorted, duplicates dropped (a shell expression). */
const MODALIASES = '$(find /sys/devices -name modalias -exec cat {} + | sort -u)';

/**
 * modprobe (kmod-ts as /sbin/modprobe): dependencies, removal, modprobe.d, the kernel's own
 * request, and a coldplug of the guest's devices compared with Debian's modprobe.
 * @param {{ kver: string }} k
 */
export function modprobeSteps(k) {
  const fatImage = 'dd if=/dev/zero of=/tmp/fat.img bs=1k count=1024 2>/dev/null && mkdosfs /tmp/fat.img >/dev/null';
  const loaded = (out) => new Set([...out.matchAll(/^(\w+) +\d+ +\d+/gm)].map((m) => m[1]));
  return [
    {
      cmd: 'modprobe -v vfat', says: 'modprobe vfat: fat first (vfat needs it, says modules.dep), then vfat',
      check: (out, rc) => (rc !== 0 ? `exit status ${rc}` : insmodNames(out).join(' ') === 'fat vfat' ? undefined : `inserted "${insmodNames(out).join(' ')}", expected "fat vfat"`),
    },
    {
      cmd: 'lsmod', says: 'fat is held by vfat',
      check: (out) => (lsmodRow(out, 'fat')?.holders.join(',') === 'vfat' && lsmodRow(out, 'vfat') ? undefined : 'no "fat ... 1 vfat" and vfat rows'),
    },
    {
      cmd: 'modprobe -r -v vfat && lsmod', says: 'modprobe -r vfat: vfat goes, and fat, no longer used, with it',
      check: (out, rc) => (rc !== 0 ? `exit status ${rc}` : !/^rmmod vfat\nrmmod fat$/m.test(out) ? 'no "rmmod vfat", "rmmod fat" lines'
        : lsmodRow(out, 'fat') || lsmodRow(out, 'vfat') ? 'fat or vfat still loaded' : undefined),
    },
    {
      cmd: "echo 'options dummy numdummies=3' >/etc/modprobe.d/dummy.conf && modprobe -v dummy && ls /sys/class/net",
      says: 'an options line in /etc/modprobe.d: modprobe dummy makes three interfaces',
      check: (out, rc) => (rc !== 0 ? `exit status ${rc}` : !/^insmod \S+dummy\.ko\S* numdummies=3 ?$/m.test(out) ? 'no "insmod …dummy.ko numdummies=3" line'
        : ['dummy0', 'dummy1', 'dummy2'].filter((i) => !new RegExp(`\\b${i}\\b`).test(out)).map((i) => `${i} missing`).join(', ') || undefined),
    },
    {
      cmd: `modprobe -r dummy && rm /etc/modprobe.d/dummy.conf && cat /proc/sys/kernel/modprobe && readlink -f /sbin/modprobe && modprobe loop && ${fatImage} && mount -t vfat /tmp/fat.img /mnt && lsmod && umount -d /mnt`,
      says: 'the kernel asks /proc/sys/kernel/modprobe (kmod-ts) for vfat and its code pages when mount -t vfat needs them',
      check: (out, rc) => {
        if (rc !== 0) return `exit status ${rc}`;
        if (!/^\/sbin\/modprobe\n\/usr\/lib\/kmod-ts\/kmod-ts\.cjs$/m.test(out)) return '/proc/sys/kernel/modprobe is not /sbin/modprobe → kmod-ts';
        const m = loaded(out);
        return ['fat', 'vfat'].filter((x) => !m.has(x)).map((x) => `${x} not loaded`).join(', ') || undefined;
      },
    },
    {
      cmd: `modprobe -r -a vfat loop nls_cp437 nls_ascii nls_utf8 && set -- ${MODALIASES} && echo "$# device modaliases" && modprobe -a -b -q "$@"; echo "modprobe -a exit status $? (1: some devices have no driver module)" && lsmod`,
      says: "coldplug: one modprobe -a -b over every device's modalias loads their drivers",
      check: (out) => {
        const n = Number(out.match(/^(\d+) device modaliases$/m)?.[1] ?? 0);
        if (!n) return 'no modaliases found';
        const rc = out.match(/^modprobe -a exit status (\d+)/m)?.[1];
        // 1 when some device has no driver module; what it loaded is checked against kmod next
        return rc === '0' || rc === '1' ? undefined : `modprobe -a exit status ${rc}`;
      },
    },
    {
      cmd: `echo "kmod-ts:  $(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')" && modprobe -r -a $(cut -d' ' -f1 /proc/modules) 2>/dev/null; ` +
        `echo "still loaded after modprobe -r: $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')" && /opt/kmod/bin/modprobe -a -b -q ${MODALIASES}; ` +
        `echo "Debian's: $(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')"`,
      says: "unload them, coldplug again with Debian's modprobe: the same modules",
      check: (out) => {
        const ours = out.match(/^kmod-ts: +(.*)$/m)?.[1].trim();
        const theirs = out.match(/^Debian's: +(.*)$/m)?.[1].trim();
        if (!ours || !theirs) return 'missing a module list';
        return ours === theirs ? undefined : `kmod-ts loaded "${ours}", Debian's modprobe "${theirs}"`;
      },
    },
  ];
}

/** The guest side: run each step, framed by markers the host parses. */
export function demoScript(steps) {
  // dmesg -n 1: drivers the coldplug loads print to the console, in the middle of a step's output.
  const lines = ['dmesg -n 1', 'step() { n=$1; shift; echo "@@STEP $n@@"; echo "# $*"; eval "$*" 2>&1; echo "@@RC $n $?@@"; }'];
  steps.forEach((s, i) => lines.push(`step ${i + 1} '${s.cmd.replace(/'/g, "'\\''")}'`));
  return lines.join('\n') + '\n';
}

const sec = (ms) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Boot one kernel and run the narrated session, printing as it goes.
 * @returns {Promise<{ kernel: string, kver: string, failures: string[], bootMs: number, firstInsmodMs?: number, totalMs: number }>}
 */
export async function runDemo(kernel, { out = process.stdout, arch } = {}) {
  const k = await ensureKernel(kernel, arch);
  const steps = demoSteps(k);
  const image = await imageFor(k.id);
  out.write(`\n=== ${k.label}: kernel ${k.kver}; modules ${k.compression === 'none' ? 'uncompressed (.ko)' : `${k.compression}-compressed`}, ` +
    `in-kernel decompression ${k.decompressInKernel ? 'yes' : 'no'}\n=== booting QEMU (TCG, -cpu max, no KVM)...\n`);
  const failures = [];
  let cur;
  let firstInsmodMs;
  const onLine = (text, ms) => {
    let m;
    if ((m = text.match(STEP))) {
      cur = { i: Number(m[1]) - 1, out: '' };
      out.write(`\n[${sec(ms).padStart(7)}] ${steps[cur.i].says}\n`);
    } else if ((m = text.match(RC)) && cur) {
      const step = steps[cur.i];
      const body = cur.out.replace(/^# .*\n/, '');
      const why = step.check(body, Number(m[2]));
      const via = body.match(LOADED);
      if (via) out.write(`          loading path: ${via[2]}\n`);
      if (why) {
        failures.push(`step ${cur.i + 1} "${step.says}" (${step.cmd}): ${why}`);
        out.write(`          FAILED: ${why}\n`);
      } else {
        out.write('          ok\n');
        if (step.firstInsmod && firstInsmodMs === undefined) firstInsmodMs = ms;
      }
      cur = undefined;
    } else if (cur) {
      cur.out += `${text}\n`;
      out.write(`          ${text.startsWith('# ') ? `$ ${text.slice(2)}` : `  ${text}`}\n`);
    }
  };
  const r = await runInVm({ kernel: k.id, image, script: demoScript(steps), onLine, timeoutMs: 300_000 });
  const ran = (r.output.match(/^@@RC \d+ \d+@@$/gm) ?? []).length;
  if (ran !== steps.length) failures.push(`only ${ran} of ${steps.length} steps ran; guest output:\n${r.output}`);
  out.write(`\n=== ${k.label}: ${failures.length ? `${failures.length} step(s) FAILED` : `all ${steps.length} steps ok`}; ` +
    `guest shell after ${sec(r.bootMs)}, first successful insmod ${firstInsmodMs !== undefined ? `${sec(firstInsmodMs)}` : 'never'} after QEMU start; total ${sec(r.totalMs)}\n`);
  return { kernel: k.id, kver: k.kver, failures, bootMs: r.bootMs, firstInsmodMs, totalMs: r.totalMs };
}

async function main(argv) {
  const kernels = [];
  let arch;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--kernel') kernels.push(argv[++i]);
    else if (argv[i] === '--arch') arch = archOf(argv[++i]).name;
    else if (argv[i] === '-h' || argv[i] === '--help') { process.stdout.write('usage: node scripts/demo.mjs [--arch amd64|arm64] [--kernel d13|d12]...\n'); return 0; }
    else throw new Error(`unknown option ${argv[i]}`);
  }
  if (kernels.length === 0) kernels.push('d13', 'd12');
  process.stdout.write(`demo: ${checkQemu(arch)}\n`);
  const results = [];
  for (const k of kernels) {
    try {
      results.push(await runDemo(k, { arch }));
    } catch (e) {
      results.push({ kernel: k, failures: [`${e.message}`] });
    }
  }
  process.stdout.write('\n');
  for (const r of results) {
    process.stdout.write(`demo: ${r.kernel}${r.kver ? ` ${r.kver}` : ''}: ${r.failures.length ? 'FAILED' : 'ok'}` +
      `${r.firstInsmodMs !== undefined ? `; QEMU start → first successful insmod ${sec(r.firstInsmodMs)}` : ''}\n`);
    for (const f of r.failures) process.stdout.write(`demo:   ${f}\n`);
  }
  return results.every((r) => r.failures.length === 0) ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
    process.stderr.write(`demo: ERROR: ${e.message}\n`);
    process.exit(1);
  });
}
