/**
 * Module fixtures made at test time: a small ELF "module" with `.modinfo`, `__versions` and an
 * appended signature, its compressed forms made by the real C tools, and fixture roots.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { appendSignature, buildElf } from './elf-builder.js';

export const SHF_ALLOC = 2;

/** A fake module: an ELF relocatable with the sections insmod -f touches. */
export function fixtureModule(opts: { vermagic?: boolean; signed?: boolean; name?: string } = {}): Buffer {
  const modinfo = [
    ...(opts.vermagic === false ? [] : ['vermagic=6.1.0-42-cloud-amd64 SMP preempt mod_unload modversions ']),
    `name=${opts.name ?? 'fixture'}`,
    'license=GPL',
    '',
  ].join('\0');
  const { image } = buildElf({
    sections: [
      { name: '.text', data: Buffer.alloc(64, 0x90), flags: SHF_ALLOC | 4 },
      { name: '.modinfo', data: modinfo, flags: SHF_ALLOC },
      { name: '__versions', data: Buffer.alloc(64, 0x11), flags: SHF_ALLOC },
      { name: '.data', data: Buffer.alloc(4096, 0x5a), flags: SHF_ALLOC | 1 },
    ],
  });
  return opts.signed === false ? image : appendSignature(image, { sig: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), idType: 2, hash: 4 });
}

/** Compression variants made with the C tools, kbuild's choices by default. */
export const COMPRESSORS: Record<string, string[]> = {
  gz: ['gzip', '-9', '-n', '-c'],
  xz: ['xz', '--check=crc32', '--lzma2=dict=1MiB', '-c'],
  'xz-plain': ['xz', '-c'],
  zst: ['zstd', '-q', '-c', '-T1'],
};

/** Compress with a C tool; a missing tool fails the test rather than skipping it. */
export function compress(kind: keyof typeof COMPRESSORS | string, data: Buffer): Buffer {
  const [cmd, ...args] = COMPRESSORS[kind];
  return execFileSync(cmd, args, { input: data, maxBuffer: 1 << 30 });
}

const made: string[] = [];

/** A fresh temporary directory, removed with everything in it when the test process exits. */
export function tempDir(prefix = 'kmod-ts-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (made.length === 0) process.on('exit', removeTempDirs);
  made.push(dir);
  return dir;
}

function removeTempDirs(): void {
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a tree a test made unremovable (as non-root) stays; the test's result is what counts
    }
  }
}

/** Write files (path → contents) under a directory, creating parents. */
export function writeTree(dir: string, files: Record<string, string | Buffer>): string {
  for (const [path, contents] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, contents);
  }
  return dir;
}
