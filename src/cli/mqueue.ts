/** `ipckit mqueue create|send|recv|info|rm` (alias `mq`). */
import type { Receiver } from '../core/channel.js';
import { createMessageQueue, openMessageQueue, unlinkMessageQueue, type ReceivedMessage } from '../mechanisms/mqueue/mqueue.js';
import { intOption, messagesFrom, modeOption, parse, printMessage, requirePositional, UsageError, write, type CliGroup } from './common.js';
import { receiveLoop } from './receive.js';

/** The CLI checks that a queue is ours (not its mode: a mode you gave it is yours); --any-owner skips that. */
function ownerCheck(anyOwner: boolean | undefined): { mode: number; trustAnyOwner: boolean } {
  return { mode: 0o777, trustAnyOwner: anyOwner === true };
}

function rangeOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  const n = intOption(name, value, min);
  if (n !== undefined && n > max) throw new UsageError(`--${name} must be at most ${max}, got ${n}`);
  return n;
}

export const group: CliGroup = {
  usage: `mqueue create NAME [--max-messages N] [--message-size N] [--mode 600]
                                          create a POSIX message queue (exclusive; owner-only unless --mode)
mqueue send NAME [MESSAGE...] [--priority P] [--timeout MS] [--any-owner]
                                          send each MESSAGE (none: one message per stdin line); waits while the queue is full
mqueue recv NAME [--count N] [--timeout MS] [--json] [--any-owner]
                                          print messages, highest priority first (--json adds the priority)
mqueue info NAME [--json]                 size limits, messages waiting, owner and mode
mqueue rm NAME                            remove the queue's name`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { 'max-messages': { type: 'string' }, 'message-size': { type: 'string' }, mode: { type: 'string' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const maxMessages = rangeOption('max-messages', values['max-messages'], 1, 65536);
        const messageSize = rangeOption('message-size', values['message-size'], 1, 16 * 1024 * 1024);
        const q = createMessageQueue(name, {
          ...(maxMessages !== undefined ? { maxMessages } : {}),
          ...(messageSize !== undefined ? { messageSize } : {}),
          mode: modeOption(values.mode) ?? 0o600,
        });
        await q.close();
        process.stdout.write(`${q.name}\n`);
        return 0;
      }
      case 'send': {
        const { values, positionals } = parse(rest, { priority: { type: 'string' }, timeout: { type: 'string' }, 'any-owner': { type: 'boolean' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const priority = rangeOption('priority', values.priority, 0, 32767) ?? 0;
        const timeout = intOption('timeout', values.timeout);
        const q = openMessageQueue(name, { access: 'w', ...ownerCheck(values['any-owner']) });
        try {
          for await (const m of messagesFrom(positionals.slice(1))) await q.send(m, { priority, ...(timeout !== undefined ? { timeout } : {}) });
        } finally {
          await q.close();
        }
        return 0;
      }
      case 'recv': {
        const { values, positionals } = parse(rest, { count: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' }, 'any-owner': { type: 'boolean' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const q = openMessageQueue(name, { access: 'r', ...ownerCheck(values['any-owner']) });
        const withPriority: Receiver<ReceivedMessage<Uint8Array>> = {
          receive: (o) => q.receiveWithPriority(o),
          close: () => q.close(),
          [Symbol.asyncIterator]: () => {
            throw new Error('not used');
          },
          [Symbol.asyncDispose]: () => q.close(),
        };
        try {
          await receiveLoop(withPriority, {
            count: intOption('count', values.count, 1),
            timeout: intOption('timeout', values.timeout),
            print: (m) => printMessage(m.message, values.json === true, { priority: m.priority }),
          });
        } finally {
          await q.close();
        }
        return 0;
      }
      case 'info': {
        const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
        const name = requirePositional(positionals, 0, 'NAME');
        // Reading attributes uses nothing in the queue: any owner is fine.
        const q = openMessageQueue(name, { access: 'r', trustAnyOwner: true });
        try {
          const a = q.attributes();
          const o = q.owner();
          const info = { name: q.name, ...a, uid: o.uid, gid: o.gid, mode: o.mode.toString(8).padStart(4, '0') };
          if (values.json) await write(`${JSON.stringify(info)}\n`);
          else await write(`${Object.entries(info).map(([k, v]) => `${k} ${v}`).join('\n')}\n`);
        } finally {
          await q.close();
        }
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkMessageQueue(requirePositional(positionals, 0, 'NAME'));
        return 0;
      }
      default:
        throw new UsageError(`unknown mqueue command ${JSON.stringify(verb ?? '')}: use create, send, recv, info or rm`);
    }
  },
};
