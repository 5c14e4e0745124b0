/**
 * The size an xz file declares in its indexes, read backwards from the end without decoding.
 *
 * @module
 */
import { detectFormat } from './format.js';

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
