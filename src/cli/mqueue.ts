/** `ipckit mqueue`: not built yet (see the mqueue issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit mqueue is not available yet');
  },
};
