/**
 * The child side of a bench scenario: `node child.js <module> <role> <json-args>` runs
 * `children[role](args)` exported by bench/<module>.js.
 */
const [module, role, json] = process.argv.slice(2);
const mod = (await import(`./${module}.js`)) as { children?: Record<string, (args: any) => Promise<void>> };
const fn = mod.children?.[role!];
if (!fn) {
  process.stderr.write(`bench child: bench/${module} has no role ${role}\n`);
  process.exit(2);
}
await fn(JSON.parse(json ?? '{}'));
