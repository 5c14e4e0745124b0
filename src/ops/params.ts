/**
 * Module arguments as the kernel receives them.
 *
 * @module
 */

/**
 * Join module arguments with single spaces, using kmod's quoting rule: when an argument has `=`
 * and its value contains a space and does not start with a quote, wrap the value in double
 * quotes, so the kernel's parser (which honours `"`) sees one value.
 * @param args the arguments as typed
 * @returns the parameter string (empty for no arguments)
 * @example joinModuleArgs(['b=x y', 'n=1']) // 'b="x y" n=1'
 */
export function joinModuleArgs(args: readonly string[]): string {
  return args
    .map((arg) => {
      const eq = arg.indexOf('=');
      if (eq < 0) return arg;
      const value = arg.slice(eq + 1);
      if (!value.includes(' ') || value.startsWith('"') || value.startsWith("'")) return arg;
      return `${arg.slice(0, eq + 1)}"${value}"`;
    })
    .join(' ');
}
