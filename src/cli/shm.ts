/** `ipckit shm create|write|read|info|rm`: POSIX shared memory segments from the shell. */
import { IpcError } from '../core/errors.js';
import { createSharedMemory, openSharedMemory, unlinkSharedMemory } from '../mechanisms/shm/shm.js';
import { FLAGS, OWNER_FLAGS, parseSize, UsageError, type Group } from './command.js';
import { ownerCheck } from './mqueue.js';
import { printResult, write } from './output.js';
import { removeNamed } from './remove.js';

/** Reads stdin, refusing more than `max` bytes (also for `ipckit sysv shm write`). */
export async function readStdin(max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `stdin has more than the ${max} bytes that fit in the segment from that offset`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

export const OFFSET = { kind: 'size', value: 'BYTES', min: 0, help: 'where to start in the segment (default 0)' } as const;
export const LENGTH = { kind: 'size', value: 'BYTES', min: 0, help: 'how many bytes (default: to the end)' } as const;

export const group: Group = {
  name: 'shm',
  summary: 'POSIX shared memory segments (shm_open): bytes several processes map at once.',
  notes: 'SIZE, --offset and --length take 4096, 64K, 1M or 1G.',
  commands: [
    {
      verb: 'create',
      args: 'NAME SIZE',
      summary: 'create a segment (exclusive; owner-only unless --mode)',
      flags: { mode: FLAGS.createMode },
      examples: ['ipckit shm create /frame 1M'],
      async run({ args, flags }) {
        const seg = createSharedMemory(args[0]!, parseSize('SIZE', args[1]!), { mode: (flags.mode as number | undefined) ?? 0o600 });
        await printResult(false, undefined, seg.name);
        seg.close();
        return 0;
      },
    },
    {
      verb: 'write',
      args: 'NAME',
      summary: 'copy stdin into the segment at --offset',
      flags: { offset: OFFSET, ...OWNER_FLAGS },
      examples: ['echo hello | ipckit shm write /frame --offset 4K'],
      async run({ args, flags }) {
        const seg = await openSharedMemory(args[0]!, ownerCheck(flags));
        try {
          const offset = (flags.offset as number | undefined) ?? 0;
          if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`, 'ipckit shm write');
          seg.write(await readStdin(seg.size - offset), offset);
        } finally {
          seg.close();
        }
        return 0;
      },
    },
    {
      verb: 'read',
      args: 'NAME',
      summary: 'copy bytes of the segment to stdout (default: all of it)',
      flags: { offset: OFFSET, length: LENGTH, ...OWNER_FLAGS },
      examples: ['ipckit shm read /frame --offset 4K --length 6'],
      async run({ args, flags }) {
        const seg = await openSharedMemory(args[0]!, { readOnly: true, ...ownerCheck(flags) });
        try {
          const offset = (flags.offset as number | undefined) ?? 0;
          if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`, 'ipckit shm read');
          const length = (flags.length as number | undefined) ?? seg.size - offset;
          if (offset + length > seg.size) throw new UsageError(`--offset ${offset} --length ${length} goes past the end of the segment (${seg.size} bytes)`, 'ipckit shm read');
          await write(seg.read(offset, length));
        } finally {
          seg.close();
        }
        return 0;
      },
    },
    {
      verb: 'info',
      args: 'NAME',
      summary: 'size, owner and mode of a segment',
      flags: { json: FLAGS.json },
      examples: ['ipckit shm info /frame --json'],
      async run({ args, flags }) {
        const seg = await openSharedMemory(args[0]!, { readOnly: true, anyOwner: true });
        try {
          const info = seg.info();
          await printResult(
            flags.json === true,
            { name: info.name, path: info.path, size: info.size, uid: info.uid, gid: info.gid, mode: info.mode },
            `${info.name}: ${info.size} bytes at ${info.path}, owner uid ${info.uid} gid ${info.gid}, mode 0${info.mode.toString(8)}`,
          );
        } finally {
          seg.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: 'remove a segment\'s name (mappings stay valid until closed)',
      flags: { force: FLAGS.force },
      examples: ['ipckit shm rm /frame'],
      async run({ args, flags }) {
        return removeNamed('shared memory segment', args[0]!, flags.force === true, unlinkSharedMemory);
      },
    },
  ],
};
