/**
 * Module information as kmod 30's `modinfo` finds it: argument resolution (file, name, alias,
 * built-in), the `.modinfo` pairs, the signature fields, and the parameter list.
 *
 * @module
 */
import { ModuleDb, type ModuleDbOptions, type ModuleRef } from '../db/module-db.js';
import { compressedByName } from '../db/names.js';
import { ModuleFileError, type ModuleFileErrorKind } from '../errors.js';
import type { XzOptions } from '../file/compression/index.js';
import { decodeModinfo } from '../file/elf/sections.js';
import { readModinfoParts, scratchBuffers, type ModinfoParts, type Scratch } from '../file/module-file.js';
import { describeSignature, hexColumns, type SignatureDescription } from '../file/signature.js';
import { Errno } from '../kernel/errno.js';
import { ModulePool } from './module-pool.js';

/**
 * The errno kmod 30's modinfo reports for each fault of a module file (`could not get modinfo
 * from 'x': <strerror>`): libkmod-elf's EINVAL for a short or malformed file and for a corrupt
 * archive, ENOEXEC for data that is not ELF, ENOENT without `.modinfo`; EFBIG past the size cap
 * (kmod-ts's own, as insmod's); I/O faults keep their own errno.
 */
const MODINFO_ERRNO: Partial<Record<ModuleFileErrorKind, number>> = {
  'too-short': Errno.EINVAL,
  'bad-format': Errno.ENOEXEC,
  'bad-elf': Errno.EINVAL,
  decompress: Errno.EINVAL,
  'too-large': Errno.EFBIG,
  'no-modinfo': Errno.ENOENT,
};

function asModinfoFault(e: ModuleFileError): ModuleFileError {
  const errno = MODINFO_ERRNO[e.kind];
  if (errno === undefined || errno === e.errno) return e;
  return new ModuleFileError(e.kind, e.path, e.message, { errno, format: e.format, cause: e });
}

/** Where to look and how to decode: the module database's root, kernel version and working directory, and more. */
export interface ModinfoOptions extends ModuleDbOptions {
  /** treat the argument as a module name, never a file or alias; kmod's `-m` */
  readonly asName?: boolean;
  /** `utf8` (default) or `latin1` for byte-exact strings (`Buffer.from(s, 'latin1')`) */
  readonly encoding?: 'utf8' | 'latin1';
  /** cap on decompressed size */
  readonly maxSize?: number;
  /** xz's decoder: `liblzma` (direct) or `stream`; default liblzma when it loads */
  readonly xz?: XzOptions;
}

/** A parameter as kmod's modinfo lists it. */
export interface ModuleParam {
  readonly name: string;
  /** from `parm=name:description` */
  readonly description: string | undefined;
  /** from `parmtype=name:type` */
  readonly type: string | undefined;
}

/** Everything `modinfo` shows about one module. */
export interface ModuleInfo {
  readonly name: string;
  /** absolute path; undefined for a built-in module */
  readonly filename: string | undefined;
  readonly builtin: boolean;
  /** `.modinfo` pairs in file order (for a built-in: from modules.builtin.modinfo) */
  readonly fields: ReadonlyArray<readonly [key: string, value: string]>;
  /** the appended signature, when present and readable */
  readonly signature: SignatureDescription | undefined;
  /** parameters in kmod's order (reverse order of first appearance) */
  readonly params: readonly ModuleParam[];
  /** `parm`/`parmtype` strings without the `:` kmod requires (`key=value`), which it reports */
  readonly invalidParams: readonly string[];
}

/** Most files in one request to a worker. */
const MODINFO_BATCH = 8;

/**
 * Reads the information of resolved modules, decompressing compressed files on worker threads
 * (one per core) when there are several; results come back in argument order. Close it to end
 * the workers.
 * @example
 * const r = new ModinfoReader(ModuleDb.open(), {}); try { for (const p of refs.map((x) => r.read(x))) await p } finally { r.close() }
 */
export class ModinfoReader {
  #pool: Promise<ModulePool | undefined> | undefined;
  #scratch: Scratch | undefined;
  #batch: Array<{ file: string; resolve: (p: ModinfoParts) => void; reject: (e: unknown) => void }> = [];

