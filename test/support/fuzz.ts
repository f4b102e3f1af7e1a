import http from 'node:http';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import type { Knex } from 'knex';
import type { TestGatehouse } from './gatehouse.ts';
import { leakIn, SCRIPT_MARKERS } from './nasty-inputs.ts';
import { readAnswer, type RawAnswer } from './http-answer.ts';

/**
 * Hostile-input helpers: requests that may carry anything a socket can (raw paths, bytes in
 * headers, wrong lengths), the checks every answer must pass, and a fast-check runner that
 * counts and reports the inputs it tried.
 */

export interface HostileRequest {
  method: string;
  /** Path and query exactly as sent on the request line (see `segment` and `query`). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export type Answer = RawAnswer;

/** One request on a connection of its own (no keep-alive pool to race with), answered in full. */
export function send(gh: TestGatehouse, req: HostileRequest): Promise<Answer> {
  const url = new URL(gh.url.replace('//localhost:', '//127.0.0.1:'));
  const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
  const headers: Record<string, string | number> = { ...req.headers };
  if (body && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length' || h.toLowerCase() === 'transfer-encoding')) headers['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const r = http.request({ host: url.hostname, port: url.port, path: req.path, method: req.method, headers, agent: false }, (res) => {
      readAnswer(res).then(resolve, reject);
    });
    r.setTimeout(60_000, () => r.destroy(new Error(`${req.method} ${req.path.slice(0, 80)}: no answer in 60 s`)));
    // A server may answer (413) and close before it has read a huge body: the answer counts.
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') return;
      reject(err);
    });
    r.end(body);
  });
}

// ── Encoding hostile values onto the wire ──────────────────────────────────────────────────

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Percent-encodes the UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD, as a browser sends it). */
export function pct(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += UNRESERVED.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * `s` almost raw on the request line: '%' left alone (so "%zz" and "%E0%A4%A" arrive malformed),
 * quotes, brackets and backslashes as they are; encoded only what Node's HTTP parser would refuse
 * before Gatehouse sees it (controls, spaces, bytes over 0x7E) and the delimiters.
 */
export function raw(s: string, alsoEncode = '/?#&=+'): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x21 || byte >= 0x7f || alsoEncode.includes(ch) ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : ch;
  }
  return out;
}

export type Encoding = 'pct' | 'raw';
export const encode = (s: string, how: Encoding) => (how === 'pct' ? pct(s) : raw(s));

/** A query string or form body from pairs (repeats allowed), each encoded as asked. */
export function formEncode(pairs: ReadonlyArray<readonly [string, string]>, how: Encoding = 'pct'): string {
  return pairs.map(([k, v]) => `${encode(k, how)}=${encode(v, how)}`).join('&');
}

/** A header value Node will send: the UTF-8 bytes as Latin-1, without CR, LF, NUL and other controls. */
export const headerValue = (s: string) => Buffer.from(s, 'utf8').toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, '');

// ── What every answer must be ───────────────────────────────────────────────────────────────

export class Violation extends Error {
  override name = 'Violation';
}

const describe = (req: HostileRequest | undefined, a: Answer) => {
  const sent = req ? `${req.method} ${req.path.slice(0, 300)} ${JSON.stringify(req.headers ?? {}).slice(0, 300)} ${req.body === undefined ? '' : JSON.stringify(String(req.body).slice(0, 300))}` : '';
  const shown = /^text\/html/.test(String(a.headers['content-type'] ?? '')) ? a.text.replace(/<head>[\s\S]*<\/head>|<svg[\s\S]*?<\/svg>|<[^>]+>/g, ' ').replace(/\s+/g, ' ') : a.text;
  return `${sent} → ${a.status} ${String(a.headers['content-type'] ?? '')}: ${shown.slice(0, 600)}`;
};

/**
 * Refused by Node's HTTP parser before any of Gatehouse ran (a request line or header it
 * cannot parse, 400; over 16 KiB of them, 431): an empty answer without Gatehouse's
 * x-request-id. That is the HTTP layer doing its job, not an error format to check.
 */
