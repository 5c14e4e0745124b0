/**
 * The real-kernel cells of modprobe: loading by name with dependencies, removal, aliases,
 * modprobe.d (options, blacklist, install, softdep), kmod's errors, a non-root user, the kernel's
 * own requests through /proc/sys/kernel/modprobe, and a coldplug of the guest's devices.
 *
 * Most cells run the same commands twice from the same state (`reset` between): with ours (the
 * `modprobe` first on PATH: kmod-ts's /sbin/modprobe) and with Debian's modprobe
 * ({@link referenceModprobe}: kmod 34.2 on Debian 13 amd64, kmod 30 on Debian 12), and require
 * exit status, stdout and stderr to be identical, on top of what each cell checks of ours. `KMOD_TS_VM_MODPROBE=kmod` runs Debian's modprobe as "ours" (harness.ts), to check the
 * cells themselves.
 *
 * @module
 */
import assert from 'node:assert/strict';
import { KERNEL_FACTS, MODPROBE_DRY, OUR_MODPROBE, type Cell, type KernelName, type Step } from './harness.js';
import { ok, show } from './cells.js';

const KMOD = '/opt/kmod/bin';
const OURS = 'modprobe';

/**
 * The modprobe kmod-ts is compared with: the guest release's own. Debian 13's amd64 image carries
 * Debian 13's kmod 34.2 in /opt/kmod-ref/bin (scripts/mkrootfs.mjs kmodRefBin); elsewhere the
 * image's kmod in /opt/kmod/bin (kmod 30 on amd64).
 */
export function referenceModprobe(kernel: KernelName): string {
  return kernel === 'd13' ? '/opt/kmod-ref/bin/modprobe' : `${KMOD}/modprobe`;
}

/**
 * Debian 12's kmod is built with debug logging: libkmod's messages carry their source location
 * (`modprobe: ERROR: ../libkmod/libkmod-module.c:856 kmod_module_remove_module() could not ...`),
 * which kmod 34.2 and kmod-ts do not print. Compared without it.
 */
const unlocated = (s: string) => s.replace(/^(\S+: \w+: )\.\.\/libkmod\/\S+:\d+ \S+\(\) /gm, '$1');

/** The two runs of a side-by-side step agree: exit status, stdout, stderr. */
function same(ours: Step | undefined, theirs: Step | undefined, what: string): void {
  ok(ours, `kmod-ts ${what}`);
  ok(theirs, `kmod ${what}`);
  const o = { rc: ours.rc, out: ours.out, err: unlocated(ours.err) };
  const t = { rc: theirs.rc, out: theirs.out, err: unlocated(theirs.err) };
  assert.deepEqual(o, t, `'${what}': kmod-ts and Debian's modprobe differ\n kmod-ts: ${JSON.stringify(o)}\n kmod:    ${JSON.stringify(t)}`);
}

/**
 * A cell whose steps run once with ours and once with Debian's modprobe (`mp` in `steps` and
 * `setup`), `reset` between; every step's result must be the same on both sides, then `check`
 * looks at ours.
 */
function side(theirs: string, name: string, opts: { setup?: (mp: string) => string[]; steps: (mp: string) => string[]; check: (ours: Step[]) => void }): Cell {
  const setup = opts.setup ?? (() => []);
  const [so, st] = [setup(OURS), setup(theirs)];
  const [o, t] = [opts.steps(OURS), opts.steps(theirs)];
  return {
    name,
    steps: [...so, ...o, 'reset', ...st, ...t],
    check: (s) => {
      const ours = s.slice(so.length, so.length + o.length);
      const theirs = s.slice(so.length + o.length + 1 + st.length);
      for (const [i, cmd] of o.entries()) same(ours[i], theirs[i], cmd);
      opts.check(ours);
    },
  };
}

function exits(s: Step | undefined, rc: number, out: string | RegExp, err: string | RegExp, what: string): asserts s is Step {
  ok(s, what);
  assert.equal(s.rc, rc, `${what}: exit status; got ${show(s)}`);
  if (typeof out === 'string') assert.equal(s.out, out, `${what}: stdout; got ${show(s)}`);
  else assert.match(s.out, out, `${what}: stdout; got ${show(s)}`);
  if (typeof err === 'string') assert.equal(s.err, err, `${what}: stderr; got ${show(s)}`);
  else assert.match(s.err, err, `${what}: stderr; got ${show(s)}`);
}

/** The step printed exactly `want` (a line of names). */
function printed(s: Step | undefined, want: string, what: string): void {
  ok(s, what);
  assert.equal(s.out.trim(), want, `${what}; got ${show(s)}`);
}

