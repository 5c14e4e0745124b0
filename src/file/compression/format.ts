/**
 * A module file's format from its magic bytes (kmod and the kernel do the same; file names lie).
 *
 * @module
 */

/** What a module file's first bytes say it is. */
export type Format = 'elf' | 'gzip' | 'xz' | 'zstd';

/** The formats {@link decompress} takes. */
export type CompressedFormat = 'gzip' | 'xz' | 'zstd';

/**
 * Tell a module file's format from its first bytes.
 *
 * Magic numbers: `28 B5 2F FD` zstd, `FD 37 7A 58 5A 00` xz, `1F 8B` gzip, `7F 45 4C 46` ELF.
 * Six bytes are enough for every format; fewer may still match the shorter magics.
 *
 * @param head the first bytes of the file (any length, may be empty)
 * @returns the format, or `undefined` when no magic matches (including empty and 1-byte input)
 * @throws never
 * @example
 * detectFormat(fs.readFileSync('/lib/modules/6.1.0/kernel/fs/fat/fat.ko.xz').subarray(0, 6)) // 'xz'
 */
export function detectFormat(head: Uint8Array): Format | undefined {
  const b = head;
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a && b[5] === 0x00) {
    return 'xz';
  }
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46) return 'elf';
  return undefined;
}
