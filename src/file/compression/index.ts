/**
 * Compression detection and whole-file decompression of kernel modules (gzip, xz, zstd).
 *
 * This folder is the only code that touches codec packages, one file per codec (gzip.ts, xz.ts,
 * zstd.ts; xz-index.ts reads xz's index). They are loaded on first use, so an `lsmod` or a
 * `detectFormat` pays nothing for liblzma or libzstd.
 *
 * Design, in one place:
 * - The format comes from magic bytes only (kmod and the kernel do the same; file names lie).
 * - The output is ONE Buffer, allocated once at its final size whenever the file says how big it
 *   is: the xz index (parsed here, backwards from the footer), the zstd frame headers, the gzip
 *   ISIZE trailer (a hint only: modulo 2^32 and last member only). Only when the size is unknown
 *   does the buffer grow by doubling. This keeps peak memory near input + output (plus
 *   liblzma's dictionary for xz; see unxz for the fallback that also holds chunk copies).
 * - Every member/stream/frame is decoded: concatenated gzip members, concatenated xz streams with
 *   stream padding and any check type, concatenated and skippable zstd frames.
 * - A truncated file is an error, never "half a module" (kmod's gzip path misses this).
 * - Trailing bytes: zero padding after gzip members is accepted (gzip(1) accepts it too); other
 *   trailing garbage is an error for all three (gzip(1) only warns, but a module with junk
 *   appended is not what was built). xz allows only its own stream padding; zstd, like zstd(1),
 *   allows nothing.
 * - The cap (`maxSize`, default 1 GiB) is checked as output is produced and, where a header
 *   declares the size, before any decoding at all.
 * - The work is synchronous. A module is a few MB and decodes in tens of milliseconds; a
 *   thread-pool hop would cost more than it saves and hold a second copy of the output.
 *   `decompress` is the promise-returning face of the same code; bulk callers that want
 *   parallelism use `decompressSync` in worker threads.
 *
 * Fault messages are the C tools' words (kmod's for xz), without a `format:` prefix, so that an
 * applet can print `gzip: unexpected end of file` as gzip -d would:
 * - gzip: truncated `unexpected end of file`; corrupt `invalid compressed data--crc error`,
 *   `invalid compressed data--length error`, `invalid compressed data--format violated`,
 *   `not in gzip format`, `trailing garbage after compressed data`; unsupported
 *   `unknown method N -- not supported`.
 * - xz (libkmod-file.c's words, which follow xz's): truncated `Unexpected end of input`; corrupt
 *   `File is corrupt`, `File format not recognized`; unsupported `Unsupported compression options`.
 * - zstd (zstd(1)'s fileio.c): truncated `Read error (39) : premature end`, or
 *   `unexpected end of file` for empty input; corrupt `Decoding error (36) : <libzstd's reason>`
 *   (e.g. `Restored data doesn't match checksum`), `unsupported format` (not a frame).
 * - all: `File too large` (kind `too-large`) past `maxSize`.
 *
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { detectFormat, type CompressedFormat, type Format } from './format.js';
import { gunzip } from './gzip.js';
import { unxz, warmingDone, xzDecoder, xzLibrary, type XzDecoder, type XzLibrary, type XzOptions } from './xz.js';
import { xzDeclaredSize } from './xz-index.js';
import { unzstd } from './zstd.js';

export { detectFormat, xzDeclaredSize, xzDecoder, xzLibrary, type CompressedFormat, type Format, type XzDecoder, type XzLibrary, type XzOptions };

/**
 * Default cap on the decompressed size: 1 GiB. The largest in-tree modules are tens of MB;
 * anything near this is a decompression bomb or a mistake, not a module.
 */
export const DEFAULT_MAX_SIZE: number = 1024 * 1024 * 1024;

/** Options for {@link decompress} and {@link decompressSync}. */
export interface DecompressOptions {
  /** Largest decompressed size accepted, in bytes (a non-negative integer; default {@link DEFAULT_MAX_SIZE}). */
  maxSize?: number;
  /** xz only: `liblzma` (direct) or `stream` (lzma-native's binding); default liblzma when it loads */
  xz?: XzOptions;
  /**
   * A buffer of at least `size` bytes that the caller reuses from one file to the next (bulk
   * readers that copy out what they keep: depmod, modinfo). When the file declares its size (xz's
   * index, zstd's frame header) the result is a view of it, valid until the caller's next use.
   * A reused buffer's pages are already mapped: a fresh one per module is a page fault per 4 KiB
   * and most of the garbage collector's work.
   */
  scratch?: (size: number) => Buffer;
}

/**
 * Decompress a whole in-memory compressed file into one Buffer.
 *
 * Runs {@link decompressSync}; see the module notes for why the work is not moved to a thread.
 *
 * @param format the format, as found by {@link detectFormat}
 * @param input the whole compressed file
 * @param opts `maxSize`: cap on the output (default 1 GiB)
 * @returns a promise of the decompressed bytes (all members/streams/frames)
 * @throws {DecompressError} (as a rejection) corrupt, truncated or unsupported data, or output past `maxSize`
 * @throws {RangeError} (as a rejection) `maxSize` is not a non-negative integer
 * @example
 * const image = await decompress('xz', fs.readFileSync('fat.ko.xz'), { maxSize: 64 << 20 });
 */
export async function decompress(format: CompressedFormat, input: Uint8Array, opts?: DecompressOptions): Promise<Buffer> {
  try {
    return decompressSync(format, input, opts);
  } finally {
    // No page-warming read outlives the decode it served, on success or failure.
    await warmingDone();
  }
}

/**
 * Decompress a whole in-memory compressed file into one Buffer, synchronously.
 *
 * @param format the format, as found by {@link detectFormat}
 * @param input the whole compressed file
 * @param opts `maxSize`: cap on the output (default 1 GiB)
 * @returns the decompressed bytes (all members/streams/frames)
 * @throws {DecompressError} corrupt, truncated or unsupported data, or output past `maxSize`
 * @throws {RangeError} `maxSize` is not a non-negative integer
 * @example
 * // in a worker thread of a bulk modinfo
 * const image = decompressSync('zstd', fs.readFileSync('fat.ko.zst'));
 */
export function decompressSync(format: CompressedFormat, input: Uint8Array, opts: DecompressOptions = {}): Buffer {
  const maxSize = checkMaxSize(opts.maxSize);
  const src = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  switch (format) {
    case 'gzip':
      return gunzip(src, maxSize);
    case 'xz':
      return unxz(src, maxSize, opts.xz, opts.scratch);
    case 'zstd':
      return unzstd(src, maxSize, opts.scratch);
    default:
      throw new TypeError(`not a compressed format: ${String(format)}`);
  }
}

/** `maxSize` as a number we can hold; past Buffer's own limit nothing fits anyway. */
function checkMaxSize(maxSize: number | undefined): number {
  if (maxSize === undefined) return DEFAULT_MAX_SIZE;
  if (!Number.isSafeInteger(maxSize) || maxSize < 0) {
    throw new RangeError(`maxSize must be a non-negative integer, not ${String(maxSize)}`);
  }
  return Math.min(maxSize, bufferConstants.MAX_LENGTH - 1);
}
