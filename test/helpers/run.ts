/**
 * Run the program in-process, as the CLI would, collecting what it prints.
 */
import { readdirSync } from 'node:fs';
import { main } from '../../src/cli/main.js';
import type { Syscalls } from '../../src/kernel/syscalls.js';

/** What a run printed and returned. */
export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run `argv0 args...` in-process with a fixture root and a fake syscall layer. */
export async function runMain(
  argv: string[],
  opts: { root?: string; sys?: Syscalls; env?: Record<string, string | undefined>; stderrClosed?: boolean } = {},
): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isOpen: () => !opts.stderrClosed },
    env: opts.env ?? {},
    root: 'root' in opts ? opts.root : '/nonexistent-root',
    sys: opts.sys,
  });
  return { status, stdout, stderr };
}

/** The process's open file descriptors, to check that a run leaves none behind. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
