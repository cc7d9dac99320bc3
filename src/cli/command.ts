/**
 * How every `ipckit` command is declared, parsed and explained: a group (`ring`) holds
 * commands (`ring recv`), each with its arguments, its flags, a one-line summary and an
 * example, and may hold groups of its own (`sysv msg send`). Help is printed from these
 * declarations, so `ipckit ring --help`, `ipckit ring recv --help` and `ipckit help ring`
 * always match what the command accepts.
 *
 * The same idea has the same flag in every group (the FLAGS below): `--any-owner`,
 * `--owner UID`, `--mode BITS`, `--timeout MS`, `--count N`, `--drain`, `--json`,
 * `--quiet`, `--force`; sizes take K, M and G suffixes everywhere.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  constructor(
    message: string,
    /** Where to read more: `ipckit ring recv --help`. */
    readonly helpFor?: string,
  ) {
    super(message);
  }
}

/** How a flag's text becomes a value. */
export type FlagKind = 'boolean' | 'string' | 'int' | 'size' | 'mode' | 'ms' | 'list';

export interface Flag {
  kind: FlagKind;
  /** Placeholder shown in help: `--timeout MS`. */
  value?: string;
  help: string;
  /** Smallest and largest value of an `int` or `size` flag. */
  min?: number;
  max?: number;
  /** For `string`: the values allowed. */
  choices?: readonly string[];
  /** Accepted more than once (`--allow-uid 1000 --allow-uid 1001`). */
  multiple?: boolean;
  short?: string;
  /**
   * The flag may stand alone (`--watch`) or take the next word as its value when that
   * word is a number (`--watch 5`): alone, its value is this text.
   */
  bare?: string;
}

export type FlagValue = boolean | string | number | string[] | number[] | undefined;

export interface Invocation {
  /** Positional arguments, after the command's own words. */
  args: string[];
  /** Parsed flag values by flag name (`any-owner`), undefined when not given. */
  flags: Record<string, FlagValue>;
  /** What followed `--` (the command of `mutex run`, `popen`, `lock`). */
  rest: string[];
}

export interface Command {
  verb: string;
  /** `NAME [MESSAGE...]`. */
  args: string;
  summary: string;
  /** More lines of explanation, shown by the command's own help. */
  details?: string;
  flags?: Record<string, Flag>;
  examples: string[];
  /** Takes COMMAND [ARGS...] after `--`. */
  takesCommand?: boolean;
  run(invocation: Invocation): Promise<number>;
}

export interface Group {
  /** The words after `ipckit`: `ring`, or `sysv msg` for a group inside `sysv`. */
  name: string;
  summary: string;
  aliases?: string[];
  /** Lines shown under the group's help (address syntax, framings ...). */
  notes?: string;
  commands: Command[];
  /** A group that is a single command (`popen`, `bench`): its verb is implied. */
  single?: boolean;
  /** The command run when the first word is none of the verbs (`ipckit lock PATH -- CMD`). */
  defaultVerb?: string;
  /** Groups inside this one, by their last word: `ipckit sysv msg send` runs `send` of the group `sysv msg`. */
  groups?: Group[];
}

/** The word that names a group inside its parent: `msg` of `sysv msg`. */
function lastWord(group: Group): string {
  return group.name.slice(group.name.lastIndexOf(' ') + 1);
}

function subgroup(group: Group, word: string | undefined): Group | undefined {
  return word === undefined ? undefined : group.groups?.find((g) => lastWord(g) === word);
}

/**
 * The help that `words` name inside `group` (`[]`: the group's own; `['recv']`: a command's;
 * `['msg', 'send']`: a command of an inner group). UsageError for a word that names nothing.
 */
export function helpFor(group: Group, words: string[]): string {
  const [word, ...rest] = words;
  if (word === undefined) return groupHelp(group);
  const inner = subgroup(group, word);
  if (inner) return helpFor(inner, rest);
  const command = group.commands.find((c) => c.verb === word);
  if (!command || rest.length > 0) throw new UsageError(`unknown ${group.name} command ${JSON.stringify(words.join(' '))}`, `ipckit ${group.name}`);
  return commandHelp(group, command);
}

