/** `ipckit bench [--quick] [--only a,b] [--out FILE]`: measure every mechanism against its baselines. */
import type { Group } from './command.js';

export const group: Group = {
  name: 'bench',
  summary: 'Measure each mechanism between two processes, with C and Node baselines in the same run.',
  single: true,
  commands: [
    {
      verb: 'bench',
      args: '',
      summary: 'measure each mechanism between two processes, with C and Node baselines in the same run; prints a table and writes JSON',
      flags: {
        quick: { kind: 'boolean', help: 'a short run (under a minute)' },
        only: { kind: 'string', value: 'LIST', help: 'only these mechanisms, comma-separated: pipe,fifo,popen,mqueue,sysv,semaphore,mutex,shm,workqueue,process-pool,socket,signal' },
        out: { kind: 'string', value: 'FILE', help: 'where to write the JSON results (default bench-results.json)' },
      },
      examples: ['ipckit bench --quick', 'ipckit bench --only pipe,socket --out pipes.json'],
      async run({ flags }) {
        // The benchmark (and the C compiler it may run) is loaded only for this command.
        const { runBench } = await import('../../bench/run.js');
        return runBench({
          quick: flags.quick === true,
          only: typeof flags.only === 'string' ? flags.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
          out: (flags.out as string | undefined) ?? 'bench-results.json',
        });
      },
    },
  ],
};
