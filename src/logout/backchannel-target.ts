import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Where Gatehouse may POST a logout token: a back-channel logout URI is a request Gatehouse's
 * own network position makes, to a URL an operator typed (or an admin token sent), so it must
 * not reach what only that position can: a cloud instance's metadata service (169.254.169.254,
 * fd00:ec2::254, metadata.google.internal), which hands out the machine's credentials, and other
 * link-local, unspecified ("0.0.0.0" reaches the host itself) or multicast addresses.
 *
 * Loopback and private addresses stay allowed: an app on the same host or the same internal
 * network is where back-channel logout usually goes, and only operators register these URIs.
 * Redirects are never followed and the app's answer body is never read (backchannel.ts).
 *
 * Checked when a client is saved (literal addresses and the metadata names) and again before
 * every attempt, after resolving the name, so a name that resolves to a refused address (now, or
 * after it was registered) is not sent to. A name re-pointed between that lookup and fetch's own
 * (DNS rebinding within milliseconds) is not caught: the lookup cannot be pinned for fetch
 * without a dependency that Gatehouse does not have.
 */

const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

const REFUSED =
  'must not point at a link-local, unspecified, multicast or cloud metadata address (169.254.0.0/16, fe80::/10, 0.0.0.0, ::, metadata.google.internal …)';

/** Why an address (IPv4 or IPv6 text) is refused, or undefined. */
function addressProblem(address: string): string | undefined {
  const kind = isIP(address);
  if (kind === 4) {
    const [a, b] = address.split('.').map(Number) as [number, number];
    if (a === 169 && b === 254) return REFUSED;
    if (a === 0 || a >= 224) return REFUSED; // 0.0.0.0/8, multicast, reserved, broadcast
    if (address === '100.100.100.200') return REFUSED; // Alibaba Cloud's metadata service
    return undefined;
  }
  if (kind === 6) {
    const v6 = address.toLowerCase();
    // IPv4-mapped (::ffff:169.254.169.254, which URL parsing writes as ::ffff:a9fe:a9fe).
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6);
    if (mapped) return addressProblem(mapped[1]!);
    const mappedHex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
    if (mappedHex) {
      const [hi, lo] = [Number.parseInt(mappedHex[1]!, 16), Number.parseInt(mappedHex[2]!, 16)];
      return addressProblem(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
    }
    if (v6 === '::' || /^fe[89ab]/.test(v6) || v6.startsWith('ff')) return REFUSED;
    if (v6 === 'fd00:ec2::254') return REFUSED; // EC2's IPv6 metadata service
    return undefined;
  }
  return undefined;
}

/** What is wrong with a back-channel logout URI's host as written, or undefined (a client's rules). */
export function backchannelHostProblem(uri: string): string | undefined {
  let host: string;
  try {
    host = new URL(uri).hostname.toLowerCase();
  } catch {
    return undefined; // the URI rules say what is wrong with it
  }
  const bare = host.startsWith('[') ? host.slice(1, -1) : host.replace(/\.$/, '');
  if (METADATA_NAMES.has(bare)) return REFUSED;
  return addressProblem(bare);
}

export type Resolve = (hostname: string) => Promise<string[]>;

const resolveAll: Resolve = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Throws (the attempt fails, and is logged) when `uri` names or resolves to a refused address. */
export async function checkBackchannelTarget(uri: string, resolve: Resolve = resolveAll): Promise<void> {
  const written = backchannelHostProblem(uri);
  if (written) throw new Error(`the back-channel logout URI ${written}`);
  const host = new URL(uri).hostname;
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  if (isIP(bare)) return;
  const refused = (await resolve(bare)).find((address) => addressProblem(address));
  if (refused) throw new Error(`the back-channel logout URI's host resolves to ${refused}; the URI ${REFUSED}`);
}
