/** Where a command's result and the CLI's failures go: text for a person, or JSON with --json. */
export interface Output {
  json: boolean;
  print(human: string, machine: unknown): void;
  /** Says why the command failed, on stderr; returns the exit code. */
  fail(code: string, description: string, exitCode: number): number;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    print(human, machine) {
      process.stdout.write(`${json ? JSON.stringify(machine, null, 2) : human}\n`);
    },
    fail(code, description, exitCode) {
      process.stderr.write(json ? `${JSON.stringify({ error: code, error_description: description })}\n` : `error: ${description}\n`);
      return exitCode;
    },
  };
}
