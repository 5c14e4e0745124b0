/**
 * gzip through node:zlib: every member, zero padding accepted, gzip(1)'s words for faults.
 *
 * @module
 */
import type * as Zlib from 'node:zlib';
import { DecompressError } from '../../errors.js';
import { loadCodec, reserveToCap, tooLarge } from './sink.js';

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
export function gunzip(src: Buffer, maxSize: number): Buffer {
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
    // (or the most this input can make: deflate's best ratio bounds it)
    const bound = Math.min(maxSize, src.length * DEFLATE_MAX_RATIO + 1024);
    result ??= reserveToCap(bound) !== undefined ? run(bound + 1, maxSize) : run(1 << 20, maxSize);
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
