/**
 * `ipckit ls` as a library: every IPC object of this host (of this IPC namespace) that the
 * caller can see, both families, with who holds it and whether it is abandoned.
 *
 * Sources: /dev/shm (POSIX shared memory, and `sem.NAME` named semaphores), the mqueue
 * filesystem (POSIX queues; found in /proc/self/mounts), /proc/sysvipc/{msg,sem,shm},
 * FIFOs and socket files in ipckit's runtime folder and in paths given, abstract Unix
 * sockets (/proc/net/unix). Holders come from /proc/<pid>/fd and /proc/<pid>/maps
 * (matched by device and inode), from the System V attach counts and last pids, and for
 * ipckit's own objects from the creator and the participant table in the header.
 *
 * Everything read is untrusted: an ipckit header is read with read(2) (never mapped, so a
 * peer that shrinks the segment cannot fault us), bounds-checked, and a header that does
 * not add up is reported as `ipckit (corrupt)`, never thrown. What cannot be read (EACCES:
 * another user's object or process) is reported with state `unknown` and why.
 *
 * "Abandoned" (the only state `collectGarbage` removes) is decided for ipckit's own
 * objects (ring, work queue, mutex, pool) only, and only when all of this holds: the header
 * is complete and of a layout version this ipckit reads; the creator (pid and start time)
 * is dead; every participant row is free, closed or names a dead thread (pid, thread id
 * and start time, so a reused pid is dead); no process has it open or mapped; and every
 * process that could have opened it was looked at (see `scanHolders`).
 */
import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument } from '../core/errors.js';
import * as validate from '../core/validate.js';
import { mqueueMount } from './doctor.js';
import { inOwnPidNamespace, isProcessAlive } from '../os/liveness.js';
import { native } from '../os/native.js';
import { readSysvTable } from '../os/sysvipc.js';
import { runtimeDirPath } from '../os/runtime.js';
import { decodeMagic, FLAG_PERSISTENT, HEADER_BYTES, H_CREATOR_PID, H_CREATOR_START_HI, H_CREATOR_START_LO, H_FLAGS, H_HEADER_BYTES, H_MAGIC, H_TABLE_OFFSET, H_TABLE_ROWS, H_VERSION, type ObjectKind } from '../memory/header.js';
import { ATTACHED, P_STATE, ROW_BYTES, rowAlive, STATE_NAMES } from '../memory/participants.js';
import { VERSION as RING_VERSION, W_CAPACITY as RING_W_CAPACITY, W_HEAD as RING_W_HEAD, W_TAIL as RING_W_TAIL } from '../mechanisms/ring/layout.js';
import { MAX_PARTICIPANTS as WQ_MAX_PARTICIPANTS, VERSION as WQ_VERSION, W_CAPACITY as WQ_W_CAPACITY, W_DONE_TOTAL, W_PUT_TOTAL } from '../mechanisms/workqueue/layout.js';
import { MUTEX_VERSION } from '../mechanisms/mutex/mutex.js';
import { POOL_VERSION } from '../mechanisms/pool/pool.js';
import { SHARED_VALUE_VERSION } from '../mechanisms/value/value.js';

/** The layout version this ipckit reads, for each kind of its own objects. */
const VERSIONS: Record<ObjectKind, number> = { ring: RING_VERSION, workqueue: WQ_VERSION, mutex: MUTEX_VERSION, pool: POOL_VERSION, value: SHARED_VALUE_VERSION };

export type InventoryKind = 'shm' | 'semaphore' | 'mqueue' | 'sysv-msg' | 'sysv-sem' | 'sysv-shm' | 'fifo' | 'socket' | 'abstract-socket';
export const INVENTORY_KINDS: readonly InventoryKind[] = ['shm', 'semaphore', 'mqueue', 'sysv-msg', 'sysv-sem', 'sysv-shm', 'fifo', 'socket', 'abstract-socket'];

export type ObjectState = 'live' | 'abandoned' | 'unknown';

export interface InventoryPerm {
  uid: number;
  gid: number;
  /** Permission bits (0o777 at most). */
  mode: number;
  /** System V only: the creator. */
  cuid?: number;
  cgid?: number;
}

