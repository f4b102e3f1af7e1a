import anyTest, { type TestFn } from 'ava';
import fc from 'fast-check';
import { changedTables, formEncode, fuzz, headerValue, mustBeHtmlError, mustBeSafe, pct, raw, send, snapshot, stillUp, summary, violation, type Encoding, type HostileRequest } from './support/fuzz.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { CONTENT_TYPES, hugeString, nastyString } from './support/nasty-inputs.ts';
import { authorizationRequest, createUserDirectly, POST_LOGOUT_URI, REDIRECT_URI, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { findForm } from './support/http.ts';
import { isConsentPage, isLoginPage, UserAgent } from './support/user-agent.ts';

/**
 * Hostile input on the sign-in and consent pages (/interaction/…), with a real interaction:
 * its uid, its cookies and its CSRF token, so the forms are judged past the CSRF check. Every
 * answer is an HTML page with a 4xx (or, for Deny, the redirect back to /authorize), never a
 * 5xx or a trace; no grant is made and no one is signed in.
 */

interface Context {
  gh: TestGatehouse;
  login: { uid: string; cookie: string; csrf: string };
  consent: { uid: string; cookie: string; csrf: string };
}

const test = anyTest as TestFn<Context>;

const RUNS = { pages: 250, login: 300, consent: 250 };
const PASSWORD = 'correct horse battery staple';

/** The Cookie header the browser would send (UserAgent keeps them privately). */

test.before(async (t) => {
  // Behind a (pretend) proxy, so the fuzzed sign-ins come from addresses of their own and the
  // per-address throttle does not slow the whole run to a second per attempt.
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true' } });
  t.context = { gh } as Context;
  const { client, clientSecret } = await gh.services.clients.create({ name: 'Web app', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], postLogoutRedirectUris: [POST_LOGOUT_URI] });
  await createUserDirectly(gh, 'alice', PASSWORD);
  const rp = await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic');

  // A person at the sign-in page, and another one signed in and at the consent page.
  const start = async () => {
    const agent = new UserAgent([REDIRECT_URI]);
    const page = await agent.open((await authorizationRequest(rp)).url);
    if (!isLoginPage(page)) throw new Error(`no login page: ${page.url} ${page.status}`);
    return { agent, page };
  };
  const atLogin = await start();
  const loginForm = findForm(atLogin.page, { action: /\/login$/ });
  const atConsent = await start();
  const consentPage = await atConsent.agent.submit(atConsent.page, /\/login$/, { username: 'alice', password: PASSWORD });
  if (!isConsentPage(consentPage)) throw new Error(`no consent page: ${consentPage.url} ${consentPage.status}`);
  const consentForm = findForm(consentPage, { action: /\/consent$/ });
  const uidOf = (target: string) => /\/interaction\/([^/]+)\//.exec(new URL(target).pathname)![1]!;
  t.context = {
    gh,
    login: { uid: uidOf(loginForm.target), cookie: atLogin.agent.cookieHeader(), csrf: loginForm.fields.get('csrf')! },
    consent: { uid: uidOf(consentForm.target), cookie: atConsent.agent.cookieHeader(), csrf: consentForm.fields.get('csrf')! },
  };
});

test.after.always(async (t) => {
  if (t.context.gh) {
    console.log(`hostile-input-interactions: ${summary()}`);
    await t.context.gh.close();
  }
});

const encoding = fc.constantFrom<Encoding>('pct', 'pct', 'raw');

