/**
 * Main: creates the mutex and the counter file, runs two counter processes at once, and
 * checks that every increment survived (2 x 200 = 400).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMutex, unlinkMutex } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-counter';
const file = join(tmpdir(), `${name.slice(1)}-${process.pid}.txt`);
writeFileSync(file, '0');
await using mutex = createMutex(name);

const counter = fileURLToPath(new URL('./counter.js', import.meta.url));
const run = (): Promise<number | null> => new Promise((resolve) => spawn(process.execPath, [counter, name, file], { stdio: 'inherit' }).once('exit', resolve));
await Promise.all([run(), run()]);

console.log(`main: counter is ${readFileSync(file, 'utf8')} (expected 400)`);
rmSync(file);
unlinkMutex(name);
