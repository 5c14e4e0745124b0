/**
 * The process entry point: runs {@link main} with the real process and sets the exit status.
 *
 * Output goes straight to file descriptors 1 and 2 with `writeSync`: the first touch of
 * `process.stdout` loads Node's stream machinery, about 5 ms of a ~60 ms start-up, for output
 * that is a few lines and must be complete before exit anyway.
 *
 * @module
 */
import { writeSync } from 'node:fs';
import type { Output } from './applet.js';
import { main } from './main.js';

/** A synchronous writer for a descriptor: waits out EAGAIN (a non-blocking pipe), stops quietly on EPIPE. */
function fdOutput(fd: number): Output {
  let closed = false;
  return {
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

void main(process.argv.slice(1), { stdout: fdOutput(1), stderr: fdOutput(2), env: process.env }).then((status) => {
  process.exitCode = status;
});
