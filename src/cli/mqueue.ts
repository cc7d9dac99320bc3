/** `ipckit mqueue create|send|recv|info|rm` (alias `mq`): POSIX message queues. */
import { createMessageQueue, openMessageQueue, unlinkMessageQueue } from '../mechanisms/mqueue/mqueue.js';
import { FLAGS, OWNER_FLAGS, RECEIVE_FLAGS, type Group, type Invocation } from './command.js';
import { printMessage, printResult, sendEach, timeLeft } from './output.js';
import { receiveLoop } from './receive.js';
import { removeNamed } from './remove.js';

/** The owner check of a command that uses a queue: ours unless --any-owner / --owner (the mode you gave it is yours). */
export function ownerCheck(flags: Invocation['flags']): { mode: number; anyOwner?: boolean; owner?: number } {
  return { mode: 0o777, ...(flags['any-owner'] ? { anyOwner: true } : {}), ...(flags.owner !== undefined ? { owner: flags.owner as number } : {}) };
}

export const group: Group = {
  name: 'mqueue',
  aliases: ['mq'],
  summary: 'POSIX message queues (mq_*): kernel queues of messages with priorities, shared by name.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a queue (exclusive; owner-only unless --mode)',
      flags: {
        'max-messages': { kind: 'int', value: 'N', min: 1, max: 65536, help: 'how many messages it holds (default: the kernel\'s msg_default, often 10)' },
        'max-message': { kind: 'size', value: 'BYTES', min: 1, max: 16 * 1024 * 1024, help: 'largest message, e.g. 8K (default: the kernel\'s msgsize_default)' },
        mode: FLAGS.createMode,
      },
      examples: ['ipckit mqueue create /jobs --max-messages 10 --max-message 8K'],
      async run({ args, flags }) {
        const q = createMessageQueue(args[0]!, {
          ...(flags['max-messages'] !== undefined ? { maxMessages: flags['max-messages'] as number } : {}),
          ...(flags['max-message'] !== undefined ? { maxMessageBytes: flags['max-message'] as number } : {}),
          mode: (flags.mode as number | undefined) ?? 0o600,
        });
        await q.close();
        await printResult(false, undefined, q.name);
        return 0;
      },
    },
    {
      verb: 'send',
      args: 'NAME [MESSAGE...]',
      summary: 'send each MESSAGE (none: one per stdin line); waits while the queue is full',
      flags: { priority: { kind: 'int', value: 'P', min: 0, max: 32767, help: 'message priority, 0 to 32767 (higher is received first; default 0)' }, timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit mqueue send /jobs "first job" --priority 5'],
      async run({ args, flags }) {
        const [name, ...messages] = args as [string, ...string[]];
        const priority = (flags.priority as number | undefined) ?? 0;
        const left = timeLeft(flags.timeout as number | undefined);
        const q = await openMessageQueue(name, 'write', { ...ownerCheck(flags) });
        try {
          const waiting = `queue ${name} is full: waiting for a receiver to make room…`;
          await sendEach(messages, { left, waiting, quiet: flags.quiet === true }, (m, opts) => q.send(m, { priority, ...opts }));
        } finally {
          await q.close();
        }
        return 0;
      },
    },
    {
      verb: 'recv',
      args: 'NAME',
      summary: 'print messages, highest priority first, until --count arrived (--json adds the priority)',
      details: 'A queue never ends by itself: without --count, --timeout or --drain, recv waits for messages until stopped.',
      flags: { ...RECEIVE_FLAGS, ...OWNER_FLAGS },
      examples: ['ipckit mqueue recv /jobs --count 1 --timeout 5000', 'ipckit mqueue recv /jobs --drain --json'],
      async run({ args, flags }) {
        const name = args[0]!;
        const q = await openMessageQueue(name, 'read', { ...ownerCheck(flags) });
        try {
          return await receiveLoop(
            { receive: (o) => q.receiveWithPriority(o), tryReceive: () => q.tryReceiveWithPriority() },
            {
              what: `queue ${name}`,
              count: flags.count as number | undefined,
              timeout: flags.timeout as number | undefined,
              drain: flags.drain === true,
              quiet: flags.quiet === true,
              print: (m) => printMessage(m.message, flags.json === true, { priority: m.priority }),
            },
          );
        } finally {
          await q.close();
        }
      },
    },
    {
      verb: 'info',
      args: 'NAME',
      summary: 'size limits, messages waiting, owner and mode',
      flags: { json: FLAGS.json },
      examples: ['ipckit mqueue info /jobs --json'],
      async run({ args, flags }) {
        // Reading attributes uses nothing in the queue: any owner is fine.
        const q = await openMessageQueue(args[0]!, 'read', { anyOwner: true });
        try {
          const a = q.attributes();
          const o = q.owner();
          const info = { name: q.name, ...a, uid: o.uid, gid: o.gid, mode: o.mode };
          await printResult(flags.json === true, info, Object.entries({ ...info, mode: o.mode.toString(8).padStart(4, '0') }).map(([k, v]) => `${k} ${v}`).join('\n'));
        } finally {
          await q.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: 'remove the queue\'s name',
      flags: { force: FLAGS.force },
      examples: ['ipckit mqueue rm /jobs'],
      async run({ args, flags }) {
        return removeNamed('message queue', args[0]!, flags.force === true, unlinkMessageQueue);
      },
    },
  ],
};