/** A process that holds the object now. */
export interface Holder {
  pid: number;
  /** fd: an open descriptor; mapping: mapped into its memory; socket: owns the bound socket. */
  via: Array<'fd' | 'mapping' | 'socket'>;
}

/** A process an ipckit object records: its creator, or a row of its participant table. */
export interface Participant {
  pid: number;
  /** 0: the process's main thread. */
  tid: number;
  role: 'creator' | 'participant';
  state: 'attached' | 'closed' | 'free' | 'made';
  alive: boolean;
}

export interface IpcObject {
  kind: InventoryKind;
  /** Unique handle for the object: `shm:/name`, `semaphore:/name`, `mqueue:/name`, `sysv-shm:ID`, `fifo:/path`, `socket:/path`, `abstract-socket:@name`. */
  ref: string;
  /** POSIX name (`/jobs`), path, or `@name` of an abstract socket; System V objects have key and id instead. */
  name?: string;
  key?: number;
  id?: number;
  /** The file behind it (POSIX objects). */
  path?: string;
  /** Undefined for abstract sockets (they have no permissions). */
  perm?: InventoryPerm;
  /** Bytes of the object (segment size; bytes queued for a POSIX queue). */
  size?: number;
  /** Messages waiting (queues), or items in a work queue not yet done. */
  messages?: number;
  /** Bytes of messages held now (a ring's used bytes, a queue's bytes). */
  bytesInUse?: number;
  /** Counters that only grow (for rates): a work queue's items put and done. */
  counters?: Record<string, number>;
  /** What ipckit made it as (`ring`, `workqueue`, `mutex`, `pool`), `ipckit (corrupt)`, `ipckit (being made)`, `ipckit (newer)` or `foreign`; `unknown` when it could not be read. */
  madeBy: string;
  layoutVersion?: number;
  /** Made on purpose to outlive its creator (header flag): gc never removes it. */
  persistent?: boolean;
  holders: Holder[];
  /** ipckit objects: the creator and the participant table. */
  participants?: Participant[];
  /** System V: attach count (segments) and last pids. */
  sysv?: { nattch?: number; cpid?: number; lpid?: number; lspid?: number; lrpid?: number };
  state: ObjectState;
  /** Why that state (for `unknown`: what could not be seen). */
  reason: string;
}

export interface ListOptions {
  /** More FIFOs and Unix socket files to list: files, or folders whose entries are looked at (not recursively). */
  paths?: string[];
  /** Only these kinds. */
  kind?: InventoryKind | InventoryKind[];
  /** Only objects owned by this uid. */
  owner?: number;
  /** Only abandoned objects. */
  abandoned?: boolean;
  /** Only objects whose name (without the leading '/') starts with this: keeps a caller to its own objects. */
  prefix?: string;
}

export interface Inventory {
  objects: IpcObject[];
  /** What could not be looked at, and why (the mqueue filesystem not mounted, other users' processes...). */
  notes: string[];
}

// --- Holders: who has what open or mapped ------------------------------------------------

/** `major:minor:inode`, the key by which descriptors and mappings name a file. */
export function fileKey(dev: number, ino: number): string {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `${major}:${minor}:${ino}`;
}

interface ProcessSeen {
  pid: number;
  uid: number;
}

export interface HolderScan {
  /** fileKey -> pid -> how. */
  files: Map<string, Map<number, Set<'fd' | 'mapping'>>>;
  /** Socket inode -> pids with a descriptor on it. */
  sockets: Map<number, Set<number>>;
  /** System V segment id -> pids that map it. */
  sysvShm: Map<number, Set<number>>;
  /** Processes whose descriptors or mappings we could not read (another user's, without privilege). */
  unseen: ProcessSeen[];
  /** Why some processes cannot be seen at all, so that nothing can be proved abandoned: /proc mounted with hidepid (and we are not root), or we run in a PID namespace of our own. */
  hidden: string | undefined;
}

