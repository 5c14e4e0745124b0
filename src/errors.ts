/**
 * The library's error classes. The library never prints: applets turn these into kmod's words.
 *
 * @module
 */
import { errnoName, strerror } from './kernel/errno.js';

/**
 * A system call failed. `errno` was read straight after the call.
 * @example
 * try { sys.deleteModule('dummy', 0o4000) } catch (e) { if (e instanceof SyscallError) e.errno }
 */
export class SyscallError extends Error {
  /** The errno symbolic name, e.g. `EEXIST`. */
  readonly code: string;
  /**
   * @param syscall the call that failed (`init_module`, `finit_module`, `delete_module`, `mmap`)
   * @param errno the errno it returned
   * @param why what to say instead of errno's text, when kmod-ts itself refused the call (an
   *   architecture whose syscall numbers it does not know)
   */
  constructor(readonly syscall: string, readonly errno: number, readonly why?: string) {
    super(`${syscall}: ${why ?? strerror(errno)}`);
    this.name = 'SyscallError';
    this.code = errnoName(errno);
  }
}

/** Why a module file could not be turned into something the kernel can take. */
export type ModuleFileErrorKind =
  /** open/stat failed; `errno` says why (kmod: "could not load module") */
  | 'open'
  /** reading failed (EISDIR for a directory, EIO, ...); `errno` says why */
  | 'read'
  /** empty or too short to hold any magic */
  | 'too-short'
  /** neither ELF nor a known compression format */
  | 'bad-format'
  /** the compressed stream is corrupt or truncated; `format` names the codec */
  | 'decompress'
  /** the decompressed size passed the cap */
  | 'too-large'
  /** the ELF image is malformed */
  | 'bad-elf'
  /** force asked for, but the module has no vermagic to strip */
  | 'no-vermagic';

/**
 * A module file could not be read, decompressed or prepared.
 * @example
 * try { await loadModule('/x.ko.xz') } catch (e) { if (e instanceof ModuleFileError && e.kind === 'decompress') e.format }
 */
export class ModuleFileError extends Error {
  /** errno equivalent of the fault, used for the kernel-style reason text */
  readonly errno: number;
  /** compression format involved, if any (`gzip`, `xz`, `zstd`) */
  readonly format: string | undefined;
  /**
   * @param kind the class of fault
   * @param path the path as given by the caller
   * @param message the detail (codec message, strerror, ...)
   * @param opts errno, format and underlying cause
   */
  constructor(
    readonly kind: ModuleFileErrorKind,
    readonly path: string,
    message: string,
    opts: { errno: number; format?: string; cause?: unknown },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ModuleFileError';
    this.errno = opts.errno;
    this.format = opts.format;
  }
}

/** Why a module cannot be removed, found before calling delete_module. */
export type ModuleStateKind = 'builtin' | 'not-loaded' | 'in-use-by' | 'in-use' | 'no-unload';

/**
 * A module's state forbids the operation (rmmod's checks).
 * @example
 * try { await removeModule('fat') } catch (e) { if (e instanceof ModuleStateError) e.holders }
 */
export class ModuleStateError extends Error {
  /**
   * @param kind what was found
   * @param module the module name
   * @param holders the holders, for `in-use-by`
   */
  constructor(readonly kind: ModuleStateKind, readonly module: string, readonly holders: readonly string[] = []) {
    super(`module ${module}: ${kind}${holders.length ? ` (${holders.join(' ')})` : ''}`);
    this.name = 'ModuleStateError';
  }
}

/** Why probing or removing by name failed (modprobe's reports). */
export type ProbeErrorKind =
  /** nothing matches the name, alias or `symbol:` (kmod: `Module X not found`) */
  | 'not-found'
  /** inserting the module or one it needs failed; `errno` says why (EEXIST: already loaded under `firstTime`) */
  | 'insert-failed'
  /** `firstTime` removal of a module that is not loaded */
  | 'not-in-kernel'
  /** removal of a built-in module */
  | 'is-builtin'
  /** removal of a module still in use */
  | 'in-use'
  /** `delete_module` failed; `errno` says why */
  | 'remove-failed'
  /** a `remove` command exited non-zero */
  | 'remove-command-failed';

/**
 * A probe or removal by name failed.
 * @example
 * try { await probeModule('vfat') } catch (e) { if (e instanceof ProbeError && e.kind === 'insert-failed') e.code }
 */
export class ProbeError extends Error {
  /** the errno name (`EEXIST`, `ENOENT`, ...), when there is an errno */
  readonly code: string | undefined;
  /**
   * @param kind what failed
   * @param module the module (or the name asked for, for `not-found`)
   * @param errno the errno, when a call failed
   */
  constructor(
    readonly kind: ProbeErrorKind,
    readonly module: string,
    readonly errno?: number,
  ) {
    super(`${module}: ${kind}${errno !== undefined ? ` (${strerror(errno)})` : ''}`);
    this.name = 'ProbeError';
    this.code = errno === undefined ? undefined : errnoName(errno);
  }
}

/** Bad command-line or API usage (missing file name, bad option). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** What went wrong inside a decompressor. */
export type DecompressErrorKind = 'corrupt' | 'truncated' | 'too-large' | 'unsupported';

/**
 * A compressed stream could not be decompressed. `message` is the codec's own words as the C
 * tools print them (`File is corrupt`, `unexpected end of file`, ...), without a prefix.
 * @example
 * try { await decompress('xz', buf) } catch (e) { if (e instanceof DecompressError) `${e.format}: ${e.message}` }
 */
export class DecompressError extends Error {
  /**
   * @param format `gzip`, `xz` or `zstd`
   * @param kind the class of fault
   * @param message the codec's words
   */
  constructor(readonly format: string, readonly kind: DecompressErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DecompressError';
  }
}

/**
 * An ELF image is malformed or lacks what is needed (`.modinfo`, `vermagic=`).
 * @example
 * try { readModinfo(src) } catch (e) { if (e instanceof ElfError) e.message }
 */
export class ElfError extends Error {
  /**
   * @param kind `malformed` (bad header/offsets) or `no-vermagic` (force asked, nothing to strip)
   * @param message detail for -v / debugging
   */
  constructor(readonly kind: 'malformed' | 'not-elf' | 'no-vermagic', message: string) {
    super(message);
    this.name = 'ElfError';
  }
}
