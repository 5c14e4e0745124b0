/**
 * The process entry point: runs {@link main} with the real process and sets the exit status.
 *
 * Output goes straight to file descriptors 1 and 2 with `writeSync`: the first touch of
 * `process.stdout` loads Node's stream machinery, about 5 ms of a ~60 ms start-up, for output
 * that is a few lines and must be complete before exit anyway.
 *
 * @module
 */
import { fstatSync, readFileSync, writeSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import type { Output } from './applet.js';
import { main } from './main.js';

/** /dev/null's device number (1, 3). */
const DEV_NULL = (1 << 8) | 3;

/** A synchronous writer for a descriptor: waits out EAGAIN (a non-blocking pipe), stops quietly on EPIPE. */
function fdOutput(fd: number): Output {
  let closed = false;
  return {
    isOpen() {
      // Node puts /dev/null, opened read-write, on a standard descriptor that was closed before
      // any JavaScript runs; a shell's `2>/dev/null` opens it write-only.
      try {
        const st = fstatSync(fd);
        if (!st.isCharacterDevice() || st.rdev !== DEV_NULL) return true;
        const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1];
        return flags === undefined || (Number.parseInt(flags, 8) & 3) !== 2; // O_ACCMODE, O_RDWR
      } catch {
        return false;
      }
    },
    write(text: string) {
      if (closed) return;
      let buf = Buffer.from(text);
      while (buf.length > 0) {
        try {
          buf = buf.subarray(writeSync(fd, buf));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
          else {
            // EPIPE (`| head`) and the like: the reader is gone, like a C tool killed by SIGPIPE.
            closed = true;
            return;
          }
        }
      }
    },
  };
}

/**
 * Applets whose whole run is a few milliseconds of JavaScript, most of it run once: V8's compilers
 * (Sparkplug, TurboFan, native regular expressions) cost more than they save there, so those
 * applets run on V8's interpreters. Under an emulator (QEMU's TCG, which translates every piece of
 * generated machine code again) this halves modprobe's own CPU time; on hardware it changes
 * nothing measurable (a 1,138-name `modprobe -a -D` took 0.16 s against 0.19 s with the compilers).
 * depmod and modinfo of many modules keep the compilers: their loops are hot.
 */
const INTERPRETED = new Set(['modprobe']);

void main(process.argv.slice(1), {
  stdout: fdOutput(1),
  stderr: fdOutput(2),
  env: process.env,
  onApplet: (name) => {
    if (INTERPRETED.has(name)) setFlagsFromString('--no-opt --no-sparkplug --regexp-interpret-all');
  },
}).then((status) => {
  process.exitCode = status;
});
