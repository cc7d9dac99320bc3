/**
 * `ipckit bench [--quick] [--only a,b] [--out FILE] [--html FILE] [--rounds N]`: measure every
 * mechanism against its baselines. `--compare OLD.json NEW.json` and `--readme RUN.json`
 * read earlier runs instead of measuring.
 */
import type { Group } from './command.js';
import { UsageError } from './command.js';

export const group: Group = {
  name: 'bench',
  summary: 'Measure each mechanism between two processes, with C and Node baselines in the same run.',
  single: true,
  commands: [
    {
      verb: 'bench',
      args: '[OLD.json] [NEW.json]',
      summary: 'measure each mechanism between two processes, with C and Node baselines interleaved in rounds; prints a table and writes JSON',
      details:
        'Every case runs in rounds (3 with --quick, 5 otherwise), its C reference and the Node baselines interleaved with it;\n' +
        'a figure is the median of its rounds with the spread, a ratio the median of per-round ratios. Each figure warms up\n' +
        'until its rate is steady. The JSON fields are documented in docs/bench.md.',
      flags: {
        quick: { kind: 'boolean', help: 'a short run (about a minute): fewer sizes, 3 rounds, shorter measured parts' },
        only: { kind: 'string', value: 'LIST', help: 'only these mechanisms, comma-separated: pipe,fifo,popen,mqueue,sysv,semaphore,mutex,shm,workqueue,process-pool,process,socket,signal,nats' },
        out: { kind: 'string', value: 'FILE', help: 'where to write the JSON results (default bench-results.json)' },
        html: { kind: 'string', value: 'FILE', help: 'also write a self-contained HTML page with a chart per metric' },
        rounds: { kind: 'int', value: 'N', min: 1, max: 50, help: 'rounds per case (default 3 with --quick, 5 otherwise)' },
        compare: { kind: 'boolean', help: 'compare two JSON results (OLD.json NEW.json): every figure that moved beyond its spread' },
        readme: { kind: 'string', value: 'RUN.json', help: "print the README's cost table from a run's JSON (with --write README.md: replace it there)" },
        write: { kind: 'string', value: 'README.md', help: 'with --readme: the README whose bench-table section to replace' },
      },
      examples: ['ipckit bench --quick', 'ipckit bench --only pipe,socket --out pipes.json --html pipes.html', 'ipckit bench --compare before.json after.json'],
      async run({ flags, args }) {
        if (flags.compare === true) {
          if (args.length !== 2) throw new UsageError('--compare takes two JSON files: OLD.json NEW.json', 'ipckit bench');
          const { compareReports, readReport } = await import('../../bench/compare.js');
          process.stdout.write(`${compareReports(readReport(args[0]!), readReport(args[1]!), [args[0]!, args[1]!])}\n`);
          return 0;
        }
        if (args.length) throw new UsageError('ipckit bench takes file arguments only with --compare', 'ipckit bench');
        if (typeof flags.readme === 'string') {
          const { readReport } = await import('../../bench/compare.js');
          const { readmeSection, writeReadme } = await import('../../bench/readme.js');
          const run = readReport(flags.readme);
          if (typeof flags.write === 'string') writeReadme(run, flags.write);
          else process.stdout.write(`${readmeSection(run)}\n`);
          return 0;
        }
        // The benchmark (and the C compiler it may run) is loaded only for this command.
        const { runBench, unknownBenches } = await import('../../bench/run.js');
        const only = typeof flags.only === 'string' ? flags.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
        const unknown = unknownBenches(only);
        if (unknown) throw new UsageError(`--only ${unknown}`, 'ipckit bench');
        return runBench({
          quick: flags.quick === true,
          only,
          out: (flags.out as string | undefined) ?? 'bench-results.json',
          html: flags.html as string | undefined,
          rounds: flags.rounds as number | undefined,
        });
      },
    },
  ],
};
