/**
 * The process entry point: runs {@link main} with the real process and sets the exit status.
 *
 * @module
 */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(1), { stdout: process.stdout, stderr: process.stderr, env: process.env });
