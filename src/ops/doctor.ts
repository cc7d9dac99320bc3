/**
 * `ipckit doctor` (library: `diagnose()`): what on this host makes IPC fail or go slow,
 * found before it surfaces as a bare errno far from its cause.
 *
 * - Kernel features ipckit uses or falls back from, each with what happens without it.
 * - Every limit that bounds IPC: its value, its current use where the kernel shows it, and
 *   the command that raises it.
 * - Hazards: systemd-logind deleting a user's objects at logout, the mqueue filesystem not
 *   mounted, a runtime folder too long for socket paths, /proc hiding peers, another PID
 *   namespace, a /dev/shm that is not tmpfs.
 *
 * A finding is `ok`, `info` (worth knowing), `warning` (may bite) or `problem` (will bite:
 * `ipckit doctor` exits 1). Nothing here changes the system.
 */
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { inOwnPidNamespace } from '../os/liveness.js';
import { release } from 'node:os';
import { join } from 'node:path';
import { openMessageQueue } from '../mechanisms/mqueue/mqueue.js';
import { waitBackend } from '../memory/waits.js';
import { readRlimit, readSysctl, type Rlimit } from '../os/limits.js';
import { native } from '../os/native.js';
import { runtimeDirPath } from '../os/runtime.js';
import { readSysvTable } from '../os/sysvipc.js';
import { errnoName } from '../core/errors.js';

export type Status = 'ok' | 'info' | 'warning' | 'problem';

export interface Finding {
  /** Stable identifier: `fs.mqueue.msg_max`, `RLIMIT_NOFILE`, `feature.pidfd`, `hazard.remove-ipc`. */
  id: string;
  status: Status;
  /** The value found (a number, or text). */
  value?: number | string | undefined;
  /** How much of it is in use now, where the kernel shows it. */
  use?: number | undefined;
  /** What it means, in a sentence. */
  detail: string;
  /** The command or line that fixes or raises it. */
  fix?: string | undefined;
}

export interface Diagnosis {
  kernel: string;
  node: string;
  uid: number;
  features: Finding[];
  limits: Finding[];
  hazards: Finding[];
  /** Findings with status `problem`. */
  problems: number;
  warnings: number;
}

/** Used at or above this share of a limit, it is a problem. */
const NEARLY_FULL = 0.9;

/** Longest Unix socket path (sun_path holds 108 bytes with the NUL), and what ipckit adds to the runtime folder for a socket name. */
const SUN_PATH_MAX = 107;
const RUNTIME_NAME_BYTES = 32;

function num(text: string | undefined): number | undefined {
  const n = Number(text);
  return text === undefined || !Number.isFinite(n) ? undefined : n;
}

/** The kernel's "no limit" for 64-bit sysctls (shmmax, shmall) is near 2^64: past 2^53 a number is not exact anyway. */
const UNLIMITED = 2 ** 53;

function usage(id: string, value: number | undefined, use: number | undefined, detail: string, fix: string): Finding {
  if (value !== undefined && value >= UNLIMITED) value = Infinity;
  const full = value !== undefined && use !== undefined && value !== Infinity && use >= value * NEARLY_FULL;
  return { id, status: value === undefined ? 'warning' : full ? 'problem' : 'ok', value: value === Infinity ? 'unlimited' : value, use, detail: value === undefined ? `cannot be read here; ${detail}` : full ? `${use} of ${value} in use; ${detail}` : detail, fix };
}

// --- Features -----------------------------------------------------------------------------

