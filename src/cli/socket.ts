/** `ipckit socket listen|send` (alias `sock`). */
import { connect, listen, type SocketChannel } from '../mechanisms/socket/socket.js';
import { isIpcError } from '../core/errors.js';
import { framingOption, framingOptions, intOption, messagesFrom, modeOption, parse, printMessage, progress, progressDone, requirePositional, UsageError, type CliGroup } from './common.js';

const ADDRESSES = 'ADDRESS: unix:/path | unix:NAME (runtime folder) | unix-abstract:NAME | unix-dgram:/path | unix-seqpacket:/path | tcp://host:port';

export const group: CliGroup = {
  usage: `socket listen ADDRESS [--count N] [--timeout MS] [--framing F] [--json] [--mode 600] [--allow-uid U]... [--acknowledged]
                                          serve ADDRESS; print each message received (from every client) until N
                                          arrived; --json adds the sender's pid/uid/gid
socket send ADDRESS [MESSAGE...] [--framing F] [--timeout MS] [--trust-any-owner] [--reconnect]
                                          connect and send each MESSAGE (none: one message per stdin line)
  ${ADDRESSES}
  --framing length|lines|raw (stream kinds; default length). alias: sock`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'listen': {
        const { values, positionals } = parse(rest, {
          ...framingOptions,
          count: { type: 'string' },
          timeout: { type: 'string' },
          mode: { type: 'string' },
          'allow-uid': { type: 'string', multiple: true },
          'allow-any': { type: 'boolean' },
          acknowledged: { type: 'boolean' },
        });
        const address = requirePositional(positionals, 0, 'ADDRESS');
        const count = intOption('count', values.count, 1);
        const timeout = intOption('timeout', values.timeout);
        const packet = address.startsWith('unix-dgram:') || address.startsWith('unix-seqpacket:');
        if (packet && values.framing !== undefined) throw new UsageError('--framing applies to stream sockets only: datagram and seqpacket keep message boundaries');
        const uids = (values['allow-uid'] ?? []).map((u) => intOption('allow-uid', u, 0)!);
        const server = await listen(address, {
          ...(packet ? {} : { framing: framingOption(values.framing) }),
          mode: modeOption(values.mode) ?? 0o600,
          ...(uids.length ? { allow: { uids } } : values['allow-any'] ? { allow: 'any' as const } : {}),
          ...(values.acknowledged ? { acknowledged: true } : {}),
        });
        // The address (with the real port or path) first, so a script knows where to connect.
        process.stderr.write(`listening on ${server.address}\n`);
        const deadline = timeout === undefined ? undefined : Date.now() + timeout;
        let n = 0;
        let finish: () => void = () => {};
        const finished = new Promise<void>((r) => (finish = r));
        const open = new Set<SocketChannel<Uint8Array>>();
        let failure: unknown;
        const serve = async (c: SocketChannel<Uint8Array>): Promise<void> => {
          open.add(c);
          try {
            for (;;) {
              if (count !== undefined && n >= count) break;
              const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
              let m: Uint8Array;
              try {
                m = await c.receive(left === undefined ? undefined : { timeout: left });
              } catch (e) {
                if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) break;
                if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) failure = e;
                else if (!isIpcError(e, 'ERR_IPCKIT_PEER_GONE') && !isIpcError(e, 'ERR_IPCKIT_BAD_FRAME') && !isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE')) failure = e;
                else process.stderr.write(`ipckit: a client's connection ended: ${(e as Error).message}\n`);
                break;
              }
              if (count !== undefined && n >= count) break;
              n++;
              const peer = c.peer;
              await printMessage(m, values.json === true, peer ? { pid: peer.pid, uid: peer.uid, gid: peer.gid } : c.remoteAddress ? { from: c.remoteAddress } : {});
              progress(`${n} messages`);
            }
          } finally {
            open.delete(c);
            await c.close({ timeout: 100 }).catch(() => {});
            if ((count !== undefined && n >= count) || failure !== undefined) finish();
          }
        };
        const accepting = (async () => {
          try {
            for (;;) {
              const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
              const c = await server.accept(left === undefined ? undefined : { timeout: left });
              void serve(c);
            }
          } catch (e) {
            if (!isIpcError(e, 'ERR_IPCKIT_CLOSED')) failure ??= e;
            finish();
          }
        })();
        await finished;
        progressDone();
        await server.close();
        for (const c of open) await c.close({ timeout: 100 }).catch(() => {});
        await accepting;
        if (failure !== undefined) throw failure;
        return 0;
      }
      case 'send': {
        const { values, positionals } = parse(rest, { ...framingOptions, timeout: { type: 'string' }, 'trust-any-owner': { type: 'boolean' }, reconnect: { type: 'boolean' } });
        const address = requirePositional(positionals, 0, 'ADDRESS');
        const timeout = intOption('timeout', values.timeout);
        const packet = address.startsWith('unix-dgram:') || address.startsWith('unix-seqpacket:');
        if (packet && values.framing !== undefined) throw new UsageError('--framing applies to stream sockets only');
        const channel = await connect(address, {
          ...(packet ? {} : { framing: framingOption(values.framing) }),
          ...(timeout !== undefined ? { timeout } : {}),
          ...(values['trust-any-owner'] ? { trustAnyOwner: true } : {}),
          ...(values.reconnect ? { reconnect: true } : {}),
        });
        try {
          for await (const m of messagesFrom(positionals.slice(1))) await channel.send(m, timeout !== undefined ? { timeout } : undefined);
        } finally {
          await channel.close(timeout !== undefined ? { timeout } : undefined);
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown socket command ${JSON.stringify(verb ?? '')}: use listen or send`);
    }
  },
};
