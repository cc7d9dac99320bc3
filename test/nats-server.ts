/**
 * Real NATS servers for the tests: each test starts its own `nats-server` on a free
 * loopback port, with JetStream in a fresh folder of the test's scratch space, and stops
 * it in cleanup (an `after` hook and process exit kill whatever is still running, even when
 * the test failed). `restart()` stops a server and starts it again on the same port with
 * the same store, as a crashed or upgraded server comes back.
 *
 * nats-server is required: .ci/run installs Debian's package. Without it the tests fail
 * with that message instead of skipping.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';
import { scratchPath, sleep } from './helpers.js';

export const NATS_SERVER = process.env.NATS_SERVER ?? 'nats-server';

/** Throws a clear error when nats-server is not installed (never a silent skip). */
export function requireNatsServer(): string {
  const r = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`nats-server is not installed (${r.error?.message ?? r.stderr}): install Debian's package (apt-get install nats-server), as .ci/run does`);
  }
  return r.stdout.trim();
}

export interface NatsServerOptions {
  jetstream?: boolean;
  user?: string;
  password?: string;
  token?: string;
  /** Public NKEY (U...) of the one user allowed in. */
  nkeyUser?: string;
  /** PEM files: the server's certificate and key; with `caFile` and `verify`, clients must show a certificate signed by that CA. */
  tls?: { certFile: string; keyFile: string; caFile?: string; verify?: boolean };
  /** The server's max_payload. */
  maxPayload?: number;
  /** Bytes the server buffers for one client before it cuts it off as a slow consumer. */
  maxPending?: number;
}

export interface TestNatsServer {
  port: number;
  /** `nats://127.0.0.1:PORT` (`tls://` with TLS). */
  url: string;
  storeDir: string;
  pid(): number | undefined;
  /** The server's log so far (stderr). */
  log(): string;
  /** Graceful stop (SIGTERM), waiting for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, waiting for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same store. */
  start(): Promise<void>;
  restart(): Promise<void>;
}

// Every server still running when the file's tests end (or the process exits) is killed.
// (Not an `after` per server: one registered inside a hook runs when that hook ends.)
const running = new Set<ChildProcess>();
const killAll = (): void => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};
after(killAll);
process.once('exit', killAll);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once a TCP connection to the port gets the server's INFO line. */
async function waitReady(port: number, child: ChildProcess, log: () => string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = tcpConnect(port, '127.0.0.1');
      const done = (v: boolean): void => {
        sock.destroy();
        resolve(v);
      };
      sock.once('data', (d) => done(d.toString().startsWith('INFO ')));
      sock.once('error', () => done(false));
      sock.setTimeout(1000, () => done(false));
    });
    // JetStream is ready a moment after the port: the log says so.
    if (ok && (!log().includes('Starting JetStream') || log().includes('Server is ready'))) return;
    await sleep(20);
  }
  throw new Error(`nats-server on port ${port} was not ready within ${ms} ms:\n${log()}`);
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<TestNatsServer> {
  requireNatsServer();
  const base = scratchPath('nats');
  const storeDir = join(base, 'store');
  mkdirSync(storeDir, { recursive: true });
  let port = await freePort();
  let child: ChildProcess | undefined;
  let logText = '';

  const config = (): string => {
    const lines = [`listen: "127.0.0.1:${port}"`];
    if (options.jetstream !== false) lines.push(`jetstream { store_dir: ${JSON.stringify(storeDir)} }`);
    if (options.user !== undefined) lines.push(`authorization { user: ${JSON.stringify(options.user)}, password: ${JSON.stringify(options.password ?? '')} }`);
    if (options.token !== undefined) lines.push(`authorization { token: ${JSON.stringify(options.token)} }`);
    if (options.nkeyUser !== undefined) lines.push(`authorization { users: [ { nkey: ${JSON.stringify(options.nkeyUser)} } ] }`);
    if (options.maxPayload !== undefined) lines.push(`max_payload: ${options.maxPayload}`);
    if (options.maxPending !== undefined) lines.push(`max_pending: ${options.maxPending}`);
    if (options.tls) {
      const t = options.tls;
      lines.push(`tls { cert_file: ${JSON.stringify(t.certFile)}, key_file: ${JSON.stringify(t.keyFile)}${t.caFile ? `, ca_file: ${JSON.stringify(t.caFile)}` : ''}${t.verify ? ', verify: true' : ''}, timeout: 5 }`);
    }
    return `${lines.join('\n')}\n`;
  };

  const launch = async (): Promise<void> => {
    const file = join(base, 'server.conf');
    writeFileSync(file, config());
    logText = '';
    const c = spawn(NATS_SERVER, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(c);
    c.once('exit', () => running.delete(c));
    c.stderr!.on('data', (d: Buffer) => (logText += d.toString()));
    child = c;
    await waitReady(port, c, () => logText);
  };

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  // A free port can be taken between our probe and the server's bind: try a few.
  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt >= 4 || !/address already in use/i.test(logText)) throw e;
      port = await freePort();
    }
  }

  const server: TestNatsServer = {
    port,
    url: `${options.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`,
    storeDir,
    pid: () => child?.pid,
    log: () => logText,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    start: launch,
    restart: async () => {
      await stopWith('SIGTERM');
      await launch();
    },
  };
  return server;
}

/** A CA and a server certificate for 127.0.0.1 and localhost, and a client certificate, made with openssl. */
export function makeCertificates(): { caFile: string; certFile: string; keyFile: string; clientCertFile: string; clientKeyFile: string } {
  const dir = scratchPath('certs');
  mkdirSync(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  };
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=ipckit test CA']);
  writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost']);
  openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext')]);
  writeFileSync(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('client.key'), '-out', p('client.csr'), '-subj', '/CN=ipckit test client']);
  openssl(['x509', '-req', '-in', p('client.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('client.pem'), '-days', '2', '-extfile', p('client.ext')]);
  return { caFile: p('ca.pem'), certFile: p('server.pem'), keyFile: p('server.key'), clientCertFile: p('client.pem'), clientKeyFile: p('client.key') };
}
