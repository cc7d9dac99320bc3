/**
 * `ipckit sysv ftok | msg … | sem … | shm …`: System V message queues, semaphore sets and
 * shared memory segments from the shell. KEY is 0x5e0001 or a decimal number, id:N (an
 * identifier from ipcs) or PATH:PROJ (ftok of an existing file).
 */
import { IpcError } from '../core/errors.js';
import { ftok, keyHex, parseSysvTarget } from '../mechanisms/sysv/keys.js';
import { createSysvMessageQueue, openSysvMessageQueue, removeSysvMessageQueue } from '../mechanisms/sysv/msg.js';
import { createSysvSemaphoreSet, openSysvSemaphoreSet, removeSysvSemaphoreSet, type SemOp } from '../mechanisms/sysv/sem.js';
import { createSysvSharedMemory, openSysvSharedMemory, removeSysvSharedMemory } from '../mechanisms/sysv/shm.js';
import { FLAGS, OWNER_FLAGS, parseInteger, parseSize, RECEIVE_FLAGS, UsageError, type Command, type Flag, type Group, type Invocation } from './command.js';
import { printMessage, printResult, sendEach, timeLeft, withWaitingNote, write } from './output.js';
import { LENGTH, OFFSET, readStdin } from './shm.js';
import { receiveLoop } from './receive.js';
import { removeNamed } from './remove.js';

const KEY_NOTE = 'KEY: 0x5e0001 or a decimal number | id:N (an identifier from ipcs) | PATH:PROJ (ftok of an existing file; PROJ 1..255 or one character)';

/** The owner check of a command that uses an object: ours unless --any-owner / --owner (the mode you gave it is yours). */
function ownerCheck(flags: Invocation['flags']): { mode: number; anyOwner?: boolean; owner?: number } {
  return { mode: 0o777, ...(flags['any-owner'] ? { anyOwner: true } : {}), ...(flags.owner !== undefined ? { owner: flags.owner as number } : {}) };
}

function target(text: string): { key: number } | { id: number } {
  try {
    return parseSysvTarget(text);
  } catch (e) {
    // A KEY that is not written right is a usage error; ftok of a missing file is not.
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_INVALID_ARGUMENT') throw new UsageError(e.reason);
    throw e;
  }
}

/** A key to create with: a key or PATH:PROJ, not an identifier. */
function keyToCreate(text: string, where: string): number {
  const t = target(text);
  if (!('key' in t)) throw new UsageError('create takes a key (0x5e0001, a number, or PATH:PROJ), not an identifier', where);
  return t.key;
}

/** Times as ISO text (null: never), for --json. */
function jsonable(stat: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(stat).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));
}

/** `key 0x005e0001` … one field a line, the mode in octal. */
function infoText(stat: Record<string, unknown>): string {
  return Object.entries(stat)
    .filter(([k]) => k !== 'family' && k !== 'kind')
    .map(([k, v]) => `${k} ${k === 'key' ? keyHex(v as number) : k === 'mode' ? (v as number).toString(8).padStart(4, '0') : v instanceof Date ? v.toISOString() : v === null ? 'never' : v}`)
    .join('\n');
}

/** The created object's identifier as a reusable KEY (`id:3`), or { key, id } with --json. */
function printCreated(json: boolean, key: number, id: number): Promise<void> {
  return printResult(json, { key, id }, `id:${id}`);
}

const MODE = FLAGS.createMode;

function info(kind: string, open: (t: { key: number } | { id: number }) => Promise<{ stat(): object; close(): Promise<void> | void }>): Command {
  return {
    verb: 'info',
    args: 'KEY',
    summary: 'the ipc_perm fields (key, id, owner, creator, mode, seq) and the kind\'s own',
    flags: { json: FLAGS.json },
    examples: [`ipckit sysv ${kind} info 0x5e0001 --json`],
    async run({ args, flags }) {
      const o = await open(target(args[0]!));
      try {
        const stat = o.stat() as Record<string, unknown>;
        await printResult(flags.json === true, jsonable(stat), infoText(stat));
      } finally {
        await o.close();
      }
      return 0;
    },
  };
}

