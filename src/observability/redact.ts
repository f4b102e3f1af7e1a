/**
 * Connection URLs carry passwords (postgres://user:pass@host/db, ?password=…, rediss://:pass@…),
 * and they reach messages: "the database at … is unreachable", a start-up failure, a CLI error,
 * the audit entry of an import. Everything shown passes through here first.
 */

const MASK = '***';

/** Query parameters whose value is a credential (libpq's password and sslpassword, tokens, keys). */
const SECRET_PARAMETER = /pass|secret|token|key/i;

/** A URL as it may be shown: its password and every credential-named query parameter masked. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '(unparseable URL)';
  }
  if (u.password) u.password = MASK;
  for (const name of [...u.searchParams.keys()]) {
    if (SECRET_PARAMETER.test(name)) u.searchParams.set(name, MASK);
  }
  // URLSearchParams encodes the mask; keep it legible.
  return u.toString().replaceAll(encodeURIComponent(MASK), MASK);
}

/** The credentials a URL carries, as written and percent-decoded; none for a string that is not a URL. */
export function credentialsIn(url: string | undefined): string[] {
  if (!url) return [];
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [];
  }
  const found = [u.password, ...[...u.searchParams].filter(([name]) => SECRET_PARAMETER.test(name)).map(([, value]) => value)];
  return [...new Set(found.flatMap((value) => [value, safeDecode(value)]))].filter((value) => value.length > 0);
}

/**
 * `text` with every credential of `urls` masked wherever it appears (a driver may quote the URL, or
 * only its password), and every URL written in it redacted.
 */
export function redactCredentials(text: string, urls: ReadonlyArray<string | undefined>): string {
  // Longest first, so that a password containing another is masked whole.
  const secrets = urls.flatMap(credentialsIn).sort((a, b) => b.length - a.length);
  let shown = text;
  for (const secret of secrets) shown = shown.replaceAll(secret, MASK);
  return shown.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'()<>]+/gi, (url) => (credentialsIn(url).length ? redactUrl(url) : url));
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
