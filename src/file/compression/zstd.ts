/**
 * zstd through zstd-napi's binding: every frame, skippable frames, zstd(1)'s words for faults.
 *
 * @module
 */
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { DecompressError } from '../../errors.js';
import { loadCodec, reserveToCap, Sink, tooLarge } from './sink.js';

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
export function unzstd(src: Buffer, maxSize: number, scratch?: (size: number) => Buffer): Buffer {
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
    const out = scratch ? scratch(known).subarray(0, known) : Buffer.allocUnsafe(known);
    let n: number;
    try {
      n = dctx.decompress(out, src);
    } catch (err) {
      throw zstdError(err);
    }
    if (n !== known) throw new DecompressError('zstd', 'corrupt', 'Decoding error (36) : Corrupted block detected');
    return out;
  }
  // A zstd RLE block of 4 bytes makes 128 KiB: 32768:1 bounds what the input can make.
  const reserved = reserveToCap(maxSize, src.length * 32768 + (128 << 10));
  const sink = new Sink('zstd', Math.max(known, src.length * 4, z.dStreamOutSize()), reserved ? reserved.length - 1 : maxSize, reserved);
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
