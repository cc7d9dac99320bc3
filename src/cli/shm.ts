/** `ipckit shm create|write|read|info|rm`: POSIX shared memory segments from the shell. */
import { createSharedMemory, openSharedMemory, unlinkSharedMemory } from '../mechanisms/shm/shm.js';
import { IpcError } from '../core/errors.js';
import { intOption, modeOption, parse, requirePositional, UsageError, write, type CliGroup } from './common.js';

/** `65536`, `64K`, `1M`, `1G` (binary units). */
export function sizeOption(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([kKmMgG]?)$/.exec(value);
  if (!m) throw new UsageError(`${name} must be a number of bytes like 4096, 64K or 1M, got ${JSON.stringify(value)}`);
  const n = Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  if (n < min) throw new UsageError(`${name} must be at least ${min}, got ${value}`);
  return n;
}

/** Reads stdin, refusing more than `max` bytes. */
async function readStdin(max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `stdin has more than the ${max} bytes that fit in the segment from that offset`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

export const group: CliGroup = {
  usage: `shm create NAME SIZE [--mode 600]                 create a shared memory segment (exclusive; owner-only unless --mode); SIZE like 4096, 64K, 1M
shm write NAME [--offset N]                       copy stdin into the segment at offset N (default 0)
shm read NAME [--offset N] [--length N]           copy bytes of the segment to stdout (default: all of it)
shm info NAME [--json]                            size, owner and mode of a segment
shm rm NAME                                       remove a segment's name`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { mode: { type: 'string' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const size = sizeOption('SIZE', requirePositional(positionals, 1, 'SIZE'))!;
        const seg = createSharedMemory(name, size, { mode: modeOption(values.mode) ?? 0o600 });
        process.stdout.write(`${seg.name}\n`);
        seg.close();
        return 0;
      }
      case 'write': {
        const { values, positionals } = parse(rest, { offset: { type: 'string' } });
        using seg = openSharedMemory(requirePositional(positionals, 0, 'NAME'));
        const offset = intOption('offset', values.offset) ?? 0;
        if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`);
        const bytes = await readStdin(seg.size - offset);
        seg.write(bytes, offset);
        return 0;
      }
      case 'read': {
        const { values, positionals } = parse(rest, { offset: { type: 'string' }, length: { type: 'string' } });
        using seg = openSharedMemory(requirePositional(positionals, 0, 'NAME'), { readOnly: true });
        const offset = intOption('offset', values.offset) ?? 0;
        if (offset > seg.size) throw new UsageError(`--offset ${offset} is past the end of the segment (${seg.size} bytes)`);
        const length = intOption('length', values.length) ?? seg.size - offset;
        if (offset + length > seg.size) throw new UsageError(`--offset ${offset} --length ${length} goes past the end of the segment (${seg.size} bytes)`);
        await write(seg.read(offset, length));
        return 0;
      }
      case 'info': {
        const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
        using seg = openSharedMemory(requirePositional(positionals, 0, 'NAME'), { readOnly: true, trustAnyOwner: true });
        const info = seg.info();
        if (values.json) process.stdout.write(`${JSON.stringify({ name: info.name, path: info.path, size: info.size, uid: info.uid, gid: info.gid, mode: `0${info.mode.toString(8)}` })}\n`);
        else process.stdout.write(`${info.name}: ${info.size} bytes at ${info.path}, owner uid ${info.uid} gid ${info.gid}, mode 0${info.mode.toString(8)}\n`);
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkSharedMemory(requirePositional(positionals, 0, 'NAME'));
        return 0;
      }
      default:
        throw new UsageError(`unknown shm command ${JSON.stringify(verb ?? '')}: use create, write, read, info or rm`);
    }
  },
};
