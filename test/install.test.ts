/**
 * The package as users get it: `npm pack`, then `npm install --ignore-scripts` of the
 * tarball into a fresh project, offline, with a PATH that has node and npm and no
 * compiler, make or python3 (what npm 12, which runs no dependency install scripts by
 * default, does on any machine). The prebuild for this machine must load, a pipe round
 * trip through a child (started by the ipckit-exec helper) must work, and so must
 * `npx ipckit`. Without a prebuild that fits, the import fails with ERR_IPCKIT_UNSUPPORTED
 * naming what to run. The links in the shipped README and docs resolve inside the package.
 *
 * The prebuild for this machine's architecture is built first (`dist/scripts/prebuilds.js
 * --arch <this one>`), so the tarball carries a current one; the other architecture's is
 * packed too if an earlier `npm run prebuilds` made it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { delimiter, dirname, join, posix } from 'node:path';
import { before, describe, it } from 'node:test';
import { repoRoot, run, scratchDir } from './helpers.js';

const hostArch = arch();
const supported = hostArch === 'x64' || hostArch === 'arm64';
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };

/** A folder with links to node, npm, npx and sh only (npx runs bins through sh): the PATH of a machine without build tools. */
function bareBin(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const npmCli = join(dirname(realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin');
  const npmDir = existsSync(npmCli) ? npmCli : dirname(realpathSync(whichOnPath('npm')!));
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(join(npmDir, 'npm-cli.js'), join(bin, 'npm'));
  symlinkSync(join(npmDir, 'npx-cli.js'), join(bin, 'npx'));
  symlinkSync(realpathSync(whichOnPath('sh')!), join(bin, 'sh'));
  return bin;
}

function whichOnPath(tool: string, path = process.env.PATH ?? ''): string | undefined {
  for (const d of path.split(delimiter)) {
    const p = join(d, tool);
    try {
      if (statSync(p).isFile() && (statSync(p).mode & 0o111) !== 0) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

describe('npm install of the packed tarball, no install scripts, no compiler, offline', { skip: supported ? false : `no prebuild for ${hostArch}` }, () => {
  let dir: string;
  let app: string;
  let installed: string;
  /** The environment of the fresh project's commands: nothing of npm test's own npm_* variables. */
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = join(scratchDir(), 'install');
    mkdirSync(dir);
    const built = await run(process.execPath, [join(repoRoot, 'dist', 'scripts', 'prebuilds.js'), '--arch', hostArch], { cwd: repoRoot, timeoutMs: 100_000 }).done;
    assert.equal(built.code, 0, `prebuilds failed:\n${built.stdout}\n${built.stderr}`);

    // Scripts off: prepack would build every architecture, prepare the checkout's addon.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repoRoot, timeoutMs: 60_000 }).done;
    assert.equal(packed.code, 0, packed.stderr);
    const tarball = join(dir, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);

    const bin = bareBin(dir);
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3', 'python']) assert.equal(whichOnPath(tool, bin), undefined, `${tool} is on the bare PATH`);
    env = {
      PATH: bin,
      HOME: join(dir, 'home'),
      TMPDIR: process.env.TMPDIR,
      IPCKIT_RUNTIME_DIR: process.env.IPCKIT_RUNTIME_DIR,
      npm_config_cache: join(dir, 'npm-cache'),
      // Offline: a registry nobody listens on, so that any request fails the install.
      npm_config_registry: 'http://127.0.0.1:9/',
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    };
    app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const install = await run('npm', ['install', '--ignore-scripts', tarball], { cwd: app, env, timeoutMs: 60_000 }).done;
    assert.equal(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    installed = join(app, 'node_modules', 'ipckit');
  });

  it('installs no build from source, and the prebuild for this machine with its helper, executable', () => {
    assert.ok(!existsSync(join(installed, 'build')), 'nothing was built at install');
    const prebuilt = join(installed, 'prebuilds', `linux-${hostArch}`);
    const files = readdirSync(prebuilt).sort();
    assert.deepEqual(files, ['ipckit-exec', 'ipckit.glibc.node']);
    for (const f of files) assert.ok((statSync(join(prebuilt, f)).mode & 0o111) !== 0, `${f} is executable`);
  });

  it('a pipe round trip through a child works, with the prebuilt addon loaded', async () => {
    writeFileSync(
      join(app, 'child.js'),
      `import { openInheritedPipe } from 'ipckit';
const results = openInheritedPipe(4, 'w', { codec: 'json' });
for await (const { n } of openInheritedPipe(3, 'r', { codec: 'json' })) await results.send({ n, square: n * n });
await results.close();
`,
    );
    writeFileSync(
      join(app, 'parent.js'),
      `import { readFileSync } from 'node:fs';
import { spawnWithPipes } from 'ipckit';
const child = spawnWithPipes([process.execPath, new URL('./child.js', import.meta.url).pathname], { pipes: { 3: 'to-child', 4: 'from-child' }, codec: 'json' });
for (const n of [3, 12]) await child.sender(3).send({ n });
await child.sender(3).close();
const results = [];
for await (const r of child.receiver(4)) results.push(r);
const addons = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.endsWith('.node')))];
console.log(JSON.stringify({ results, exit: await child.close(), addons }));
`,
    );
    const r = await run(process.execPath, ['parent.js'], { cwd: app, env, timeoutMs: 20_000 }).done;
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { results: unknown[]; exit: unknown; addons: string[] };
    assert.deepEqual(out.results, [{ n: 3, square: 9 }, { n: 12, square: 144 }]);
    assert.deepEqual(out.exit, { exitCode: 0, signal: null });
    assert.deepEqual(out.addons, [join(realpathSync(installed), 'prebuilds', `linux-${hostArch}`, 'ipckit.glibc.node')]);
  });

  it('npx ipckit runs: --version, and popen of a child through the helper', async () => {
    const version = await run('npx', ['--offline', 'ipckit', '--version'], { cwd: app, env, timeoutMs: 20_000 }).done;
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `${pkg.version}\n`);
    const popen = await run('npx', ['--offline', 'ipckit', 'popen', '--framing', 'lines', '--', 'node', '-e', 'console.log("from the child")'], { cwd: app, env, timeoutMs: 20_000 }).done;
    assert.equal(popen.code, 0, popen.stderr);
    assert.equal(popen.stdout, 'from the child\n');
  });

  it('every relative link in the shipped README and docs that resolves in the repository resolves in the package', () => {
    const broken: string[] = [];
    const docs = ['README.md', ...readdirSync(join(installed, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    for (const doc of docs) {
      for (const m of readFileSync(join(installed, doc), 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const path = posix.normalize(posix.join(posix.dirname(doc), target));
        if (existsSync(join(repoRoot, path)) && !existsSync(join(installed, path))) broken.push(`${doc} -> ${path}`);
      }
    }
    assert.deepEqual(broken, [], 'links to files the package does not ship');
  });

  it('without a prebuild that fits (and no build), the import fails with ERR_IPCKIT_UNSUPPORTED naming what to run', async () => {
    const prebuilt = join(installed, 'prebuilds', `linux-${hostArch}`);
    // Moved aside and back: the other tests of this file may run after this one.
    const aside = join(dir, 'prebuilt-aside');
    renameSync(prebuilt, aside);
    try {
      writeFileSync(
        join(app, 'load.js'),
        `try { await import('ipckit'); console.log(JSON.stringify({ loaded: true })); }
catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }
`,
      );
      const r = await run(process.execPath, ['load.js'], { cwd: app, env, timeoutMs: 20_000 }).done;
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { name: string; code: string; message: string };
      assert.equal(out.code, 'ERR_IPCKIT_UNSUPPORTED', out.message);
      assert.equal(out.name, 'IpcError');
      assert.match(out.message, /`npm install-scripts approve ipckit`/);
      assert.match(out.message, /`npm rebuild ipckit`/);
      assert.match(out.message, new RegExp(`arch=${hostArch}\\b`), 'says what it looked for');
    } finally {
      renameSync(aside, prebuilt);
    }
  });
});
