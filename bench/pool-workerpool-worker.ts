/** workerpool's worker script for the process-pool bench: registers the same functions (bench/pool-tasks.ts). */
import { mib, tiny } from './pool-tasks.js';

const name = 'workerpool'; // a devDependency: loaded by name so that the build does not need its types
const workerpool = (await import(name)) as { worker(methods: Record<string, (...args: any[]) => unknown>): void };
workerpool.worker({ tiny, mib });