function add<K, V>(map: Map<K, Map<number, Set<V>>>, key: K, pid: number, via: V): void {
  let byPid = map.get(key);
  if (!byPid) map.set(key, (byPid = new Map()));
  let how = byPid.get(pid);
  if (!how) byPid.set(pid, (how = new Set()));
  how.add(via);
}

function uidOf(pid: number): number {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

/** Why processes may be missing from /proc as we see it, if they may. */
function blindness(): string | undefined {
  if ((process.geteuid?.() ?? 0) !== 0 && hidepid()) return '/proc is mounted with hidepid: processes of other users cannot be seen (run as root)';
  if (inOwnPidNamespace() === true) return 'this process runs in a PID namespace of its own: processes outside it cannot be seen (run where the peers run: on the host, or in a container started with --pid=host)';
  return undefined;
}

function hidepid(): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .some((l) => {
        const [, target, type, opts] = l.split(' ');
        return type === 'proc' && target === '/proc' && /(^|,)hidepid=(1|2|noaccess|invisible)(,|$)/.test(opts ?? '');
      });
  } catch {
    return false;
  }
}

/** Yields to the event loop: the scan reads thousands of small /proc files. */
const breathe = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Every process's descriptors and mappings, by the file they name. Processes of other
 * users are closed to a normal user: they go to `unseen` (with their uid, which
 * /proc/<pid>/status shows to all).
 */
export async function scanHolders(): Promise<HolderScan> {
  const scan: HolderScan = { files: new Map(), sockets: new Map(), sysvShm: new Map(), unseen: [], hidden: blindness() };
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
  } catch (e) {
    scan.hidden = `/proc cannot be read (${(e as NodeJS.ErrnoException).code})`;
    return scan;
  }
  let n = 0;
  for (const pid of pids) {
    if (++n % 32 === 0) await breathe();
    let closed = false;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') closed = true;
      else continue; // exited meanwhile
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const socket = /^socket:\[(\d+)\]$/.exec(target);
      if (socket) {
        const ino = Number(socket[1]);
        let set = scan.sockets.get(ino);
        if (!set) scan.sockets.set(ino, (set = new Set()));
        set.add(pid);
        continue;
      }
      if (!target.startsWith('/')) continue; // pipe:, anon_inode:
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        add(scan.files, fileKey(st.dev, st.ino), pid, 'fd');
      } catch {
        /* closed meanwhile */
      }
    }
    let maps: string | undefined;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EACCES') closed = true;
    }
    if (maps !== undefined) {
      for (const line of maps.split('\n')) {
        // address perms offset dev inode path
        const f = line.split(/\s+/, 6);
        const ino = Number(f[4]);
        if (!f[3] || !ino) continue;
        const [maj, min] = f[3].split(':');
        const path = line.slice(line.indexOf('/') >= 0 ? line.indexOf('/') : line.length);
        if (path.startsWith('/SYSV')) {
          let set = scan.sysvShm.get(ino);
          if (!set) scan.sysvShm.set(ino, (set = new Set()));
          set.add(pid);
        } else add(scan.files, `${parseInt(maj!, 16)}:${parseInt(min!, 16)}:${ino}`, pid, 'mapping');
      }
    }
    if (closed) scan.unseen.push({ pid, uid: uidOf(pid) });
  }
  return scan;
}

function holdersOf(scan: HolderScan, st: Pick<Stats, 'dev' | 'ino'>): Holder[] {
  const byPid = scan.files.get(fileKey(st.dev, st.ino));
  return byPid ? [...byPid].map(([pid, via]) => ({ pid, via: [...via].sort() })).sort((a, b) => a.pid - b.pid) : [];
}

/**
 * Why the holders of an object with this permission record may be incomplete, or
 * undefined when every process that could have it open was seen. A process could open it
 * if it is the owner's, or the mode lets group or others in. Root's own processes are not
 * counted (a normal user never sees them): documented in docs/ops.md.
 */