function features(): Finding[] {
  const probe = native.probeFeatures();
  const feature = (id: string, errno: number, works: string, without: string): Finding =>
    errno === 0 ? { id, status: 'ok', value: 'yes', detail: works } : { id, status: 'warning', value: `no (${errnoName(errno)})`, detail: without };
  const uring = waitBackend() === 'io_uring';
  const noUring = process.env.IPCKIT_NO_URING === '1';
  return [
    uring
      ? { id: 'feature.io_uring-futex', status: 'ok', value: 'in use', detail: 'futex waits (semaphores, mutexes, rings, work queues) complete on the event loop with no thread in between' }
      : {
          id: 'feature.io_uring-futex',
          status: noUring ? 'info' : 'warning',
          value: noUring ? 'turned off (IPCKIT_NO_URING=1)' : 'unavailable',
          detail: 'futex waits use a waiter thread instead (needs Linux 6.7 and io_uring allowed): one more wake-up per hand-over, a few µs each',
          fix: noUring ? 'unset IPCKIT_NO_URING' : 'Linux 6.7 or later, with io_uring not disabled (sysctl kernel.io_uring_disabled=0) nor refused by seccomp',
        },
    feature('feature.futex_waitv', probe.futexWaitv, 'a waiter thread is cancelled at once', 'a waiter thread notices a cancelled wait only every 20 ms (needs Linux 5.16)'),
    feature('feature.pidfd', probe.pidfd, 'process exits are watched without polling (watchProcess, peer checks)', 'watchProcess and the peer-death checks of sockets fail with ERR_IPCKIT_UNSUPPORTED (needs Linux 5.3)'),
    feature('feature.memfd-seals', probe.memfdSeals, 'sealed memory can be passed over sockets (createSealedMemory)', 'createSealedMemory fails with ERR_IPCKIT_UNSUPPORTED (needs memfd_create with sealing)'),
    feature('feature.ofd-locks', probe.ofdLocks, 'open-file-description locks work (file locks that belong to the open file)', 'file locks cannot use F_OFD_SETLK (needs Linux 3.15)'),
  ];
}

// --- Limits -------------------------------------------------------------------------------

/** Where the mqueue filesystem is mounted, if it is. */
export function mqueueMount(): string | undefined {
  return mounts().filter((m) => m.type === 'mqueue').pop()?.target;
}

interface Mount {
  source: string;
  target: string;
  type: string;
  options: string[];
}

function mounts(): Mount[] {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [source = '', target = '', type = '', options = ''] = l.split(' ');
        return { source, target: target.replace(/\\040/g, ' '), type, options: options.split(',') };
      });
  } catch {
    return [];
  }
}

/** Bytes this user's queues count against RLIMIT_MSGQUEUE, as far as we can open them. */
async function ourQueueBytes(mount: string | undefined): Promise<number | undefined> {
  if (mount === undefined) return undefined;
  const uid = process.geteuid?.() ?? 0;
  let total = 0;
  for (const name of readdirSync(mount)) {
    try {
      const path = join(mount, name);
      const st = native.lstat(path);
      if (st.uid !== uid) continue;
      const q = await openMessageQueue(`/${name}`, 'read', { anyOwner: true });
      try {
        const a = q.attributes();
        total += a.maxMessages * (a.maxMessageBytes + 48) + Math.min(a.maxMessages, 32768) * 48;
      } finally {
        await q.close();
      }
    } catch {
      /* gone meanwhile, or not ours to open */
    }
  }
  return total;
}

function rlimitFinding(id: string, limit: Rlimit, use: number | undefined, detail: string, raise: string): Finding {
  const f = usage(id, limit.soft, use, detail, raise);
  if (limit.hard !== limit.soft) f.detail += ` (hard limit ${limit.hard === Infinity ? 'unlimited' : limit.hard})`;
  return f;
}

function countFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

