/**
 * The child side of a bench scenario: `node child.js <module> <role> <json-args>` runs
 * `children[role](args)` exported by bench/<module>.js; `node child.js <module> <role> {}
 * serve` runs it once per order its parent writes (harness.ts withChild).
 */
import { createInterface } from 'node:readline';

// A child whose bench went away (killed, or quit at a second Ctrl-C) must not wait forever
// on a queue or a socket: it exits once its parent is gone. Its parent's pid is told
// (IPCKIT_BENCH_PARENT, set by bench/case-process.ts, not passed on to our own children):
// read from process.ppid, a parent killed while this child was still starting would leave it
// watching the process that adopted it (pid 1, or a subreaper such as the test runner).
const told = Number(process.env.IPCKIT_BENCH_PARENT);
delete process.env.IPCKIT_BENCH_PARENT;
const parent = told > 0 ? told : process.ppid;
const watchParent = (): NodeJS.Timeout =>
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();

const [module, role, json, serve] = process.argv.slice(2);
const mod = (await import(`./${module}.js`)) as { children?: Record<string, (args: any) => Promise<void>> };
const fn = mod.children?.[role!];
if (!fn) {
  process.stderr.write(`bench child: bench/${module} has no role ${role}\n`);
  process.exit(2);
}
if (serve === 'serve') {
  // Kept by a quick run (harness.ts withChild): the role once per order on stdin, each a
  // JSON line of its arguments, until the parent closes it. Between two orders it needs no
  // timer: its parent's end closes its stdin (only the parent holds the pipe), which ends it.
  for await (const order of createInterface({ input: process.stdin })) {
    const watching = watchParent();
    try {
      await fn(JSON.parse(order));
    } finally {
      clearInterval(watching);
    }
    process.stdout.write(`${JSON.stringify({ served: true })}\n`);
  }
  process.exit(0); // its orders are over: whatever a role left open must not keep it alive
} else {
  watchParent();
  await fn(JSON.parse(json ?? '{}'));
}
