import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { freePort } from './gatehouse.ts';

/**
 * A small stand-in for GitHub's OAuth app endpoints and the two API calls Gatehouse makes, as
 * GitHub Enterprise Server lays them out (/login/oauth/…, /api/v3/…): github.com cannot be
 * reached from the tests. The person "approves" at once. It checks what GitHub checks: the
 * client's id and secret, the redirect URI, the code used once, and PKCE (S256).
 */
export interface GitHubStandIn {
  url: string;
  /** The person who approves, and their addresses. */
  user: { id: number; login: string; name: string | null };
  emails: Array<{ email: string; primary: boolean; verified: boolean }>;
  close(): void;
}

export async function startGitHubStandIn(client: { clientId: string; clientSecret: string; redirectUri: string }): Promise<GitHubStandIn> {
  const port = await freePort();
  const codes = new Map<string, { challenge: string }>();
  const tokens = new Set<string>();
  const standIn: GitHubStandIn = {
    url: `http://127.0.0.1:${port}`,
    user: { id: 4242, login: 'octo-cat', name: 'Octo Cat' },
    emails: [],
    close: () => server.close(),
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', standIn.url);
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== client.clientId || q.get('redirect_uri') !== client.redirectUri || q.get('code_challenge_method') !== 'S256')
        return json(res, 400, { error: 'bad authorize request' });
      const code = randomBytes(10).toString('hex');
      codes.set(code, { challenge: q.get('code_challenge') ?? '' });
      const back = new URL(client.redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      const held = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const pkceOk = held && createHash('sha256').update(verifier).digest('base64url') === held.challenge;
      if (
        form.get('client_id') !== client.clientId ||
        form.get('client_secret') !== client.clientSecret ||
        !pkceOk ||
        form.get('redirect_uri') !== client.redirectUri
      ) {
        return json(res, 200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      }
      const token = `gho_${randomBytes(12).toString('hex')}`;
      tokens.add(token);
      return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !tokens.has(bearer)) return json(res, 401, { message: 'Bad credentials' });
    if (url.pathname === '/api/v3/user') return json(res, 200, standIn.user);
    if (url.pathname === '/api/v3/user/emails') return json(res, 200, standIn.emails);
    json(res, 404, { message: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return standIn;
}