// --- The shared flags ---------------------------------------------------------------------

export const FLAGS = {
  anyOwner: { kind: 'boolean', help: 'accept an object owned by another user, or open to others (default: refuse it)' },
  owner: { kind: 'int', value: 'UID', min: 0, max: 2 ** 32 - 2, help: 'accept an object owned by this uid' },
  createMode: { kind: 'mode', value: 'BITS', help: 'permission bits of the new object, octal (default 600: owner only)' },
  acceptMode: { kind: 'mode', value: 'BITS', help: 'widest permission bits accepted on an existing object, octal (default 600)' },
  timeout: { kind: 'ms', value: 'MS', help: 'give up after MS milliseconds of waiting (exit 124)' },
  count: { kind: 'int', value: 'N', min: 1, help: 'stop after N messages (exit 0 once N arrived)' },
  drain: { kind: 'boolean', help: 'print the messages that are there now, then exit 0 (no waiting)' },
  json: { kind: 'boolean', help: 'one JSON object per line' },
  quiet: { kind: 'boolean', short: 'q', help: 'no notes on stderr while waiting' },
  force: { kind: 'boolean', short: 'f', help: 'no error when there is nothing of that name (as rm -f)' },
  persistent: { kind: 'boolean', help: 'made on purpose to outlive its creator (ipckit gc never removes it); the default for create' },
} as const satisfies Record<string, Flag>;

export const RECEIVE_FLAGS = { count: FLAGS.count, timeout: FLAGS.timeout, drain: FLAGS.drain, json: FLAGS.json, quiet: FLAGS.quiet } as const;
export const OWNER_FLAGS = { 'any-owner': FLAGS.anyOwner, owner: FLAGS.owner } as const;

// --- Values -------------------------------------------------------------------------------

const SIZE_UNITS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;

/** `65536`, `64K`, `1M`, `1G` (binary units), as every size flag and argument takes it. */
export function parseSize(what: string, text: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(text);
  if (!m) throw new UsageError(`${what} must be a number of bytes like 4096, 64K, 1M or 1G, got ${JSON.stringify(text)}`);
  const n = Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase() as keyof typeof SIZE_UNITS];
  if (n < min || n > max) throw new UsageError(`${what} must be from ${formatSize(min)} to ${formatSize(max)}, got ${text}`);
  return n;
}

