/**
 * What the fuzzer drives: every parser and decoder that reads untrusted bytes, each with the
 * seeds its mutations start from (real small modules made here, compressed by the C tools) and
 * the typed errors it may end in. Anything else thrown is a finding.
 *
 * @module
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyDepmodConfig, parseDepmodConfig } from '../../src/db/depmod-config.js';
import { IndexFormatError, IndexTrie } from '../../src/db/index-trie.js';
import { ModuleDb } from '../../src/db/module-db.js';
import { kernelCmdlineOptions, readModprobeConfig } from '../../src/db/modprobe-config.js';
import { fnmatch } from '../../src/db/names.js';
import { DecompressError, ElfError, KmodError } from '../../src/errors.js';
import { decompressSync, xzDeclaredSize, type CompressedFormat } from '../../src/file/compression/index.js';
import { bufferSource, decodeModinfo, findSection, parseElfSections, prepareForced, readModinfo, readSignature } from '../../src/file/elf/sections.js';
import { readDepmodParts, readModinfoParts } from '../../src/file/module-file.js';
import { describeSignature } from '../../src/file/signature.js';
import { parseProcModules } from '../../src/kernel/proc-modules.js';
import { readModuleSysfs } from '../../src/kernel/sysfs.js';
import { appendSignature, buildElf } from '../helpers/elf-builder.js';
import { pkcs7Blob } from '../helpers/hostile.js';
import { compress, fixtureModule } from '../helpers/modules.js';

/** The cap every decoder runs under while fuzzing. */
export const FUZZ_MAX_SIZE = 64 << 20;

/** One fuzz target. */
export interface Target {
  readonly name: string;
  /** inputs the mutations start from (made on first use: some run the C compressors) */
  seeds(): readonly Buffer[];
  /** run one input; return normally or throw an allowed error */
  run(input: Buffer): void;
  /** errors that are a correct answer to bad input */
  allowed(err: unknown): boolean;
  /** per-input time budget in ms for an input of this size (linear in the input) */
  budgetMs(input: Buffer): number;
}

const linear = (base: number, perKiB: number) => (input: Buffer) => base + (perKiB * input.length) / 1024;
const none = () => false;

/** A scratch directory for targets that read files, removed by {@link cleanup}. */
let scratch: string | undefined;
function scratchDir(): string {
  // tmpfs where there is one: file targets write every input, and a disk made that their cost
  return (scratch ??= mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'kmod-ts-fuzz-')));
}

