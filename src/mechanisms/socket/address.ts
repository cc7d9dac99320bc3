/**
 * Socket addresses as users write them, and the socket files behind Unix paths.
 *
 *   unix:/path            Unix stream socket at a path
 *   unix:name             ... in the private runtime folder (a name without "/")
 *   unix:                 (listen only) a fresh path in the runtime folder
 *   unix-abstract:name    Unix stream socket in Linux's abstract namespace (no file); also unix:@name
 *   unix-dgram:/path      Unix datagram socket (unix-dgram:@name is abstract)
 *   unix-seqpacket:/path  Unix seqpacket socket (unix-seqpacket:@name is abstract)
 *   tcp://host:port       TCP over IPv4 or IPv6 (tcp://[::1]:port); port 0 on listen picks one
 *
 * Socket files: a path longer than sun_path allows is refused with a hint to use the
 * abstract namespace; a symlink or any non-socket at the path is refused; a socket file
 * left by a dead server (connect is refused) is reclaimed, a live server's never is.
 */
import { chmodSync, chownSync, constants as fsConstants } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { constants as osConstants } from 'node:os';
import { errnoError, errnoOf, invalidArgument, IpcError, sys, toIpcError } from '../../core/errors.js';
import { native, type NativeStat } from '../../os/native.js';
import { fileTypeName } from '../../os/permissions.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import { runtimeDir, runtimeDirPath, runtimeName } from '../../os/runtime.js';
import * as validate from '../../core/validate.js';

export type SocketKind = 'unix' | 'unix-abstract' | 'unix-dgram' | 'unix-seqpacket' | 'tcp';
export const SOCKET_KINDS: readonly SocketKind[] = ['unix', 'unix-abstract', 'unix-dgram', 'unix-seqpacket', 'tcp'];

const C = native.socketConstants;
/** Bytes a filesystem path may take in sun_path (108 with the terminating NUL). */
export const MAX_UNIX_PATH = C.SUN_PATH_MAX - 1;
const { S_IFMT, S_IFSOCK, S_IFLNK } = fsConstants;
const E = osConstants.errno;

export interface UnixAddress {
  kind: 'unix' | 'unix-abstract' | 'unix-dgram' | 'unix-seqpacket';
  /** Filesystem path, or the abstract name (without its leading NUL). */
  path: string;
  abstract: boolean;
  /** The bytes for sun_path (a leading NUL for the abstract namespace). */
  sunPath: Buffer;
  /** Canonical text: `unix:/run/x`, `unix-abstract:name`, `unix-dgram:@name`. */
  text: string;
  /** The path is in the runtime folder, which must be made (or checked) before use: `prepareAddress`. */
  inRuntimeDir: boolean;
}

export interface TcpAddress {
  kind: 'tcp';
  host: string;
  port: number;
  text: string;
}

export type SocketAddress = UnixAddress | TcpAddress;

/** Whether the kind carries messages with kernel boundaries (no framing). */
export function isPacketKind(kind: SocketKind): kind is 'unix-dgram' | 'unix-seqpacket' {
  return kind === 'unix-dgram' || kind === 'unix-seqpacket';
}

export function socketType(kind: SocketKind): number {
  return kind === 'unix-dgram' ? C.SOCK_DGRAM : kind === 'unix-seqpacket' ? C.SOCK_SEQPACKET : C.SOCK_STREAM;
}

function unixText(kind: UnixAddress['kind'], path: string, abstract: boolean): string {
  if (kind === 'unix-abstract') return `unix-abstract:${path}`;
  return `${kind}:${abstract ? '@' : ''}${path}`;
}

function unixAddress(kind: UnixAddress['kind'], path: string, abstract: boolean, inRuntimeDir = false): UnixAddress {
  const bytes = Buffer.from(path, 'utf8');
  if (abstract) {
    if (bytes.length === 0) throw invalidArgument('an abstract socket name must not be empty');
    if (bytes.length > C.SUN_PATH_MAX - 1) throw invalidArgument(`abstract socket name is ${bytes.length} bytes; at most ${C.SUN_PATH_MAX - 1} fit in sun_path`);
    return { kind: kind === 'unix' ? 'unix-abstract' : kind, path, abstract, sunPath: Buffer.concat([Buffer.from([0]), bytes]), text: unixText(kind === 'unix' ? 'unix-abstract' : kind, path, abstract), inRuntimeDir: false };
  }
  if (bytes.length > MAX_UNIX_PATH) {
    const suggestion = kind === 'unix' ? 'unix-abstract:NAME' : `${kind}:@NAME`;
    throw new IpcError(
      'ERR_IPCKIT_INVALID_ARGUMENT',
      `Unix socket path is ${bytes.length} bytes, more than the ${MAX_UNIX_PATH} that sun_path holds: use a shorter path, a name in the runtime folder (${kind}:NAME), or the abstract namespace (${suggestion}), which has no file`,
      { path, details: { length: bytes.length, max: MAX_UNIX_PATH } },
    );
  }
  return { kind, path, abstract, sunPath: bytes, text: unixText(kind, path, abstract), inRuntimeDir };
}

