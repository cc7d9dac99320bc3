/**
 * `ipckit nats send|recv`: core NATS subjects, from the shell. The connection flags are
 * shared with `ipckit workqueue` for nats:// queues (NATS_FLAGS, natsOptions).
 */
import type { NatsConnectOptions } from '../mechanisms/nats/connection.js';
import { openNatsReceiver, openNatsSender } from '../mechanisms/nats/channel.js';
import { FLAGS, RECEIVE_FLAGS, UsageError, type Flag, type Group, type Invocation } from './command.js';
import { printMessage, sendEach, timeLeft } from './output.js';
import { receiveLoop } from './receive.js';

/** How to reach and log in to a NATS server, the same in every command that does. */
export const NATS_FLAGS = {
  name: { kind: 'string', value: 'NAME', help: 'connection name the server shows (connz)' },
  user: { kind: 'string', value: 'USER', help: 'user name (with --password)' },
  password: { kind: 'string', value: 'PASSWORD', help: 'password of --user (or $NATS_PASSWORD)' },
  token: { kind: 'string', value: 'TOKEN', help: 'authentication token' },
  creds: { kind: 'string', value: 'FILE', help: 'credentials file (user JWT and NKEY seed, as nsc makes it)' },
  nkey: { kind: 'string', value: 'FILE', help: 'file holding an NKEY seed' },
  'tls-ca': { kind: 'string', value: 'FILE', help: 'PEM file of the CA that signed the server\'s certificate (turns TLS on)' },
  'tls-cert': { kind: 'string', value: 'FILE', help: 'PEM client certificate, for servers that verify clients (with --tls-key)' },
  'tls-key': { kind: 'string', value: 'FILE', help: 'PEM key of --tls-cert' },
} as const satisfies Record<string, Flag>;

export const NATS_NOTES = 'URL: nats://host:port, several separated by commas (nats://a:4222,b:4222); tls://host:port for TLS.';

/** The connection options the NATS_FLAGS give. */
export function natsOptions(flags: Invocation['flags'], where: string): NatsConnectOptions {
  const s = (k: string): string | undefined => flags[k] as string | undefined;
  const password = s('password') ?? (s('user') !== undefined ? process.env.NATS_PASSWORD : undefined);
  if (password !== undefined && s('user') === undefined) throw new UsageError('--password needs --user', where);
  if ((s('tls-cert') === undefined) !== (s('tls-key') === undefined)) throw new UsageError('--tls-cert and --tls-key go together', where);
  const tls = s('tls-ca') !== undefined || s('tls-cert') !== undefined ? { ...(s('tls-ca') ? { caFile: s('tls-ca')! } : {}), ...(s('tls-cert') ? { certFile: s('tls-cert')!, keyFile: s('tls-key')! } : {}) } : undefined;
  return {
    ...(s('name') !== undefined ? { name: s('name')! } : {}),
    ...(s('user') !== undefined ? { user: s('user')! } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(s('token') !== undefined ? { token: s('token')! } : {}),
    ...(s('creds') !== undefined ? { credsFile: s('creds')! } : {}),
    ...(s('nkey') !== undefined ? { nkeySeedFile: s('nkey')! } : {}),
    ...(tls ? { tls } : {}),
    // A command gives up on a server that went away instead of waiting forever.
    maxReconnectAttempts: 10,
  };
}

export const group: Group = {
  name: 'nats',
  summary: 'NATS subjects (core NATS, at most once): publish and subscribe across hosts through a nats-server.',
  notes: NATS_NOTES,
  commands: [
    {
      verb: 'send',
      args: 'URL SUBJECT [MESSAGE...]',
      summary: 'publish each MESSAGE to SUBJECT (none: one per stdin line); returns once the server has them',
      details: 'Core NATS keeps nothing: a message published while no receiver is subscribed is gone.',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...NATS_FLAGS },
      examples: ['ipckit nats send nats://127.0.0.1:4222 jobs.new "first job"', 'seq 3 | ipckit nats send nats://a:4222,b:4222 numbers'],
      async run({ args, flags }) {
        const [url, subject, ...messages] = args as [string, string, ...string[]];
        const left = timeLeft(flags.timeout as number | undefined);
        const tx = openNatsSender(url, subject, natsOptions(flags, 'ipckit nats send'));
        try {
          const waiting = `waiting for the NATS server at ${tx.client.url}…`;
          await sendEach(messages, { left, waiting, quiet: flags.quiet === true }, (m, opts) => tx.send(m, opts), (opts) => tx.flush(opts));
        } finally {
          await tx.close();
        }
        return 0;
      },
    },
    {
      verb: 'recv',
      args: 'URL SUBJECT',
      summary: 'print the messages published to SUBJECT (wildcards * and > allowed) until --count arrived',
      details: 'A subject never ends: without --count or --timeout, recv prints until stopped.\nWith --queue, each message goes to one receiver of the group.',
      flags: { queue: { kind: 'string', value: 'GROUP', help: 'join queue group GROUP: each message goes to one member' }, ...RECEIVE_FLAGS, ...NATS_FLAGS },
      examples: ['ipckit nats recv nats://127.0.0.1:4222 jobs.* --count 1 --timeout 5000', 'ipckit nats recv nats://127.0.0.1:4222 jobs.new --queue workers --json'],
      async run({ args, flags }) {
        const [url, subject] = args as [string, string];
        const rx = openNatsReceiver(url, subject, { ...natsOptions(flags, 'ipckit nats recv'), ...(flags.queue !== undefined ? { queue: flags.queue as string } : {}) });
        try {
          await rx.ready(flags.timeout === undefined ? undefined : { timeout: flags.timeout as number });
          return await receiveLoop(
            { receive: (o) => rx.receive(o), tryReceive: () => rx.tryReceive() },
            {
              what: `subject ${subject} at ${rx.client.url}`,
              peer: 'a publisher',
              count: flags.count as number | undefined,
              timeout: flags.timeout as number | undefined,
              drain: flags.drain === true,
              quiet: flags.quiet === true,
              print: (m) => printMessage(m, flags.json === true, { subject }),
            },
          );
        } finally {
          await rx.close();
        }
      },
    },
  ],
};