function lockedBytes(): number | undefined {
  try {
    const m = /VmLck:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function limits(): Promise<Finding[]> {
  const mq = mqueueMount();
  const sysctl = (name: string): number | undefined => num(readSysctl(name));
  const raise = (name: string, to: string): string => `sysctl -w ${name}=${to}   (to keep it: echo '${name} = ${to}' > /etc/sysctl.d/90-ipckit.conf)`;
  const out: Finding[] = [];

  const msgMax = sysctl('fs.mqueue.msg_max');
  out.push({
    ...usage('fs.mqueue.msg_max', msgMax, undefined, 'most messages one POSIX queue may hold; a deeper queue is ERR_IPCKIT_LIMIT', raise('fs.mqueue.msg_max', '256')),
    ...(msgMax !== undefined && msgMax < 64 ? { status: 'info' as const, detail: `most messages one POSIX queue may hold (only ${msgMax}: a sender waits for room every ${msgMax} messages, which caps throughput)` } : {}),
  });
  out.push(usage('fs.mqueue.msgsize_max', sysctl('fs.mqueue.msgsize_max'), undefined, 'largest message of a POSIX queue', raise('fs.mqueue.msgsize_max', '1048576')));
  out.push(usage('fs.mqueue.queues_max', sysctl('fs.mqueue.queues_max'), mq === undefined ? undefined : readdirSync(mq).length, 'most POSIX queues in this IPC namespace, all users together', raise('fs.mqueue.queues_max', '1024')));
  out.push(rlimitFinding('RLIMIT_MSGQUEUE', readRlimit('RLIMIT_MSGQUEUE'), await ourQueueBytes(mq), 'bytes all POSIX queues of this user may take (each counts its full size when created)', 'ulimit -q BYTES in the shell that starts the program, or LimitMSGQUEUE= in its systemd unit'));

  try {
    const fs = statfsSync('/dev/shm');
    const size = fs.blocks * fs.bsize;
    out.push(usage('/dev/shm', size, size - fs.bavail * fs.bsize, 'room for POSIX shared memory and semaphores (a tmpfs: its pages are memory)', 'mount -o remount,size=4G /dev/shm   (or the size= option in /etc/fstab)'));
  } catch {
    out.push({ id: '/dev/shm', status: 'problem', detail: '/dev/shm cannot be read: POSIX shared memory and semaphores will fail', fix: 'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm' });
  }

  const shm = readSysvTable('shm');
  const pageSize = 4096;
  out.push(usage('kernel.shmmax', sysctl('kernel.shmmax'), shm.reduce((m, r) => Math.max(m, r.size ?? 0), 0), 'largest System V shared memory segment, bytes (use: the largest there is)', raise('kernel.shmmax', '68719476736')));
  out.push(usage('kernel.shmall', sysctl('kernel.shmall'), shm.reduce((s, r) => s + Math.ceil((r.size ?? 0) / pageSize), 0), 'pages all System V shared memory segments may take together', raise('kernel.shmall', '16777216')));
  out.push(usage('kernel.shmmni', sysctl('kernel.shmmni'), shm.length, 'most System V shared memory segments', raise('kernel.shmmni', '8192')));
  out.push(usage('kernel.msgmax', sysctl('kernel.msgmax'), undefined, 'largest System V message, bytes', raise('kernel.msgmax', '65536')));
  out.push(usage('kernel.msgmnb', sysctl('kernel.msgmnb'), undefined, 'default byte capacity of a System V queue (msg_qbytes)', raise('kernel.msgmnb', '1048576')));
  out.push(usage('kernel.msgmni', sysctl('kernel.msgmni'), readSysvTable('msg').length, 'most System V message queues', raise('kernel.msgmni', '32000')));
  const sem = readSysctl('kernel.sem')?.split(/\s+/).map(Number);
  const sets = readSysvTable('sem');
  out.push(usage('kernel.sem', sem?.[3], sets.length, `System V semaphores: SEMMSL ${sem?.[0]} per set, SEMMNS ${sem?.[1]} in all (${sets.reduce((s, r) => s + (r.nsems ?? 0), 0)} in use), SEMOPM ${sem?.[2]} per op, SEMMNI ${sem?.[3]} sets (value and use: sets)`, raise('kernel.sem', "'32000 1024000000 500 32000'")));
  const qlen = sysctl('net.unix.max_dgram_qlen');
  out.push({
    ...usage('net.unix.max_dgram_qlen', qlen, undefined, 'datagrams an unconnected Unix datagram socket queues per receiver before senders wait', raise('net.unix.max_dgram_qlen', '512')),
    ...(qlen !== undefined && qlen < 64 ? { status: 'info' as const } : {}),
  });
  out.push(usage('fs.pipe-max-size', sysctl('fs.pipe-max-size'), undefined, 'largest pipe buffer an unprivileged process may ask for (capacity option)', raise('fs.pipe-max-size', '4194304')));
  out.push(usage('fs.pipe-user-pages-soft', sysctl('fs.pipe-user-pages-soft'), undefined, 'pages of pipe buffers one user may have before new pipes get one page (per-user use is not shown by the kernel)', raise('fs.pipe-user-pages-soft', '65536')));
  out.push(rlimitFinding('RLIMIT_NOFILE', readRlimit('RLIMIT_NOFILE'), countFds(), 'descriptors this process may open (every pipe end, FIFO, queue, socket and watch takes one)', 'ulimit -n 65536 in the shell that starts the program, or LimitNOFILE= in its systemd unit'));
  out.push(rlimitFinding('RLIMIT_MEMLOCK', readRlimit('RLIMIT_MEMLOCK'), lockedBytes(), 'bytes this process may lock in memory (io_uring rings on older kernels count here)', 'ulimit -l BYTES, or LimitMEMLOCK= in its systemd unit'));
  return out;
}

// --- Hazards ------------------------------------------------------------------------------

/** The effective RemoveIPC= of systemd-logind (the last setting wins; the default is yes). */
function removeIpc(): { value: boolean; file: string | undefined } {
  let value = true;
  let file: string | undefined;
  const files = ['/etc/systemd/logind.conf'];
  for (const dir of ['/usr/lib/systemd/logind.conf.d', '/usr/local/lib/systemd/logind.conf.d', '/run/systemd/logind.conf.d', '/etc/systemd/logind.conf.d']) {
    try {
      files.push(...readdirSync(dir).filter((n) => n.endsWith('.conf')).sort().map((n) => join(dir, n)));
    } catch {
      /* none */
    }
  }
  for (const f of files) {
    try {
      for (const line of readFileSync(f, 'utf8').split('\n')) {
        const m = /^\s*RemoveIPC\s*=\s*(\S+)/i.exec(line);
        if (m) {
          value = /^(1|yes|true|on)$/i.test(m[1]!);
          file = f;
        }
      }
    } catch {
      /* unreadable */
    }
  }
  return { value, file };
}

/** Highest uid of a system user (login.defs SYS_UID_MAX, default 999). */
function sysUidMax(): number {
  try {
    const m = /^\s*SYS_UID_MAX\s+(\d+)/m.exec(readFileSync('/etc/login.defs', 'utf8'));
    return m ? Number(m[1]) : 999;
  } catch {
    return 999;
  }
}

function hazards(): Finding[] {
  const out: Finding[] = [];
  const uid = process.geteuid?.() ?? 0;
  const all = mounts();

  const logind = existsSync('/lib/systemd/systemd-logind') || existsSync('/usr/lib/systemd/systemd-logind');
  if (!logind) out.push({ id: 'hazard.remove-ipc', status: 'ok', detail: 'no systemd-logind here: nothing deletes IPC objects at logout' });
  else {
    const r = removeIpc();
    const system = uid <= sysUidMax();
    out.push(
      !r.value
        ? { id: 'hazard.remove-ipc', status: 'ok', value: 'no', detail: `systemd-logind keeps a user's IPC objects at logout (RemoveIPC=no in ${r.file})` }
        : system
          ? { id: 'hazard.remove-ipc', status: 'info', value: 'yes', detail: `systemd-logind deletes the IPC objects of regular users when their last session ends (RemoveIPC=yes${r.file ? ` in ${r.file}` : ', the default'}); uid ${uid} is a system user and is not affected` }
          : {
              id: 'hazard.remove-ipc',
              status: 'problem',
              value: 'yes',
              detail: `systemd-logind deletes every shared memory segment, semaphore and queue of uid ${uid} when its last login session ends (RemoveIPC=yes${r.file ? ` in ${r.file}` : ', the default'}): a service running as this user loses its objects at the next logout`,
              fix: "set RemoveIPC=no under [Login] in /etc/systemd/logind.conf, then systemctl restart systemd-logind (or run the service as a system user)",
            },
    );
  }

  const mq = all.filter((m) => m.type === 'mqueue').pop();
  out.push(
    mq
      ? { id: 'hazard.mqueue-mount', status: 'ok', value: mq.target, detail: 'the mqueue filesystem is mounted: POSIX queues can be listed and removed by name' }
      : { id: 'hazard.mqueue-mount', status: 'problem', detail: 'the mqueue filesystem is not mounted: POSIX queues still work, but cannot be listed (ipckit ls, gc) or inspected', fix: 'mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue' },
  );

  const dir = runtimeDirPath();
  const room = SUN_PATH_MAX - Buffer.byteLength(dir) - 1;
  out.push(
    room >= RUNTIME_NAME_BYTES
      ? { id: 'hazard.runtime-path', status: 'ok', value: dir, detail: `socket names in the runtime folder may be up to ${room} bytes long` }
      : {
          id: 'hazard.runtime-path',
          status: 'problem',
          value: dir,
          detail: `the runtime folder's path is ${Buffer.byteLength(dir)} bytes: a Unix socket path (at most ${SUN_PATH_MAX} bytes) leaves ${Math.max(0, room)} for the socket's name, less than the ${RUNTIME_NAME_BYTES} ipckit needs`,
          fix: 'export IPCKIT_RUNTIME_DIR=/run/user/$(id -u)/ipckit (or another short path)',
        },
  );

  // The last mount of a path is the one in use (a later mount hides an earlier one).
  const proc = all.filter((m) => m.target === '/proc' && m.type === 'proc').pop();
  const hidepid = proc?.options.find((o) => o.startsWith('hidepid='))?.slice('hidepid='.length);
  out.push(
    hidepid === undefined || hidepid === '0' || hidepid === 'off'
      ? { id: 'hazard.hidepid', status: 'ok', detail: '/proc shows every process: liveness checks see peers of other users' }
      : {
          id: 'hazard.hidepid',
          status: 'warning',
          value: `hidepid=${hidepid}`,
          detail: '/proc hides other users\' processes: ipckit cannot check the start time of a peer of another user, so it counts it as alive (a dead peer\'s slot or permit is then not taken back until its pid is gone)',
          fix: 'mount -o remount,hidepid=0 /proc, or run the peers as one user',
        },
  );

  const nspid = /^NSpid:\s+(.+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
  const container = existsSync('/.dockerenv') || existsSync('/run/.containerenv');
  out.push(
    nspid.length > 1 || inOwnPidNamespace() === true
      ? {
          id: 'hazard.pid-namespace',
          status: 'warning',
          value: nspid.length > 1 ? `pid ${nspid[nspid.length - 1]} here, ${nspid[0]} outside` : `pid ${process.pid} here; the host's pids are not visible`,
          detail: 'this process runs in its own PID namespace: a peer outside it (or in another container) is seen under another pid or not at all, so liveness checks of rings, work queues, pools and sockets are wrong across the boundary',
          fix: 'run the peers in one PID namespace (docker run --pid=host, or one pod with shareProcessNamespace)',
        }
      : { id: 'hazard.pid-namespace', status: container ? 'info' : 'ok', detail: container ? 'in a container that shares the host\'s PID namespace' : 'in the host\'s PID namespace' },
  );

  const shm = all.filter((m) => m.target === '/dev/shm').pop();
  out.push(
    shm?.type === 'tmpfs'
      ? { id: 'hazard.dev-shm', status: 'ok', value: 'tmpfs', detail: '/dev/shm is a tmpfs: shared memory lives in memory' }
      : {
          id: 'hazard.dev-shm',
          status: 'problem',
          value: shm?.type ?? 'not mounted',
          detail: shm ? `/dev/shm is ${shm.type}, not tmpfs: shared memory would be written to a disk, or fail` : '/dev/shm is not mounted: POSIX shared memory and named semaphores will fail',
          fix: 'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm',
        },
  );
  return out;
}

/** Everything `ipckit doctor` looks at. */
export async function diagnose(): Promise<Diagnosis> {
  const f = features();
  const l = await limits();
  const h = hazards();
  const all = [...f, ...l, ...h];
  return {
    kernel: release(),
    node: process.version,
    uid: process.geteuid?.() ?? 0,
    features: f,
    limits: l,
    hazards: h,
    problems: all.filter((x) => x.status === 'problem').length,
    warnings: all.filter((x) => x.status === 'warning').length,
  };
}
