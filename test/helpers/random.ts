/**
 * A seeded random source for tests that generate inputs (mulberry32): the same seed gives the
 * same sequence, so a failing case can be run again.
 */

/**
 * @param seed the seed
 * @returns a function giving the next integer in [0, n)
 * @example const rnd = seededRandom(1); rnd(6) // 0..5
 */
export function seededRandom(seed: number): (n: number) => number {
  let s = seed | 0;
  return (n) => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}