export const refusedByHttpParser = (a: Answer) => (a.status === 400 || a.status === 431) && a.text === '' && a.headers['x-request-id'] === undefined;

/** Never a 5xx, never a stack trace or internal name, never a reflected script. */
export function mustBeSafe(a: Answer, req?: HostileRequest, echoes: readonly string[] = []): void {
  if (a.status >= 500 || a.status < 100) throw new Violation(`server error: ${describe(req, a)}`);
  const leak = leakIn(a.text, echoes) ?? leakIn(JSON.stringify(a.headers), echoes);
  if (leak) throw new Violation(`internal detail (${leak}) in the answer: ${describe(req, a)}`);
  if (String(a.headers['content-type'] ?? '').startsWith('text/html')) {
    const marker = SCRIPT_MARKERS.find((m) => a.text.includes(m));
    if (marker) throw new Violation(`unescaped ${marker} on a page: ${describe(req, a)}`);
  }
  if (a.headers['set-cookie']?.some((c) => /injected|stolen/.test(c))) throw new Violation(`injected cookie: ${describe(req, a)}`);
}

/** A 4xx with {"error", "error_description"} (Gatehouse's JSON routes and oidc-provider's JSON endpoints). */
export function mustBeJsonError(a: Answer, req?: HostileRequest, statuses?: number[]): void {
  if (refusedByHttpParser(a)) return;
  if (a.status < 400 || a.status >= 500) throw new Violation(`expected a 4xx: ${describe(req, a)}`);
  if (statuses && !statuses.includes(a.status)) throw new Violation(`expected ${statuses.join(' or ')}: ${describe(req, a)}`);
  if (req?.method === 'HEAD') return;
  if (!/^application\/json/.test(String(a.headers['content-type'] ?? ''))) throw new Violation(`expected JSON: ${describe(req, a)}`);
  if (typeof a.json?.error !== 'string' || !a.json.error) throw new Violation(`no "error": ${describe(req, a)}`);
  if (typeof a.json?.error_description !== 'string' || !a.json.error_description) throw new Violation(`no "error_description": ${describe(req, a)}`);
}

/** A 4xx page in HTML that says what went wrong (an error, the login form again …). */
export function mustBeHtmlError(a: Answer, req?: HostileRequest, statuses?: number[]): void {
  if (refusedByHttpParser(a)) return;
  if (a.status < 400 || a.status >= 500) throw new Violation(`expected a 4xx: ${describe(req, a)}`);
  if (statuses && !statuses.includes(a.status)) throw new Violation(`expected ${statuses.join(' or ')}: ${describe(req, a)}`);
  if (req?.method === 'HEAD') return;
  if (!/^text\/html/.test(String(a.headers['content-type'] ?? ''))) throw new Violation(`expected an HTML page: ${describe(req, a)}`);
  if (!/<title>[^<]+<\/title>/.test(a.text) || !/<main|<h1|role="alert"/.test(a.text)) throw new Violation(`not a readable error page: ${describe(req, a)}`);
}

/**
 * A method the route does not serve, on a path oidc-provider owns: 404 or 405. oidc-provider
 * passes such requests on, and Koa ends them with a plain-text "Not Found" (see the report in
 * hostile-input-protocol.test.ts); what matters here is a 4xx without internal detail.
 */
export function mustBeRefusedMethod(a: Answer, req?: HostileRequest): void {
  if (refusedByHttpParser(a)) return;
  if (a.status !== 404 && a.status !== 405) throw new Violation(`expected 404 or 405 for a method the route does not serve: ${describe(req, a)}`);
}

/** oidc-provider's error: JSON {error, error_description}, or its error page (renderError) for a browser. */
export function mustBeOidcError(a: Answer, req?: HostileRequest): void {
  if (/^text\/html/.test(String(a.headers['content-type'] ?? ''))) mustBeHtmlError(a, req);
  else mustBeJsonError(a, req);
}

export const violation = (message: string, req: HostileRequest | undefined, a: Answer) => new Violation(`${message}: ${describe(req, a)}`);

// ── Running a property ──────────────────────────────────────────────────────────────────────

