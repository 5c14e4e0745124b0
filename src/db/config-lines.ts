/**
 * The line reader kmod's configuration files share (modprobe.d and depmod.d alike):
 * `freadline_wrapped`, once.
 * @module
 */

/**
 * kmod's `freadline_wrapped` over a whole file: logical lines with `\`-newline continuations, a
 * `\` before any other character dropped, and the physical line number at which each ends.
 * @param text the file (latin1)
 * @returns `[line, lineNumber]` pairs
 * @example wrappedLines('a \\\nb\nc') // [['a b', 2], ['c', 3]]
 */
export function wrappedLines(text: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  let line = '';
  let n = 0;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') {
      n++;
      out.push([line, n]);
      line = '';
      started = false;
      continue;
    }
    if (c === '\\') {
      const next = text[i + 1];
      if (next === '\n') {
        n++;
        i++;
        continue;
      }
      if (next === undefined) continue;
      line += next;
      started = true;
      i++;
      continue;
    }
    line += c;
    started = true;
  }
  if (started || line.length > 0) out.push([line, n + 1]);
  return out;
}