export function blindSpot(scan: HolderScan, perm: InventoryPerm): string | undefined {
  if (scan.hidden) return scan.hidden;
  const open = (perm.mode & 0o077) !== 0;
  const could = scan.unseen.filter((p) => p.uid !== 0 && (open || p.uid === perm.uid));
  if (could.length === 0) return undefined;
  return `${could.length} process${could.length === 1 ? '' : 'es'} that could use it (${could.slice(0, 5).map((p) => p.pid).join(', ')}${could.length > 5 ? ', ...' : ''}) could not be looked at: their /proc/<pid>/fd is closed to us`;
}

// --- ipckit headers ----------------------------------------------------------------------

/** The most bytes read from an object: the header and the largest participant table. */
const READ_MAX = 1024 + WQ_MAX_PARTICIPANTS * ROW_BYTES;

interface HeaderReading {
  madeBy: string;
  layoutVersion?: number;
  persistent?: boolean;
  participants?: Participant[];
  /** The header is complete and of a version this ipckit reads: liveness can be decided. */
  decidable: boolean;
  problem?: string;
  messages?: number;
  bytesInUse?: number;
  counters?: Record<string, number>;
}

/** What an ipckit header says, read from a copy of the object's first bytes (untrusted). */
export function readHeader(bytes: Buffer, size: number): HeaderReading {
  if (bytes.length < HEADER_BYTES) return { madeBy: 'foreign', decidable: false };
  const word = (i: number): number => (i * 4 + 4 <= bytes.length ? bytes.readUInt32LE(i * 4) : 0);
  const magic = decodeMagic(word(H_MAGIC));
  if (magic === 'foreign' || magic === 'empty') return { madeBy: 'foreign', decidable: false };
  if (magic === 'ipckit') return { madeBy: 'ipckit (unknown kind)', decidable: false, problem: 'a kind this ipckit does not know (made by a newer ipckit?)' };
  const version = word(H_VERSION);
  const out: HeaderReading = { madeBy: magic.kind, layoutVersion: version, decidable: false };
  const creatorPid = word(H_CREATOR_PID);
  const creatorStart = word(H_CREATOR_START_HI) * 2 ** 32 + word(H_CREATOR_START_LO);
  const creator: Participant = { pid: creatorPid, tid: 0, role: 'creator', state: 'made', alive: creatorPid !== 0 && isProcessAlive(creatorPid, creatorStart || undefined) };
  out.participants = [creator];
  if (!magic.ready) {
    out.madeBy = 'ipckit (being made)';
    out.problem = creator.alive ? `its creator, process ${creatorPid}, is still making it` : `its creator, process ${creatorPid}, died before finishing it`;
    // A creator that died while making it: nothing else can have attached (openers wait for the ready magic).
    out.decidable = creatorPid !== 0 && !creator.alive;
    return out;
  }
  const corrupt = (what: string): HeaderReading => ({ ...out, madeBy: 'ipckit (corrupt)', problem: what, decidable: false });
  if (version !== VERSIONS[magic.kind]) return { ...out, madeBy: 'ipckit (newer)', problem: `${magic.kind} layout version ${version}; this ipckit reads version ${VERSIONS[magic.kind]}` };
  if (word(H_HEADER_BYTES) !== HEADER_BYTES) return corrupt(`header size ${word(H_HEADER_BYTES)}`);
  const flags = word(H_FLAGS);
  if ((flags & ~FLAG_PERSISTENT) !== 0) return corrupt(`unknown flags 0x${flags.toString(16)}`);
  out.persistent = (flags & FLAG_PERSISTENT) !== 0;
  const tableOffset = word(H_TABLE_OFFSET);
  const rows = word(H_TABLE_ROWS);
  if (tableOffset !== 0 || rows !== 0) {
    if (tableOffset < HEADER_BYTES || tableOffset % 8 !== 0 || rows > WQ_MAX_PARTICIPANTS || tableOffset + rows * ROW_BYTES > Math.min(size, bytes.length)) {
      return corrupt(`participant table of ${rows} rows at byte ${tableOffset} does not fit in ${size} bytes`);
    }
    for (let r = 0; r < rows; r++) {
      const base = tableOffset / 4 + r * (ROW_BYTES / 4);
      const field = (f: number): number => word(base + f);
      const state = field(P_STATE);
      if (state > 2) return corrupt(`participant row ${r} has state ${state}`);
      if (state === 0) continue;
      out.participants.push({ pid: field(0), tid: field(5), role: 'participant', state: STATE_NAMES[state]! as Participant['state'], alive: state === ATTACHED && rowAlive(field) });
    }
  }
  if (magic.kind === 'ring' && bytes.length >= 4 * (RING_W_CAPACITY + 1)) {
    const used = (word(RING_W_TAIL) - word(RING_W_HEAD)) >>> 0;
    if (used <= word(RING_W_CAPACITY)) out.bytesInUse = used;
  }
  if (magic.kind === 'workqueue' && bytes.length >= 4 * (W_DONE_TOTAL + 1)) {
    const put = word(W_PUT_TOTAL);
    const done = word(W_DONE_TOTAL);
    const waiting = (put - done) >>> 0;
    if (waiting <= word(WQ_W_CAPACITY)) out.messages = waiting;
    out.counters = { put, done };
  }
  out.decidable = true;
  return out;
}