/** Remove the scratch directory. */
export function cleanup(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

/** Seeds: modules of both classes and byte orders, signed with a sign-file shaped PKCS#7 blob. */
function modules(): Buffer[] {
  const signed = (image: Buffer) => appendSignature(image, { sig: pkcs7Blob(), idType: 2, hash: 4 });
  const base = fixtureModule({ signed: false });
  return [
    signed(base),
    fixtureModule(),
    signed(buildElf({ bits: 32, littleEndian: false, sections: [{ name: '.modinfo', data: 'license=GPL\0vermagic=6.1 SMP\0parm=x:int\0parmtype=x:int\0', flags: 2 }, { name: '__versions', data: Buffer.alloc(64, 1), flags: 2 }] }).image),
    buildElf({ sections: [{ name: '.modinfo', data: 'a\0b=\0=c\0\0\0alias=pci:v*d*\0', flags: 2 }, { name: '.symtab', data: Buffer.alloc(48), type: 2 }, { name: '.strtab', data: '\0init_module\0', type: 3 }] }).image,
  ];
}

const elfError = (e: unknown) => e instanceof ElfError;

/** Every target, built once per process (seeds compress with the C tools). */
export function targets(): Target[] {
  let made: Buffer[] | undefined;
  const mods = () => (made ??= modules());
  const decoder = (format: CompressedFormat, tool: string): Target => ({
    name: format,
    seeds: () => mods().map((m) => compress(tool, m)),
    run: (input) => void decompressSync(format, input, { maxSize: FUZZ_MAX_SIZE }),
    allowed: (e) => e instanceof DecompressError,
    // decoding up to the cap (64 MiB of output) is allowed time, whatever the input's size
    budgetMs: linear(1500, 5),
  });
  const fileTarget = (name: string, read: (file: string) => void, allowed: (e: unknown) => boolean, seeds: () => Buffer[]): Target => ({
    name,
    seeds,
    run: (input) => {
      const file = join(scratchDir(), `${name}.ko`);
      writeFileSync(file, input);
      read(file);
    },
    allowed,
    budgetMs: linear(1500, 5),
  });
  const index = new IndexTrie();
  for (const [k, v] of [['pci:v00008086d*', 'e1000e'], ['usb:v*p*', 'usbcore'], ['fs-xfs', 'xfs'], ['symbol:printk', 'kernel']]) index.insert(k, v, 0);
  return [
    {
      name: 'elf',
      seeds: mods,
      run: (input) => {
        const src = bufferSource(input);
        const layout = parseElfSections(src);
        findSection(layout, '__versions');
        readModinfo(src, { layout, encoding: 'latin1' });
      },
      allowed: elfError,
      budgetMs: linear(200, 2),
    },
    { name: 'modinfo-strings', seeds: () => mods().map((m) => m.subarray(64, 512)), run: (input) => void decodeModinfo(input), allowed: none, budgetMs: linear(200, 2) },
    {
      name: 'signature',
      seeds: mods,
      run: (input) => {
        const sig = readSignature(bufferSource(input));
        if (sig) describeSignature(sig);
      },
      allowed: none,
      budgetMs: linear(200, 2),
    },
    {
      name: 'pkcs7',
      seeds: () => [pkcs7Blob(), pkcs7Blob({ digestSetTag: 0x11 }), pkcs7Blob({ signerExtra: [Buffer.from([0xa1, 0x00])] })],
      run: (input) => void describeSignature({ bodyLength: 0, sigLength: input.length, algo: 0, hashAlgo: 4, idType: 2, signer: new Uint8Array(0), keyId: new Uint8Array(0), signature: input }),
      allowed: none,
      budgetMs: linear(200, 2),
    },
    {
      name: 'force-strip',
      seeds: mods,
      run: (input) => {
        prepareForced(input, { modversions: true, vermagic: true });
        prepareForced(Buffer.from(input), { modversions: true, vermagic: false }, { inPlace: true });
      },
      allowed: elfError,
      budgetMs: linear(200, 2),
    },
    decoder('gzip', 'gz'),
    decoder('xz', 'xz'),
    decoder('zstd', 'zst'),
    { name: 'xz-index', seeds: () => mods().map((m) => compress('xz', m)), run: (input) => void xzDeclaredSize(input), allowed: none, budgetMs: linear(200, 2) },
    fileTarget('modinfo-image', (f) => void readModinfoParts(f, { maxSize: FUZZ_MAX_SIZE }), (e) => e instanceof KmodError, () => [...mods(), ...mods().map((m) => compress('xz', m))]),
    fileTarget('depmod-image', (f) => void readDepmodParts(f, { maxSize: FUZZ_MAX_SIZE }), none, () => [...mods(), compress('zst', mods()[0])]),
    {
      name: 'proc-modules',
      seeds: () => [Buffer.from('fat 73728 1 vfat, Live 0xffffffffc0a00000\nvfat 20480 0 - Live 0x0 (OE)\nmbcache 16384 1 [permanent], Loading 0x0\n')],
      run: (input) => void parseProcModules(input.toString('latin1')),
      allowed: none,
      budgetMs: linear(200, 2),
    },
    {
      name: 'sysfs',
      seeds: () => [Buffer.from('1\n'), Buffer.from('73728\n'), Buffer.from('live\n')],
      run: (input) => {
        const dir = join(scratchDir(), 'sys/module/victim');
        mkdirSync(join(dir, 'holders'), { recursive: true });
        for (const attr of ['refcnt', 'coresize', 'initstate']) writeFileSync(join(dir, attr), input);
        readModuleSysfs('victim', scratchDir());
      },
      allowed: none,
      budgetMs: linear(200, 2),
    },
    {
      name: 'index-bin',
      seeds: () => [index.toBuffer(), index.toBuffer({ layout: 'post-order' })],
      run: (input) => {
        const t = IndexTrie.fromBuffer(input);
        t.lookup('fs-xfs');
        t.searchWild('pci:v00008086d000010D3sv*');
        t.dump();
      },
      allowed: (e) => e instanceof IndexFormatError,
      budgetMs: linear(300, 5),
    },
    {
      name: 'modprobe.d',
      seeds: () => [Buffer.from('alias eth0 e1000e\noptions snd-hda-intel model=auto index=-2\ninstall foo /bin/true\nremove foo /bin/false\nsoftdep a pre: b c post: d\nblacklist evbug\nweakdep x y\n# comment \\\n continued\n')],
      run: (input) => {
        const dir = join(scratchDir(), 'modprobe.d');
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'fuzz.conf'), input);
        readModprobeConfig({ dirname: scratchDir(), paths: [dir], root: scratchDir(), cmdline: input.toString('latin1') });
        kernelCmdlineOptions(input.toString('latin1'));
      },
      allowed: none,
      budgetMs: linear(300, 5),
    },
    {
      // patterns from modprobe.d and the alias index against names: glibc's fnmatch never fails
      // (a glob once became a RegExp here, and a reversed range threw)
      name: 'fnmatch',
      seeds: () => ['pci:v00008086d*sv*sd*bc*sc*i*\0pci:v00008086d00001234sv0sd0bc01sc02i03', 'foo[z-a]x\0foobx', '[[:alpha:]][!0-9]?\\*\0ab1*', 'x[.a.]-[=b=]]\0xa]'].map((t) => Buffer.from(t, 'latin1')),
      run: (input) => {
        const text = input.toString('latin1');
        const nul = text.indexOf('\0');
        fnmatch(nul === -1 ? text : text.slice(0, nul), nul === -1 ? text : text.slice(nul + 1));
      },
      allowed: none,
      budgetMs: linear(100, 20),
    },
    {
      // the text indexes modprobe and modinfo fall back to without .bin files: modules.dep,
      // .alias, .symbols, .builtin and .builtin.modinfo, one per NUL-separated part of the input
      name: 'module-db',
      seeds: () => [
        Buffer.from(
          'kernel/fs/vfat.ko: kernel/fs/fat.ko\nkernel/fs/fat.ko:\nextra/x.ko.xz:\n\0alias fs-vfat vfat\nalias pci:v00008086d*sv*sd*bc01sc*i* fat\n\0alias symbol:fat_fill_super fat\n\0kernel/fs/ext4/ext4.ko\n\0ext4.alias=fs-ext4\0ext4.softdep=pre: crc32c\0',
          'latin1',
        ),
      ],
      run: (input) => {
        const dir = join(scratchDir(), 'module-db');
        mkdirSync(dir, { recursive: true });
        const parts = input.toString('latin1').split('\0');
        const files = ['modules.dep', 'modules.alias', 'modules.symbols', 'modules.builtin'];
        files.forEach((f, i) => writeFileSync(join(dir, f), parts[i] ?? ''));
        writeFileSync(join(dir, 'modules.builtin.modinfo'), parts.slice(files.length).join('\0'));
        const db = new ModuleDb(dir);
        for (const name of [...db.names().slice(0, 4), 'vfat', 'ext4', 'nosuch']) {
          db.dependencies(name);
          db.isBuiltin(name);
          db.builtinModinfo(name);
        }
        for (const arg of ['vfat', 'fs-vfat', 'pci:v00008086d00001234sv0sd0bc01sc02i00', 'symbol:fat_fill_super', 'fs-ext4', '/abs/x.ko', 'x.ko']) {
          db.lookup(arg, { cwd: dir });
          db.lookupAlias(arg);
          db.lookupSymbol(arg);
          db.lookupBuiltinAlias(arg);
        }
        db.dumpIndex('modules.alias');
        db.dumpIndex('modules.symbols');
      },
      allowed: (e) => e instanceof KmodError,
      budgetMs: linear(300, 10),
    },
    {
      name: 'depmod.d',
      seeds: () => [Buffer.from('search updates extra built-in\noverride e1000e * extra\nexternal * /opt/mods\nexclude .git\n')],
      run: (input) => void parseDepmodConfig(emptyDepmodConfig(), input.toString('latin1'), 'fuzz.conf', '6.1.0', () => {}),
      allowed: none,
      budgetMs: linear(300, 5),
    },
  ];
}
