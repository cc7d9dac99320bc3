/**
 * Fault injection for the crash tests (test/faults/): a process started with
 * `IPCKIT_FAULT=<point>[:<n>]` kills itself with SIGKILL the n-th time (default 1st) it
 * reaches the named point, e.g. `IPCKIT_FAULT=ring:after-claim:3` (or stops itself with
 * SIGSTOP, with `IPCKIT_FAULT_ACTION=stop`). The points are listed in docs/ring.md and
 * docs/workqueue.md; every ipckit object also has `create:before-publish` (the creator,
 * its header written, before it publishes the object) and `attach:locked` (holding the
 * attach lock), docs/design.md section 6. Without the variable, `FAULTS` is false and the
 * checks cost one branch on a constant.
 */
const spec = process.env.IPCKIT_FAULT;
const [point, nth] = (() => {
  if (!spec) return [undefined, 0];
  const m = /^(.+?)(?::(\d+))?$/.exec(spec);
  return m ? [m[1], m[2] === undefined ? 1 : Number(m[2])] : [undefined, 0];
})();

/** True when a fault point is armed in this process. */
export const FAULTS: boolean = point !== undefined;

let hits = 0;

/** `IPCKIT_FAULT_ACTION=stop` stops the process (SIGSTOP) instead, for the stalled-peer tests. */
const action = process.env.IPCKIT_FAULT_ACTION === 'stop' ? 'SIGSTOP' : 'SIGKILL';

/** Kills (or stops) this process if `name` is the armed point and its count is reached. */
export function fault(name: string): void {
  if (name !== point) return;
  if (++hits === nth || (action === 'SIGKILL' && hits > nth)) process.kill(process.pid, action);
}
