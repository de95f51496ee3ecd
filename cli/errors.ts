/**
 * What an exit code means (docs/runbook.md, "The command line"): 0 done, 1 a failure (AWS said
 * no, the run has no model, a file does not match its manifest), 2 bad input (an unknown option,
 * a missing argument, a value outside the allowed ones; one line names it).
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad input: the message names the argument and what is allowed; exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command could not do what was asked; the message says why and what to do; exit 1. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
}

/** A value must be one of `allowed`; else a UsageError that lists them. */
export function oneOf<T extends string>(argument: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${argument}: '${value}' is not allowed; use one of ${allowed.join(', ')}`);
}

/** A whole number >= `min`; else a UsageError naming the argument. */
export function wholeNumber(argument: string, value: string, min = 0): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min) {
    throw new UsageError(`${argument}: '${value}' is not allowed; use a whole number >= ${min}`);
  }
  return parsed;
}

/** One line for the user: the error's own message, with the AWS error's name when there is one. */
export function describeError(error: unknown): string {
  if (error instanceof UsageError || error instanceof CliFailure) return error.message;
  if (error instanceof Error) {
    const first = error.message.split('\n')[0];
    return error.name && error.name !== 'Error' ? `${error.name}: ${first}` : first;
  }
  return String(error);
}
