/** `ipckit socket listen|send` (alias `sock`): Unix-domain and TCP sockets. */
import { IpcError, isIpcError } from '../core/errors.js';
import type { Framing } from '../core/framing.js';
import { connect, listen, type SocketChannel } from '../mechanisms/socket/socket.js';
import { FLAGS, OWNER_FLAGS, UsageError, type Group } from './command.js';
import { FRAMING_FLAG } from './fifo.js';
import { messagesFrom, note, printMessage, progress, progressDone, timeLeft, withWaitingNote } from './output.js';

const isPacket = (address: string): boolean => address.startsWith('unix-dgram:') || address.startsWith('unix-seqpacket:');

function framingFor(address: string, framing: unknown, verb: string): { framing?: Framing } {
  if (!isPacket(address)) return framing === undefined ? {} : { framing: framing as Framing };
  if (framing !== undefined) throw new UsageError('--framing applies to stream sockets only: datagram and seqpacket keep message boundaries', `ipckit socket ${verb}`);
  return {};
}

export const group: Group = {
  name: 'socket',
  aliases: ['sock'],
  summary: 'Unix-domain sockets (stream, datagram, seqpacket) and TCP: peer credentials, many clients.',
  notes: 'ADDRESS: unix:/path | unix:NAME (in the runtime folder) | unix-abstract:NAME | unix-dgram:/path |\n         unix-seqpacket:/path | tcp://host:port',
  commands: [
    {
      verb: 'listen',
      args: 'ADDRESS',
      summary: 'serve ADDRESS and print each message received, from every client, until --count arrived',
      details: 'Says "listening on ADDRESS" on stderr (with the real port or path) once clients may connect.',
      flags: {
        count: FLAGS.count,
        timeout: FLAGS.timeout,
        framing: FRAMING_FLAG,
        json: { kind: 'boolean', help: 'one JSON object per line, with the sender\'s pid, uid and gid' },
        mode: FLAGS.createMode,
        'allow-uid': { kind: 'int', value: 'UID', min: 0, max: 2 ** 32 - 2, multiple: true, help: 'also accept clients running as this uid (default: only our own uid)' },
        'allow-any': { kind: 'boolean', help: 'accept clients of any uid' },
        acknowledged: { kind: 'boolean', help: 'acknowledge each message, for clients that send with --reconnect' },
      },
      examples: ['ipckit socket listen unix:/tmp/app.sock --count 3 --json', 'ipckit socket listen tcp://127.0.0.1:0'],
      async run({ args, flags }) {
        const address = args[0]!;
        const count = flags.count as number | undefined;
        const timeout = flags.timeout as number | undefined;
        const uids = (flags['allow-uid'] as number[] | undefined) ?? [];
        const server = await listen(address, {
          ...framingFor(address, flags.framing, 'listen'),
          mode: (flags.mode as number | undefined) ?? 0o600,
          ...(uids.length ? { allow: { uids } } : flags['allow-any'] ? { allow: 'any' as const } : {}),
          ...(flags.acknowledged ? { acknowledged: true } : {}),
        });
        // The address (with the real port or path) first, so a script knows where to connect.
        process.stderr.write(`listening on ${server.address}\n`);
        const left = timeLeft(timeout);
        let n = 0;
        let finish: () => void = () => {};
        const finished = new Promise<void>((r) => (finish = r));
        const open = new Set<SocketChannel<Uint8Array>>();
        let failure: unknown;
        let timedOut = false;
        const serve = async (c: SocketChannel<Uint8Array>): Promise<void> => {
          open.add(c);
          try {
            while (count === undefined || n < count) {
              let m: Uint8Array;
              try {
                m = await c.receive(left());
              } catch (e) {
                if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) break;
                if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) timedOut = true;
                else if (!isIpcError(e, 'ERR_IPCKIT_PEER_GONE') && !isIpcError(e, 'ERR_IPCKIT_BAD_FRAME') && !isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE')) failure = e;
                else note(`a client's connection ended: ${(e as Error).message}`);
                break;
              }
              if (count !== undefined && n >= count) break;
              n++;
              const peer = c.peer;
              await printMessage(m, flags.json === true, peer ? { pid: peer.pid, uid: peer.uid, gid: peer.gid } : c.remoteAddress ? { from: c.remoteAddress } : {});
              progress(`${n} messages`);
            }
          } finally {
            open.delete(c);
            await c.close({ timeout: 100 }).catch(() => {});
            if ((count !== undefined && n >= count) || failure !== undefined || timedOut) finish();
          }
        };
        const accepting = (async () => {
          try {
            for (;;) void serve(await server.accept(left()));
          } catch (e) {
            if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) timedOut = true;
            else if (!isIpcError(e, 'ERR_IPCKIT_CLOSED')) failure ??= e;
            finish();
          }
        })();
        await finished;
        progressDone();
        await server.close();
        for (const c of open) await c.close({ timeout: 100 }).catch(() => {});
        await accepting;
        if (failure !== undefined) throw failure;
        if (timedOut && (count === undefined || n < count)) {
          const got = count === undefined ? `${n} message${n === 1 ? '' : 's'} received` : `${n} of ${count} messages received`;
          throw new IpcError('ERR_IPCKIT_TIMEOUT', `timed out after ${timeout} ms (--timeout) listening on ${server.address}, ${got}`, { details: { timeout, received: n, ...(count !== undefined ? { count } : {}) } });
        }
        return 0;
      },
    },
    {
      verb: 'send',
      args: 'ADDRESS [MESSAGE...]',
      summary: 'connect and send each MESSAGE (none: one per stdin line)',
      flags: { framing: FRAMING_FLAG, timeout: FLAGS.timeout, reconnect: { kind: 'boolean', help: 'reconnect if the server restarts (it must listen with --acknowledged)' }, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit socket send unix:/tmp/app.sock "hello"', 'seq 3 | ipckit socket send tcp://127.0.0.1:7000 --framing lines'],
      async run({ args, flags }) {
        const [address, ...messages] = args as [string, ...string[]];
        const timeout = flags.timeout as number | undefined;
        const channel = await withWaitingNote(`waiting for the server at ${address}…`, flags.quiet === true, () =>
          connect(address, {
            ...framingFor(address, flags.framing, 'send'),
            ...(timeout !== undefined ? { timeout } : {}),
            ...(flags['any-owner'] ? { anyOwner: true } : {}),
            ...(flags.owner !== undefined ? { owner: flags.owner as number } : {}),
            ...(flags.reconnect ? { reconnect: true } : {}),
          }),
        );
        try {
          for await (const m of messagesFrom(messages)) await channel.send(m, timeout !== undefined ? { timeout } : undefined);
        } finally {
          await channel.close(timeout !== undefined ? { timeout } : undefined);
        }
        return 0;
      },
    },
  ],
};