export interface FuzzOptions {
  numRuns: number;
  seed: number;
}

/**
 * Runs `check` on `numRuns` inputs from `arbitrary` with a fixed seed, logs
 * "fuzz: <label> <n> inputs" and the statuses seen, and fails with the seed and the
 * counterexample. `check` returns the status it got. FUZZ_SHRINK=1 shrinks a failure (slower).
 */
export async function fuzz<T>(
  t: ExecutionContext<any>,
  label: string,
  arbitrary: fc.Arbitrary<T>,
  check: (input: T) => Promise<number>,
  { numRuns, seed }: FuzzOptions,
): Promise<number> {
  let count = 0;
  const statuses = new Map<number, number>();
  const details = await fc.check(
    fc.asyncProperty(arbitrary, async (input) => {
      count++;
      const status = await check(input);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }),
    { numRuns, seed, endOnFailure: !process.env.FUZZ_SHRINK },
  );
  const seen = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
  t.log(`fuzz: ${label} ${count} inputs (seed ${seed}; ${seen})`);
  if (details.failed) {
    const e = details.errorInstance as NodeJS.ErrnoException | undefined;
    const error = e instanceof Error ? `${e.name}${e.code ? ` ${e.code}` : ''}: ${e.message}${e instanceof Violation ? '' : `\n${e.stack?.split('\n').slice(1, 4).join('\n')}`}` : String(e);
    const report = fc.defaultReportMessage(details) ?? '';
    t.fail(`${label}: failed with seed ${seed} (rerun with FUZZ_SHRINK=1 to shrink)\n${error.slice(0, 3000)}\n${report.length > 3000 ? `${report.slice(0, 3000)} …` : report}`);
  } else {
    t.true(count >= numRuns, `${label}: only ${count} of ${numRuns} inputs ran`);
  }
  tally.set(label, (tally.get(label) ?? 0) + count);
  return count;
}

/** Inputs tried per route in this test process, for the summary line. */
export const tally = new Map<string, number>();

export const summary = () =>
  [...tally].map(([label, n]) => `${label}: ${n}`).join('; ') + ` — ${[...tally.values()].reduce((a, b) => a + b, 0)} inputs in all`;

/** /healthz still answers 200 {"status":"ok"}. */
export async function stillUp(t: ExecutionContext<any>, gh: TestGatehouse): Promise<void> {
  const a = await send(gh, { method: 'GET', path: '/healthz' });
  t.is(a.status, 200, a.text);
  t.is(a.json?.status, 'ok');
}

// ── Stored data ─────────────────────────────────────────────────────────────────────────────

/** Models whose rows hostile input may legitimately add: interactions and sessions of attempts. */
const TRANSIENT_MODELS = new Set(['Interaction', 'Session', 'ReplayDetection', 'PushedAuthorizationRequest', 'ClientCredentials']);

/**
 * Every row that matters (clients, users, keys, tokens, documents, grants, the audit log), as
 * one comparable value. Left out: sign-in failure counters, when keys and sessions were last
 * used, and the transient provider models above.
 */
export async function snapshot(db: Knex): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of ['clients', 'users', 'api_keys', 'userdata', 'admin_tokens', 'audit_log', 'signing_keys', 'settings', 'scopes', 'scope_seeds']) {
    const rows = await db(table).select('*');
    // A key or token in use records when (to the minute): use is not a change.
    out[table] = rows.map(({ last_used_at: _used, ...r }) => JSON.stringify(r)).sort();
  }
  const payloads = await db('oidc_payloads').select('*');
  out.oidc_payloads = payloads
    .filter((r) => !TRANSIENT_MODELS.has(String(r.model)))
    .map((r) => JSON.stringify(r))
    .sort();
  // Only which sessions exist: a page view may touch last_seen_at.
  out.admin_sessions = (await db('admin_sessions').select('id', 'user_id', 'csrf', 'created_at')).map((r) => JSON.stringify(r)).sort();
  return out;
}

/** The tables of `before` whose rows are not the same now. */
export function changedTables(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
  return Object.keys(before).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
}
