/**
 * The library's error classes: one base, {@link KmodError}, with a `kind` (what happened) and an
 * errno (`errno` number and `code` name, from the one errno table). The library never prints:
 * each applet turns kinds and errnos into kmod's words through its own table.
 *
 * @module
 */
import { Errno, errnoName, strerror } from './kernel/errno.js';

/**
 * The base of every error the library throws on purpose.
 * @example
 * try { await loadModule(f) } catch (e) { if (e instanceof KmodError) console.error(e.kind, e.code) } // 'decompress', 'ENOEXEC'
 */
export class KmodError extends Error {
  /** The errno symbolic name, e.g. `EEXIST`. */
  readonly code: string;
  /**
   * @param kind what happened; each subclass names its kinds
   * @param errno the errno equivalent of the fault (from the kernel, the C library, or kmod's choice)
   * @param message detail
   * @param options the underlying cause
   */
  constructor(
    readonly kind: string,
    readonly errno: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = errnoName(errno);
  }
}

/**
 * A system call failed. `errno` was read straight after the call.
 * @example
 * try { sys.deleteModule('dummy', 0o4000) } catch (e) { if (e instanceof SyscallError) e.errno }
 */
export class SyscallError extends KmodError {
  declare readonly kind: 'syscall';
  /**
   * @param syscall the call that failed (`init_module`, `finit_module`, `delete_module`, `mmap`)
   * @param errno the errno it returned
   * @param why what to say instead of errno's text, when kmod-ts itself refused the call (an
   *   architecture whose syscall numbers it does not know)
   */
  constructor(readonly syscall: string, errno: number, readonly why?: string) {
    super('syscall', errno, `${syscall}: ${why ?? strerror(errno)}`);
  }
}

/** Why a module file could not be turned into something the kernel or modinfo can use. */
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
  /** the image has no `.modinfo` section */
  | 'no-modinfo'
  /** force asked for, but the module has no vermagic to strip */
  | 'no-vermagic';

/**
 * A module file could not be read, decompressed or prepared.
 * @example
 * try { await loadModule('/x.ko.xz') } catch (e) { if (e instanceof ModuleFileError && e.kind === 'decompress') e.format }
 */
export class ModuleFileError extends KmodError {
  declare readonly kind: ModuleFileErrorKind;
  /** compression format involved, if any (`gzip`, `xz`, `zstd`) */
  readonly format: string | undefined;
  /**
   * @param kind the class of fault
   * @param path the path as given by the caller
   * @param message the detail (codec message, strerror, ...)
   * @param opts errno, format and underlying cause
   */
  constructor(
    kind: ModuleFileErrorKind,
    readonly path: string,
    message: string,
    opts: { errno: number; format?: string; cause?: unknown },
  ) {
    super(kind, opts.errno, message, opts);
    this.format = opts.format;
  }
}

/** Why a module cannot be removed, found before calling delete_module. */
export type ModuleStateKind = 'builtin' | 'not-loaded' | 'in-use-by' | 'in-use' | 'no-unload';

/** The errno libkmod's rmmod checks return for each state. */
const STATE_ERRNO: Readonly<Record<ModuleStateKind, number>> = {
  builtin: Errno.ENOENT,
  'not-loaded': Errno.ENOENT,
  'in-use-by': Errno.EBUSY,
  'in-use': Errno.EBUSY,
  'no-unload': Errno.ENOSYS,
};

/**
 * A module's state forbids the operation (rmmod's checks).
 * @example
 * try { await removeModule('fat') } catch (e) { if (e instanceof ModuleStateError) e.holders }
 */
export class ModuleStateError extends KmodError {
  declare readonly kind: ModuleStateKind;
  /**
   * @param kind what was found
   * @param module the module name
   * @param holders the holders, for `in-use-by`
   */
  constructor(kind: ModuleStateKind, readonly module: string, readonly holders: readonly string[] = []) {
    super(kind, STATE_ERRNO[kind], `module ${module}: ${kind}${holders.length ? ` (${holders.join(' ')})` : ''}`);
  }
}