/**
 * Parses an address, without touching the system (a bad address throws here, at once).
 * `forListen` allows `unix:` with no path (a fresh runtime path) and TCP port 0. Relative
 * names without "/" go to the runtime folder, which `prepareAddress` makes before use;
 * paths with "/" are resolved against the working directory.
 */
export function parseAddress(address: unknown, forListen = false): SocketAddress {
  const text = validate.string('address', address);
  validate.boolean('forListen', forListen);
  const colon = text.indexOf(':');
  const scheme = colon < 0 ? '' : text.slice(0, colon);
  if (scheme === 'tcp') return parseTcp(text, forListen);
  if (!(SOCKET_KINDS as readonly string[]).includes(scheme)) {
    throw invalidArgument(`address must start with unix:, unix-abstract:, unix-dgram:, unix-seqpacket: or tcp://, got ${validate.describe(address)}`);
  }
  const kind = scheme as UnixAddress['kind'];
  let rest = text.slice(colon + 1);
  if (kind === 'unix-abstract') return unixAddress(kind, rest, true);
  if (rest.startsWith('@')) return unixAddress(kind, rest.slice(1), true);
  if (rest === '') {
    if (!forListen) throw invalidArgument(`address ${JSON.stringify(text)} names no socket: give a path (${kind}:/path) or a name (${kind}:NAME)`);
    return unixAddress(kind, join(runtimeDirPath(), runtimeName('socket')), false, true);
  }
  if (!rest.includes('/')) return unixAddress(kind, join(runtimeDirPath(), rest), false, true);
  return unixAddress(kind, isAbsolute(rest) ? rest : resolvePath(rest), false);
}

/** Makes what a parsed address needs on the system: the runtime folder for a path in it. */
export function prepareAddress(addr: SocketAddress): void {
  if (addr.kind !== 'tcp' && addr.inRuntimeDir) runtimeDir();
}

function parseTcp(text: string, forListen: boolean): TcpAddress {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})\/?$/.exec(text);
  if (!m) throw invalidArgument(`a TCP address looks like tcp://127.0.0.1:5555 or tcp://[::1]:5555, got ${validate.describe(text)}`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = Number(m[2]);
  if (port > 65535 || (port === 0 && !forListen)) throw invalidArgument(`TCP port must be 1..65535${forListen ? ' (or 0 to let the kernel pick one)' : ''}, got ${port}`);
  if (host.includes(':') && isIP(host) !== 6) throw invalidArgument(`${JSON.stringify(host)} is not an IPv6 address`);
  return { kind: 'tcp', host, port, text: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}` };
}

/** The numeric address of a TCP host (names are looked up with getaddrinfo). */
export async function resolveHost(host: string): Promise<{ ip: string; family: 4 | 6 }> {
  const family = isIP(host);
  if (family === 4 || family === 6) return { ip: host, family };
  try {
    const r = await lookup(host);
    return { ip: r.address, family: r.family === 6 ? 6 : 4 };
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_NOT_FOUND', `cannot resolve host ${JSON.stringify(host)}: ${(e as Error).message}`, { cause: e });
  }
}

/** tcp://host:port text for a numeric address. */
export function tcpText(ip: string, port: number): string {
  return `tcp://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

function lstatOrNull(path: string): NativeStat | null {
  try {
    return native.lstat(path);
  } catch (e) {
    if (errnoOf(e) === E.ENOENT) return null;
    throw errnoError(errnoOf(e)!, 'lstat', `check socket path ${path}`, { path });
  }
}

/** Refuses a symlink or a non-socket at `path` (before connecting to or replacing it). */
export function checkSocketFile(path: string, st: NativeStat): void {
  const type = st.mode & S_IFMT;
  if (type === S_IFLNK) throw new IpcError('ERR_IPCKIT_PERMISSION', `refusing ${path}: it is a symlink, not a socket`, { path });
  if (type !== S_IFSOCK) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `refusing ${path}: it is ${fileTypeName(st.mode)}, not a socket; ipckit never replaces it`, { path });
}

