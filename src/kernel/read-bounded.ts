/**
 * Reading a system file (`/proc/modules`, `modules.dep`, `modules.builtin`, ...) so that no
 * file can hang or exhaust the reader: the open never blocks (a FIFO), only regular files are
 * read (not `/dev/zero`, a FIFO or a socket put in their place), and reading stops at a cap.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * Cap on a system text file: 16 MiB. The largest real ones are a few MB (a distribution
 * kernel's modules.alias is about 1.5 MB; /proc/modules with 10,000 modules about 1 MB).
 */
export const SYSTEM_FILE_MAX: number = 16 * 1024 * 1024;

/** An error shaped like Node's own (`code` is the errno name), so callers treat both alike. */
function errnoError(code: string, message: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, read '${path}'`), { code, path, syscall: 'read' });
}

/**
 * The whole contents of a regular file, at most `max` bytes.
 * procfs and sysfs files report a size of 0 or 4096 whatever they hold, so the size is found by
 * reading, not from `fstat`.
 * @param path the file
 * @param max the cap in bytes (default {@link SYSTEM_FILE_MAX})
 * @returns the bytes
 * @throws {NodeJS.ErrnoException} as `fs` throws them (`ENOENT`, `EACCES`, ...), `EISDIR`, and `EINVAL`
 *   for anything but a regular file, `EFBIG` past the cap
 * @example parseProcModules(readBounded('/proc/modules').toString('latin1'))
 */
export function readBounded(path: string, max: number = SYSTEM_FILE_MAX): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw errnoError('EISDIR', 'illegal operation on a directory', path);
    if (!st.isFile()) throw errnoError('EINVAL', 'not a regular file', path);
    let buf = Buffer.allocUnsafe(64 * 1024);
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        if (buf.length > max) throw errnoError('EFBIG', 'file too large', path);
        const next = Buffer.allocUnsafe(Math.min(buf.length * 2, max + 1));
        buf.copy(next, 0, 0, got);
        buf = next;
      }
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
    }
    if (got > max) throw errnoError('EFBIG', 'file too large', path);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
