/** `ipckit signal`: not built yet (see the signal issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit signal is not available yet');
  },
};
