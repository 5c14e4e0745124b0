/**
 * The one module-file opener: its descriptor, its kind and its format from the magic bytes;
 * the whole image (read, and decompressed when compressed), or only the parts `modinfo` shows
 * (read piecemeal through an ELF view).
 *
 * Never decides by file name. Special files are read, never mapped, and never read past the
 * size cap, so `/dev/zero` or a FIFO cannot hang or exhaust memory. Faults are
 * {@link ModuleFileError}s: `errno` is the system's for I/O, ENOEXEC for a file that is not a
 * module (the kernel's word); an operation that reports other errnos (modinfo does, as kmod's
 * libkmod-elf does) maps the `kind`.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { decompress, decompressSync, DEFAULT_MAX_SIZE, detectFormat, type CompressedFormat, type Format, type XzOptions } from './compression/index.js';
import { bufferSource, fdSource, findSection, parseElfSections, readSignature, type ByteSource, type ModuleSignature } from './elf/sections.js';
import { ElfSymbolsError, KmodElf, type DepmodParts } from './elf/symbols.js';
import { Errno, errnoFromCode } from '../kernel/errno.js';
import { DecompressError, ElfError, ModuleFileError } from '../errors.js';

/** The longest magic we look at (xz's six bytes). */
const HEAD_LENGTH = 6;

/** An open module file. Call {@link ModuleFile.close} on every path. */
export interface ModuleFile {
  /** the path as given */
  readonly path: string;
  readonly fd: number;
  readonly stat: Stats;
  /** a regular file: mappable, with a known size */
  readonly regular: boolean;
  readonly format: Format;
  /**
   * read the whole file into one buffer, at most `maxSize` bytes (into `scratch`'s buffer when
   * given: a bulk reader's, reused from file to file)
   */
  readAll(maxSize: number, scratch?: (size: number) => Buffer): Buffer;
  /**
   * The module image: the whole file, decompressed when compressed (at most `maxSize` bytes
   * either way; `xz` picks xz's decoder and library). A compressed file that does not hold an ELF
   * image is `bad-format`.
   */
  readImage(maxSize: number, xz?: XzOptions): Promise<Buffer>;
  /** {@link ModuleFile.readImage}, synchronously (for worker threads) */
  readImageSync(maxSize: number, xz?: XzOptions, scratch?: Scratch): Buffer;
  close(): void;
}

/**
 * Reusable buffers of a bulk reader (one set per thread), for callers that copy out what they
 * keep: the file's bytes go to `input`, a decompressed image to `output`.
 */
export interface Scratch {
  input: (size: number) => Buffer;
  output: (size: number) => Buffer;
}

/**
 * A {@link Scratch}: two buffers, each allocated at its first use and grown (at least doubling) to
 * the largest size asked for.
 * @example const s = scratchBuffers(); f.readImageSync(max, undefined, s);
 */
export function scratchBuffers(): Scratch {
  const growing = (): ((size: number) => Buffer) => {
    let buf = Buffer.alloc(0);
    return (size) => (buf.length >= size ? buf : (buf = Buffer.allocUnsafe(Math.max(size, buf.length * 2))));
  };
  return { input: growing(), output: growing() };
}

/** How to open: kmod's modinfo wants six bytes of magic (the xz magic) where insmod wants four. */
export interface OpenOptions {
  /** fewer bytes than this is `too-short` (default 4) */
  readonly magicLength?: number;
  /**
   * A bulk reader's buffer: a regular file of at most `maxSize` bytes is read whole into
   * `into(size)` at once, its magic taken from those bytes, and `readAll` hands them back
   * without reading again (one read per file instead of two).
   */
  readonly whole?: { readonly into: (size: number) => Buffer; readonly maxSize: number };
}