  /**
   * @param db the module database (for built-ins)
   * @param opts decoding options; `parallel` is the number of worker threads to use for
   *   compressed files (0: decompress on this thread)
   */
  constructor(readonly db: ModuleDb, readonly opts: ModinfoOptions & { parallel?: number } = {}) {}

  /** Reads on this thread, into this reader's reusable buffers. */
  #readHere(file: string): ModinfoParts {
    return readModinfoParts(file, { maxSize: this.opts.maxSize, xz: this.opts.xz, scratch: (this.#scratch ??= scratchBuffers()) });
  }

  #readParts(file: string, compressed: boolean): Promise<ModinfoParts> {
    if (!compressed || (this.opts.parallel ?? 0) <= 0) {
      try {
        return Promise.resolve(this.#readHere(file));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      // reads asked for in one go are sent to the workers a few files per message
      if (this.#batch.push({ file, resolve, reject }) === 1) queueMicrotask(() => this.#flush());
    });
  }

  /** Hands the reads asked for so far to the workers, in batches of up to {@link MODINFO_BATCH} files. */
  #flush(): void {
    const reads = this.#batch;
    this.#batch = [];
    const { maxSize, xz } = this.opts;
    void (this.#pool ??= ModulePool.start(this.opts.parallel ?? 0)).then((pool) => {
      if (!pool) {
        for (const r of reads) {
          try {
            r.resolve(this.#readHere(r.file));
          } catch (e) {
            r.reject(e);
          }
        }
        return;
      }
      // small enough batches that every worker gets several (they finish together)
      const size = Math.max(1, Math.min(MODINFO_BATCH, Math.ceil(reads.length / (pool.size * MODINFO_BATCH))));
      for (let i = 0; i < reads.length; i += size) {
        const chunk = reads.slice(i, i + size);
        pool.request({ kind: 'modinfo', files: chunk.map((r) => r.file), maxSize, xz }).then(
          (m) => {
            const results = m.results as Array<{ parts?: ModinfoParts; error?: { kind: ModuleFileErrorKind; errno: number; message: string; format?: string } }>;
            results.forEach(({ parts, error }, k) => {
              const r = chunk[k];
              if (error) r.reject(new ModuleFileError(error.kind, r.file, error.message, { errno: error.errno, format: error.format }));
              else r.resolve(parts!);
            });
          },
          (e: unknown) => chunk.forEach((r) => r.reject(e)),
        );
      }
    });
  }

  /**
   * Reads one module's information.
   * @param ref from {@link ModuleDb.lookup}
   * @returns the record
   * @throws {ModuleFileError} with kmod's modinfo errno (ENOENT for a module without `.modinfo`,
   *   ENOEXEC for non-ELF data, EINVAL for a malformed or corrupt file, ENOSYS for a built-in
   *   missing from modules.builtin.modinfo)
   */
  async read(ref: ModuleRef): Promise<ModuleInfo> {
    const enc = this.opts.encoding ?? 'utf8';
    if (ref.path === undefined) return this.#builtin(ref, enc);
    let parts: ModinfoParts;
    try {
      parts = await this.#readParts(ref.path, compressedByName(ref.path));
    } catch (e) {
      if (e instanceof ModuleFileError) throw asModinfoFault(e);
      throw e;
    }
    const fields = decodeModinfo(parts.modinfo, enc);
    const signature = parts.signature && describeSignature(parts.signature);
    const { params, invalid } = moduleParams(fields);
    return { name: ref.name, filename: ref.path, builtin: false, fields, signature, params, invalidParams: invalid };
  }

  #builtin(ref: ModuleRef, enc: 'utf8' | 'latin1'): ModuleInfo {
    const empty: ModuleInfo = { name: ref.name, filename: undefined, builtin: true, fields: [], signature: undefined, params: [], invalidParams: [] };
    // kmod: a module without a file that modules.builtin does not list has nothing more to show
    if (!this.db.isBuiltin(ref.name)) return empty;
    const raw = this.db.builtinModinfo(ref.name);
    if (raw === null) return empty; // an old kernel without modules.builtin.modinfo
    if (raw === undefined) throw new ModuleFileError('no-modinfo', ref.name, 'not in modules.builtin.modinfo', { errno: Errno.ENOSYS });
    const fields = enc === 'latin1' ? raw : raw.map(([k, v]): [string, string] => [utf8(k), utf8(v)]);
    const { params, invalid } = moduleParams(fields);
    return { ...empty, fields, params, invalidParams: invalid };
  }

  /**
   * Starts the worker threads now (else at the first compressed file read), so that they are up
   * by the time the reads come.
   * @returns this reader
   */
  start(): this {
    if ((this.opts.parallel ?? 0) > 0) this.#pool ??= ModulePool.start(this.opts.parallel ?? 0);
    return this;
  }

  /** Ends the worker threads. */
  close(): void {
    void this.#pool?.then((p) => p?.close());
  }
}

function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/**
 * The list kmod's `kmod_module_get_info` returns: `.modinfo` pairs, then `sig_id`, `signer`,
 * `sig_key`, `sig_hashalgo`, `signature` (hex as kmod lays it out).
 * @param info a record
 * @param encoding how to decode the signer (match the record's)
 * @returns key/value pairs
 * @example
 * infoList(await modinfoOne('dummy')).find(([k]) => k === 'sig_hashalgo');
 */
export function infoList(info: ModuleInfo, encoding: 'utf8' | 'latin1' = 'utf8'): Array<[string, string]> {
  const out = info.fields.map(([k, v]): [string, string] => [k, v]);
  const s = info.signature;
  if (s) {
    out.push(
      ['sig_id', s.idType],
      ['signer', Buffer.from(s.signer).toString(encoding)],
      ['sig_key', hexColumns(s.keyId)],
      ['sig_hashalgo', s.hashAlgo],
      ['signature', hexColumns(s.signature)],
    );
  }
  return out;
}

/**
 * kmod's parameter list: `parm=name:desc` and `parmtype=name:type` merged by name, newest name
 * first (kmod prepends each new name to its list).
 * @param fields `.modinfo` pairs
 * @returns the parameters and the `key=value` strings kmod complains about (no `:`)
 * @example
 * moduleParams([['parm', 'x:X'], ['parmtype', 'x:int']]).params; // [{ name: 'x', description: 'X', type: 'int' }]
 */
export function moduleParams(fields: ReadonlyArray<readonly [string, string]>): { params: ModuleParam[]; invalid: string[] } {
  const byName = new Map<string, { name: string; description: string | undefined; type: string | undefined }>();
  const invalid: string[] = [];
  for (const [k, v] of fields) {
    if (k !== 'parm' && k !== 'parmtype') continue;
    const colon = v.indexOf(':');
    if (colon === -1) {
      invalid.push(`${k}=${v}`);
      continue;
    }
    const name = v.slice(0, colon);
    let p = byName.get(name);
    if (!p) {
      p = { name, description: undefined, type: undefined };
      byName.set(name, p);
    }
    if (k === 'parm') p.description = v.slice(colon + 1);
    else p.type = v.slice(colon + 1);
  }
  return { params: [...byName.values()].reverse(), invalid };
}

/**
 * Everything `modinfo` shows about a module file, name or alias.
 * @param target a module file (any compression), a module name or an alias
 * @param opts root, kernel version, `asName`, encoding
 * @returns one record per module the target resolves to (an alias may match several)
 * @throws {LookupError} when nothing matches
 * @throws {ModuleFileError} when a module's information cannot be read (errno as kmod's modinfo reports it)
 * @example
 * const [info] = await modinfo('/lib/modules/6.1.0-18-amd64/kernel/drivers/net/dummy.ko');
 * info.fields.find(([k]) => k === 'license'); // ['license', 'GPL']
 */
export async function modinfo(target: string, opts: ModinfoOptions = {}): Promise<ModuleInfo[]> {
  const db = ModuleDb.open(opts);
  const reader = new ModinfoReader(db, opts);
  try {
    const out: ModuleInfo[] = [];
    for (const ref of db.lookup(target, opts)) out.push(await reader.read(ref));
    return out;
  } finally {
    reader.close();
  }
}
