/**
 * A problem with what the user asked for (a setting, the run config): bin/ prints its one-line
 * message without a stack trace and exits 1. Anything else that is thrown is a bug and keeps its
 * stack.
 */
export class UserInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserInputError';
  }
}