function errnoOf(err: unknown): number {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (code && errnoFromCode(code)) || Errno.EIO;
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** readSync that waits out EAGAIN (FIFOs are opened non-blocking so that opening never hangs). */
function readSome(fd: number, buf: Buffer, offset: number, length: number, position: number | null): number {
  for (;;) {
    try {
      return readSync(fd, buf, offset, length, position);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      sleep(2);
    }
  }
}

/**
 * Open a module file and identify its format from its first bytes.
 * @param path the path as typed by the user
 * @returns the open file; the caller closes it
 * @throws {ModuleFileError} `open` (cannot open or stat), `read` (a directory, an I/O error),
 *   `too-short` (fewer bytes than any magic), `bad-format` (not ELF, gzip, xz or zstd)
 * @example const f = openModuleFile('/x/dummy.ko.xz'); try { f.format } finally { f.close() }
 */
export function openModuleFile(path: string, opts: OpenOptions = {}): ModuleFile {
  const magicLength = opts.magicLength ?? 4;
  let fd: number;
  let stat: Stats;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ModuleFileError('open', path, (err as Error).message, { errno: errnoOf(err), cause: err });
  }
  try {
    stat = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw new ModuleFileError('open', path, (err as Error).message, { errno: errnoOf(err), cause: err });
  }
  const regular = stat.isFile();
  // Bytes already consumed from a non-seekable file, kept for readAll.
  let pending: Buffer | undefined;
  let closed = false;
  const close = () => {
    if (!closed) closeSync(fd);
    closed = true;
  };
  try {
    if (stat.isDirectory()) throw new ModuleFileError('read', path, 'is a directory', { errno: Errno.EISDIR });
    // the whole file when asked for, else its first bytes
    let whole: Buffer | undefined;
    let head: Buffer;
    let got = 0;
    try {
      if (regular && opts.whole !== undefined && stat.size <= opts.whole.maxSize) {
        whole = readInto(fd, opts.whole.into(stat.size), 0, stat.size);
        head = whole;
        got = Math.min(whole.length, HEAD_LENGTH);
      } else {
        head = Buffer.alloc(HEAD_LENGTH);
        while (got < HEAD_LENGTH) {
          const n = readSome(fd, head, got, HEAD_LENGTH - got, regular ? got : null);
          if (n === 0) break;
          got += n;
        }
      }
    } catch (err) {
      throw new ModuleFileError('read', path, (err as Error).message, { errno: errnoOf(err), cause: err });
    }
    if (!regular) pending = head.subarray(0, got);
    const format = got >= magicLength ? detectFormat(head.subarray(0, got)) : undefined;
    if (format === undefined) {
      const short = got < magicLength;
      throw new ModuleFileError(short ? 'too-short' : 'bad-format', path, short ? 'file too short' : 'unknown file format', {
        errno: Errno.ENOEXEC,
      });
    }
    const readAll = (maxSize: number, scratch?: (size: number) => Buffer): Buffer => {
      try {
        if (whole !== undefined && stat.size <= maxSize) return checkWhole(whole, stat.size, path);
        return regular ? readRegular(fd, stat.size, maxSize, path, scratch) : readStream(fd, pending ?? Buffer.alloc(0), maxSize, path);
      } catch (err) {
        if (err instanceof ModuleFileError) throw err;
        throw new ModuleFileError('read', path, (err as Error).message, { errno: errnoOf(err), cause: err });
      }
    };
    return {
      path,
      fd,
      stat,
      regular,
      format,
      close,
      readAll,
      async readImage(maxSize, xz) {
        const data = readAll(maxSize);
        if (format === 'elf') return data;
        let image: Buffer;
        try {
          image = await decompress(format, data, { maxSize, xz });
        } catch (err) {
          throw decompressFault(path, err);
        }
        return checkElf(path, format, image);
      },
      readImageSync(maxSize, xz, scratch) {
        const data = readAll(maxSize, scratch?.input);
        if (format === 'elf') return data;
        let image: Buffer;
        try {
          image = decompressSync(format, data, { maxSize, xz, scratch: scratch?.output });
        } catch (err) {
          throw decompressFault(path, err);
        }
        return checkElf(path, format, image);
      },
    };
  } catch (err) {
    close();
    throw err;
  }
}

function tooLarge(path: string, cause?: unknown): ModuleFileError {
  return new ModuleFileError('too-large', path, 'File too large', { errno: Errno.EFBIG, cause });
}

function decompressFault(path: string, err: unknown): unknown {
  if (!(err instanceof DecompressError)) return err;
  if (err.kind === 'too-large') return tooLarge(path, err);
  return new ModuleFileError('decompress', path, err.message, { errno: Errno.ENOEXEC, format: err.format, cause: err });
}

