/**
 * `npm run prebuilds` (and `npm pack` / `npm publish`, through `prepack`): builds the
 * native code the package ships, so that installing ipckit needs neither a compiler nor
 * install scripts. For each architecture it writes
 *
 *   prebuilds/linux-<arch>/ipckit.napi.glibc.node   the addon (found by node-gyp-build)
 *   prebuilds/linux-<arch>/ipckit-exec              the exec helper, found next to it
 *
 * with prebuildify (--napi --strip --tag-libc): one Node-API build serves every Node
 * version, and the glibc tag keeps node-gyp-build from picking it on musl (Alpine).
 * prebuildify copies only the .node file, so the helper is copied and stripped here.
 *
 * Each architecture is built in its own folder under build/ (binding.gyp and native/
 * linked there), never in build/ itself: the checkout's from-source build/Release, which
 * the loader prefers, stays the one built for this machine. An architecture other than
 * this machine's is cross compiled with Debian's toolchain for it (g++-aarch64-linux-gnu
 * for arm64, g++-x86-64-linux-gnu for x64).
 *
 * Usage: node dist/scripts/prebuilds.js [--arch x64|arm64]...   (default: both)
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { arch as hostArch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);

/** The GNU triple of each architecture we ship, for its cross toolchain's tool names. */
const triples: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
/** Debian's package for that toolchain, named in the error when it is missing. */
const toolchainPackages: Record<string, string> = { x64: 'g++-x86-64-linux-gnu', arm64: 'g++-aarch64-linux-gnu' };

function parseArchs(argv: string[]): string[] {
  const archs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = a === '--arch' ? argv[++i] : a.startsWith('--arch=') ? a.slice('--arch='.length) : undefined;
    if (value === undefined || !(value in triples)) {
      console.error(`prebuilds: unknown argument ${JSON.stringify(a)}${value !== undefined ? ` (architectures: ${Object.keys(triples).join(', ')})` : ''}`);
      process.exit(2);
    }
    archs.push(value);
  }
  return archs.length > 0 ? archs : Object.keys(triples);
}

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { stdio: 'ignore' }).status === 0;
}

/** The compilers and strip for `arch`: this machine's own, or the cross toolchain. */
function toolchain(arch: string): { CC: string; CXX: string; STRIP: string } {
  if (arch === hostArch()) return { CC: process.env.CC ?? 'cc', CXX: process.env.CXX ?? 'c++', STRIP: 'strip' };
  const t = triples[arch]!;
  const tools = { CC: `${t}-gcc`, CXX: `${t}-g++`, STRIP: `${t}-strip` };
  const missing = Object.values(tools).filter((tool) => !onPath(tool));
  if (missing.length > 0) {
    console.error(`prebuilds: cross compiling for ${arch} needs ${missing.join(', ')}: apt-get install ${toolchainPackages[arch]} gcc-${t.replace(/_/g, '-')}`);
    process.exit(1);
  }
  return tools;
}

/**
 * Where node-gyp finds Node's headers. Node-API headers are the same for every
 * architecture, so those of the running Node serve the cross builds too; without a
 * nodedir node-gyp would download them.
 */
function nodeDir(): string | undefined {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

/** npm's own node-gyp: npm names it in npm_config_node_gyp when it runs a script. */
function findNodeGyp(): string {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  if (onPath('node-gyp')) return 'node-gyp';
  const bundled = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return bundled;
  console.error('prebuilds: node-gyp not found; run this as `npm run prebuilds`');
  process.exit(1);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): void {
  const r = spawnSync(command, args, { stdio: 'inherit', env, cwd });
  if (r.status !== 0) {
    console.error(`prebuilds: ${command} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
    process.exit(1);
  }
}

function buildArch(arch: string): void {
  const tools = toolchain(arch);
  // A folder of its own with binding.gyp and native/ as in the checkout, so that
  // prebuildify's `node-gyp rebuild` there leaves build/Release alone.
  const stage = join(root, 'build', `prebuild-${arch}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  copyFileSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
  symlinkSync(join(root, 'native'), join(stage, 'native'));

  // JOBS: node-gyp's make -j (both cores; it builds one file at a time otherwise).
  const env: NodeJS.ProcessEnv = { JOBS: 'max', ...process.env, CC: tools.CC, CXX: tools.CXX };
  const dir = nodeDir();
  if (dir !== undefined) env.npm_config_nodedir = dir;
  const nodeGyp = findNodeGyp();
  const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  console.log(`prebuilds: linux-${arch} with ${tools.CXX}`);
  run(
    process.execPath,
    [prebuildify, '--napi', '--strip', '--tag-libc', '--name', 'ipckit', '--target', process.versions.node, '--arch', arch,
      '--strip-bin', tools.STRIP, '--node-gyp', nodeGyp, '--cwd', stage, '--out', root, '--cache', join(stage, 'node-gyp-devdir')],
    env,
    stage,
  );

  const outDir = join(root, 'prebuilds', `linux-${arch}`);
  const helper = join(outDir, 'ipckit-exec');
  copyFileSync(join(stage, 'build', 'Release', 'ipckit-exec'), helper);
  chmodSync(helper, 0o755);
  run(tools.STRIP, ['--strip-all', helper], env, stage);
  rmSync(stage, { recursive: true, force: true });
  console.log(`prebuilds: wrote ${join('prebuilds', `linux-${arch}`)}`);
}

for (const arch of parseArchs(process.argv.slice(2))) buildArch(arch);