/** Before connecting to a path: exists, is a socket, not a symlink. */
export function checkConnectPath(addr: UnixAddress): void {
  if (addr.abstract) return;
  const st = lstatOrNull(addr.path);
  if (st === null) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no socket at ${addr.path} (is the server running?)`, { path: addr.path, systemCode: 'ENOENT', errno: E.ENOENT });
  checkSocketFile(addr.path, st);
}

/**
 * Makes room to bind `addr`: nothing there is fine; a socket file whose server is gone
 * (connect refused) is removed; a live server, a symlink or anything else is refused.
 */
export function reclaimSocketPath(addr: UnixAddress, type: number, reclaimStale: boolean): void {
  if (addr.abstract) return;
  const st = lstatOrNull(addr.path);
  if (st === null) return;
  checkSocketFile(addr.path, st);
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) {
    throw new IpcError('ERR_IPCKIT_EXISTS', `${addr.path} is a socket of uid ${st.uid}; refusing to touch another user's socket`, { path: addr.path });
  }
  // A probe connect tells a live server (accepted, or its backlog is full) from a stale file.
  const probe = sys(`probe ${addr.text}`, () => native.socket(C.AF_UNIX, type));
  let r: number;
  try {
    r = native.connectUnix(probe, addr.sunPath);
  } finally {
    native.close(probe);
  }
  if (r === 0 || -r === E.EAGAIN) {
    throw new IpcError('ERR_IPCKIT_EXISTS', `a server is listening on ${addr.text}; refusing to take its socket`, { path: addr.path, systemCode: 'EADDRINUSE' });
  }
  if (-r !== E.ECONNREFUSED) throw errnoError(-r, 'connect', `check whether ${addr.text} is in use`, { path: addr.path });
  if (!reclaimStale) throw new IpcError('ERR_IPCKIT_EXISTS', `${addr.path} is a stale socket file (its server is gone); refusing to replace it`, { path: addr.path, remedy: { options: [{ reclaimStale: true }], when: 'to replace it, or remove it first' } });
  // Remove it only if it is still the file we probed (a new server may have replaced it).
  const again = lstatOrNull(addr.path);
  if (again === null) return;
  if (again.ino !== st.ino || again.dev !== st.dev) throw new IpcError('ERR_IPCKIT_EXISTS', `${addr.path} was replaced while being checked; refusing it`, { path: addr.path });
  try {
    native.unlink(addr.path);
  } catch (e) {
    if (errnoOf(e) !== E.ENOENT) throw errnoError(errnoOf(e)!, 'unlink', `remove stale socket ${addr.path}`, { path: addr.path });
  }
}

/** Identity of a socket file we bound: close() removes the path only while it is still this file. */
export interface BoundFile {
  path: string;
  dev: number;
  ino: number;
}

const O_PATH = 0o10000000; // Linux, x86-64 and arm64 alike
const O_NOFOLLOW_CLOEXEC = fsConstants.O_NOFOLLOW | 0o2000000;

/**
 * The socket file that bind() just made: opened by O_PATH without following a symlink,
 * checked to be a socket of ours, and given its group and exact mode through that
 * descriptor (via /proc/self/fd, which names the inode itself). Nothing here goes by path
 * after the open, so a user who can write the folder and swaps in a symlink or another
 * file between bind() and now changes nothing but gets ERR_IPCKIT_PERMISSION.
 */
export function claimBoundFile(path: string, mode: number, group: number | undefined): BoundFile {
  let fd: number;
  try {
    fd = native.open(path, O_PATH | O_NOFOLLOW_CLOEXEC, 0);
  } catch (e) {
    throw toIpcError(e, `check the socket file ${path}`, { path });
  }
  try {
    const st = native.fstat(fd);
    const uid = process.geteuid?.() ?? 0;
    if ((st.mode & fsConstants.S_IFMT) !== fsConstants.S_IFSOCK || st.uid !== uid) {
      throw new IpcError('ERR_IPCKIT_PERMISSION', `${path} is not the socket we just bound (it is ${fileTypeName(st.mode)} of uid ${st.uid}): someone replaced it; refusing to touch it`, { path });
    }
    const file = { path, dev: st.dev, ino: st.ino };
    const self = `/proc/self/fd/${fd}`;
    try {
      if (group !== undefined) sys(`set the group of ${path}`, () => chownSync(self, -1, group), { path });
      // bind() applied the umask to the mode set on the socket: set it exactly.
      if ((st.mode & 0o7777) !== mode) sys(`set the mode of ${path}`, () => chmodSync(self, mode), { path });
    } catch (e) {
      unlinkBoundFile(file); // ours, and not to be left behind
      throw e;
    }
    return file;
  } finally {
    native.close(fd);
  }
}

/**
 * The permission record of our socket file (lstat), as every IPC object reports it; undefined
 * once it is gone or is now someone else's (a newer server's).
 */
export function boundFilePerm(file: BoundFile): PosixIpcPerm | undefined {
  const st = lstatOrNull(file.path);
  if (st === null || st.dev !== file.dev || st.ino !== file.ino) return undefined;
  return posixPerm('socket', file.path, st);
}

/** Removes our socket file unless it is gone or is now someone else's (a newer server's). */
export function unlinkBoundFile(file: BoundFile): boolean {
  const st = lstatOrNull(file.path);
  if (st === null || st.dev !== file.dev || st.ino !== file.ino) return false;
  try {
    native.unlink(file.path);
    return true;
  } catch {
    return false;
  }
}