/** A form body as a browser or a forger might send it: fields, repeats, other content types, too much. */
function hostileForm(fields: fc.Arbitrary<Array<[string, string]>>) {
  return fc.record({
    pairs: fields,
    how: encoding,
    contentType: fc.oneof({ weight: 5, arbitrary: fc.constant<string | undefined>('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
    pad: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(17 * 1024, 100 * 1024, 2 * 1024 * 1024) }),
    forwardedFor: fc.oneof({ weight: 4, arbitrary: fc.ipV4() }, { weight: 1, arbitrary: fc.ipV6() }, { weight: 1, arbitrary: nastyString({ maxLength: 60 }) }),
  });
}

function formRequest(path: string, cookie: string, f: { pairs: Array<[string, string]>; how: Encoding; contentType: string | undefined; pad: number; forwardedFor: string }): HostileRequest {
  const headers: Record<string, string> = { cookie, 'x-forwarded-for': headerValue(f.forwardedFor), accept: 'text/html' };
  if (f.contentType !== undefined) headers['content-type'] = f.contentType;
  const body = formEncode(f.pairs, f.how) + (f.pad ? `&pad=${hugeString(f.pad)}` : '');
  return { method: 'POST', path, headers, body };
}

test(`interaction pages: ${RUNS.pages} requests for made-up, mangled or stale interactions get our error page`, async (t) => {
  const { gh, login } = t.context;
  const before = await snapshot(gh.services.db);
  await fuzz(
    t,
    'GET|POST /interaction/:uid[/login|/consent] (unknown uid)',
    fc.record({
      uid: fc.oneof(nastyString().map((s) => pct(s) || 'x'), nastyString().map((s) => raw(s, '/?#') || 'x'), fc.constantFrom(`${login.uid}x`, login.uid.toUpperCase(), `..%2f${login.uid}`, '%00', '%zz', 'x'.repeat(4000))),
      tail: fc.constantFrom('', '/login', '/consent', '/', '/login/', '/abort', '/../login'),
      method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('GET', 'POST') }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
      withCookies: fc.boolean(),
      body: fc.array(fc.tuple(fc.constantFrom('csrf', 'username', 'password', 'decision'), nastyString()), { maxLength: 4 }),
    }),
    async (input) => {
      const headers: Record<string, string> = { accept: 'text/html' };
      if (input.withCookies) headers.cookie = login.cookie;
      const req: HostileRequest = { method: input.method, path: `/interaction/${input.uid}${input.tail}`, headers };
      if (input.method === 'POST') {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        req.body = formEncode(input.body);
      }
      const a = await send(gh, req);
      mustBeSafe(a, req, [input.uid, ...input.body.flat()]);
      if (input.withCookies && a.status === 200 && input.method !== 'OPTIONS') {
        // oidc-provider finds the interaction by its cookie, whatever the path says: the real page.
        if (input.method !== 'HEAD' && !a.text.includes(`/interaction/${login.uid}/login`)) throw violation('a page for another interaction', req, a);
      } else if (input.method === 'OPTIONS' && a.status < 300) {
        if (!a.headers.allow) throw violation('OPTIONS without Allow', req, a);
      } else if (['GET', 'POST', 'HEAD'].includes(input.method) && !/\/\.\.\//.test(req.path) && a.status !== 404) mustBeHtmlError(a, req);
      else if (a.status < 400 || a.status >= 500) throw violation('expected a 4xx', req, a);
      return a.status;
    },
    { numRuns: RUNS.pages, seed: 0x1a9e },
  );
  t.deepEqual(changedTables(before, await snapshot(gh.services.db)), []);
  await stillUp(t, gh);
});

test(`sign-in form: ${RUNS.login} hostile submissions to a real interaction, with its cookies and CSRF token, get the form again with a 4xx and sign no one in`, async (t) => {
  const { gh, login } = t.context;
  const before = await snapshot(gh.services.db);
  const field = (name: string) => fc.tuple(fc.constant(name), nastyString());
  await fuzz(
    t,
    'POST /interaction/:uid/login',
    hostileForm(
      fc
        .record({
          csrf: fc.oneof({ weight: 4, arbitrary: fc.constant([['csrf', login.csrf]] as Array<[string, string]>) }, { weight: 1, arbitrary: fc.array(field('csrf'), { maxLength: 2 }) }, { weight: 1, arbitrary: fc.constant([['csrf', login.csrf], ['csrf', login.csrf]] as Array<[string, string]>) }),
          username: fc.array(fc.oneof(field('username'), fc.constant(['username', 'alice'] as [string, string])), { maxLength: 2 }),
          password: fc.array(fc.oneof(field('password'), fc.constant(['password', `${PASSWORD} `] as [string, string])), { maxLength: 2 }),
          extra: fc.array(fc.tuple(nastyString({ maxLength: 30 }), nastyString()), { maxLength: 2 }),
        })
        .map(({ csrf, username, password, extra }) => [...csrf, ...username, ...password, ...extra]),
    ),
    async (f) => {
      const req = formRequest(`/interaction/${login.uid}/login`, login.cookie, f);
      const a = await send(gh, req);
      mustBeSafe(a, req, f.pairs.flat());
      mustBeHtmlError(a, req);
      return a.status;
    },
    { numRuns: RUNS.login, seed: 0x10c1 },
  );
  t.deepEqual(changedTables(before, await snapshot(gh.services.db)), []);
  // The real interaction still works: the person can still sign in.
  const page = await send(gh, { method: 'GET', path: `/interaction/${login.uid}`, headers: { cookie: login.cookie } });
  t.is(page.status, 200);
  t.regex(page.text, /name="password"/);
  await stillUp(t, gh);
});

test(`consent form: ${RUNS.consent} hostile submissions to a real consent page never allow: Deny, or the page again with a 4xx, and no grant is made`, async (t) => {
  const { gh, consent } = t.context;
  const before = await snapshot(gh.services.db);
  await fuzz(
    t,
    'POST /interaction/:uid/consent',
    hostileForm(
      fc
        .record({
          csrf: fc.oneof({ weight: 2, arbitrary: fc.constant([['csrf', consent.csrf]] as Array<[string, string]>) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.constant('csrf'), nastyString()), { maxLength: 2 }) }),
          decision: fc.array(
            fc.tuple(
              fc.constant('decision'),
              fc.oneof(nastyString().filter((s) => s !== 'allow'), fc.constantFrom('Allow', 'ALLOW', 'allow ', ' allow', 'allow\0', 'ａｌｌｏｗ', 'deny', 'allow,allow')),
            ),
            { maxLength: 2 },
          ),
          extra: fc.array(fc.tuple(fc.constantFrom('scope', 'grantId', 'accountId', 'client_id', 'claims', '__proto__', 'decision[]'), nastyString()), { maxLength: 3 }),
        })
        .map(({ csrf, decision, extra }) => [...csrf, ...decision, ...extra]),
    ),
    async (f) => {
      const req = formRequest(`/interaction/${consent.uid}/consent`, consent.cookie, f);
      const a = await send(gh, req);
      mustBeSafe(a, req, f.pairs.flat());
      if (a.status === 303) {
        // Deny: back to oidc-provider, which sends access_denied to the app.
        if (!new URL(String(a.headers.location), gh.url).pathname.startsWith('/authorize/')) throw violation('Deny went elsewhere', req, a);
      } else mustBeHtmlError(a, req);
      return a.status;
    },
    { numRuns: RUNS.consent, seed: 0xc025 },
  );
  t.deepEqual(changedTables(before, await snapshot(gh.services.db)), [], 'no grant, no token');
  await stillUp(t, gh);
});
