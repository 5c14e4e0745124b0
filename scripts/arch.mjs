// The architectures the scripts build images for and boot, in one table: how Debian, Node, the
// GNU toolchain, the kernel and QEMU each name them and what each needs.
//
// `amd64` is the machine the project runs on; `arm64` is cross-built on it (Debian's arm64
// packages through a private apt state, koffi's and Node's arm64 npm packages, zstd-napi compiled
// with g++-aarch64-linux-gnu) and booted under qemu-system-aarch64 with software emulation.

/**
 * @typedef {object} Arch
 * @property {string} name        Debian's name, the one every script's `--arch` takes
 * @property {string} node        `process.arch` on it
 * @property {string} triplet     GNU multiarch triplet (library directories, cross-tool prefix)
 * @property {string} kbuildArch  kbuild's ARCH=
 * @property {string} loader      the glibc dynamic loader's absolute path
 * @property {string} qemu        the qemu-system binary
 * @property {string[]} machine   QEMU's machine/CPU/accelerator arguments (TCG: no KVM here)
 * @property {string} console     the serial console's device name in the guest
 * @property {number} elfMachine  ELF e_machine
 */

/** @type {Readonly<Record<string, Arch>>} */
export const ARCHES = Object.freeze({
  amd64: {
    name: 'amd64',
    node: 'x64',
    triplet: 'x86_64-linux-gnu',
    kbuildArch: 'x86',
    loader: '/lib64/ld-linux-x86-64.so.2',
    qemu: 'qemu-system-x86_64',
    machine: ['-accel', 'tcg', '-cpu', 'max'],
    console: 'ttyS0',
    elfMachine: 62,
  },
  arm64: {
    name: 'arm64',
    node: 'arm64',
    triplet: 'aarch64-linux-gnu',
    kbuildArch: 'arm64',
    loader: '/lib/ld-linux-aarch64.so.1',
    qemu: 'qemu-system-aarch64',
    // virt: virtio-mmio/PCI and a PL011 UART (ttyAMA0), no firmware needed with -kernel.
    // pauth-impdef=on: pointer authentication with QEMU's cheap implementation-defined hash
    // instead of the architected QARMA5, which TCG spends most of its time computing (same
    // instructions, same traps for the guest; only the signature bits differ).
    machine: ['-M', 'virt', '-accel', 'tcg', '-cpu', 'max,pauth-impdef=on'],
    console: 'ttyAMA0',
    elfMachine: 183,
  },
});

/** The architecture this machine runs (Debian's name). */
export const HOST_ARCH = Object.values(ARCHES).find((a) => a.node === process.arch)?.name ?? process.arch;

/**
 * The table entry for a Debian or Node architecture name.
 * @param {string} [name] `amd64`, `arm64` (Node's `x64` is accepted too); default: this machine's
 * @returns {Arch}
 * @throws {Error} for an architecture not in {@link ARCHES}
 * @example archOf('arm64').qemu // 'qemu-system-aarch64'
 */
export function archOf(name = HOST_ARCH) {
  const a = ARCHES[name] ?? Object.values(ARCHES).find((x) => x.node === name);
  if (!a) throw new Error(`unknown architecture '${name}' (want ${Object.keys(ARCHES).join('|')})`);
  return a;
}
