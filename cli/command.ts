/**
 * One command of `npx tuning-lab`: a file in cli/commands/ that exports `command` (see
 * cli/commands/README.md). The registry (cli/registry.ts) finds every such file; nothing else
 * needs to change to add a command.
 */
import type { CliContext } from './context';

/** An option of one command, as `util.parseArgs` takes it plus what `--help` prints. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder in the help text: `--plot FILE`. */
  readonly value?: string;
  readonly help: string;
  /** Allowed values of a string option; anything else is exit 2 naming them. */
  readonly choices?: readonly string[];
}

/** What the command line gave a command: its options (global ones included) and positionals. */
export interface ParsedArgs {
  readonly options: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
}

export interface Command {
  /** The word after `tuning-lab`. */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Positional arguments as `--help` shows them, e.g. `[run] [dir]`. */
  readonly usage?: string;
  /** More lines for `tuning-lab <name> --help`. */
  readonly description?: string;
  readonly options?: Readonly<Record<string, OptionSpec>>;
  /** Bounds on the number of positionals (default 0 to 0); outside them is exit 2. */
  readonly positionals?: { readonly min: number; readonly max: number };
  /** Where it sits in the command list (lower first); default 100. */
  readonly rank?: number;
  /** Does the work; returns the exit code (undefined: 0). Throws UsageError/CliFailure. */
  run(ctx: CliContext, args: ParsedArgs): Promise<number | void>;
}

/** Options every command takes (cli/main.ts handles them). */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  stack: { type: 'string', value: 'NAME', help: 'the stack to read (default TrainingStack)' },
  region: {
    type: 'string',
    value: 'REGION',
    help: "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)",
  },
  profile: { type: 'string', value: 'NAME', help: 'AWS profile (default: AWS_PROFILE)' },
  json: { type: 'boolean', help: 'print JSON for scripts instead of text' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.options[name];
  return typeof value === 'string' ? value : undefined;
}

export function booleanOption(args: ParsedArgs, name: string): boolean {
  return args.options[name] === true;
}
