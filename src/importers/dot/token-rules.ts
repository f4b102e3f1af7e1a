/**
 * What an imported refresh token's value must be. The dump chooses it, and whoever holds the
 * value holds the grant, so a value that could be guessed (short, repetitive) or that is not a
 * token at all is refused. DOT (oauthlib's generate_token) makes 30 characters of [A-Za-z0-9]:
 * about 178 bits. Among random 30-character tokens, fewer than 12 distinct characters is an
 * event of well under one in a billion; a chosen value such as "aaaa…" or "abcabc…" has fewer.
 */

export const MIN_TOKEN_LENGTH = 30;
/** DOT's column is varchar(255). */
export const MAX_TOKEN_LENGTH = 255;
const MIN_DISTINCT_CHARACTERS = 12;
/** URL- and form-safe: oauthlib's alphabet, plus what base64 and base64url tokens use. */
const TOKEN_CHARACTERS = /^[A-Za-z0-9._~+/=-]+$/;

export function refreshTokenValueProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `its value is ${token.length} characters long: at least ${MIN_TOKEN_LENGTH} are needed to be unguessable`;
  if (token.length > MAX_TOKEN_LENGTH) return `its value is longer than ${MAX_TOKEN_LENGTH} characters: not a DOT token`;
  if (!TOKEN_CHARACTERS.test(token)) return 'its value holds characters a token does not (letters, digits and . _ ~ + / = - only)';
  if (new Set(token).size < MIN_DISTINCT_CHARACTERS)
    return `its value repeats a few characters (fewer than ${MIN_DISTINCT_CHARACTERS} distinct): guessable, not random`;
  return undefined;
}