/** `insmod PATH OPTIONS` as modprobe -v prints it, for a module of the kernel's tree. */
const insmodLine = (rel: string, opts = '') => `insmod /lib/modules/[^/ ]+/kernel/${rel.replace(/[.]/g, '\\.')}\\.ko(\\.xz)? ${opts}`;
const lines = (...l: string[]) => new RegExp(`^${l.map((x) => `${x}\n`).join('')}$`);

const notFound = (name: string) => new RegExp(`^modprobe: FATAL: Module ${name} not found in directory /lib/modules/[^/ ]+\n$`);

/**
 * The modprobe cells for one kernel: the same everywhere (what differs, paths, is compared with
 * kmod), except the coldplug with `-j 2`, run only where the kernel decompresses (Debian 13): a
 * coldplug under TCG costs tens of seconds, and that is where concurrent insertions matter.
 */
export function modprobeCells(kernel: KernelName): Cell[] {
  const jobs = !MODPROBE_DRY && KERNEL_FACTS[kernel].inKernel === 'xz';
  const theirs = referenceModprobe(kernel);
  const cells: Cell[] = [];
  const add = (c: Cell) => cells.push({ ...c, name: `modprobe: ${c.name}${MODPROBE_DRY ? " [dry run: Debian's modprobe as ours]" : ''}` });

  add(side(theirs, 'vfat loads fat, then vfat (modules.dep order), as kmod prints and loads it', {
    steps: (mp) => [`${mp} -v vfat`, 'modorder'],
    check: ([mp, order]) => {
      exits(mp, 0, lines(insmodLine('fs/fat/fat'), insmodLine('fs/fat/vfat')), '', 'modprobe -v vfat');
      printed(order, 'vfat fat', '/proc/modules, newest first');
    },
  }));
  add(side(theirs, '-r vfat removes vfat, then fat, which it no longer needs', {
    setup: () => [`${KMOD}/insmod $(mod fs/fat/fat) && ${KMOD}/insmod $(mod fs/fat/vfat)`],
    steps: (mp) => [`${mp} -r -v vfat`, 'modnames'],
    check: ([mp, names]) => {
      exits(mp, 0, 'rmmod vfat\nrmmod fat\n', '', 'modprobe -r -v vfat');
      printed(names, '', 'loaded modules');
    },
  }));
  add(side(theirs, "aliases: fs-vfat, and a device's modalias (virtio network: virtio_net with its dependencies)", {
    steps: (mp) => [`${mp} -v fs-vfat`, 'modnames', `${mp} -R virtio:d00000001v00001AF4`, `${mp} -v virtio:d00000001v00001AF4`, 'modnames'],
    check: ([vfat, n1, r, virtio, n2]) => {
      exits(vfat, 0, lines(insmodLine('fs/fat/fat'), insmodLine('fs/fat/vfat')), '', 'modprobe -v fs-vfat');
      printed(n1, 'fat vfat', 'loaded modules');
      exits(r, 0, 'virtio_net\n', '', 'modprobe -R');
      exits(virtio, 0, new RegExp(`${insmodLine('drivers/net/virtio_net')}\n$`), '', 'modprobe -v virtio:…');
      ok(n2, 'modnames');
      for (const m of ['failover', 'net_failover', 'virtio_net']) assert.match(n2.out, new RegExp(`\\b${m}\\b`), `${m} loaded; got ${show(n2)}`);
    },
  }));
  add(side(theirs, "options from /etc/modprobe.d: 'options dummy numdummies=3' gives three interfaces", {
    setup: () => ["conf 'options dummy numdummies=3'"],
    steps: (mp) => [`${mp} -v dummy`, 'echo $(ls /sys/class/net)'],
    check: ([mp, net]) => {
      exits(mp, 0, lines(insmodLine('drivers/net/dummy', 'numdummies=3 ?')), '', 'modprobe -v dummy');
      printed(net, 'dummy0 dummy1 dummy2 lo', 'network interfaces');
    },
  }));
  add(side(theirs, "blacklist: -b stops a blacklisted name, an alias is stopped without -b, a plain name is not (exit 0, silent)", {
    setup: () => ["conf 'blacklist dummy'"],
    steps: (mp) => [`${mp} -b -v dummy`, 'modnames', `${mp} -v rtnl-link-dummy`, 'modnames', `${mp} -v dummy`, 'modnames'],
    check: ([b, n1, alias, n2, plain, n3]) => {
      exits(b, 0, '', '', 'modprobe -b dummy');
      printed(n1, '', 'loaded after -b');
      exits(alias, 0, '', '', 'modprobe rtnl-link-dummy');
      printed(n2, '', 'loaded after the alias');
      exits(plain, 0, lines(insmodLine('drivers/net/dummy')), '', 'modprobe dummy');
      printed(n3, 'dummy', 'loaded after the plain name');
    },
  }));
  add(side(theirs, 'install: the command runs through /bin/sh with $CMDLINE_OPTS and MODPROBE_MODULE, and may load the module itself', {
    setup: (mp) => ['rm -f /tmp/installed', `conf 'options dummy numdummies=2' 'install dummy echo "$MODPROBE_MODULE [$CMDLINE_OPTS]" >/tmp/installed && ${mp} --ignore-install dummy $CMDLINE_OPTS'`],
    steps: (mp) => [`${mp} dummy`, 'cat /tmp/installed', 'echo $(ls /sys/class/net)'],
    check: ([mp, inst, net]) => {
      exits(mp, 0, '', '', 'modprobe dummy');
      exits(inst, 0, /^dummy \[numdummies=2 ?\]\n$/, '', 'what the install command wrote');
      printed(net, 'dummy0 dummy1 lo', 'network interfaces');
    },
  }));
  add(side(theirs, 'softdep: pre first, the module, then post', {
    setup: () => ["conf 'softdep dummy pre: nls_utf8 post: nls_cp437'"],
    steps: (mp) => [`${mp} -v dummy`, 'modorder'],
    check: ([mp, order]) => {
      exits(mp, 0, lines(insmodLine('fs/nls/nls_utf8'), insmodLine('drivers/net/dummy'), insmodLine('fs/nls/nls_cp437')), '', 'modprobe -v dummy');
      printed(order, 'nls_cp437 dummy nls_utf8', '/proc/modules, newest first');
    },
  }));
  add(side(theirs, '--first-time on a loaded module is an error (without it, success); -r --first-time on one not loaded too', {
    setup: () => [`${KMOD}/insmod $(mod drivers/net/dummy)`],
    steps: (mp) => [`${mp} --first-time dummy`, `${mp} dummy`, `${mp} -r --first-time vfat`, 'modnames'],
    check: ([first, again, r, names]) => {
      exits(first, 1, '', "modprobe: ERROR: could not insert 'dummy': Module already in kernel\n", 'modprobe --first-time dummy');
      exits(again, 0, '', '', 'modprobe dummy');
      exits(r, 1, '', 'modprobe: FATAL: Module vfat is not in kernel.\n', 'modprobe -r --first-time vfat');
      printed(names, 'dummy', 'loaded modules');
    },
  }));
  add(side(theirs, 'not found: FATAL and exit 1; silent with -q; with -r; a WARNING with -a, the others still load', {
    steps: (mp) => [`${mp} nosuchmod`, `${mp} -q nosuchmod`, `${mp} -r nosuchmod`, `${mp} -a nosuchmod dummy`, 'modnames'],
    check: ([plain, quiet, r, all, names]) => {
      exits(plain, 1, '', notFound('nosuchmod'), 'modprobe nosuchmod');
      exits(quiet, 1, '', '', 'modprobe -q nosuchmod');
      exits(r, 1, '', 'modprobe: FATAL: Module nosuchmod not found.\n', 'modprobe -r nosuchmod');
      exits(all, 1, '', /^modprobe: WARNING: Module nosuchmod not found in directory \/lib\/modules\/[^/ ]+\n$/, 'modprobe -a nosuchmod dummy');
      printed(names, 'dummy', 'loaded modules');
    },
  }));
  add(side(theirs, 'a non-root user: loading and removing fail with Operation not permitted', {
    steps: (mp) => [`runas 65534 ${mp} dummy`, 'modnames', `${KMOD}/insmod $(mod drivers/net/dummy)`, `runas 65534 ${mp} -r dummy`, 'modnames'],
    check: ([load, n1, , rm, n2]) => {
      exits(load, 1, '', /could not insert 'dummy': Operation not permitted\n$/, 'runas modprobe dummy');
      printed(n1, '', 'loaded modules');
      exits(rm, 1, '', /could not remove 'dummy': Operation not permitted\n$/, 'runas modprobe -r dummy');
      printed(n2, 'dummy', 'loaded modules');
    },
  }));

  // ---- the kernel's own requests ----
  const fatImage = 'dd if=/dev/zero of=/tmp/fat.img bs=1k count=1024 2>/dev/null && mkdosfs /tmp/fat.img >/dev/null';
  const mountFat = 'mount -t vfat /tmp/fat.img /mnt && echo hi >/mnt/x && cat /mnt/x && umount -d /mnt';
  add({
    name: `the kernel's own request: mount -t vfat runs /proc/sys/kernel/modprobe (${OUR_MODPROBE.path} → ${OUR_MODPROBE.real}), which loads vfat and the code pages; the same modules as with Debian's modprobe there`,
    steps: [
      'cat /proc/sys/kernel/modprobe; readlink -f $(cat /proc/sys/kernel/modprobe)',
      // the loop device is ours to load: busybox mount does not ask the kernel for it
      `${OURS} loop && ${fatImage} && ${mountFat}`, 'modnames', 'reset',
      `echo ${theirs} >/proc/sys/kernel/modprobe && ${theirs} loop && ${fatImage} && ${mountFat}`, 'modnames',
    ],
    check: ([path, mount, names, , kmount, knames]) => {
      exits(path, 0, `${OUR_MODPROBE.path}\n${OUR_MODPROBE.real}\n`, '', '/proc/sys/kernel/modprobe');
      exits(mount, 0, 'hi\n', '', 'mount -t vfat');
      ok(names, 'modnames');
      for (const m of ['fat', 'loop', 'vfat']) assert.match(names.out, new RegExp(`\\b${m}\\b`), `${m} loaded; got ${show(names)}`);
      exits(kmount, 0, 'hi\n', '', "mount -t vfat with Debian's modprobe");
      ok(knames, 'modnames');
      assert.equal(names.out, knames.out, "modules loaded on the kernel's requests: with kmod-ts, then with Debian's modprobe");
    },
  });
  add({
    name: "the kernel's own request: ip link add x type dummy asks for rtnl-link-dummy (-q --), kmod-ts answers it with the options from /etc/modprobe.d (a logging wrapper in /proc/sys/kernel/modprobe shows the call)",
    steps: [
      "conf 'options dummy numdummies=3' && rm -f /tmp/mplog && echo /t/bin/mplog >/proc/sys/kernel/modprobe && ip link add x type dummy",
      'cat /tmp/mplog', 'echo $(ls /sys/class/net)', 'modnames',
    ],
    check: ([ip, log, net, names]) => {
      exits(ip, 0, '', '', 'ip link add x type dummy');
      exits(log, 0, `-q -- rtnl-link-dummy → ${OUR_MODPROBE.real}\n`, '', 'the request the wrapper saw');
      printed(net, 'dummy0 dummy1 dummy2 lo x', 'network interfaces');
      printed(names, 'dummy', 'loaded modules');
    },
  });

  // ---- coldplug ----
  const aliases = '$(cat /tmp/aliases)';
  const coldplug = [
    'modaliases >/tmp/aliases; echo $(wc -l </tmp/aliases) modaliases; modnames',
    `${OURS} -a -b ${aliases}`, 'modnames', 'reset; modnames',
    `${theirs} -a -b ${aliases}`, 'modnames',
  ];
  // -j is kmod-ts's own (concurrent loading of independent subtrees): not in a dry run.
  if (jobs) coldplug.push('reset; modnames', `${OURS} -a -b -j 2 ${aliases}`, 'modnames');
  add({
    name: `coldplug: modprobe -a -b of every device's modalias ends with the same modules loaded as Debian's modprobe (exit status and messages alike)${jobs ? '; -j 2 too' : ''}`,
    steps: coldplug,
    check: ([count, ours, names, base, theirs, knames, base2, jobs, jnames]) => {
      ok(count, 'modaliases');
      assert.match(count.out, /^[1-9]\d* modaliases\n/, show(count));
      const words = (s: Step | undefined) => (s?.out.trim() ?? '').split(/\s+/).filter(Boolean);
      const before = words(count).slice(2);
      ok(names, 'modnames');
      ok(ours, 'kmod-ts -a');
      assert.ok(words(names).length > before.length, `coldplug loaded nothing: ${show(names)}`);
      // Unloading cannot always return to the boot's state: the kernel keeps some modules the
      // coldplug loaded (crct10dif_pclmul: the crc-t10dif library holds it). The next run starts
      // from there; it must be a subset of what the first run ended with, the same every time.
      ok(base, 'modnames after reset');
      const kept = words(base);
      for (const m of kept) assert.ok(words(names).includes(m) || before.includes(m), `${m} left loaded after reset, but the coldplug did not load it; got ${show(base)}`);
      same(ours, theirs, 'modprobe -a -b MODALIASES');
      printed(knames, names.out.trim(), "loaded modules, Debian's modprobe against kmod-ts");
      if (jobs) {
        printed(base2, kept.join(' '), 'after unloading, the same modules left');
        ok(theirs, 'kmod');
        assert.equal(jobs.rc, theirs.rc, `-j 2 exit status; got ${show(jobs)}`);
        const sorted = (s: string) => unlocated(s).split('\n').sort().join('\n');
        assert.equal(sorted(jobs.err), sorted(theirs.err), `-j 2 messages (in any order); got ${show(jobs)}`);
        printed(jnames, names.out.trim(), 'loaded modules, -j 2 against -j 1');
      }
    },
  });
  return cells;
}
