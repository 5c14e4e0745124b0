// The QEMU command line that boots a kmod-ts image: shared by scripts/vm.mjs (which runs it) and
// scripts/mkrootfs.mjs (which prints it), so neither imports the other.

/** The QEMU binary, and the accelerator/CPU every run uses (these machines have no KVM). */
export const QEMU = 'qemu-system-x86_64';
export const QEMU_ACCEL = ['-accel', 'tcg', '-cpu', 'max'];

/** Kernel command line: serial console, quiet, and a panic (e.g. init dying) ends QEMU at once. */
export const KERNEL_APPEND = 'console=ttyS0 quiet panic=-1 rdinit=/init';

/** QEMU's argument vector for a kernel and an initramfs. */
export function qemuArgs({ vmlinuz, initrd, memory = 1024, smp = 2, append = '' }) {
  // -nic none: no network card, so no iPXE option ROM to load and wait for.
  return [...QEMU_ACCEL, '-m', String(memory), '-smp', String(smp), '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', vmlinuz, '-initrd', initrd, '-append', `${KERNEL_APPEND} ${append}`.trim()];
}
