// The QEMU command line that boots a kmod-ts image: shared by scripts/vm.mjs (which runs it) and
// scripts/mkrootfs.mjs (which prints it), so neither imports the other. Per architecture
// (scripts/arch.mjs): qemu-system-x86_64, or qemu-system-aarch64 -M virt with the console on
// the PL011 UART (ttyAMA0).

import { archOf } from './arch.mjs';

/** The amd64 QEMU binary, and the accelerator/CPU every run uses (these machines have no KVM). */
export const QEMU = 'qemu-system-x86_64';
export const QEMU_ACCEL = ['-accel', 'tcg', '-cpu', 'max'];

/** Kernel command line: serial console, quiet, and a panic (e.g. init dying) ends QEMU at once. */
export const KERNEL_APPEND = 'console=ttyS0 quiet panic=-1 rdinit=/init';

/** The QEMU binary for an architecture (`qemu-system-x86_64`, `qemu-system-aarch64`). */
export function qemuBinary(arch = 'amd64') {
  return archOf(arch).qemu;
}

/** The kernel command line for an architecture: {@link KERNEL_APPEND} with its serial console. */
export function kernelAppend(arch = 'amd64') {
  return KERNEL_APPEND.replace('console=ttyS0', `console=${archOf(arch).console}`);
}

/**
 * QEMU's argument vector (after the binary, {@link qemuBinary}) for a kernel and an initramfs.
 * `vmlinuz` is what `-kernel` boots (ensureKernel's `image`).
 */
export function qemuArgs({ vmlinuz, initrd, memory = 1024, smp = 2, append = '', arch = 'amd64' }) {
  const machine = archOf(arch).name === 'amd64' ? QEMU_ACCEL : archOf(arch).machine;
  // -nic none: no network card, so no iPXE option ROM to load and wait for.
  return [...machine, '-m', String(memory), '-smp', String(smp), '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', vmlinuz, '-initrd', initrd, '-append', `${kernelAppend(arch)} ${append}`.trim()];
}
