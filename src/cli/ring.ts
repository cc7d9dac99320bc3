/** `ipckit ring create|send|recv|info|rm`: the shared-memory ring channel from the shell. */
import { createRing, openRing, unlinkRing } from '../mechanisms/ring/ring.js';
import { FLAGS, RECEIVE_FLAGS, type Group } from './command.js';
import { printMessage, printResult, sendEach, timeLeft } from './output.js';
import { receiveLoop } from './receive.js';
import { removeNamed } from './remove.js';

export const group: Group = {
  name: 'ring',
  summary: 'The shared-memory ring: the fastest channel between processes (one or many producers, one consumer).',
  notes: 'Sizes take 4096, 64K, 1M or 1G.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a ring (exclusive; owner-only unless --mode; persistent: ipckit gc keeps it)',
      flags: {
        capacity: { kind: 'size', value: 'BYTES', min: 4096, max: 2 ** 30, help: 'bytes of messages it holds, a power of two (default 1M)' },
        'max-message': { kind: 'size', value: 'BYTES', min: 1, help: 'largest message (default: a quarter of the capacity)' },
        producers: { kind: 'string', value: 'one|many', choices: ['one', 'many'], help: 'one producer (the default) or many at once' },
        mode: FLAGS.createMode,
      },
      examples: ['ipckit ring create /events --capacity 64K --producers many'],
      async run({ args, flags }) {
        const ring = createRing(args[0]!, {
          producers: (flags.producers as 'one' | 'many' | undefined) ?? 'one',
          persistent: true, // made from the shell to outlive this command: ipckit gc keeps it
          mode: (flags.mode as number | undefined) ?? 0o600,
          ...(flags.capacity !== undefined ? { capacityBytes: flags.capacity as number } : {}),
          ...(flags['max-message'] !== undefined ? { maxMessageBytes: flags['max-message'] as number } : {}),
        });
        await printResult(false, undefined, ring.name);
        ring.close();
        return 0;
      },
    },
    {
      verb: 'send',
      args: 'NAME [MESSAGE...]',
      summary: 'send each MESSAGE (none: one per stdin line); waits while the ring is full',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet },
      examples: ['ipckit ring send /events "hello"'],
      async run({ args, flags }) {
        const [name, ...messages] = args as [string, ...string[]];
        const ring = await openRing(name);
        const tx = await ring.sender().finally(() => ring.close());
        try {
          const waiting = `ring ${name} is full: waiting for its receiver…`;
          await sendEach(messages, { left: timeLeft(flags.timeout as number | undefined), waiting, quiet: flags.quiet === true }, (m, left) => tx.send(m, left));
        } finally {
          await tx.close();
        }
        return 0;
      },
    },
    {
      verb: 'recv',
      args: 'NAME',
      summary: 'print messages, one per line, until the producers are done (or --count arrived)',
      details: 'With --count, recv keeps waiting when the producers it saw have closed: a new producer may come.',
      flags: RECEIVE_FLAGS,
      examples: ['ipckit ring recv /events --count 5 --timeout 3000'],
      async run({ args, flags }) {
        const name = args[0]!;
        const ring = await openRing(name);
        const rx = await ring.receiver().finally(() => ring.close());
        try {
          return await receiveLoop(rx, {
            what: `ring ${name}`,
            peer: 'a producer',
            endIsFinal: false,
            count: flags.count as number | undefined,
            timeout: flags.timeout as number | undefined,
            drain: flags.drain === true,
            quiet: flags.quiet === true,
            print: (m) => printMessage(m, flags.json === true),
          });
        } finally {
          await rx.close();
        }
      },
    },
    {
      verb: 'info',
      args: 'NAME',
      summary: 'capacity, bytes in use, the receiver and the producers',
      flags: { json: FLAGS.json },
      examples: ['ipckit ring info /events'],
      async run({ args, flags }) {
        const ring = await openRing(args[0]!);
        try {
          const info = ring.info();
          await printResult(
            flags.json === true,
            info,
            [
              `${info.name}: ${info.producers === 'many' ? `up to ${info.maxProducers} producers` : 'one producer'}, capacity ${info.capacityBytes} bytes, ${info.used} in use, messages up to ${info.maxMessageBytes} bytes`,
              `  receiver: ${info.consumer.state === 'none' ? 'never attached' : `pid ${info.consumer.pid}, ${info.consumer.state}${info.consumer.state === 'attached' && !info.consumer.alive ? ' (dead)' : ''}`}`,
              ...info.producerSlots.filter((s) => s.state !== 'free').map((s) => `  producer slot ${s.slot}: pid ${s.pid}, ${s.state}${s.state === 'attached' && !s.alive ? ' (dead)' : ''}`),
            ].join('\n'),
          );
        } finally {
          ring.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: 'remove a ring\'s name (refuses any other kind of object)',
      flags: { force: FLAGS.force },
      examples: ['ipckit ring rm /events'],
      async run({ args, flags }) {
        return removeNamed('ring', args[0]!, flags.force === true, unlinkRing);
      },
    },
  ],
};