function rm(kind: string, what: string, remove: (t: { key: number } | { id: number }) => boolean): Command {
  return {
    verb: 'rm',
    args: 'KEY',
    summary: `remove the ${what} (IPC_RMID)`,
    flags: { force: FLAGS.force },
    examples: [`ipckit sysv ${kind} rm 0x5e0001`],
    async run({ args, flags }) {
      const t = target(args[0]!);
      return removeNamed(what, args[0]!, flags.force === true, () => remove(t));
    },
  };
}

const msg: Group = {
  name: 'sysv msg',
  summary: 'System V message queues (msgget, msgsnd, msgrcv): messages with a type',
  notes: KEY_NOTE,
  commands: [
    {
      verb: 'create',
      args: 'KEY',
      summary: 'create a queue (exclusive; owner-only unless --mode); prints its id as id:N',
      flags: { mode: MODE, 'max-bytes': { kind: 'size', value: 'BYTES', min: 1, max: 2 ** 31 - 1, help: 'capacity in bytes, msg_qbytes (default: the kernel\'s msgmnb)' }, json: FLAGS.json },
      examples: ['ipckit sysv msg create 0x5e0001 --max-bytes 64K'],
      async run({ args, flags }) {
        const q = createSysvMessageQueue(keyToCreate(args[0]!, 'ipckit sysv msg create'), {
          mode: (flags.mode as number | undefined) ?? 0o600,
          ...(flags['max-bytes'] !== undefined ? { maxBytes: flags['max-bytes'] as number } : {}),
        });
        await q.close();
        await printCreated(flags.json === true, q.key, q.id);
        return 0;
      },
    },
    {
      verb: 'send',
      args: 'KEY [MESSAGE...]',
      summary: 'send each MESSAGE (none: one per stdin line) with --type; waits while the queue is full',
      flags: { type: { kind: 'int', value: 'T', min: 1, help: 'the messages\' type, a positive integer (default 1)' }, timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit sysv msg send 0x5e0001 "first job" --type 2'],
      async run({ args, flags }) {
        const [key, ...messages] = args as [string, ...string[]];
        const type = (flags.type as number | undefined) ?? 1;
        const left = timeLeft(flags.timeout as number | undefined);
        const q = await openSysvMessageQueue(target(key), ownerCheck(flags));
        try {
          const waiting = `queue ${key} is full: waiting for a receiver to make room…`;
          await sendEach(messages, { left, waiting, quiet: flags.quiet === true }, (m, opts) => q.send(m, { type, ...opts }));
        } finally {
          await q.close();
        }
        return 0;
      },
    },
    {
      verb: 'recv',
      args: 'KEY',
      summary: 'print messages of --type (0: any; -T: lowest type up to T), until --count arrived (--json adds the type)',
      details: 'A queue never ends by itself: without --count, --timeout or --drain, recv waits until stopped (or until the queue is removed).',
      flags: {
        type: { kind: 'int', value: 'T', min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, help: 'which messages: 0 any (default), T the first of type T, --type=-T the first of the lowest type up to T' },
        except: { kind: 'boolean', help: 'with --type T: the first message not of type T' },
        ...RECEIVE_FLAGS,
        ...OWNER_FLAGS,
      },
      examples: ['ipckit sysv msg recv 0x5e0001 --type 2 --count 1 --timeout 5000', 'ipckit sysv msg recv id:3 --drain --json'],
      async run({ args, flags }) {
        const key = args[0]!;
        const type = (flags.type as number | undefined) ?? 0;
        if (flags.except && type <= 0) throw new UsageError('--except needs --type T with T > 0', 'ipckit sysv msg recv');
        const selector = { type, ...(flags.except ? { except: true } : {}) };
        const q = await openSysvMessageQueue(target(key), ownerCheck(flags));
        try {
          return await receiveLoop(
            { receive: (o) => q.receiveWithType({ ...selector, ...o }), tryReceive: () => q.tryReceiveWithType(selector) },
            {
              what: `queue ${key}`,
              count: flags.count as number | undefined,
              timeout: flags.timeout as number | undefined,
              drain: flags.drain === true,
              quiet: flags.quiet === true,
              print: (m) => printMessage(m.message, flags.json === true, { type: m.type }),
            },
          );
        } finally {
          await q.close();
        }
      },
    },
    info('msg', (t) => openSysvMessageQueue(t, { anyOwner: true })),
    rm('msg', 'System V message queue', removeSysvMessageQueue),
  ],
};

/** `0:-1`, `2:+1`, `1:0`. */
function parseOp(text: string): SemOp {
  const m = /^(\d+):([+-]?\d+)$/.exec(text);
  if (!m) throw new UsageError(`an operation is INDEX:DELTA like 0:-1, 2:+1 or 1:0 (wait for zero), got ${JSON.stringify(text)}`, 'ipckit sysv sem op');
  return { index: Number(m[1]), delta: Number(m[2]) };
}

const VALUE_FLAG: Flag = { kind: 'int', value: 'V', min: 0, max: 32767, help: 'the value every semaphore starts with (default 0)' };

const sem: Group = {
  name: 'sysv sem',
  summary: 'System V semaphore sets (semget, semop, semctl): counters changed together, with undo',
  notes: KEY_NOTE,
  commands: [
    {
      verb: 'create',
      args: 'KEY',
      summary: 'create a set (exclusive; owner-only unless --mode); prints its id as id:N',
      flags: { count: { kind: 'int', value: 'N', min: 1, max: 65535, help: 'how many semaphores (default 1)' }, value: VALUE_FLAG, mode: MODE, json: FLAGS.json },
      examples: ['ipckit sysv sem create 0x5e0002 --count 2 --value 1'],
      async run({ args, flags }) {
        const s = createSysvSemaphoreSet(keyToCreate(args[0]!, 'ipckit sysv sem create'), {
          count: (flags.count as number | undefined) ?? 1,
          value: (flags.value as number | undefined) ?? 0,
          mode: (flags.mode as number | undefined) ?? 0o600,
        });
        await s.close();
        await printCreated(flags.json === true, s.key, s.id);
        return 0;
      },
    },
    {
      verb: 'op',
      args: 'KEY OP...',
      summary: 'apply every OP (INDEX:DELTA: 0:-1 takes, 2:+1 gives, 1:0 waits for zero) at once, waiting while they cannot',
      details: 'With --undo the kernel reverses the operations when this command exits, that is, at once: use it to check that it could be done.\n--nowait: exit 124 instead of waiting.',
      flags: { undo: { kind: 'boolean', help: 'SEM_UNDO: the kernel reverses them when this process exits' }, nowait: { kind: 'boolean', help: 'do not wait: exit 124 if they cannot be done now' }, timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit sysv sem op 0x5e0002 0:-1 1:+1 --timeout 5000'],
      async run({ args, flags }) {
        const [key, ...texts] = args as [string, ...string[]];
        const ops = texts.map(parseOp);
        const s = await openSysvSemaphoreSet(target(key), ownerCheck(flags));
        try {
          for (const op of ops) if (op.index >= s.count) throw new UsageError(`index ${op.index} is past the set's ${s.count} semaphores`, 'ipckit sysv sem op');
          const undo = flags.undo === true;
          if (flags.nowait) {
            if (!s.tryOp(ops, { undo })) throw new IpcError('ERR_IPCKIT_TIMEOUT', `the operations on set ${key} would wait (--nowait)`);
          } else {
            const timeout = flags.timeout as number | undefined;
            await withWaitingNote(`waiting to apply ${texts.join(' ')} to set ${key}…`, flags.quiet === true, () => s.op(ops, { undo, ...(timeout !== undefined ? { timeout } : {}) }));
          }
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    {
      verb: 'get',
      args: 'KEY',
      summary: 'print every value in the set (--json adds the waiters and last pids)',
      flags: { json: FLAGS.json },
      examples: ['ipckit sysv sem get 0x5e0002 --json'],
      async run({ args, flags }) {
        // Reading changes nothing: any owner is fine.
        const s = await openSysvSemaphoreSet(target(args[0]!), { anyOwner: true });
        try {
          const values = s.getAll();
          const all = values.map((value, index) => ({ index, value, waitingToTake: s.waitingToTake(index), waitingForZero: s.waitingForZero(index), lastPid: s.lastPid(index) }));
          await printResult(flags.json === true, { key: s.key, id: s.id, values, semaphores: all }, values.join(' '));
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    {
      verb: 'set',
      args: 'KEY INDEX VALUE',
      summary: 'set one semaphore (SETVAL; clears every process\'s undo record for it)',
      flags: { ...OWNER_FLAGS },
      examples: ['ipckit sysv sem set 0x5e0002 0 1'],
      async run({ args, flags }) {
        const s = await openSysvSemaphoreSet(target(args[0]!), ownerCheck(flags));
        try {
          const index = parseInteger('INDEX', args[1]!, 0, s.count - 1);
          s.set(index, parseInteger('VALUE', args[2]!, 0, 32767));
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    info('sem', (t) => openSysvSemaphoreSet(t, { anyOwner: true })),
    rm('sem', 'System V semaphore set', removeSysvSemaphoreSet),
  ],
};

const shm: Group = {
  name: 'sysv shm',
  summary: 'System V shared memory segments (shmget, shmat, shmctl): memory attached by key',
  notes: `${KEY_NOTE}\nSIZE, --offset and --length take 4096, 64K, 1M or 1G.`,
  commands: [
    {
      verb: 'create',
      args: 'KEY SIZE',
      summary: 'create a segment, zero-filled (exclusive; owner-only unless --mode); prints its id as id:N',
      flags: { mode: MODE, json: FLAGS.json },
      examples: ['ipckit sysv shm create 0x5e0003 1M'],
      async run({ args, flags }) {
        const seg = createSysvSharedMemory(keyToCreate(args[0]!, 'ipckit sysv shm create'), parseSize('SIZE', args[1]!), { mode: (flags.mode as number | undefined) ?? 0o600 });
        seg.close();
        await printCreated(flags.json === true, seg.key, seg.id);
        return 0;
      },
    },
    {
      verb: 'write',
      args: 'KEY',
      summary: 'copy stdin into the segment at --offset',
      flags: { offset: OFFSET, ...OWNER_FLAGS },
      examples: ['echo hello | ipckit sysv shm write 0x5e0003 --offset 4K'],
      async run({ args, flags }) {
        const seg = await openSysvSharedMemory(target(args[0]!), ownerCheck(flags));
        try {
          const offset = (flags.offset as number | undefined) ?? 0;
          if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`, 'ipckit sysv shm write');
          seg.write(await readStdin(seg.size - offset), offset);
        } finally {
          seg.close();
        }
        return 0;
      },
    },
    {
      verb: 'read',
      args: 'KEY',
      summary: 'copy bytes of the segment to stdout (default: all of it); attaches read-only',
      flags: { offset: OFFSET, length: LENGTH, ...OWNER_FLAGS },
      examples: ['ipckit sysv shm read 0x5e0003 --offset 4K --length 6'],
      async run({ args, flags }) {
        const seg = await openSysvSharedMemory(target(args[0]!), { readOnly: true, ...ownerCheck(flags) });
        try {
          const offset = (flags.offset as number | undefined) ?? 0;
          if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`, 'ipckit sysv shm read');
          const length = (flags.length as number | undefined) ?? seg.size - offset;
          if (offset + length > seg.size) throw new UsageError(`--offset ${offset} --length ${length} goes past the end of the segment (${seg.size} bytes)`, 'ipckit sysv shm read');
          await write(seg.read(offset, length));
        } finally {
          seg.close();
        }
        return 0;
      },
    },
    info('shm', (t) => openSysvSharedMemory(t, { anyOwner: true, readOnly: true })),
    rm('shm', 'System V shared memory segment', removeSysvSharedMemory),
  ],
};

export const group: Group = {
  name: 'sysv',
  summary: 'System V IPC: message queues with types, semaphore sets with undo, shared memory segments, by key.',
  notes: KEY_NOTE,
  commands: [
    {
      verb: 'ftok',
      args: 'PATH PROJ',
      summary: 'print the key libc\'s ftok makes from an existing file and a project id (0x… hex)',
      flags: { json: FLAGS.json },
      examples: ['ipckit sysv ftok /etc/hostname 65'],
      async run({ args, flags }) {
        const proj = /^\d+$/.test(args[1]!) ? parseInteger('PROJ', args[1]!, 1, 255) : [...args[1]!].length === 1 ? args[1]!.codePointAt(0)! : NaN;
        if (!(proj >= 1 && proj <= 255)) throw new UsageError(`PROJ must be 1..255 or one character, got ${JSON.stringify(args[1])}`, 'ipckit sysv ftok');
        const key = ftok(args[0]!, proj);
        await printResult(flags.json === true, { path: args[0], projectId: proj, key }, keyHex(key));
        return 0;
      },
    },
  ],
  groups: [msg, sem, shm],
};
