/** `ipckit socket`: not built yet (see the socket issue). */
import { UsageError, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: '',
  async run() {
    throw new UsageError('ipckit socket is not available yet');
  },
};
