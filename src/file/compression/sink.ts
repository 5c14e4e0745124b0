/**
 * What the codecs share: the one output buffer ({@link Sink}), the `too-large` fault, and the
 * lazy loading of a codec package.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { DecompressError } from '../../errors.js';
import type { CompressedFormat } from './format.js';

export function tooLarge(format: CompressedFormat): DecompressError {
  return new DecompressError(format, 'too-large', 'File too large');
}

/**
 * An output buffer that is allocated once when the size is known and doubles otherwise.
 * Its capacity may reach `maxSize + 1`: one byte past the cap is how overflow is seen when a
 * decoder fills whatever room it is given (zstd streaming).
 */
export class Sink {
  buf: Buffer;
  pos = 0;
  private readonly limit: number;

  /** @param reserved a buffer of `maxSize + 1` bytes from {@link reserveToCap}, used instead of growing */
  constructor(private readonly format: CompressedFormat, initial: number, readonly maxSize: number, reserved?: Buffer) {
    this.limit = maxSize + 1;
    this.buf = reserved ?? Buffer.allocUnsafe(Math.max(0, Math.min(initial, this.limit)));
  }

  /** Room for at least `need` more bytes (if the cap allows), growing by doubling. */
  reserve(need: number): void {
    if (this.buf.length - this.pos >= need) return;
    const want = Math.min(this.limit, Math.max(this.pos + need, this.buf.length * 2, 64 * 1024));
    if (want <= this.buf.length) return;
    const next = Buffer.allocUnsafe(want);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Append `chunk`; false (and nothing written) if that would pass the cap. */
  write(chunk: Uint8Array): boolean {
    if (this.pos + chunk.length > this.maxSize) return false;
    this.reserve(chunk.length);
    this.buf.set(chunk, this.pos);
    this.pos += chunk.length;
    return true;
  }

  /** Free space as a view, for decoders that write in place. */
  free(): Buffer {
    return this.buf.subarray(this.pos);
  }

  /** Account for `n` bytes a decoder wrote into {@link free}; throws past the cap. */
  advance(n: number): void {
    this.pos += n;
    if (this.pos > this.maxSize) throw tooLarge(this.format);
  }

  /** The bytes written; the buffer itself when it was sized exactly (no copy either way). */
  result(): Buffer {
    return this.pos === this.buf.length ? this.buf : this.buf.subarray(0, this.pos);
  }
}

/**
 * One buffer of `maxSize + 1` bytes for output whose size is not known, or not believed. Its pages
 * are untouched until output is written to them, so memory is the output, never the cap; and it
 * never grows, so there are never two copies: a growing buffer (old copy + doubled new one) or
 * a list of chunks plus their concatenation both peaked near twice the cap on a decompression
 * bomb (gzip 2.1 GB, zstd 1.8 GB at the 1 GiB default). undefined when the address space cannot
 * be had (a small machine with strict overcommit): callers then grow by doubling.
 * `bound` is the most the codec can make of the input (its best ratio), so small inputs do not
 * reserve the whole cap: output past it cannot happen, and is reported as past the cap.
 */
export function reserveToCap(maxSize: number, bound = Infinity): Buffer | undefined {
  try {
    return Buffer.allocUnsafe(Math.min(maxSize, bound) + 1);
  } catch {
    return undefined;
  }
}

/** Load a codec package on first use; a missing or broken one is an `unsupported` format. */
export function loadCodec<T>(format: CompressedFormat, what: string, load: (require: NodeRequire) => T): T {
  try {
    return load(createRequire(import.meta.url));
  } catch (err) {
    throw new DecompressError(format, 'unsupported', `${what} is not available: ${(err as Error).message}`, { cause: err });
  }
}
