/**
 * kmod-ts as a library: load, remove and list kernel modules, read their information and build
 * the module database (depmod) from Node programs.
 *
 * @example
 * import { loadModule, removeModule, listModules, ModuleFileError, SyscallError } from 'kmod-ts';
 * const r = await loadModule('/lib/modules/6.12.0/kernel/drivers/net/dummy.ko.xz', { params: ['numdummies=2'] });
 * console.log(r.via); // 'finit_module (in-kernel xz)'
 * for (const m of listModules()) console.log(m.name, m.size, m.refcnt, m.holders);
 * await removeModule('dummy');
 * await probeModule('vfat');            // fat, then vfat, as modprobe does
 * await removeProbed('vfat');
 *
 * @module
 */
export { loadModule, LOAD_PATHS, type LoadOptions, type LoadPath, type LoadResult } from './ops/load-module.js';
export { removeModule, checkRemovable, moduleNameFromArg, type RemoveOptions } from './ops/remove-module.js';
export { ModuleDb, modulesDir, parseDepLine, type ModuleDbOptions, type ModuleRef } from './db/module-db.js';
export { modnameNormalize, pathToModname, aliasNormalize, fnmatch } from './db/names.js';
export { listModules, type LoadedModule } from './ops/list-modules.js';
export { readProcModules, parseProcModules, type ProcModule } from './kernel/proc-modules.js';
export { readModuleSysfs, readKernelCompression, type ModuleSysfs } from './kernel/sysfs.js';
export { joinModuleArgs } from './ops/params.js';
export { detectFormat, decompress, DEFAULT_MAX_SIZE, type Format, type CompressedFormat } from './file/compression/index.js';
export {
  nativeSyscalls,
  syscallNumbers,
  MODULE_INIT_COMPRESSED_FILE,
  MODULE_INIT_IGNORE_MODVERSIONS,
  MODULE_INIT_IGNORE_VERMAGIC,
  O_NONBLOCK,
  O_TRUNC,
  type Syscalls,
  type Mapping,
} from './kernel/syscalls.js';
export {
  probeModule,
  removeProbed,
  resolveModule,
  type ProbeOptions,
  type ProbePlan,
  type ProbeOutcome,
} from './ops/probe-run.js';
export { type ProbeAction, type ProbeEvent, type ProbeFlags, type CommandRunner } from './ops/probe.js';
export { readModprobeConfig, parseModprobeConfig, type ModprobeConfig, type ConfigDiagnostic } from './db/modprobe-config.js';
export { KmodError, SyscallError, ModuleFileError, ModuleStateError, LookupError, UsageError, DecompressError, ElfError, ProbeError } from './errors.js';
export type { ModuleFileErrorKind, ModuleStateKind, LookupErrorKind, DecompressErrorKind, ElfErrorKind, ProbeErrorKind } from './errors.js';
export { strerror, errnoName, errnoFromCode } from './kernel/errno.js';
export { VERSION } from './cli/version.js';
export { modinfo, type ModuleInfo, type ModuleParam, type ModinfoOptions } from './ops/modinfo.js';
export { depmod, DepmodError, DEPMOD_FILES, type DepmodOptions, type DepmodResult, type DepmodFile, type DepmodMessage } from './ops/depmod.js';
export { IndexTrie, IndexNode, IndexWriter, IndexFormatError, type IndexValue, type IndexLayout } from './db/index-trie.js';
