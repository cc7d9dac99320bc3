/** `ipckit bench [--quick] [--only a,b] [--out FILE]`: measure every mechanism against its baselines. */
import { parse, UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: `bench [--quick] [--only pipe,fifo,...] [--out bench-results.json]
                                          measure each mechanism between two processes, with C and
                                          Node baselines in the same run; prints a table, writes JSON`,
  async run(argv) {
    const { values, positionals } = parse(argv, { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' } });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    const { runBench } = await import('../../bench/run.js');
    return runBench({
      quick: values.quick === true,
      only: values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
      out: values.out ?? 'bench-results.json',
    });
  },
};
