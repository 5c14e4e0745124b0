/**
 * The version and features shown by every applet's `-V` and by `kmod-ts --version`.
 *
 * @module
 */

/** kmod-ts's version; a test keeps it equal to package.json's. */
export const VERSION = '0.1.0';

/** Compiled-in features, in kmod's `-V` style. Codecs are present as dependencies, not probed. */
export const FEATURES = '+ZSTD +XZ +GZIP +FFI';

/**
 * What `-V` prints: kmod's two lines, the version and the features.
 * @returns the text, ending in a newline
 * @example versionText() // 'kmod-ts version 0.1.0\n+ZSTD +XZ +GZIP +FFI\n'
 */
export function versionText(): string {
  return `kmod-ts version ${VERSION}\n${FEATURES}\n`;
}
