import { ValidationError } from '../errors.ts';

/**
 * A new password for the CLI: from stdin (scripts: `--password-stdin`), or asked twice on the
 * terminal without echo, as Django's createsuperuser does.
 */
export async function readPassword({ fromStdin, stdin }: { fromStdin: boolean; stdin: () => Promise<string> }): Promise<string> {
  if (fromStdin) {
    // One trailing newline is the shell's, not the password's.
    return (await stdin()).replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY) {
    throw new ValidationError({ password: 'no terminal to ask on: pipe the password in with --password-stdin' });
  }
  const first = await askHidden('Password: ');
  const second = await askHidden('Password (again): ');
  if (first !== second) throw new ValidationError({ password: 'the two passwords do not match' });
  return first;
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin;
    process.stderr.write(prompt);
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    let value = '';
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          cleanup();
          process.stderr.write('\n');
          return resolve(value);
        }
        if (char === '\u0003') {
          cleanup();
          return reject(new Error('cancelled'));
        }
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    const cleanup = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
    };
    input.on('data', onData);
  });
}