/** Checked here so that a compressed non-module never reaches the kernel. */
function checkElf(path: string, format: CompressedFormat, image: Buffer): Buffer {
  if (detectFormat(image.subarray(0, 4)) !== 'elf') {
    throw new ModuleFileError('bad-format', path, `decompressed ${format} data is not an ELF module`, { errno: Errno.ENOEXEC });
  }
  return image;
}

function readRegular(fd: number, size: number, maxSize: number, path: string, scratch?: (size: number) => Buffer): Buffer {
  if (size > maxSize) throw tooLarge(path);
  return checkWhole(scratch ? readInto(fd, scratch(size), 0, size) : (fdSource(fd, size).read(0, size) as Buffer), size, path);
}

/**
 * Cut by another process after fstat: half a module is not the module (kmod would hand the
 * kernel the half, which refuses it as ENOEXEC; say so before any syscall).
 */
function checkWhole(data: Buffer, size: number, path: string): Buffer {
  if (data.length < size) throw new ModuleFileError('read', path, 'file truncated while being read', { errno: Errno.ENOEXEC });
  return data;
}

/** Bytes `[offset, offset + length)` of the file into the same place of `buf`; a view of what was read. */
function readInto(fd: number, buf: Buffer, offset: number, length: number): Buffer {
  let got = 0;
  while (got < length) {
    const n = readSome(fd, buf, offset + got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(offset, offset + got);
}

function readStream(fd: number, start: Buffer, maxSize: number, path: string): Buffer {
  const chunks: Buffer[] = [start];
  let total = start.length;
  for (;;) {
    const chunk = Buffer.allocUnsafe(1 << 16);
    const n = readSome(fd, chunk, 0, chunk.length, null);
    if (n === 0) break;
    total += n;
    if (total > maxSize) throw tooLarge(path);
    chunks.push(chunk.subarray(0, n));
  }
  return Buffer.concat(chunks, total);
}

/** What `modinfo` shows of a module file. Every array is a private copy (transferable). */
export interface ModinfoParts {
  /** the `.modinfo` section's bytes */
  readonly modinfo: Uint8Array;
  /** the appended signature, if any */
  readonly signature: ModuleSignature | undefined;
}

/**
 * The `.modinfo` section and the appended signature of a module file. An uncompressed file is
 * read piecemeal (header, section headers, names, `.modinfo`, trailer); a compressed one is read
 * and decompressed whole. Shared by the main thread and modinfo's decompression workers.
 * @param path the file
 * @param opts `maxSize` caps the decompressed size; `xz` picks xz's decoder and library; `scratch`
 *   a bulk reader's reusable buffers (what is returned is copied out of them; default: fresh ones)
 * @returns the parts
 * @throws {ModuleFileError} `open`/`read` (I/O errno), `too-short` (under six bytes, as kmod's
 *   modinfo reads six of magic), `bad-format` (not ELF), `bad-elf` (malformed), `decompress`,
 *   `too-large`, `no-modinfo`
 * @example const { modinfo, signature } = readModinfoParts('/lib/modules/6.1.0/kernel/fs/fat/fat.ko');
 */
export function readModinfoParts(path: string, opts: { maxSize?: number; xz?: XzOptions; scratch?: Scratch } = {}): ModinfoParts {
  const mf = openModuleFile(path, { magicLength: 6 });
  try {
    const scratch = opts.scratch ?? scratchBuffers();
    const src = mf.format === 'elf' ? windowedSource(mf.fd, mf.stat.size, scratch.input) : bufferSource(mf.readImageSync(opts.maxSize ?? DEFAULT_MAX_SIZE, opts.xz, scratch));
    let layout;
    try {
      layout = parseElfSections(src);
    } catch (err) {
      if (!(err instanceof ElfError)) throw err;
      throw new ModuleFileError(err.kind === 'not-elf' ? 'bad-format' : 'bad-elf', path, err.message, { errno: Errno.ENOEXEC, cause: err });
    }
    const sec = findSection(layout, '.modinfo');
    if (sec === undefined) throw new ModuleFileError('no-modinfo', path, 'no .modinfo section', { errno: Errno.ENOENT });
    const sig = readSignature(src);
    return {
      modinfo: copy(src.read(sec.offset, sec.size)),
      signature: sig && { ...sig, signer: copy(sig.signer), keyId: copy(sig.keyId), signature: copy(sig.signature) },
    };
  } catch (err) {
    // a pread that failed; anything without an errno code is a bug and goes up as it is
    if (err instanceof ModuleFileError || (err as NodeJS.ErrnoException)?.code === undefined) throw err;
    throw new ModuleFileError('read', path, (err as Error).message, { errno: errnoOf(err), cause: err });
  } finally {
    mf.close();
  }
}

/**
 * Serves reads from one pread of the file's last bytes where it can: a module's section header
 * table, section-name table and signature all sit at its end, so three reads (header, tail,
 * `.modinfo`) usually do instead of seven.
 */
function windowedSource(fd: number, size: number, buffer: (size: number) => Buffer, tailSize = 16 * 1024): ByteSource {
  const direct = fdSource(fd, size);
  const start = Math.max(0, size - tailSize);
  let tail: Uint8Array | undefined;
  return {
    size,
    read(offset, length) {
      if (offset >= start && offset + length <= size) {
        if (tail === undefined) {
          // the bulk reader's reusable buffer: readModinfoParts copies out what it keeps, and a
          // fresh 16 KiB per module was most of the garbage collector's work
          const buf = buffer(size - start);
          const n = readSync(fd, buf, 0, size - start, start);
          tail = buf.subarray(0, n);
        }
        return tail.subarray(offset - start, offset - start + length);
      }
      return direct.read(offset, length);
    },
  };
}

/** A copy with its own ArrayBuffer (Buffer#slice would share memory), so it can be transferred. */
function copy(u: Uint8Array): Uint8Array {
  return new Uint8Array(u);
}

/** Why depmod gets nothing from a module; it still lists it, without symbols, aliases or edges. */
export interface DepmodReadFailure {
  /** kmod's errno ("failed to load symbols from FILE: <strerror>") */
  errno: number;
  /** libkmod's line for a stream that does not decompress (`xz: Unexpected end of input`) */
  codecMessage?: string;
}

/** How {@link readDepmodParts} reads. */
export interface DepmodReadOptions {
  /** cap on the file and its decompressed image (default 1 GiB) */
  maxSize?: number;
  /** the thread's reusable buffers (default: fresh ones) */
  scratch?: Scratch;
}

/**
 * The parts of a module depmod uses ({@link KmodElf.depmodParts}), with failures as kmod 34.2
 * reports them: the errno of "failed to load symbols from FILE" (EINVAL under six bytes, EFBIG
 * past the cap, ENOEXEC for what is not ELF, the system's for I/O) and, for a stream that does
 * not decompress, libkmod's own line (`xz: Unexpected end of input`).
 *
 * Made for reading a whole tree: the file's bytes and a decompressed image go into `scratch`'s
 * buffers, reused from file to file since everything kept is copied out as strings. (Reading an
 * uncompressed module piecemeal, only the parts libkmod touches, was tried: no faster warm, and
 * slower in a fresh process, where the extra code runs cold.) Shared by the main thread and the
 * worker threads.
 * @param path the module
 * @param opts how to read
 * @returns the parts, or why there are none
 * @example
 * const r = readDepmodParts('/lib/modules/6.1.0/kernel/fs/xfs/xfs.ko.xz', { scratch: scratchBuffers() });
 * if ('modinfo' in r) r.exports;
 */
export function readDepmodParts(path: string, opts: DepmodReadOptions = {}): DepmodParts | DepmodReadFailure {
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  const scratch = opts.scratch ?? scratchBuffers();
  let mf: ModuleFile;
  try {
    mf = openModuleFile(path, { magicLength: 6, whole: { into: scratch.input, maxSize } });
  } catch (e) {
    return depmodFailure(e);
  }
  try {
    return new KmodElf(mf.readImageSync(maxSize, undefined, scratch)).depmodParts();
  } catch (e) {
    return depmodFailure(e);
  } finally {
    mf.close();
  }
}

function depmodFailure(e: unknown): DepmodReadFailure {
  if (e instanceof ElfSymbolsError) return { errno: e.errno };
  if (!(e instanceof ModuleFileError)) throw e;
  const codec = e.cause instanceof DecompressError ? e.cause : undefined;
  if (codec !== undefined) return { errno: Errno.EINVAL, codecMessage: `${codec.format}: ${libkmodWords(codec)}` };
  if (e.kind === 'too-short') return { errno: Errno.EINVAL };
  if (e.kind === 'too-large') return { errno: Errno.EFBIG };
  return { errno: e.errno };
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
