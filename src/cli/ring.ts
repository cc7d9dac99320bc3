/** `ipckit ring create|send|recv|info|rm`: the shared-memory ring channel from the shell. */
import { createRing, openRing, unlinkRing } from '../mechanisms/ring/ring.js';
import { intOption, messagesFrom, modeOption, parse, printMessage, requirePositional, UsageError, type CliGroup } from './common.js';
import { receiveLoop } from './receive.js';
import { sizeOption } from './shm.js';

export const group: CliGroup = {
  usage: `ring create NAME [--capacity BYTES] [--max-message BYTES] [--producers one|many] [--mode 600]
                                                  create a ring (capacity a power of two, default 1M)
ring send NAME [MESSAGE...] [--timeout MS]        send each MESSAGE (none: one message per stdin line); waits up to MS for room
ring recv NAME [--count N] [--timeout MS] [--json]
                                                  print messages, one per line, until the producers are done (or N arrived)
ring info NAME [--json]                           capacity, bytes in use, the receiver and the producers
ring rm NAME                                      remove a ring's name`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { capacity: { type: 'string' }, 'max-message': { type: 'string' }, producers: { type: 'string' }, mode: { type: 'string' } });
        const producers = values.producers ?? 'one';
        if (producers !== 'one' && producers !== 'many') throw new UsageError(`--producers must be one or many, got ${JSON.stringify(producers)}`);
        const capacity = sizeOption('--capacity', values.capacity);
        const maxMessageSize = sizeOption('--max-message', values['max-message']);
        const ring = createRing(requirePositional(positionals, 0, 'NAME'), {
          producers,
          mode: modeOption(values.mode) ?? 0o600,
          ...(capacity !== undefined ? { capacity } : {}),
          ...(maxMessageSize !== undefined ? { maxMessageSize } : {}),
        });
        process.stdout.write(`${ring.name}\n`);
        ring.close();
        return 0;
      }
      case 'send': {
        const { values, positionals } = parse(rest, { timeout: { type: 'string' } });
        const ring = await openRing(requirePositional(positionals, 0, 'NAME'));
        const tx = await ring.sender().finally(() => ring.close());
        const timeout = intOption('timeout', values.timeout);
        try {
          for await (const m of messagesFrom(positionals.slice(1))) await tx.send(m, timeout !== undefined ? { timeout } : undefined);
        } finally {
          await tx.close();
        }
        return 0;
      }
      case 'recv': {
        const { values, positionals } = parse(rest, { count: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } });
        const ring = await openRing(requirePositional(positionals, 0, 'NAME'));
        const rx = await ring.receiver().finally(() => ring.close());
        try {
          await receiveLoop(rx, {
            count: intOption('count', values.count, 1),
            timeout: intOption('timeout', values.timeout),
            print: (m) => printMessage(m, values.json === true),
          });
        } finally {
          await rx.close();
        }
        return 0;
      }
      case 'info': {
        const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
        using ring = await openRing(requirePositional(positionals, 0, 'NAME'));
        const info = ring.info();
        if (values.json) {
          process.stdout.write(`${JSON.stringify(info)}\n`);
        } else {
          const lines = [
            `${info.name}: ${info.producers === 'many' ? `up to ${info.maxProducers} producers` : 'one producer'}, capacity ${info.capacity} bytes, ${info.used} in use, messages up to ${info.maxMessageSize} bytes`,
            `  receiver: ${info.consumer.state === 'none' ? 'never attached' : `pid ${info.consumer.pid}, ${info.consumer.state}${info.consumer.state === 'attached' && !info.consumer.alive ? ' (dead)' : ''}`}`,
            ...info.producerSlots.filter((s) => s.state !== 'free').map((s) => `  producer slot ${s.slot}: pid ${s.pid}, ${s.state}${s.state === 'attached' && !s.alive ? ' (dead)' : ''}`),
          ];
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkRing(requirePositional(positionals, 0, 'NAME'));
        return 0;
      }
      default:
        throw new UsageError(`unknown ring command ${JSON.stringify(verb ?? '')}: use create, send, recv, info or rm`);
    }
  },
};
