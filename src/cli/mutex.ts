/** `ipckit mutex`: not built yet (see the mutex issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit mutex is not available yet');
  },
};
