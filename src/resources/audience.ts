/**
 * What a resource server's audience may be (RFC 8707 §2: an absolute URI without a fragment).
 * Gatehouse asks for https, as for redirect URIs: the audience names where the token is sent.
 * Plain http only on loopback, for an API under development. Shared by the resources service
 * and the clients' default resource, so both refuse the same strings with the same words.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
export const AUDIENCE_MAX = 500;

/** Why `value` cannot be an audience, or null when it can. */
export function audienceProblem(value: string): string | null {
  if (!value) return 'is required: the absolute https URL the API is known by, e.g. https://api.example.com';
  if (value.length > AUDIENCE_MAX) return `must be at most ${AUDIENCE_MAX} characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not an absolute URL`;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    return `"${value}" must use https (http only on localhost, 127.0.0.1 and [::1])`;
  }
  if (value.includes('#')) return `"${value}" must not contain a fragment (RFC 8707)`;
  if (url.username || url.password) return `"${value}" must not contain credentials`;
  if (/\s/.test(value)) return `"${value}" must not contain spaces`;
  return null;
}