/** Reads the first bytes of an object file through a read-only descriptor (never mapped). */
export function readFirstBytes(path: string): { bytes: Buffer; size: number } | { error: string } {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
  try {
    const st = fstatSync(fd);
    const want = Math.min(st.size, READ_MAX);
    const bytes = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, bytes, got, want - got, got);
      if (n <= 0) break;
      got += n;
    }
    return { bytes: bytes.subarray(0, got), size: st.size };
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? String(e) };
  } finally {
    closeSync(fd);
  }
}

// --- The sources -------------------------------------------------------------------------

function permOf(st: Stats): InventoryPerm {
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
}

function heldState(holders: Holder[], what: string): { state: ObjectState; reason: string } | undefined {
  if (holders.length === 0) return undefined;
  return { state: 'live', reason: `${what} by process${holders.length === 1 ? '' : 'es'} ${holders.map((h) => h.pid).join(', ')}` };
}

/** The state of an object of /dev/shm from its header reading and its holders. */
function shmState(h: HeaderReading, holders: Holder[], spot: string | undefined): { state: ObjectState; reason: string } {
  const alive = (h.participants ?? []).filter((p) => p.alive);
  if (alive.length > 0) return { state: 'live', reason: `${alive.map((p) => `${p.role} ${p.pid}${p.tid ? `/${p.tid}` : ''}`).join(', ')} alive` };
  const held = heldState(holders, 'open or mapped');
  if (held) return held;
  if (h.madeBy === 'foreign') return { state: 'unknown', reason: 'not made by ipckit: nobody has it open or mapped now, but whether it is still wanted cannot be told' };
  if (!h.decidable) return { state: 'unknown', reason: h.problem ?? 'its header cannot be read' };
  if (spot) return { state: 'unknown', reason: spot };
  return { state: 'abandoned', reason: `${h.persistent ? 'persistent, so ipckit gc keeps it; ' : ''}its creator${(h.participants?.length ?? 0) > 1 ? ' and every participant' : ''} died (pid and start time checked), and no process has it open or mapped` };
}

function listShm(scan: HolderScan, notes: string[], out: IpcObject[]): void {
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch (e) {
    notes.push(`/dev/shm cannot be read (${(e as NodeJS.ErrnoException).code}): POSIX shared memory and named semaphores are not listed`);
    return;
  }
  for (const entry of names) {
    const path = `/dev/shm/${entry}`;
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      continue; // removed meanwhile
    }
    if (!st.isFile()) continue;
    const holders = holdersOf(scan, st);
    const perm = permOf(st);
    if (entry.startsWith('sem.')) {
      const name = `/${entry.slice(4)}`;
      out.push({
        kind: 'semaphore', ref: `semaphore:${name}`, name, path, perm, size: st.size, madeBy: 'foreign', holders,
        ...(heldState(holders, 'mapped') ?? { state: 'unknown' as const, reason: 'a POSIX semaphore carries no mark of its maker: nobody has it mapped now, but whether it is still wanted cannot be told' }),
      });
      continue;
    }
    const name = `/${entry}`;
    const first = readFirstBytes(path);
    if ('error' in first) {
      out.push({ kind: 'shm', ref: `shm:${name}`, name, path, perm, size: st.size, madeBy: 'unknown', holders, ...(heldState(holders, 'open or mapped') ?? { state: 'unknown' as const, reason: `its header cannot be read (${first.error})` }) });
      continue;
    }
    const h = readHeader(first.bytes, first.size);
    const o: IpcObject = { kind: 'shm', ref: `shm:${name}`, name, path, perm, size: first.size, madeBy: h.madeBy, holders, ...shmState(h, holders, blindSpot(scan, perm)) };
    if (h.layoutVersion !== undefined) o.layoutVersion = h.layoutVersion;
    if (h.persistent !== undefined) o.persistent = h.persistent;
    if (h.participants) o.participants = h.participants;
    if (h.messages !== undefined) o.messages = h.messages;
    if (h.bytesInUse !== undefined) o.bytesInUse = h.bytesInUse;
    if (h.counters) o.counters = h.counters;
    out.push(o);
  }
}

