/**
 * Opening a module file: its descriptor, its kind and its format from the magic bytes.
 *
 * Never decides by file name. Special files are read, never mapped, and never read past the
 * size cap, so `/dev/zero` or a FIFO cannot hang or exhaust memory.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { detectFormat, type Format } from './compression/index.js';
import { Errno, errnoFromCode } from '../kernel/errno.js';
import { ModuleFileError } from '../errors.js';

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
  /** read the whole file into one buffer, at most `maxSize` bytes */
  readAll(maxSize: number): Buffer;
  close(): void;
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
export function openModuleFile(path: string): ModuleFile {
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
    const head = Buffer.alloc(HEAD_LENGTH);
    let got = 0;
    try {
      while (got < HEAD_LENGTH) {
        const n = readSome(fd, head, got, HEAD_LENGTH - got, regular ? got : null);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      throw new ModuleFileError('read', path, (err as Error).message, { errno: errnoOf(err), cause: err });
    }
    if (!regular) pending = head.subarray(0, got);
    const format = got >= 4 ? detectFormat(head.subarray(0, got)) : undefined;
    if (format === undefined) {
      throw new ModuleFileError(got < 4 ? 'too-short' : 'bad-format', path, got < 4 ? 'file too short' : 'unknown file format', {
        errno: Errno.ENOEXEC,
      });
    }
    return {
      path,
      fd,
      stat,
      regular,
      format,
      close,
      readAll(maxSize) {
        try {
          return regular ? readRegular(fd, stat.size, maxSize, path) : readStream(fd, pending ?? Buffer.alloc(0), maxSize, path);
        } catch (err) {
          if (err instanceof ModuleFileError) throw err;
          throw new ModuleFileError('read', path, (err as Error).message, { errno: errnoOf(err), cause: err });
        }
      },
    };
  } catch (err) {
    close();
    throw err;
  }
}

function tooLarge(path: string): ModuleFileError {
  return new ModuleFileError('too-large', path, 'File too large', { errno: Errno.EFBIG });
}

/**
 * Read the first `size` bytes of a regular file into one buffer (shorter if the file shrank).
 * @param fd an open descriptor
 * @param size bytes to read, from fstat
 * @returns the bytes read
 * @throws {NodeJS.ErrnoException} on a read error
 * @example readFully(fd, fstatSync(fd).size)
 */
export function readFully(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return got === size ? buf : buf.subarray(0, got);
}

function readRegular(fd: number, size: number, maxSize: number, path: string): Buffer {
  if (size > maxSize) throw tooLarge(path);
  return readFully(fd, size);
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
