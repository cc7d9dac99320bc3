/** `ipckit semaphore`: not built yet (see the semaphore issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit semaphore is not available yet');
  },
};
