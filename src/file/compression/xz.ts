/**
 * xz through lzma-native: liblzma's stream decoder called directly through the FFI into one
 * output buffer (with its pages warmed from another thread), or lzma-native's stream binding.
 * kmod's words for faults.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { availableParallelism } from 'node:os';
import { DecompressError } from '../../errors.js';
import { bufferAddress, loadNativeLibrary } from '../../kernel/ffi.js';
import { loadCodec, reserveToCap, Sink, tooLarge } from './sink.js';
import { xzDeclaredSize } from './xz-index.js';

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
 * - **lzma-native's stream binding** (`stream` asked for, or when the size is unknown, or the
 *   FFI or liblzma's symbols are unavailable): output arrives in 64 KiB chunks that are copied
 *   into the output buffer; each chunk is a fresh Buffer that stays allocated until V8's next GC.
 */
export function unxz(src: Buffer, maxSize: number, xz: XzOptions = {}, scratch?: (size: number) => Buffer): Buffer {
  const declared = xzDeclaredSize(src);
  // The index is verified by liblzma as it decodes, so a file that declares more than the cap
  // is either too large or corrupt; refusing it now avoids decoding up to the cap first.
  if (declared !== undefined && declared > maxSize) throw tooLarge('xz');
  // A claim the data cannot hold (LZMA2 tops out near 7000:1) gets no buffer of its size: that
  // buffer would be touched whole by page warming while the data fills a corner of it.
  const believed = declared !== undefined && declared <= Math.max(src.length, 64) * XZ_WORST_RATIO ? declared : undefined;
  if (xzDecoder(xz) === 'liblzma') {
    const lz = liblzma(xz.library).fns!;
    if (believed !== undefined) {
      const out = scratch ? scratch(believed).subarray(0, believed) : Buffer.allocUnsafe(believed);
      return unxzDirect(lz, src, out, maxSize, true, scratch === undefined);
    }
    const reserved = reserveToCap(maxSize, Math.max(src.length, 64) * XZ_RESERVE_RATIO);
    if (reserved) return unxzDirect(lz, src, reserved, maxSize, false);
  }
  return unxzStream(src, believed, maxSize);
}

/** The two ways to run liblzma's decoder (see {@link unxz}). */
export type XzDecoder = 'liblzma' | 'stream';

/** Which liblzma the direct decoder runs: the system's `liblzma.so.5`, or the one inside lzma-native's addon. */
export type XzLibrary = 'system' | 'lzma-native';

/**
 * How to decode xz; the CLI's `KMOD_TS_XZ=liblzma|stream` and `KMOD_TS_LIBLZMA=lzma-native`
 * reach here through the applets.
 */
export interface XzOptions {
  /** the decoder; default liblzma whenever it loads */
  readonly decoder?: XzDecoder;
  /** `lzma-native`: skip the system's liblzma.so.5; default: the system's first */
  readonly library?: XzLibrary;
}

/**
 * Which xz decoder {@link unxz} uses for a file that declares its size: `liblzma` (direct,
 * into one buffer) or `stream` (lzma-native's chunked binding). `xz.decoder` picks one;
 * unset, liblzma whenever it loads.
 *
 * @param xz the decoder and library asked for, if any
 * @returns the decoder (loads the FFI and a liblzma unless `stream` is asked for)
 * @throws {DecompressError} kind `unsupported`: `liblzma` asked for and no liblzma can be loaded
 * @example xzDecoder() // 'liblzma'
 */