function listMqueues(scan: HolderScan, notes: string[], out: IpcObject[]): void {
  const mount = mqueueMount();
  if (mount === undefined) {
    notes.push('the mqueue filesystem is not mounted: POSIX message queues cannot be listed (mount it: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue)');
    return;
  }
  let names: string[];
  try {
    names = readdirSync(mount);
  } catch (e) {
    notes.push(`${mount} cannot be read (${(e as NodeJS.ErrnoException).code}): POSIX message queues are not listed`);
    return;
  }
  for (const entry of names) {
    const path = join(mount, entry);
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    const name = `/${entry}`;
    const holders = holdersOf(scan, st);
    const o: IpcObject = {
      kind: 'mqueue', ref: `mqueue:${name}`, name, path, perm: permOf(st), madeBy: 'foreign', holders,
      ...(heldState(holders, 'open') ?? { state: 'unknown' as const, reason: 'a POSIX queue carries no mark of its maker: nobody has it open now, but whether it is still wanted cannot be told' }),
    };
    try {
      // "QSIZE:129 NOTIFY:0 SIGNO:0 NOTIFY_PID:0": bytes queued.
      const m = /QSIZE:(\d+)/.exec(readFileSync(path, 'utf8'));
      if (m) o.bytesInUse = Number(m[1]);
      // The message count and the size are only in mq_getattr: a read-only open, closed at once.
      const fd = native.mqOpen(name, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK, 0, 0, 0);
      try {
        const attr = native.mqGetattr(fd);
        o.messages = attr.currentMessages;
        o.size = attr.maxMessages * attr.maxMessageBytes;
      } finally {
        native.close(fd);
      }
    } catch (e) {
      o.reason += ` (its status cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    }
    out.push(o);
  }
}

function listSysv(scan: HolderScan, out: IpcObject[]): void {
  const perm = (r: Record<string, number>): InventoryPerm => ({ uid: r.uid!, gid: r.gid!, mode: r.perms! & 0o777, cuid: r.cuid!, cgid: r.cgid! });
  const foreign = 'a System V object carries no mark of its maker';
  for (const r of readSysvTable('msg')) {
    const o: IpcObject = { kind: 'sysv-msg', ref: `sysv-msg:${r.msqid}`, key: r.key! >>> 0, id: r.msqid!, perm: perm(r), size: r.cbytes!, bytesInUse: r.cbytes!, messages: r.qnum!, madeBy: 'foreign', holders: [], sysv: { lspid: r.lspid!, lrpid: r.lrpid! }, state: 'unknown', reason: `${foreign}; queues have no holders to count` };
    out.push(o);
  }
  for (const r of readSysvTable('sem')) {
    out.push({ kind: 'sysv-sem', ref: `sysv-sem:${r.semid}`, key: r.key! >>> 0, id: r.semid!, perm: perm(r), size: r.nsems!, madeBy: 'foreign', holders: [], state: 'unknown', reason: `${foreign}; semaphore sets have no holders to count` });
  }
  for (const r of readSysvTable('shm')) {
    const pids = [...(scan.sysvShm.get(r.shmid!) ?? [])].sort((a, b) => a - b);
    const holders: Holder[] = pids.map((pid) => ({ pid, via: ['mapping'] }));
    const nattch = r.nattch!;
    const o: IpcObject = {
      kind: 'sysv-shm', ref: `sysv-shm:${r.shmid}`, key: r.key! >>> 0, id: r.shmid!, perm: perm(r), size: r.size!, madeBy: 'foreign', holders, sysv: { nattch, cpid: r.cpid!, lpid: r.lpid! },
      ...(nattch > 0 ? { state: 'live' as const, reason: `attached ${nattch} time${nattch === 1 ? '' : 's'}${pids.length ? ` (processes ${pids.join(', ')})` : ''}` } : { state: 'unknown' as const, reason: `${foreign}: nobody has it attached now, but whether it is still wanted cannot be told` }),
    };
    out.push(o);
  }
}

interface UnixRow {
  inode: number;
  path: string;
}

/** The bound Unix sockets of /proc/net/unix (path, or `@name` for an abstract one). */
function unixSockets(): UnixRow[] {
  let text: string;
  try {
    text = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return [];
  }
  const rows: UnixRow[] = [];
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path (the path may hold spaces)
    const m = /^\s*\S+:\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)\s(.+)$/.exec(line);
    if (m) rows.push({ inode: Number(m[1]), path: m[2]! });
  }
  return rows;
}

function socketHolders(scan: HolderScan, inodes: number[]): Holder[] {
  const pids = new Set<number>();
  for (const ino of inodes) for (const pid of scan.sockets.get(ino) ?? []) pids.add(pid);
  return [...pids].sort((a, b) => a - b).map((pid) => ({ pid, via: ['socket'] }));
}

/** ipckit's runtime names: `fifo-<pid>-<hex>`, `socket-<pid>-<hex>`. */
const RUNTIME_NAME = /^(fifo|socket)-(\d+)-[0-9a-f]{8}$/;

function listFiles(scan: HolderScan, paths: string[], notes: string[], out: IpcObject[]): void {
  const bound = unixSockets();
  const runtime = runtimeDirPath();
  const files: string[] = [];
  for (const p of [runtime, ...paths]) {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      if (p !== runtime) notes.push(`${p} cannot be looked at (${(e as NodeJS.ErrnoException).code})`);
      continue;
    }
    if (!st.isDirectory()) {
      files.push(p);
      continue;
    }
    try {
      for (const e of readdirSync(p)) files.push(join(p, e));
    } catch (e) {
      notes.push(`${p} cannot be read (${(e as NodeJS.ErrnoException).code}): its FIFOs and sockets are not listed`);
    }
  }
  const seen = new Set<string>();
  for (const path of files) {
    if (seen.has(path)) continue;
    seen.add(path);
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    const base = path.slice(path.lastIndexOf('/') + 1);
    const ours = path.startsWith(`${runtime}/`) ? RUNTIME_NAME.exec(base) : null;
    if (st.isFIFO()) {
      const holders = holdersOf(scan, st);
      out.push({
        kind: 'fifo', ref: `fifo:${path}`, name: path, path, perm: permOf(st), madeBy: ours ? 'fifo' : 'foreign', holders,
        ...(heldState(holders, 'open') ?? { state: 'unknown' as const, reason: 'nobody has it open now; a FIFO records no maker or users, so whether it is still wanted cannot be told' }),
      });
    } else if (st.isSocket()) {
      const inodes = bound.filter((b) => b.path === path).map((b) => b.inode);
      const holders = socketHolders(scan, inodes);
      out.push({
        kind: 'socket', ref: `socket:${path}`, name: path, path, perm: permOf(st), madeBy: ours ? 'socket' : 'foreign', holders,
        ...(inodes.length > 0
          ? { state: 'live' as const, reason: `bound${holders.length ? ` by process${holders.length === 1 ? '' : 'es'} ${holders.map((h) => h.pid).join(', ')}` : ''}` }
          : { state: 'unknown' as const, reason: 'no socket is bound to it now (a stale file); a socket file records no maker, so whether it is still wanted cannot be told' }),
      });
    }
  }
}

function listAbstract(scan: HolderScan, out: IpcObject[]): void {
  const byName = new Map<string, number[]>();
  for (const row of unixSockets()) {
    if (!row.path.startsWith('@')) continue;
    const inodes = byName.get(row.path) ?? [];
    inodes.push(row.inode);
    byName.set(row.path, inodes);
  }
  for (const [name, inodes] of byName) {
    const holders = socketHolders(scan, inodes);
    out.push({ kind: 'abstract-socket', ref: `abstract-socket:${name}`, name, madeBy: 'foreign', holders, state: 'live', reason: `an abstract socket exists only while bound${holders.length ? ` (processes ${holders.map((h) => h.pid).join(', ')})` : ''}` });
  }
}

function kinds(kind: ListOptions['kind']): Set<InventoryKind> {
  if (kind === undefined) return new Set(INVENTORY_KINDS);
  const list = Array.isArray(kind) ? kind : [kind];
  for (const k of list) if (!INVENTORY_KINDS.includes(k)) throw invalidArgument(`kind must be one of ${INVENTORY_KINDS.join(', ')}, got ${JSON.stringify(k)}`);
  return new Set(list);
}

/** Does the object's name start with `prefix` (leading '/' or '@' ignored; a path: its last part)? */
export function hasPrefix(o: Pick<IpcObject, 'name' | 'kind'>, prefix: string): boolean {
  if (o.name === undefined) return false;
  const bare = o.kind === 'fifo' || o.kind === 'socket' ? o.name.slice(o.name.lastIndexOf('/') + 1) : o.name.replace(/^[/@]/, '');
  return bare.startsWith(prefix.replace(/^[/@]/, ''));
}

/** Every IPC object the caller can see, with its holders and state (see the top of this file). */
export function listObjectsDetailed(options: ListOptions = {}, scan?: HolderScan): Promise<Inventory> {
  // Bad options throw here, synchronously, as every entry point's do.
  validate.object('options', options);
  const want = kinds(options.kind);
  validate.optionalInteger('owner', options.owner, 0, 2 ** 32 - 1);
  validate.optionalBoolean('abandoned', options.abandoned);
  validate.optionalString('prefix', options.prefix);
  if (options.paths !== undefined && (!Array.isArray(options.paths) || options.paths.some((p) => typeof p !== 'string'))) throw invalidArgument('paths must be an array of paths');
  return collect(options, want, scan);
}

async function collect(options: ListOptions, want: Set<InventoryKind>, scan: HolderScan | undefined): Promise<Inventory> {
  const notes: string[] = [];
  const holders = scan ?? (await scanHolders());
  if (holders.hidden) notes.push(`${holders.hidden}: nothing can be proved abandoned`);
  const closed = holders.unseen.filter((p) => p.uid !== 0);
  if (closed.length > 0) notes.push(`${closed.length} process${closed.length === 1 ? '' : 'es'} of other users could not be looked at (their /proc/<pid>/fd is closed to us): objects they could use show as unknown`);
  const out: IpcObject[] = [];
  if (want.has('shm') || want.has('semaphore')) listShm(holders, notes, out);
  if (want.has('mqueue')) listMqueues(holders, notes, out);
  if (want.has('sysv-msg') || want.has('sysv-sem') || want.has('sysv-shm')) listSysv(holders, out);
  if (want.has('fifo') || want.has('socket')) listFiles(holders, options.paths ?? [], notes, out);
  if (want.has('abstract-socket')) listAbstract(holders, out);
  const objects = out.filter(
    (o) =>
      want.has(o.kind) &&
      (options.owner === undefined || o.perm?.uid === options.owner) &&
      (!options.abandoned || o.state === 'abandoned') &&
      (options.prefix === undefined || hasPrefix(o, options.prefix)),
  );
  return { objects, notes };
}

/** `ipckit ls`: every IPC object the caller can see (see listObjectsDetailed for the notes on what could not be seen). */
export function listObjects(options: ListOptions = {}): Promise<IpcObject[]> {
  return listObjectsDetailed(options).then((inventory) => inventory.objects);
}
