/** The jobs of the process-pool bench (bench/process-pool.ts): the same functions for every pool. */
const MIB = Buffer.alloc(1 << 20, 7);

/** A tiny job: a number in, a number out. */
export function tiny(x: number): number {
  return x + 1;
}

/** A job whose result is 1 MiB of bytes. */
export function mib(): Buffer {
  return MIB;
}
