/** `ipckit ring`: not built yet (see the ring issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit ring is not available yet');
  },
};
