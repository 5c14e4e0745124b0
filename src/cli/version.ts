/**
 * The version and features shown by every applet's `-V`.
 *
 * @module
 */

/** kmod-ts's version; a test keeps it equal to package.json's. */
export const VERSION = '0.1.0';

/** Compiled-in features, in kmod's `-V` style. Codecs are present as dependencies, not probed. */
export const FEATURES = '+ZSTD +XZ +GZIP +FFI';