/** Why a module name, alias or path found no module. */
export type LookupErrorKind =
  /** no file, name or alias matched (kmod: `Module X not found.`) */
  | 'not-found'
  /** asked for a module name only (`modinfo -m`), and there is none (`Module name X not found.`) */
  | 'name-not-found'
  /** the alias is not well formed: unpaired brackets (`Module alias X not found.`) */
  | 'bad-alias';

/**
 * A look-up in the module database found nothing.
 * @example
 * try { db.lookup('nosuch') } catch (e) { if (e instanceof LookupError) e.kind } // 'not-found'
 */
export class LookupError extends KmodError {
  declare readonly kind: LookupErrorKind;
  /**
   * @param kind what was missing
   * @param target the name, alias or path as given
   */
  constructor(kind: LookupErrorKind, readonly target: string) {
    super(kind, kind === 'bad-alias' ? Errno.EINVAL : Errno.ENOENT, `${kind}: ${target}`);
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
export class ProbeError extends KmodError {
  declare readonly kind: ProbeErrorKind;
  /**
   * @param kind what failed
   * @param module the module (or the name asked for, for `not-found`)
   * @param errno the errno, when a call failed (else the kind's: ENOENT, EBUSY for `in-use`, ...)
   */
  constructor(kind: ProbeErrorKind, readonly module: string, errno?: number) {
    super(kind, errno ?? PROBE_ERRNO[kind], `${module}: ${kind}${errno !== undefined ? ` (${strerror(errno)})` : ''}`);
  }
}

/** The errno of a probe failure that no call returned. */
const PROBE_ERRNO: Readonly<Record<ProbeErrorKind, number>> = {
  'not-found': Errno.ENOENT,
  'insert-failed': Errno.EINVAL,
  'not-in-kernel': Errno.ENOENT,
  'is-builtin': Errno.ENOENT,
  'in-use': Errno.EBUSY,
  'remove-failed': Errno.EINVAL,
  'remove-command-failed': Errno.EINVAL,
};

/** Bad command-line or API usage (missing file name, bad option). */
export class UsageError extends KmodError {
  declare readonly kind: 'usage';
  /** @param message what is wrong */
  constructor(message: string) {
    super('usage', Errno.EINVAL, message);
  }
}

/** What went wrong inside a decompressor. */
export type DecompressErrorKind = 'corrupt' | 'truncated' | 'too-large' | 'unsupported';

const DECOMPRESS_ERRNO: Readonly<Record<DecompressErrorKind, number>> = {
  corrupt: Errno.EINVAL,
  truncated: Errno.EINVAL,
  'too-large': Errno.EFBIG,
  unsupported: Errno.EOPNOTSUPP,
};

/**
 * A compressed stream could not be decompressed. `message` is the codec's own words as the C
 * tools print them (`File is corrupt`, `unexpected end of file`, ...), without a prefix.
 * @example
 * try { await decompress('xz', buf) } catch (e) { if (e instanceof DecompressError) `${e.format}: ${e.message}` }
 */
export class DecompressError extends KmodError {
  declare readonly kind: DecompressErrorKind;
  /**
   * @param format `gzip`, `xz` or `zstd`
   * @param kind the class of fault
   * @param message the codec's words
   * @param options the codec's own error
   */
  constructor(readonly format: string, kind: DecompressErrorKind, message: string, options?: { cause?: unknown }) {
    super(kind, DECOMPRESS_ERRNO[kind], message, options);
  }
}

/** What is wrong with an ELF image. */
export type ElfErrorKind = 'malformed' | 'not-elf' | 'no-vermagic';

const ELF_ERRNO: Readonly<Record<ElfErrorKind, number>> = {
  malformed: Errno.ENOEXEC,
  'not-elf': Errno.ENOEXEC,
  'no-vermagic': Errno.ENODATA,
};

/**
 * An ELF image is malformed or lacks what is needed (`.modinfo`, `vermagic=`).
 * @example
 * try { readModinfo(src) } catch (e) { if (e instanceof ElfError) e.message }
 */
export class ElfError extends KmodError {
  declare readonly kind: ElfErrorKind;
  /**
   * @param kind `malformed` (bad header/offsets), `not-elf`, or `no-vermagic` (force asked, nothing to strip)
   * @param message detail for -v / debugging
   */
  constructor(kind: ElfErrorKind, message: string) {
    super(kind, ELF_ERRNO[kind], message);
  }
}
