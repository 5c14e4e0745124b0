/**
 * The parts of a module file that `modinfo` shows: the `.modinfo` section and the appended
 * signature. An uncompressed file is read piecemeal (header, section headers, names, `.modinfo`,
 * trailer); a compressed one is read and decompressed whole. Shared by the main thread and the
 * decompression workers, so it imports nothing heavier than the codecs.
 *
 * Errors carry the errno kmod 30 reports for the same file (`could not get modinfo from 'x':
 * <strerror>`): EINVAL for a file shorter than the longest magic, a malformed ELF or a corrupt
 * archive; ENOEXEC for data that is not ELF; ENOENT for a module without `.modinfo`.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { decompressSync, detectFormat, DEFAULT_MAX_SIZE } from './compression/index.js';
import { bufferSource, fdSource, findSection, parseElfSections, readSignature, type ByteSource, type ModuleSignature } from './elf/sections.js';
import { Errno, errnoFromCode } from '../kernel/errno.js';
import { DecompressError, ElfError } from '../errors.js';
import { readFully } from './module-file.js';

/** What `modinfo` needs from a module file. Every array is a private copy. */
export interface ImageParts {
  /** the `.modinfo` section's bytes */
  readonly modinfo: Uint8Array;
  /** the appended signature, if any */
  readonly signature: ModuleSignature | undefined;
}

/** Why the parts could not be had; `errno` is what kmod would report. */
export class ImageError extends Error {
  /**
   * @param errno kmod's errno for this fault
   * @param message detail
   * @param format the codec when decompression failed
   */
  constructor(readonly errno: number, message: string, readonly format?: string) {
    super(message);
    this.name = 'ImageError';
  }
}

/** kmod reads this many bytes to detect compression (the xz magic); fewer is EINVAL. */
const MAGIC_MAX = 6;

/**
 * Opens a module file and extracts its `.modinfo` and signature.
 * @param file the path
 * @param opts `maxSize` caps decompressed output
 * @returns the parts
 * @throws {ImageError} with kmod's errno
 * @example
 * const { modinfo, signature } = readImageParts('/lib/modules/6.1.0/kernel/fs/fat/fat.ko');
 */
export function readImageParts(file: string, opts: { maxSize?: number } = {}): ImageParts {
  let fd: number;
  try {
    // Non-blocking: a FIFO named in modules.dep must not hang the open (it then reads as empty).
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw ioError(e);
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(MAGIC_MAX);
    const got = size >= MAGIC_MAX ? readSync(fd, head, 0, MAGIC_MAX, 0) : 0;
    if (got < MAGIC_MAX) throw new ImageError(Errno.EINVAL, 'file too short');
    const format = detectFormat(head);
    if (format === undefined || format === 'elf') return partsOf(windowedSource(fd, size));
    // The input is held whole; one past the cap is refused before it is read, as insmod does.
    if (size > (opts.maxSize ?? DEFAULT_MAX_SIZE)) throw new ImageError(Errno.EFBIG, 'File too large', format);
    const whole = readFully(fd, size);
    let image: Buffer;
    try {
      image = decompressSync(format, whole, { maxSize: opts.maxSize });
    } catch (e) {
      if (e instanceof DecompressError) throw new ImageError(e.kind === 'too-large' ? Errno.EFBIG : Errno.EINVAL, e.message, e.format);
      throw e;
    }
    return partsOf(bufferSource(image));
  } catch (e) {
    if (e instanceof ImageError) throw e;
    if (e instanceof ElfError) throw new ImageError(e.kind === 'not-elf' ? Errno.ENOEXEC : Errno.EINVAL, e.message);
    throw ioError(e);
  } finally {
    closeSync(fd);
  }
}

/**
 * Serves reads from one pread of the file's last bytes where it can: a module's section header
 * table, section-name table and signature all sit at its end, so three reads (header, tail,
 * `.modinfo`) usually do instead of seven.
 */
function windowedSource(fd: number, size: number, tailSize = 16 * 1024): ByteSource {
  const direct = fdSource(fd, size);
  const start = Math.max(0, size - tailSize);
  let tail: Uint8Array | undefined;
  return {
    size,
    read(offset, length) {
      if (offset >= start && offset + length <= size) {
        if (tail === undefined) {
          // one scratch buffer for every file: partsOf copies out what it keeps, and a fresh
          // 16 KiB per module was most of the garbage collector's work
          if (scratch.length < size - start) scratch = Buffer.allocUnsafe(size - start);
          const n = readSync(fd, scratch, 0, size - start, start);
          tail = scratch.subarray(0, n);
        }
        return tail.subarray(offset - start, offset - start + length);
      }
      return direct.read(offset, length);
    },
  };
}
let scratch = Buffer.allocUnsafe(16 * 1024);

function partsOf(src: ByteSource): ImageParts {
  const layout = parseElfSections(src);
  const sec = findSection(layout, '.modinfo');
  if (sec === undefined) throw new ImageError(Errno.ENOENT, 'no .modinfo section');
  const sig = readSignature(src);
  return {
    modinfo: copy(src.read(sec.offset, sec.size)),
    signature: sig && {
      ...sig,
      signer: copy(sig.signer),
      keyId: copy(sig.keyId),
      signature: copy(sig.signature),
    },
  };
}

/** A copy with its own ArrayBuffer (Buffer#slice would share memory), so it can be transferred. */
function copy(u: Uint8Array): Uint8Array {
  return new Uint8Array(u);
}

function ioError(e: unknown): ImageError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === undefined) throw e;
  return new ImageError(errnoFromCode(code) ?? Errno.EIO, (e as Error).message);
}
