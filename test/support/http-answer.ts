import type http from 'node:http';

/** A response read in full: its body as text, and as JSON when it parses. */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** Reads `res` to its end (for requests sent with node:http on a connection of their own). */
export function readAnswer(res: http.IncomingMessage): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (d: Buffer) => chunks.push(d));
    res.on('error', reject);
    // The server went away mid-answer (a kill -9): fail now rather than wait for a timeout.
    res.on('aborted', () => reject(new Error('response aborted')));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: any;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
    });
  });
}