export function xzDecoder(xz: XzOptions = {}): XzDecoder {
  if (xz.decoder === 'stream') return 'stream';
  const lib = liblzma(xz.library);
  if (lib.fns) return 'liblzma';
  if (xz.decoder === 'liblzma') {
    throw new DecompressError('xz', 'unsupported', `liblzma is not available through the FFI: ${lib.failure}`);
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

/** A liblzma bound once per choice: `auto` (the system's, else lzma-native's) or `lzma-native` only. */
const bound = new Map<string, { fns: Liblzma | null; from?: XzLibrary; failure: string }>();

/**
 * liblzma's functions. First the system's `liblzma.so.5` (xz-utils ≥ 5.4 decodes in about half
 * the CPU time of the liblzma 5.2 that lzma-native links in), unless `lzma-native` is asked for;
 * else lzma-native's addon file itself, which links liblzma in statically and exports its
 * symbols. `fns` is null when the FFI, both files or a symbol are missing, or the platform is not
 * LP64 (the `lzma_stream` layout below assumes 8-byte pointers and size_t).
 */
function liblzma(library?: XzLibrary): { fns: Liblzma | null; from?: XzLibrary; failure: string } {
  const key = library === 'lzma-native' ? 'lzma-native' : 'auto';
  const known = bound.get(key);
  if (known) return known;
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
  const out: { fns: Liblzma | null; from?: XzLibrary; failure: string } = { fns: null, failure: '' };
  bound.set(key, out);
  try {
    if (!['x64', 'arm64', 'riscv64', 'ppc64', 's390x', 'loong64'].includes(process.arch)) throw new Error(`not an LP64 platform: ${process.arch}`);
    if (key !== 'lzma-native') {
      try {
        out.fns = bind('liblzma.so.5');
        out.from = 'system';
        return out;
      } catch (err) {
        failures.push(`liblzma.so.5: ${(err as Error).message}`);
      }
    }
    const req = createRequire(import.meta.url);
    const pkg = req.resolve('lzma-native/package.json');
    const nodeGypBuild = createRequire(pkg)('node-gyp-build') as { path(dir: string): string };
    out.fns = bind(nodeGypBuild.path(dirname(pkg)));
    out.from = 'lzma-native';
  } catch (err) {
    failures.push((err as Error).message);
    out.failure = failures.join('; ');
  }
  return out;
}

/**
 * The liblzma the direct xz decoder uses (see {@link xzDecoder}).
 * @param library `lzma-native` to ask for lzma-native's copy only
 * @returns `system` (the system's liblzma.so.5), `lzma-native` (the copy in lzma-native's addon),
 *   or undefined when neither loads (decoding then goes through lzma-native's stream binding)
 * @example xzLibrary() // 'system'
 */
export function xzLibrary(library?: XzLibrary): XzLibrary | undefined {
  return liblzma(library).from;
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
 * Wait until no page-warming read is running, so that none outlives the decode it served.
 * @returns a promise that settles when the thread pool is done with every output buffer
 * @example try { unxz(src, max) } finally { await warmingDone() }
 */
export async function warmingDone(): Promise<void> {
  if (warmingNow.size > 0) await Promise.all(warmingNow.values());
}

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
 * read is over; `decompress` waits for it, so an async caller never has a read outlive
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
function unxzDirect(lz: Liblzma, input: Buffer, out: Buffer, maxSize: number, exact: boolean, fresh = true): Buffer {
  // Addresses go into C memory: the buffers must not live in V8's heap, where they could move.
  const src = input.length <= MAX_ON_HEAP ? Buffer.from(input) : input;
  const size = out.length;
  if (exact && fresh) warmPages(lz, out);
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
    if (produced >= out.length) throw tooLarge('xz'); // full: past the cap or what the input can make
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
// Output reserved for an xz file without a believable index: twice LZMA2's best ratio.
const XZ_RESERVE_RATIO = 16384;

/** Decode through lzma-native's stream binding into a {@link Sink}. */
function unxzStream(src: Buffer, declared: number | undefined, maxSize: number): Buffer {
  const lz = lzma();
  // Output past what the index declares is a lie found early (liblzma would say so at the index).
  const limit = declared ?? maxSize;
  const sink = new Sink('xz', declared ?? Math.max(src.length * 4, 64 * 1024), limit, declared === undefined ? reserveToCap(maxSize, Math.max(src.length, 64) * XZ_RESERVE_RATIO) : undefined);
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
