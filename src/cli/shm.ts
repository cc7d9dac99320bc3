/** `ipckit shm`: not built yet (see the shm issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit shm is not available yet');
  },
};
