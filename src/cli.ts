/**
 * The process entry point: runs {@link main} with the real process and sets the exit status.
 *
 * @module
 */
import { main } from './main.js';

void main(process.argv.slice(1), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then((status) => {
  process.exitCode = status;
});
