/**
 * The operator's command line: `npx tuning-lab <command> [options]` (cli/tuning-lab.js runs this).
 *
 *     npx tuning-lab --help            # the commands
 *     npx tuning-lab runs --json       # any command, as JSON for scripts
 *
 * Parses the command line with Node's own `util.parseArgs` (strict: an unknown option or a
 * missing value is exit 2 with one line naming it), builds the shared context (stack, region,
 * clients; cli/context.ts) and runs the command's file from cli/commands/. Exit codes: 0 ok,
 * 1 failure, 2 bad input (cli/errors.ts).
 */
import { parseArgs } from 'node:util';
import { GLOBAL_OPTIONS, type Command, type OptionSpec, type ParsedArgs } from './command';
import { CliContext } from './context';
import { CliFailure, describeError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './errors';
import { Output, type Sink } from './output';
import { loadCommand, loadCommands } from './registry';
import { DEFAULT_STACK_NAME } from '../lib/contract';

export const PROGRAM = 'tuning-lab';

export interface MainIo {
  readonly stdout?: Sink;
  readonly stderr?: Sink;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly now?: () => Date;
  /** Receives the context after the command ran (the tests read its call counter). */
  readonly onContext?: (ctx: CliContext) => void;
}

export async function main(argv: readonly string[], io: MainIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const [name, ...rest] = argv;
  const { commands, broken } = (name && loadCommand(name)) || loadCommands();
  const plain = new Output(stdout, stderr, false, env);

  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    plain.line(topic ? commandHelp(topic) : programHelp(commands));
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  const brokenFile = `${name}.ts`;
  if (!command && broken.has(brokenFile)) {
    stderr.write(
      `${PROGRAM}: cli/commands/${brokenFile} failed to load: ${broken.get(brokenFile)}\n`,
    );
    return EXIT_FAILURE;
  }
  if (!command) {
    stderr.write(
      `${PROGRAM}: '${name}' is not a command; use one of ${commands.map((c) => c.name).join(', ')}\n`,
    );
    return EXIT_USAGE;
  }

  let args: ParsedArgs;
  try {
    args = parseCommandLine(command, rest);
  } catch (error) {
    stderr.write(`${PROGRAM} ${command.name}: ${describeError(error)}\n`);
    return EXIT_USAGE;
  }
  if (args.options.help) {
    plain.line(commandHelp(command));
    return EXIT_OK;
  }

  const out = new Output(stdout, stderr, args.options.json === true, env);
  const ctx = new CliContext(
    out,
    (args.options.stack as string | undefined) ?? DEFAULT_STACK_NAME,
    {
      region: args.options.region as string | undefined,
      profile: args.options.profile as string | undefined,
    },
    io.now,
    env,
  );
  try {
    const code = await command.run(ctx, args);
    return typeof code === 'number' ? code : EXIT_OK;
  } catch (error) {
    stderr.write(`${PROGRAM} ${command.name}: ${explain(error)}\n`);
    if (env.TUNING_LAB_DEBUG && error instanceof Error && error.stack) {
      stderr.write(`${error.stack}\n`);
    }
    return error instanceof UsageError || isMissingRegion(error) ? EXIT_USAGE : EXIT_FAILURE;
  } finally {
    io.onContext?.(ctx);
    ctx.close();
  }
}

/** Options and positionals of one command; UsageError for anything it does not take. */
export function parseCommandLine(command: Command, argv: readonly string[]): ParsedArgs {
  const specs: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...(command.options ?? {}) };
  const options = Object.fromEntries(
    Object.entries(specs).map(([key, spec]) => [
      key,
      {
        type: spec.type,
        ...(spec.short ? { short: spec.short } : {}),
        ...(spec.multiple ? { multiple: true } : {}),
      },
    ]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(parseErrorText(error as Error & { code?: string }, specs));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [key, spec] of Object.entries(specs)) {
    const value = values[key];
    if (spec.choices && typeof value === 'string' && !spec.choices.includes(value)) {
      throw new UsageError(
        `--${key}: '${value}' is not allowed; use one of ${spec.choices.join(', ')}`,
      );
    }
  }
  const bounds = command.positionals ?? { min: 0, max: 0 };
  const positionals = parsed.positionals;
  if (!values.help && (positionals.length < bounds.min || positionals.length > bounds.max)) {
    const usage = `usage: ${PROGRAM} ${command.name}${command.usage ? ` ${command.usage}` : ''}`;
    const what =
      positionals.length > bounds.max
        ? `unexpected argument '${positionals[bounds.max]}'`
        : 'missing argument';
    throw new UsageError(`${what}; ${usage}`);
  }
  return { options: values, positionals };
}

function parseErrorText(
  error: Error & { code?: string },
  specs: Record<string, OptionSpec>,
): string {
  const allowed = Object.keys(specs)
    .map((key) => `--${key}`)
    .join(', ');
  const option = /'(-[^']*)'/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    return `${option ?? 'option'}: unknown option; allowed: ${allowed}`;
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = (option ?? 'option').split(' ')[0];
    const spec = specs[name.replace(/^-+/, '')];
    return spec?.type === 'string'
      ? `${name}: needs a value (${name} ${spec.value ?? 'VALUE'})`
      : `${name}: takes no value`;
  }
  return error.message.split('\n')[0];
}

function isMissingRegion(error: unknown): boolean {
  return error instanceof Error && /Region is missing/i.test(error.message);
}

function explain(error: unknown): string {
  if (isMissingRegion(error)) {
    return '--region: no AWS region; set AWS_REGION (or AWS_DEFAULT_REGION), a region in your profile, or --region';
  }
  const name = (error as Error | undefined)?.name ?? '';
  if (/CredentialsProviderError|ExpiredToken|InvalidClientTokenId|UnrecognizedClient/.test(name)) {
    return `${describeError(error)} (check your AWS credentials: aws sts get-caller-identity)`;
  }
  if (error instanceof CliFailure || error instanceof UsageError) return error.message;
  return describeError(error);
}

export function programHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `usage: ${PROGRAM} <command> [options]`,
    '',
    'Operate the runs of a tuning-lab stack from your laptop. Commands:',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options of every command:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    `${PROGRAM} <command> --help shows a command's own options. Exit codes: 0 ok, 1 failure, 2 bad input.`,
  ].join('\n');
}

export function commandHelp(command: Command): string {
  const lines = [
    `usage: ${PROGRAM} ${command.name}${command.usage ? ` ${command.usage}` : ''} [options]`,
    '',
    command.summary,
  ];
  if (command.description) lines.push('', command.description);
  if (command.options && Object.keys(command.options).length > 0) {
    lines.push('', 'Options:', ...optionLines(command.options));
  }
  lines.push('', 'Options of every command:', ...optionLines(GLOBAL_OPTIONS));
  return lines.join('\n');
}

function optionLines(specs: Readonly<Record<string, OptionSpec>>): string[] {
  const labels = Object.entries(specs).map(([key, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    const value = spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : '';
    return [
      `${short}--${key}${value}`,
      spec.choices ? `${spec.help} (${spec.choices.join(', ')})` : spec.help,
    ];
  });
  const width = Math.max(...labels.map(([label]) => label.length));
  return labels.map(([label, help]) => `  ${label.padEnd(width)}  ${help}`);
}
