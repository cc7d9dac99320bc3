/**
 * The private runtime folder where FIFOs and Unix sockets live when no path is given:
 * `$IPCKIT_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/ipckit`, else `/tmp/ipckit-<uid>`.
 * Created 0700; refused unless it is a real directory (not a symlink), ours, and closed
 * to group and others.
 */
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { IpcError, sys, toIpcError } from '../core/errors.js';
import { native } from './native.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

export function runtimeDirPath(): string {
  if (process.env.IPCKIT_RUNTIME_DIR) return process.env.IPCKIT_RUNTIME_DIR;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'ipckit');
  return `/tmp/ipckit-${process.geteuid?.() ?? 0}`;
}

/** The runtime folder, created if missing and checked every time. */
export function runtimeDir(): string {
  const dir = runtimeDirPath();
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw toIpcError(e, `create the runtime folder ${dir}`);
  }
  const st = sys('check the runtime folder', () => native.lstat(dir), { path: dir });
  const uid = process.geteuid?.() ?? 0;
  if ((st.mode & S_IFMT) !== S_IFDIR) throw new IpcError('ERR_IPCKIT_PERMISSION', `runtime folder ${dir} is not a directory (a symlink or file is there); refusing to use it`, { path: dir });
  if (st.uid !== uid) throw new IpcError('ERR_IPCKIT_PERMISSION', `runtime folder ${dir} belongs to uid ${st.uid}, not to us (uid ${uid}); refusing to use it`, { path: dir });
  if ((st.mode & 0o077) !== 0) throw new IpcError('ERR_IPCKIT_PERMISSION', `runtime folder ${dir} is open to group or others (mode ${(st.mode & 0o777).toString(8)}); it must be 0700`, { path: dir });
  return dir;
}

/** A fresh name for the runtime folder: `<prefix>-<pid>-<random>`. */
export function runtimeName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** A fresh path in the runtime folder (created and checked first): `<dir>/<prefix>-<pid>-<random>`. */
export function runtimePath(prefix: string): string {
  return join(runtimeDir(), runtimeName(prefix));
}
