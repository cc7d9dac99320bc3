/** `ipckit gc`: removes the ipckit objects that are proved abandoned (and foreign ones only when named). */
import { collectGarbage, type GcOptions } from '../ops/gc.js';
import { type Group } from './command.js';
import { write } from './output.js';

export const group: Group = {
  name: 'gc',
  summary: 'Remove the ipckit objects whose creator and every participant died and that nobody holds (never live or persistent ones).',
  single: true,
  commands: [
    {
      verb: 'gc',
      args: '[PATH...]',
      summary: 'remove the ipckit objects proved abandoned: every process that took part is dead (pid and start time) and none has it open or mapped',
      details: [
        'Each object is checked again just before it goes, and once more after its name is moved aside:',
        'a process that opened it meanwhile keeps it. Persistent objects (made with `create` verbs or',
        '{ persistent: true }) stay, and so does anything ipckit did not make unless named with --foreign.',
        'FIFOs and socket files (foreign: removed only with --foreign) are looked for in the runtime folder and each PATH.',
        'Exits 0 when done, 1 if something could not be removed (the reason is shown).',
      ].join('\n'),
      flags: {
        'dry-run': { kind: 'boolean', help: 'show what would be removed and why; remove nothing' },
        json: { kind: 'boolean', help: 'one JSON array of {name, madeBy, action, reason}' },
        foreign: { kind: 'string', value: 'NAME', multiple: true, help: 'also remove this object ipckit did not make (a name like /x, or a ref from `ipckit ls --json` like sysv-msg:5), if nobody holds it' },
        prefix: { kind: 'string', value: 'TEXT', help: 'only objects whose name starts with TEXT' },
      },
      examples: ['ipckit gc --dry-run', 'ipckit gc', 'ipckit gc --foreign /psm_1234 --foreign sysv-msg:7'],
      async run({ args, flags }) {
        const options: GcOptions = { dryRun: flags['dry-run'] === true, paths: args };
        if (flags.foreign !== undefined) options.foreign = flags.foreign as string[];
        if (flags.prefix !== undefined) options.prefix = flags.prefix as string;
        const results = await collectGarbage(options);
        if (flags.json) await write(`${JSON.stringify(results, null, 2)}\n`);
        else {
          const width = Math.max(0, ...results.map((r) => r.name.length));
          const lines = results.map((r) => `${r.action.padEnd(12)}  ${r.name.padEnd(width)}  ${r.madeBy ?? '-'}: ${r.reason}`);
          const removed = results.filter((r) => r.action === 'removed').length;
          const failed = results.filter((r) => r.action === 'failed').length;
          const would = results.filter((r) => r.action === 'would-remove').length;
          lines.push(options.dryRun ? `${would} would be removed (dry run)` : `${removed} removed${failed ? `, ${failed} could not be removed` : ''}`);
          await write(`${lines.join('\n')}\n`);
        }
        return results.some((r) => r.action === 'failed') ? 1 : 0;
      },
    },
  ],
};
