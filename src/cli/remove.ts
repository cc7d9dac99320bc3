/** `rm` for every group: a missing name is ERR_IPCKIT_NOT_FOUND (exit 1) unless --force. */
import { IpcError } from '../core/errors.js';

export function removeNamed(kind: string, name: string, force: boolean, unlink: (name: string) => boolean): number {
  if (unlink(name) || force) return 0;
  throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no ${kind} named ${name}`, { path: name, remedy: { options: [{ force: true }], when: 'to ignore a missing name' } });
}