/** 1048576 -> `1M`, 1000 -> `1000`. */
export function formatSize(n: number): string {
  for (const [unit, f] of [['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) if (n >= f && n % f === 0) return `${n / f}${unit}`;
  return String(n);
}

export function parseInteger(what: string, text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`${what} must be an integer, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`${what} must be from ${min} to ${max}, got ${text}`);
  return n;
}

/** `600`, `0660`, `0o640` (octal, as chmod takes it). */
export function parseMode(what: string, text: string): number {
  const m = /^(?:0o?)?([0-7]{3})$/.exec(text);
  if (!m) throw new UsageError(`${what} must be octal permission bits like 600 or 0660, got ${JSON.stringify(text)}`);
  return parseInt(m[1]!, 8);
}

function convert(name: string, flag: Flag, text: string): string | number {
  const what = `--${name}`;
  switch (flag.kind) {
    case 'int':
      return parseInteger(what, text, flag.min ?? 0, flag.max);
    case 'size':
      return parseSize(what, text, flag.min ?? 1, flag.max);
    case 'mode':
      return parseMode(what, text);
    case 'ms':
      return parseInteger(what, text, 0, 2 ** 31 - 1);
    case 'list':
      return text;
    default:
      if (flag.choices && !flag.choices.includes(text)) throw new UsageError(`${what} must be one of ${flag.choices.join(', ')}, got ${JSON.stringify(text)}`);
      return text;
  }
}

// --- Parsing ------------------------------------------------------------------------------

const HELP_FLAGS = new Set(['--help', '-h']);

/** Parses a command's argv (after its verb). Throws UsageError with the command's help pointer. */
export function parseInvocation(group: Group, command: Command, argv: string[]): Invocation {
  const where = commandPath(group, command);
  const dash = argv.indexOf('--');
  const flags = command.flags ?? {};
  const own = withBareValues(dash === -1 ? argv : argv.slice(0, dash), flags);
  const rest = dash === -1 ? [] : argv.slice(dash + 1);
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, f] of Object.entries(flags)) {
    options[name] = { type: f.kind === 'boolean' ? 'boolean' : 'string', ...(f.multiple ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}) };
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: own, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(usageMessage((e as Error).message, flags), where);
  }
  const out: Record<string, FlagValue> = {};
  for (const [name, f] of Object.entries(flags)) {
    const v = parsed.values[name];
    if (v === undefined) continue;
    if (f.kind === 'boolean') out[name] = v as boolean;
    else if (Array.isArray(v)) out[name] = v.map((x: string) => convert(name, f, x)) as string[] | number[];
    else out[name] = convert(name, f, v as string);
  }
  if (command.takesCommand && rest.length === 0) throw new UsageError('missing COMMAND: put it after --', where);
  if (!command.takesCommand && dash !== -1) throw new UsageError(`unexpected "--": ${where} takes no command to run`, where);
  checkArity(command, parsed.positionals, where);
  return { args: parsed.positionals, flags: out, rest };
}

/** `--watch 5` and `--watch` of a flag with a `bare` value, as parseArgs takes them: `--watch=5`, `--watch=<bare>`. */
function withBareValues(argv: string[], flags: Record<string, Flag>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const f = a.startsWith('--') && !a.includes('=') ? flags[a.slice(2)] : undefined;
    if (f?.bare === undefined) out.push(a);
    else if (/^\d+(\.\d+)?$/.test(argv[i + 1] ?? '')) out.push(`${a}=${argv[++i]}`);
    else out.push(`${a}=${f.bare}`);
  }
  return out;
}

/** Node's parseArgs messages name options in its own words: say it in ours. */
function usageMessage(message: string, flags: Record<string, Flag>): string {
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) {
    const known = Object.keys(flags).map((f) => `--${f}`);
    return `unknown flag ${unknown[1]}${known.length ? ` (this command takes ${known.join(', ')})` : ' (this command takes no flags)'}`;
  }
  const needsValue = /Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(message);
  if (needsValue) {
    const f = flags[needsValue[1]!.slice(2)];
    return `${needsValue[1]} needs a value${f?.value ? ` (${needsValue[1]} ${f.value})` : ''}`;
  }
  const noValue = /Option '(?:-\w, )?(--[\w-]+)' does not take an argument/.exec(message);
  if (noValue) return `${noValue[1]} takes no value`;
  return message.replace(/'/g, '');
}

/** Checks the number of positionals against the `args` text: `NAME [MESSAGE...]`. */
function checkArity(command: Command, positionals: string[], where: string): void {
  const words = command.args.split(/\s+/).filter(Boolean);
  const required = words.filter((w) => !w.startsWith('[')).length;
  const variadic = words.some((w) => w.includes('...'));
  const max = variadic ? Infinity : words.length;
  if (positionals.length < required) throw new UsageError(`missing ${words[positionals.length]}`, where);
  if (positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])}`, where);
}

export function commandPath(group: Group, command?: Command): string {
  return group.single || command === undefined ? `ipckit ${group.name}` : `ipckit ${group.name} ${command.verb}`;
}

/** Runs `argv` (after the group's name) in `group`: help, usage errors, the command. */
export async function runGroup(group: Group, argv: string[]): Promise<number> {
  if (group.single) {
    const command = group.commands[0]!;
    const own = argv.indexOf('--') === -1 ? argv : argv.slice(0, argv.indexOf('--'));
    if (own.some((a) => HELP_FLAGS.has(a))) {
      process.stdout.write(commandHelp(group, command));
      return 0;
    }
    return command.run(parseInvocation(group, command, argv));
  }
  const [verb, ...rest] = argv;
  if (verb === undefined) {
    process.stderr.write(groupHelp(group));
    return 2;
  }
  if (HELP_FLAGS.has(verb) || verb === 'help') {
    const known = rest[0] !== undefined && (subgroup(group, rest[0]) || group.commands.some((c) => c.verb === rest[0]));
    process.stdout.write(known ? helpFor(group, rest) : groupHelp(group));
    return 0;
  }
  const inner = subgroup(group, verb);
  if (inner) return runGroup(inner, rest);
  const named = group.commands.find((c) => c.verb === verb);
  const command = named ?? group.commands.find((c) => c.verb === group.defaultVerb);
  if (command && !named) {
    const own = argv.indexOf('--') === -1 ? argv : argv.slice(0, argv.indexOf('--'));
    if (own.some((a) => HELP_FLAGS.has(a))) {
      process.stdout.write(commandHelp(group, command));
      return 0;
    }
    return command.run(parseInvocation(group, command, argv));
  }
  if (!command) throw new UsageError(`unknown ${group.name} command ${JSON.stringify(verb)}: use ${listWords([...group.commands.map((c) => c.verb), ...(group.groups ?? []).map(lastWord)])}`, `ipckit ${group.name}`);
  const own = rest.indexOf('--') === -1 ? rest : rest.slice(0, rest.indexOf('--'));
  if (own.some((a) => HELP_FLAGS.has(a))) {
    process.stdout.write(commandHelp(group, command));
    return 0;
  }
  return command.run(parseInvocation(group, command, rest));
}

function listWords(words: string[]): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

// --- Help ---------------------------------------------------------------------------------

function flagLabel(name: string, f: Flag): string {
  const value = f.value ?? (f.choices ? f.choices.join('|') : 'VALUE');
  return `${f.short ? `-${f.short}, ` : ''}--${name}${f.kind === 'boolean' ? '' : f.bare !== undefined ? ` [${value}]` : ` ${value}`}`;
}

function synopsis(group: Group, command: Command): string {
  return `${commandPath(group, command)}${command.args ? ` ${command.args}` : ''}${Object.keys(command.flags ?? {}).length ? ' [flags]' : ''}${command.takesCommand ? ' -- COMMAND [ARGS...]' : ''}`;
}

/** The help of one command: synopsis, what it does, every flag, examples. */
export function commandHelp(group: Group, command: Command): string {
  const lines = [`usage: ${synopsis(group, command)}`, '', command.summary];
  if (command.details) lines.push('', ...command.details.split('\n'));
  const flags = Object.entries(command.flags ?? {});
  if (flags.length) {
    lines.push('', 'flags:');
    const labels = flags.map(([n, f]) => flagLabel(n, f));
    const width = Math.max(...labels.map((l) => l.length));
    flags.forEach(([, f], i) => lines.push(`  ${labels[i]!.padEnd(width)}  ${f.help}`));
  }
  if (group.notes) lines.push('', ...group.notes.split('\n'));
  lines.push('', command.examples.length > 1 ? 'examples:' : 'example:', ...command.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

/** The help of a group: one line per command, and how to see more. */
export function groupHelp(group: Group): string {
  if (group.single) return commandHelp(group, group.commands[0]!);
  const rows = [
    ...group.commands.map((c) => [`${c.verb} ${c.args}${c.takesCommand ? ' -- COMMAND...' : ''}`.trim(), c.verb === group.defaultVerb ? `${c.summary} (\`${c.verb}\` may be left out)` : c.summary] as const),
    ...(group.groups ?? []).map((g) => [`${lastWord(g)} <command>`, `${g.summary} (${listWords([...g.commands.map((c) => c.verb), ...(g.groups ?? []).map(lastWord)])})`] as const),
  ];
  const width = Math.min(40, Math.max(...rows.map(([l]) => l.length)));
  const lines = [`usage: ipckit ${group.name} <command> [args] [flags]${group.aliases?.length ? `   (alias: ${group.aliases.join(', ')})` : ''}`, '', group.summary, '', 'commands:'];
  for (const [label, summary] of rows) lines.push(label.length > width ? `  ${label}\n  ${''.padEnd(width)}  ${summary}` : `  ${label.padEnd(width)}  ${summary}`);
  if (group.notes) lines.push('', ...group.notes.split('\n'));
  const first = group.commands[0] ?? group.groups?.[0]?.commands[0];
  if (first) lines.push('', `example:`, `  ${first.examples[0]}`);
  lines.push('', `run \`ipckit ${group.name} <command> --help\` for a command's flags`);
  return `${lines.join('\n')}\n`;
}
