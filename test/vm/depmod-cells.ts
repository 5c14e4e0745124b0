/**
 * depmod in the guest: kmod-ts's `depmod` over a part of the kernel's own module tree (fat, nls,
 * lib, crypto: about 150 modules with dependencies between them, aliases and symbols) writes what
 * Debian's depmod (kmod 30, /opt/kmod/bin) writes for the same tree — the text files byte for
 * byte; the `.bin` files in kmod 34's pre-order layout, which kmod 30's `modinfo` and `modprobe`
 * then read (name and alias look-ups, `--show-depends`, a load). The whole tree is left out: under
 * TCG, decompressing it twice costs minutes (the full trees are compared on the host, against kmod
 * 34.2, by test/depmod-parity.test.ts).
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Cell, KernelName, Step } from './harness.js';

const KMOD = '/opt/kmod/bin';
const D = '/lib/modules/$(uname -r)';
const TEXT = ['dep', 'alias', 'softdep', 'symbols', 'devname'];
const PARTS = 'kernel/fs/fat kernel/fs/nls kernel/lib kernel/crypto';

const show = (s: Step | undefined) => (s === undefined ? 'no result' : `rc=${s.rc}\n--- stdout ---\n${s.out}--- stderr ---\n${s.err}`);

/** The depmod cells for one kernel (run last: they rewrite the guest's module database). */
export function depmodCells(kernel: KernelName): Cell[] {
  void kernel;
  return [
    {
      name: "depmod: kmod-ts's depmod writes Debian's depmod's files for a copy of part of the kernel's tree; kmod's modinfo and modprobe use them",
      steps: [
        // two copies of the same subtree: one for Debian's depmod, one for ours
        `reset; for t in /tmp/k30 /tmp/kts; do mkdir -p $t${D} && (cd ${D} && tar cf - ${PARTS} modules.order modules.builtin modules.builtin.modinfo) | (cd $t${D} && tar xf -) || exit 1; done; ls /tmp/kts${D}/kernel`,
        `${KMOD}/depmod -b /tmp/k30`,
        'depmod -b /tmp/kts',
        `for f in ${TEXT.join(' ')}; do cmp -s /tmp/k30${D}/modules.$f /tmp/kts${D}/modules.$f || echo "differs: modules.$f"; done; ls /tmp/kts${D} | grep '^modules\\.' | grep '[0-9]$'; grep -c . /tmp/kts${D}/modules.dep; od -An -tx1 -N12 /tmp/kts${D}/modules.dep.bin`,
        `modinfo -b /tmp/kts -F filename vfat; ${KMOD}/modinfo -b /tmp/kts -F filename vfat; ${KMOD}/modinfo -b /tmp/kts -F name fs-vfat`,
        `${KMOD}/modprobe -d /tmp/kts --show-depends vfat`,
        `${KMOD}/modprobe -d /tmp/kts vfat && modnames; reset`,
      ],
      check: ([copy, kmod, ours, cmp, info, deps, load]) => {
        assert.equal(copy?.rc, 0, `copying the subtree: ${show(copy)}`);
        assert.equal(kmod?.rc, 0, `Debian's depmod: ${show(kmod)}`);
        assert.equal(ours?.rc, 0, `kmod-ts depmod: ${show(ours)}`);
        assert.equal(ours!.err, kmod!.err, `stderr of kmod-ts depmod and Debian's differ: ${show(ours)}`);
        assert.equal(cmp?.rc, 0, show(cmp));
        // no "differs:" lines, no temporary files left; then the header: magic, version 2.1, root at 12 (pre-order)
        assert.match(cmp!.out, /^\d+\n\s*b0 07 f4 57 00 02 00 01 [0-9a-f]0 00 00 0c\s*$/, `files differ or are left over, or not a pre-order index: ${show(cmp)}`);
        assert.ok(Number(cmp!.out.split('\n')[0]) > 100, `modules.dep has too few lines: ${show(cmp)}`);
        const lines = info!.out.trim().split('\n');
        assert.equal(lines.length, 3, show(info));
        assert.match(lines[0], /^\/tmp\/kts\/lib\/modules\/[^/]+\/kernel\/fs\/fat\/vfat\.ko(\.xz)?$/, show(info));
        assert.equal(lines[1], lines[0], `kmod's modinfo found another file: ${show(info)}`);
        assert.equal(lines[2], 'vfat', `alias fs-vfat: ${show(info)}`);
        assert.equal(deps?.rc, 0, show(deps));
        assert.match(deps!.out, /^insmod \S+\/fat\.ko(\.xz)? \ninsmod \S+\/vfat\.ko(\.xz)? \n$/, show(deps));
        assert.equal(load?.rc, 0, show(load));
        assert.equal(load!.out.trim(), 'fat vfat', `loaded modules after kmod's modprobe vfat: ${show(load)}`);
      },
    },
  ];
}
