/**
 * Compression detection and whole-file decompression of kernel modules (gzip, xz, zstd).
 *
 * This is the only file that touches codec packages. They are loaded on first use, so an
 * `lsmod` or a `detectFormat` pays nothing for liblzma or libzstd.
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
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { availableParallelism } from 'node:os';
import { constants as bufferConstants } from 'node:buffer';
import type * as Zlib from 'node:zlib';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { DecompressError } from '../../errors.js';
import { bufferAddress, loadNativeLibrary } from '../../kernel/ffi.js';

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

/**
 * Default cap on the decompressed size: 1 GiB. The largest in-tree modules are tens of MB;
 * anything near this is a decompression bomb or a mistake, not a module.
 */
export const DEFAULT_MAX_SIZE: number = 1024 * 1024 * 1024;

/** Options for {@link decompress} and {@link decompressSync}. */
export interface DecompressOptions {
  /** Largest decompressed size accepted, in bytes (a non-negative integer; default {@link DEFAULT_MAX_SIZE}). */
  maxSize?: number;
}

/**
 * Features for `-V`, in kmod's `+NAME` style. Constant: the codecs are dependencies of the
 * package, and probing them would load them, which `-V` must not pay for.
 */
export const COMPRESSION_FEATURES: readonly string[] = Object.freeze(['+ZSTD', '+XZ', '+GZIP']);

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
    if (warmingNow.size > 0) await Promise.all(warmingNow.values());
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
      return unxz(src, maxSize);
    case 'zstd':
      return unzstd(src, maxSize);
    default:
      throw new TypeError(`not a compressed format: ${String(format)}`);
  }
}

/**
 * The codec libraries' versions, for debugging output (`-V -v`, bug reports). Loads the codecs.
 *
 * @returns library versions, e.g. `{ zlib: '1.3.0.1-motley', xz: '5.2.3', zstd: '1.5.7' }`
 * @throws {DecompressError} kind `unsupported` if a codec package cannot be loaded
 * @example
 * codecVersions().xz // '5.2.3'
 */
