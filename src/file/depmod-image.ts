/**
 * Reads one module file for depmod: opens it, decompresses it whole when its magic says so, and
 * extracts what depmod needs ({@link KmodElf.depmodParts}). Shared by the main thread and the
 * worker threads, so it imports nothing heavier than the codecs.
 *
 * Failures carry what kmod 34.2 reports for the same file: the errno of "failed to load symbols
 * from FILE: <strerror>" and, for a stream that does not decompress, libkmod's own line
 * (`xz: Unexpected end of input`), which kmod prints once for each of the three times it tries to
 * open the module.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { decompressSync, detectFormat, DEFAULT_MAX_SIZE } from './compression/index.js';
import { Errno, errnoFromCode } from '../kernel/errno.js';
import { DecompressError } from '../errors.js';
import { ElfSymbolsError, KmodElf, type DepmodParts } from './elf/symbols.js';

/** Why a module could not be read; depmod still lists it, without symbols, aliases or edges. */
export interface DepmodImageFailure {
  /** kmod's errno */
  errno: number;
  /** libkmod's message for a corrupt compressed stream (`xz: File is corrupt`) */
  codecMessage?: string;
}

let scratch = Buffer.allocUnsafe(1 << 20);

/** kmod reads this many bytes to detect compression; a shorter file is EINVAL. */
const MAGIC_MAX = 6;

/**
 * Reads the parts of a module depmod uses.
 * @param file the module's path
 * @param opts `maxSize` caps decompressed output
 * @returns the parts, or why there are none
 * @example
 * const r = readDepmodImage('/lib/modules/6.1.0/kernel/fs/xfs/xfs.ko.xz');
 * if ('modinfo' in r) r.exports;
 */
export function readDepmodImage(file: string, opts: { maxSize?: number } = {}): DepmodParts | DepmodImageFailure {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK); // a FIFO must not hang the open
  } catch (e) {
    return { errno: errnoOf(e) };
  }
  let image: Buffer;
  try {
    const size = fstatSync(fd).size;
    if (size < MAGIC_MAX) return { errno: Errno.EINVAL };
    if (size > (opts.maxSize ?? DEFAULT_MAX_SIZE)) return { errno: Errno.EFBIG };
    // one scratch buffer per thread for the file's bytes: everything kept is copied out as
    // strings, and a fresh module-sized buffer per file was most of the garbage collector's work
    if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, scratch.length * 2));
    const whole = scratch;
    let got = 0;
    while (got < size) {
      const n = readSync(fd, whole, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    const format = detectFormat(whole.subarray(0, MAGIC_MAX));
    if (format === undefined || format === 'elf') image = whole.subarray(0, got);
    else {
      try {
        image = decompressSync(format, whole.subarray(0, got), { maxSize: opts.maxSize });
      } catch (e) {
        if (e instanceof DecompressError) return { errno: Errno.EINVAL, codecMessage: `${e.format}: ${libkmodWords(e)}` };
        throw e;
      }
    }
  } catch (e) {
    return { errno: errnoOf(e) };
  } finally {
    closeSync(fd);
  }
  try {
    return new KmodElf(image).depmodParts();
  } catch (e) {
    if (e instanceof ElfSymbolsError) return { errno: e.errno };
    throw e;
  }
}

/**
 * libkmod's words for a decompression failure: xz's are already kmod's; zstd's one-shot decoder
 * reports ZSTD_getErrorName (a truncated frame is "Src size is incorrect").
 */
function libkmodWords(e: DecompressError): string {
  if (e.format !== 'zstd') return e.message;
  if (e.kind === 'truncated') return 'Src size is incorrect';
  return e.message.replace(/^Decoding error \(\d+\) : /, '');
}

function errnoOf(e: unknown): number {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === undefined) throw e;
  return errnoFromCode(code) ?? Errno.EIO;
}
