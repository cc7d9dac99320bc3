/**
 * Office: puts tickets on sale in a JSON file, starts buyers that each buy until none are
 * left, and checks that every ticket was sold exactly once:
 *
 *   node office.js [TICKETS] [BUYERS] [file|mutex]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMutex, unlinkMutex } from 'ipckit';
import type { Office } from './buyer.js';

const [tickets = '500', buyers = '4', how = 'file'] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'ipckit-tickets-'));
const file = join(dir, 'office.json');
const office: Office = { total: Number(tickets), left: Number(tickets), sales: [] };
writeFileSync(file, JSON.stringify(office));
const mutexName = `/${file.replace(/[^\w.-]/g, '_')}`;
if (how === 'mutex') await createMutex(mutexName).close();

const buyer = fileURLToPath(new URL('./buyer.js', import.meta.url));
const buy = (): Promise<number | null> => new Promise((resolve) => spawn(process.execPath, [buyer, file, how], { stdio: 'inherit' }).once('exit', resolve));
await Promise.all(Array.from({ length: Number(buyers) }, buy));

const result = JSON.parse(readFileSync(file, 'utf8')) as Office;
const sold = new Set(result.sales.map((s) => s.ticket));
console.log(`office: ${result.sales.length} sold, ${result.left} left, ${sold.size} different tickets (expected ${tickets}, 0, ${tickets})`);
rmSync(dir, { recursive: true });
if (how === 'mutex') unlinkMutex(mutexName);