export function codecVersions(): { zlib: string; xz: string; zstd: string } {
  return { zlib: process.versions.zlib ?? 'unknown', xz: lzma().versionString(), zstd: zstd().versionString() };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** `maxSize` as a number we can hold; past Buffer's own limit nothing fits anyway. */
function checkMaxSize(maxSize: number | undefined): number {
  if (maxSize === undefined) return DEFAULT_MAX_SIZE;
  if (!Number.isSafeInteger(maxSize) || maxSize < 0) {
    throw new RangeError(`maxSize must be a non-negative integer, not ${String(maxSize)}`);
  }
  return Math.min(maxSize, bufferConstants.MAX_LENGTH - 1);
}

function tooLarge(format: CompressedFormat): DecompressError {
  return new DecompressError(format, 'too-large', 'File too large');
}

/**
 * An output buffer that is allocated once when the size is known and doubles otherwise.
 * Its capacity may reach `maxSize + 1`: one byte past the cap is how overflow is seen when a
 * decoder fills whatever room it is given (zstd streaming).
 */
class Sink {
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
 */
function reserveToCap(maxSize: number): Buffer | undefined {
  try {
    return Buffer.allocUnsafe(maxSize + 1);
  } catch {
    return undefined;
  }
}

/** Load a codec package on first use; a missing or broken one is an `unsupported` format. */
function loadCodec<T>(format: CompressedFormat, what: string, load: (require: NodeRequire) => T): T {
  try {
    return load(createRequire(import.meta.url));
  } catch (err) {
    throw new DecompressError(format, 'unsupported', `${what} is not available: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// gzip (node:zlib)

let zlibModule: typeof Zlib | undefined;

function zlib(): typeof Zlib {
  return (zlibModule ??= loadCodec('gzip', 'zlib', (req) => req('node:zlib') as typeof Zlib));
}

// deflate cannot expand more than 1032:1, so an ISIZE beyond that is not this member's size.
const DEFLATE_MAX_RATIO = 1032;

/**
 * Node's `gunzipSync` already does what gzip(1) does with members: after each member it goes on
 * while the next byte is not zero, so concatenated members are decoded and garbage right after a
 * member fails as a bad header. It stops silently at a zero byte; we then require everything
 * after it to be zero too. Choice (gzip(1) only warns, "trailing garbage ignored", exit 2):
 * zero padding is accepted (tape/block padding is what gzip's own docs describe), any other
 * trailing bytes are an error, since a module with junk appended is not what was built.
 *
 * Sizing: `chunkSize` = ISIZE + 1 makes zlib write the whole output into one buffer and return
 * a view of it (Node concatenates only when it needs several chunks). The +1 keeps zlib from
 * allocating a second chunk when the output exactly fills the first, and `maxOutputLength` =
 * ISIZE stops it there when the output is longer (several members, whose last ISIZE is too
 * small, or a lying trailer). Then, or without a believable ISIZE, the output goes into one
 * chunk of the cap's size (see {@link reserveToCap}): zlib never needs a second chunk, and a
 * bomb stops when that one is full.
 */
function gunzip(src: Buffer, maxSize: number): Buffer {
  // Checked here, because zlib's wording ("incorrect header check") is reserved below for a bad
  // header after a good member, i.e. trailing garbage.
  if (src.length >= 2 && (src[0] !== 0x1f || src[1] !== 0x8b)) {
    throw new DecompressError('gzip', 'corrupt', 'not in gzip format');
  }
  if (src.length >= 3 && src[2] !== 8) {
    throw new DecompressError('gzip', 'unsupported', `unknown method ${src[2]} -- not supported`);
  }
  const z = zlib();
  const isize = src.length >= 18 ? src.readUInt32LE(src.length - 4) : 0;
  // An ISIZE below half the input is not a plausible single-member size (trailing zero padding,
  // a small last member): guess from the input instead.
  const hint = isize >= src.length / 2 && isize <= src.length * DEFLATE_MAX_RATIO && isize <= maxSize ? isize : undefined;
  type Result = { buffer: Buffer; engine: Zlib.Gunzip };
  const run = (chunkSize: number, maxOutputLength: number): Result =>
    z.gunzipSync(src, { chunkSize: Math.max(z.constants.Z_MIN_CHUNK, chunkSize), maxOutputLength: Math.max(1, maxOutputLength), info: true }) as unknown as Result;
  let result: Result | undefined;
  try {
    if (hint !== undefined) {
      try {
        result = run(hint + 1, hint);
      } catch (err) {
        if ((err as NodeJS.ErrnoException)?.code !== 'ERR_BUFFER_TOO_LARGE' || hint >= maxSize) throw err;
      }
    }
    // The cap's size as one chunk; where that cannot be reserved, 1 MiB chunks and a concat.
    result ??= reserveToCap(maxSize) !== undefined ? run(maxSize + 1, maxSize) : run(1 << 20, maxSize);
  } catch (err) {
    throw gzipError(err);
  }
  if (result.buffer.length > maxSize) throw tooLarge('gzip');
  for (let i = result.engine.bytesWritten; i < src.length; i++) {
    if (src[i] !== 0) throw new DecompressError('gzip', 'corrupt', 'trailing garbage after compressed data');
  }
  return result.buffer;
}

/** zlib's error → gzip(1)'s words. */
function gzipError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ERR_BUFFER_TOO_LARGE') return tooLarge('gzip');
  if (e?.code === 'Z_BUF_ERROR') return new DecompressError('gzip', 'truncated', 'unexpected end of file', { cause: err });
  if (e?.code === 'Z_MEM_ERROR') return new DecompressError('gzip', 'unsupported', 'Cannot allocate memory', { cause: err });
  if (e?.code !== 'Z_DATA_ERROR') return err; // not a data fault: a bug, let it surface as one
  const message =
    e.message === 'incorrect data check'
      ? 'invalid compressed data--crc error'
      : e.message === 'incorrect length check'
        ? 'invalid compressed data--length error'
        : e.message === 'incorrect header check'
          ? 'trailing garbage after compressed data' // the first header was checked by us
          : 'invalid compressed data--format violated';
  return new DecompressError('gzip', 'corrupt', message, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// xz (lzma-native)

/** The parts of lzma-native's native binding we use (its JS layer is skipped; see lzma()). */
interface LzmaNative {
  Stream: new () => LzmaStream;
  CONCATENATED: number;
  versionString(): string;
}

/** An error as lzma-native reports it: `code` is liblzma's `lzma_ret`. */
interface LzmaError extends Error {
  code: number;
}

interface LzmaStream {
  streamDecoder_(memlimit: number | null, flags: number): void;
  setBufsize(size: number): number;
  /** Feed input (null: finish) and, with async=false, run the coder and the handler right now. */
  code(input: Uint8Array | null, async: boolean): void;
  resetUnderlying(): void;
  /** Called per output chunk (buf), then once at the end (buf null, err set on failure). */
  bufferHandler: (buf: Buffer | null | undefined, chunks: number | undefined, err: LzmaError | null | undefined) => void;
}

let lzmaModule: LzmaNative | undefined;

/**
 * lzma-native's native addon, loaded the way its index.js does (node-gyp-build over the package
 * directory) but without index.js itself: that pulls in readable-stream and costs ~25 ms of
 * startup, and its stream/promise wrapper queues and concatenates copies of the output.
 */
function lzma(): LzmaNative {
  return (lzmaModule ??= loadCodec('xz', 'lzma-native', (req) => {
    try {
      const pkg = req.resolve('lzma-native/package.json');
      const nodeGypBuild = createRequire(pkg)('node-gyp-build') as (dir: string) => LzmaNative;
      return nodeGypBuild(dirname(pkg));
    } catch {
      return req('lzma-native') as LzmaNative; // same native exports, via the public entry point
    }
  }));
}

// liblzma's lzma_ret values (stable ABI).
const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_UNSUPPORTED_CHECK = 3;
const LZMA_MEM_ERROR = 5;
const LZMA_MEMLIMIT_ERROR = 6;
const LZMA_FORMAT_ERROR = 7;
const LZMA_OPTIONS_ERROR = 8;
const LZMA_DATA_ERROR = 9;
const LZMA_BUF_ERROR = 10;


/**
 * liblzma's stream decoder with LZMA_CONCATENATED reads every stream, the stream padding
 * between and after them, and every check type (none, CRC32, CRC64, SHA-256), and checks the
 * index against the blocks, so a lying index is reported as corruption.
 *
 * Two ways to run it, same decoder, same results:
 * - **liblzma directly** (the default whenever the file declares its size, which every intact
 *   xz file does): liblzma's own `lzma_code` decodes the whole input straight into the one
 *   output buffer, through the FFI. Nothing is copied and no chunk is allocated, so memory is
 *   input + output + liblzma's dictionary, and no time goes to copies and fresh chunk pages.
 * - **lzma-native's stream binding** (`KMOD_TS_XZ=stream`, or when the size is unknown, or the
 *   FFI or liblzma's symbols are unavailable): output arrives in 64 KiB chunks that are copied
 *   into the output buffer; each chunk is a fresh Buffer that stays allocated until V8's next GC.
 */
function unxz(src: Buffer, maxSize: number): Buffer {
  const declared = xzDeclaredSize(src);
  // The index is verified by liblzma as it decodes, so a file that declares more than the cap
  // is either too large or corrupt; refusing it now avoids decoding up to the cap first.
  if (declared !== undefined && declared > maxSize) throw tooLarge('xz');
  // A claim the data cannot hold (LZMA2 tops out near 7000:1) gets no buffer of its size: that
  // buffer would be touched whole by page warming while the data fills a corner of it.
  const believed = declared !== undefined && declared <= Math.max(src.length, 64) * XZ_WORST_RATIO ? declared : undefined;
  if (xzDecoder() === 'liblzma') {
    if (believed !== undefined) return unxzDirect(liblzma()!, src, Buffer.allocUnsafe(believed), maxSize, true);
    const reserved = reserveToCap(maxSize);
    if (reserved) return unxzDirect(liblzma()!, src, reserved, maxSize, false);
  }
  return unxzStream(src, believed, maxSize);
}

/**
 * Which xz decoder {@link decompress} uses for a file that declares its size: `liblzma` (direct,
 * into one buffer) or `stream` (lzma-native's chunked binding). `KMOD_TS_XZ=liblzma|stream`
 * forces one; unset, liblzma whenever it loads.
 *
 * @returns the decoder (loads the FFI and lzma-native's library unless `KMOD_TS_XZ=stream`)
 * @throws {DecompressError} kind `unsupported`: `KMOD_TS_XZ=liblzma` and liblzma cannot be loaded
 * @example xzDecoder() // 'liblzma'
 */
export function xzDecoder(): 'liblzma' | 'stream' {
  const forced = process.env.KMOD_TS_XZ;
  if (forced === 'stream') return 'stream';
  if (liblzma()) return 'liblzma';
  if (forced === 'liblzma') {
    throw new DecompressError('xz', 'unsupported', `liblzma is not available through the FFI: ${liblzmaFailure}`);
  }
  return 'stream';
}

/** liblzma's C API, bound from the shared object lzma-native loads (see {@link liblzma}). */
interface Liblzma {
  streamDecoder(strm: Buffer, memlimit: bigint, flags: number): number;
  code(strm: Buffer, action: number): number;
  end(strm: Buffer): void;
  /** `lzma_crc32(buf, size, 0)` on libuv's thread pool; used only to read memory (see warmPages). */
  crc32Async(address: bigint, size: number, crc: number, done: (err: unknown) => void): void;
}

let liblzmaFns: Liblzma | null | undefined;
let liblzmaFailure = '';

/** Which liblzma the direct decoder runs: the system's `liblzma.so.5`, or the one inside lzma-native's addon. */
export type XzLibrary = 'system' | 'lzma-native';
let liblzmaFrom: XzLibrary | undefined;

/**
 * liblzma's functions. First the system's `liblzma.so.5` (xz-utils ≥ 5.4 decodes in about half
 * the CPU time of the liblzma 5.2 that lzma-native links in), unless `KMOD_TS_LIBLZMA=lzma-native`;
 * else lzma-native's addon file itself, which links liblzma in statically and exports its
 * symbols. null when the FFI, both files or a symbol are missing, or the platform is not LP64
 * (the `lzma_stream` layout below assumes 8-byte pointers and size_t).
 */
function liblzma(): Liblzma | null {
  if (liblzmaFns !== undefined) return liblzmaFns;
  const failures: string[] = [];
  const bind = (file: string): Liblzma => {
    const lib = loadNativeLibrary(file);
    return {
      streamDecoder: lib.func('int lzma_stream_decoder(void *strm, uint64_t memlimit, uint32_t flags)'),
      code: lib.func('int lzma_code(void *strm, int action)'),
      end: lib.func('void lzma_end(void *strm)'),
      crc32Async: lib.funcAsync('uint32_t lzma_crc32(uint64_t buf, size_t size, uint32_t crc)'),
    };
  };
  liblzmaFns = null;
  try {
    if (!['x64', 'arm64', 'riscv64', 'ppc64', 's390x', 'loong64'].includes(process.arch)) throw new Error(`not an LP64 platform: ${process.arch}`);
    if (process.env.KMOD_TS_LIBLZMA !== 'lzma-native') {
      try {
        liblzmaFns = bind('liblzma.so.5');
        liblzmaFrom = 'system';
        return liblzmaFns;
      } catch (err) {
        failures.push(`liblzma.so.5: ${(err as Error).message}`);
      }
    }
    const req = createRequire(import.meta.url);
    const pkg = req.resolve('lzma-native/package.json');
    const nodeGypBuild = createRequire(pkg)('node-gyp-build') as { path(dir: string): string };
    liblzmaFns = bind(nodeGypBuild.path(dirname(pkg)));
    liblzmaFrom = 'lzma-native';
  } catch (err) {
    failures.push((err as Error).message);
    liblzmaFailure = failures.join('; ');
  }
  return liblzmaFns;
}

/**
 * The liblzma the direct xz decoder uses (see {@link xzDecoder}).
 * @returns `system` (the system's liblzma.so.5), `lzma-native` (the copy in lzma-native's addon),
 *   or undefined when neither loads (decoding then goes through lzma-native's stream binding)
 * @example xzLibrary() // 'system'
 */
export function xzLibrary(): XzLibrary | undefined {
  liblzma();
  return liblzmaFrom;
}

// lzma_stream on LP64 (lzma/base.h): next_in, avail_in, total_in, next_out, avail_out,
// total_out, allocator, internal, 4 reserved pointers, 2 uint64, 2 size_t, 2 enums: 136 bytes.
const STRM = { size: 136, nextIn: 0, availIn: 8, nextOut: 24, availOut: 32, totalOut: 40 } as const;
const LZMA_FINISH = 3;
const LZMA_CONCATENATED = 0x08;
// liblzma's memory limit: the cap plus what its decoder needs besides the dictionary.
const XZ_MEMLIMIT_SLACK = 64n << 20n;
// V8 keeps typed arrays of up to 64 bytes inside its heap, where they can move between calls.
const MAX_ON_HEAP = 64;

// Below this, or on one CPU, warming the output's pages from another thread buys nothing.
const WARM_MIN = 1 << 20;
const warmThreads = availableParallelism() > 1;
// Reads still queued or running. Their callbacks only run when the event loop turns, so a
// synchronous loop of decodes stops queueing here rather than at koffi's limit on async calls.
const WARM_MAX_IN_FLIGHT = 4;
let warming = 0;

/**
 * Buffers a warming read is still running over, each with the read's completion. A module-level
 * map, not a closure capture: a callback that only mentions the buffer (`void out`) is dead code
 * to the bundler, which dropped it; the buffer then became garbage as soon as a decode failed,
 * V8 freed its pages, and the thread-pool read faulted (SIGSEGV on an xz whose index claims
 * hundreds of MiB the data does not hold). Node waits for thread-pool requests before it tears
 * down a worker or exits, so a buffer held here is never freed under a read.
 */
const warmingNow = new Map<Buffer, Promise<void>>();

/**
 * Touch a fresh output buffer's pages from a helper thread while liblzma fills it on this one.
 *
 * The first touch of each fresh page costs a fault, and on the VMs we measure on those faults
 * are much of what separates our decode from `xz -dc` (which streams through small buffers and
 * has few pages to touch). A throwaway `lzma_crc32` over the buffer, run on libuv's thread pool
 * through the FFI, reads it ahead of the decoder on another core, so the decoder finds its pages
 * ready: xfs.ko.xz (4.2 MB out) in a fresh process, median 79 → 58 ms over 12 interleaved runs
 * (44 ms with the buffer filled beforehand; the VM's fault cost varies from hour to hour).
 * Reading cannot change what the decoder writes, and {@link warmingNow} holds `out` until the
 * read is over; {@link decompress} waits for it, so an async caller never has a read outlive
 * its decode. A busy thread pool or a single CPU only means the decoder takes the faults itself.
 */
function warmPages(lz: Liblzma, out: Buffer): void {
  if (!warmThreads || out.length < WARM_MIN || warming >= WARM_MAX_IN_FLIGHT) return;
  warming++;
  warmingNow.set(
    out,
    new Promise<void>((resolve) =>
      lz.crc32Async(bufferAddress(out), out.length, 0, () => {
        warming--;
        warmingNow.delete(out);
        resolve();
      }),
    ),
  );
}

/**
 * Decode all of `src` into one buffer of exactly `size` bytes (the size the index declares).
 * One `lzma_code(LZMA_FINISH)` call normally does it all; liblzma returns LZMA_BUF_ERROR when a
 * second call in a row can make no progress, so the loop ends.
 */
function unxzDirect(lz: Liblzma, input: Buffer, out: Buffer, maxSize: number, exact: boolean): Buffer {
  // Addresses go into C memory: the buffers must not live in V8's heap, where they could move.
  const src = input.length <= MAX_ON_HEAP ? Buffer.from(input) : input;
  const size = out.length;
  if (exact) warmPages(lz, out);
  const strm = Buffer.alloc(STRM.size); // LZMA_STREAM_INIT is all zeros
  // A dictionary larger than the cap could never be filled by output we accept.
  let ret = lz.streamDecoder(strm, BigInt(maxSize) + XZ_MEMLIMIT_SLACK, LZMA_CONCATENATED);
  if (ret !== LZMA_OK) throw xzError(ret);
  try {
    strm.writeBigUInt64LE(bufferAddress(src), STRM.nextIn);
    strm.writeBigUInt64LE(BigInt(src.length), STRM.availIn);
    if (size > 0) {
      strm.writeBigUInt64LE(bufferAddress(out), STRM.nextOut);
      strm.writeBigUInt64LE(BigInt(size), STRM.availOut);
    }
    do ret = lz.code(strm, LZMA_FINISH);
    while (ret === LZMA_OK);
  } finally {
    lz.end(strm);
  }
  const produced = Number(strm.readBigUInt64LE(STRM.totalOut));
  if (!exact) {
    // `out` is the cap plus one byte: full means past the cap.
    if (produced > maxSize) throw tooLarge('xz');
    if (ret !== LZMA_STREAM_END) throw xzError(ret);
    return out.subarray(0, produced);
  }
  // More data than the index declared: the output is full but input is left (liblzma checks
  // the index only once it reaches it, so a lying index shows first as a full buffer).
  if (ret !== LZMA_STREAM_END && produced === size && strm.readBigUInt64LE(STRM.availIn) > 0n) throw xzError(LZMA_DATA_ERROR);
  if (ret !== LZMA_STREAM_END) throw xzError(ret);
  if (produced !== size) throw xzError(LZMA_DATA_ERROR);
  return out;
}

// Stream binding: input is fed in slices so that the binding (which queues all output of one
// call before handing it over) never holds much more than a slice's worth of output, and the cap
// is checked every slice. Measured on a 4.4 MB module: 4-64 KiB slices and 16 KiB-4 MiB output
// chunks decode equally fast. Each output chunk arrives as a fresh Buffer that we copy and drop;
// those stay allocated until V8's next GC, so this way costs about one more output size of
// memory than the direct one (lzma-native's binding cannot decode into a caller's buffer).
const XZ_IN_SLICE = 16 * 1024;
const XZ_MIN_SLICE = 1024;
const XZ_OUT_CHUNK = 64 * 1024;
// LZMA2 tops out near 7000:1 (all zeros). Within 128 MiB of the cap, slices shrink so that one
// slice cannot carry the output far past it (at most 1 KiB x 7000 = 7 MB over, for a bomb).
const XZ_WORST_RATIO = 8192;

/** Decode through lzma-native's stream binding into a {@link Sink}. */
function unxzStream(src: Buffer, declared: number | undefined, maxSize: number): Buffer {
  const lz = lzma();
  // Output past what the index declares is a lie found early (liblzma would say so at the index).
  const limit = declared ?? maxSize;
  const sink = new Sink('xz', declared ?? Math.max(src.length * 4, 64 * 1024), limit, declared === undefined ? reserveToCap(maxSize) : undefined);
  let failure: LzmaError | undefined;
  let ended = false;
  let overflow = false;
  const strm = new lz.Stream();
  // The handler runs inside the native call: it must not throw, so it only records.
  strm.bufferHandler = (buf, _chunks, err) => {
    if (err) failure ??= err;
    else if (buf) overflow ||= !sink.write(buf);
    else if (buf === null) ended = true;
  };
  try {
    strm.streamDecoder_(null, lz.CONCATENATED);
    strm.setBufsize(XZ_OUT_CHUNK);
    for (let off = 0; off < src.length && !failure && !overflow; ) {
      const room = limit - sink.pos;
      const n = Math.min(XZ_IN_SLICE, Math.max(XZ_MIN_SLICE, Math.floor(room / XZ_WORST_RATIO)));
      strm.code(src.subarray(off, off + n), false); // never an empty slice: that means "finish"
      off += n;
    }
    if (!failure && !overflow) strm.code(null, false);
  } catch (err) {
    if (typeof (err as LzmaError)?.code !== 'number') throw err; // not liblzma's: a bug
    failure ??= err as LzmaError;
  } finally {
    strm.resetUnderlying();
  }
  if (overflow) throw declared === undefined ? tooLarge('xz') : xzError(LZMA_DATA_ERROR);
  if (failure) throw xzError(failure.code, failure);
  if (!ended) throw new DecompressError('xz', 'truncated', 'Unexpected end of input');
  return sink.result();
}

/** liblzma's errors in kmod's words (libkmod-file.c xz_uncompress_belch, which follow xz's). */
const XZ_ERRORS: Readonly<Record<number, readonly [DecompressError['kind'], string]>> = {
  [LZMA_DATA_ERROR]: ['corrupt', 'File is corrupt'],
  [LZMA_BUF_ERROR]: ['truncated', 'Unexpected end of input'],
  [LZMA_FORMAT_ERROR]: ['corrupt', 'File format not recognized'],
  [LZMA_OPTIONS_ERROR]: ['unsupported', 'Unsupported compression options'],
  [LZMA_UNSUPPORTED_CHECK]: ['unsupported', 'Unsupported type of integrity check'],
  [LZMA_MEM_ERROR]: ['unsupported', 'Cannot allocate memory'],
  [LZMA_MEMLIMIT_ERROR]: ['unsupported', 'Memory usage limit reached'],
};

/** liblzma's `lzma_ret` → a DecompressError in kmod's words. */
function xzError(code: number, cause?: Error): DecompressError {
  const [kind, message] = XZ_ERRORS[code] ?? ['corrupt', 'Internal error (bug)'];
  return new DecompressError('xz', kind, message, cause ? { cause } : undefined);
}

/**
 * The total uncompressed size an xz file declares in its indexes, without decoding anything.
 *
 * Read backwards from the end (stream padding, footer, index, then the previous stream), as
 * `xz --list` does. Checksums are not verified here: liblzma verifies the index against the
 * blocks while decoding, so a lying index still fails there. Cost: a few bytes per block.
 * Format: https://tukaani.org/xz/xz-file-format.txt §2.1.2.4 (footer), §4 (index).
 *
 * @param buf a whole xz file (all streams)
 * @returns the sum of the blocks' uncompressed sizes, or `undefined` when the tail does not parse
 *   (truncated, corrupt, not xz; the decoder then says what is wrong)
 * @throws never
 * @example
 * xzDeclaredSize(fs.readFileSync('fat.ko.xz')) // 215040
 */
export function xzDeclaredSize(buf: Uint8Array): number | undefined {
  let end = buf.length;
  let total = 0;
  let streams = 0;
  while (end > 0) {
    // Stream padding: zero bytes in units of four.
    while (end >= 4 && buf[end - 1] === 0 && buf[end - 2] === 0 && buf[end - 3] === 0 && buf[end - 4] === 0) end -= 4;
    if (end === 0) break;
    if (end < 24) return undefined;
    const footer = end - 12;
    if (buf[footer + 10] !== 0x59 || buf[footer + 11] !== 0x5a) return undefined; // 'YZ'
    const backwardSize = (readU32LE(buf, footer + 4) + 1) * 4;
    const index = footer - backwardSize;
    if (index < 12 || buf[index] !== 0x00) return undefined;
    let p = index + 1;
    const vli = (): number | undefined => {
      let value = 0;
      for (let i = 0, mul = 1; i < 9 && p < footer; i++, mul *= 128) {
        const byte = buf[p++];
        value += (byte & 0x7f) * mul;
        if (!(byte & 0x80)) return Number.isSafeInteger(value) ? value : undefined;
      }
      return undefined;
    };
    const records = vli();
    if (records === undefined) return undefined;
    let blocks = 0;
    for (let r = 0; r < records; r++) {
      const unpadded = vli();
      const uncompressed = vli();
      if (unpadded === undefined || uncompressed === undefined) return undefined;
      blocks += Math.ceil(unpadded / 4) * 4;
      total += uncompressed;
    }
    const start = index - blocks - 12;
    if (start < 0 || detectFormat(buf.subarray(start, start + 6)) !== 'xz') return undefined;
    end = start;
    streams++;
  }
  return streams > 0 && Number.isSafeInteger(total) ? total : undefined;
}

function readU32LE(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}

// ---------------------------------------------------------------------------------------------
// zstd (zstd-napi)

let zstdModule: typeof ZstdBinding | undefined;

/** zstd-napi's low-level binding: its index also loads node:stream wrappers we do not use. */
function zstd(): typeof ZstdBinding {
  return (zstdModule ??= loadCodec('zstd', 'zstd-napi', (req) => req('zstd-napi/binding') as typeof ZstdBinding));
}

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
// Skippable frames: 0x184D2A50..0x184D2A5F little-endian.
const isSkippablePrefix = (b: Uint8Array): boolean =>
  (b.length < 1 || (b[0] & 0xf0) === 0x50) && (b.length < 2 || b[1] === 0x2a) && (b.length < 3 || b[2] === 0x4d);
const isZstdPrefix = (b: Uint8Array): boolean => b.every((x, i) => x === ZSTD_MAGIC[i]);

/**
 * First every frame is walked (libzstd's `findFrameCompressedSize`, which reads only block
 * headers): this finds truncation reliably (libzstd's one-shot decoder calls a cut-off frame a
 * checksum or size error) and gives the output size when every frame header carries it.
 * Then: all sizes known → libzstd's one-shot decoder into one exact buffer (fastest; it handles
 * several and skippable frames); otherwise (`zstd --no-content-size`, streamed input) → the
 * streaming decoder into a growing buffer.
 *
 * Like zstd(1), anything after the last frame that is not a frame, zero bytes included, is
 * an error (`unsupported format`), and an empty file is `unexpected end of file`.
 */
function unzstd(src: Buffer, maxSize: number): Buffer {
  if (src.length === 0) throw new DecompressError('zstd', 'truncated', 'unexpected end of file');
  const z = zstd();
  let known = 0;
  let allKnown = true;
  for (let off = 0; off < src.length; ) {
    const rest = src.subarray(off);
    if (rest.length < 4 && !isZstdPrefix(rest) && !isSkippablePrefix(rest)) throw zstdUnsupported();
    let size: number;
    try {
      size = z.findFrameCompressedSize(rest);
    } catch (err) {
      throw zstdError(err);
    }
    let content: number | null;
    try {
      content = z.getFrameContentSize(rest.subarray(0, size));
    } catch (err) {
      throw zstdError(err);
    }
    if (content === null) allKnown = false;
    else known += content;
    // Declared sizes are checked by libzstd as it decodes; refuse before decoding a bomb.
    if (known > maxSize) throw tooLarge('zstd');
    off += size;
  }
  const dctx = new z.DCtx();
  if (allKnown) {
    const out = Buffer.allocUnsafe(known);
    let n: number;
    try {
      n = dctx.decompress(out, src);
    } catch (err) {
      throw zstdError(err);
    }
    if (n !== known) throw new DecompressError('zstd', 'corrupt', 'Decoding error (36) : Corrupted block detected');
    return out;
  }
  const sink = new Sink('zstd', Math.max(known, src.length * 4, z.dStreamOutSize()), maxSize, reserveToCap(maxSize));
  let inPos = 0;
  let pending = 0; // libzstd's hint: 0 when the current frame is complete and flushed
  for (;;) {
    sink.reserve(z.dStreamOutSize());
    const room = sink.buf.length - sink.pos;
    let produced: number;
    let consumed: number;
    try {
      [pending, produced, consumed] = dctx.decompressStream(sink.free(), src.subarray(inPos));
    } catch (err) {
      throw zstdError(err);
    }
    sink.advance(produced);
    inPos += consumed;
    if (inPos === src.length && pending === 0) break;
    // No progress with room to write: the input ended inside a frame (the walk should have
    // caught it; this keeps a libzstd disagreement from looping forever).
    if (produced === 0 && consumed === 0 && room > 0) throw zstdTruncated();
    if (room === 0) throw tooLarge('zstd'); // full at maxSize + 1 and still going
  }
  return sink.result();
}

function zstdTruncated(cause?: unknown): DecompressError {
  return new DecompressError('zstd', 'truncated', 'Read error (39) : premature end', { cause });
}

function zstdUnsupported(cause?: unknown): DecompressError {
  return new DecompressError('zstd', 'corrupt', 'unsupported format', { cause });
}

// libzstd error names (ZSTD_getErrorName) that mean "valid, but not decodable here".
const ZSTD_UNSUPPORTED = new Set([
  'Version not supported',
  'Unsupported frame parameter',
  'Frame requires too much memory for decoding',
  'Dictionary mismatch',
]);

/** libzstd's error → zstd(1)'s words (fileio.c: "Read error (39)", "Decoding error (36)"). */
function zstdError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const name = err.message;
  if (name === 'Src size is incorrect') return zstdTruncated(err);
  if (name === 'Unknown frame descriptor') return zstdUnsupported(err);
  return new DecompressError('zstd', ZSTD_UNSUPPORTED.has(name) ? 'unsupported' : 'corrupt', `Decoding error (36) : ${name}`, {
    cause: err,
  });
}
