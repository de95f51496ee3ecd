/**
 * Every command of `npx tuning-lab`: each file in cli/commands/ that exports `command`. Adding a
 * command is adding a file; nothing here changes. A file that fails to load takes only its own
 * command down: the others still run, and using that one reports why.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './command';
import { describeError } from './errors';

export const COMMANDS_DIR = join(__dirname, 'commands');

export interface Registry {
  /** The commands, in the order the help lists them (rank, then name). */
  readonly commands: Command[];
  /** Command files that failed to load: file name -> why. */
  readonly broken: ReadonlyMap<string, string>;
}

/**
 * Only the command `name`, from its own file (`<name>.ts`), so one command does not load every
 * other's SDK clients; undefined when no file is named so (the full registry then decides).
 */
export function loadCommand(name: string, dir: string = COMMANDS_DIR): Registry | undefined {
  const file = `${name}.ts`;
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(join(dir, file))) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(join(dir, file)) as { command?: Command };
    if (loaded.command?.name !== name) return undefined;
    return { commands: [loaded.command], broken: new Map() };
  } catch (error) {
    return { commands: [], broken: new Map([[file, describeError(error)]]) };
  }
}

export function loadCommands(dir: string = COMMANDS_DIR): Registry {
  const commands: Command[] = [];
  const broken = new Map<string, string>();
  for (const file of readdirSync(dir).sort()) {
    if (!/^[a-z][a-z0-9-]*\.ts$/.test(file) || file.endsWith('.d.ts')) continue;
    let loaded: { command?: Command };
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require(join(dir, file)) as { command?: Command };
    } catch (error) {
      broken.set(file, describeError(error));
      continue;
    }
    if (!loaded.command) continue; // helpers shared by several commands
    commands.push(loaded.command);
  }
  const names = new Set<string>();
  for (const { name } of commands) {
    if (names.has(name)) throw new Error(`two commands are named ${name} in ${dir}`);
    names.add(name);
  }
  commands.sort((a, b) => (a.rank ?? 100) - (b.rank ?? 100) || a.name.localeCompare(b.name));
  return { commands, broken };
}
