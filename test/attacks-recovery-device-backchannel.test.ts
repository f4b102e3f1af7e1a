import { randomBytes } from 'node:crypto';
import http from 'node:http';
import anyTest, { type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import type { Client } from '../src/clients/service.ts';
import type { BackchannelDeliveries } from '../src/logout/backchannel-deliveries.ts';
import { BackchannelLogout } from '../src/logout/backchannel.ts';
import { adminApi, type AdminApi, clientCredentialsToken } from './support/admin-api.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUserDirectly, oidc, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { linkIn, startTestSmtp, type TestSmtp } from './support/smtp.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * An attacker's look at the routes the last session added: "Forgot your password?" and its
 * links, the device code pages, the admin API's resources and reset links, and back-channel
 * logout URIs. Each probe is sent as an attacker sends it: raw HTTP with the headers they
 * choose, and races with Promise.all. Gatehouse trusts one proxy hop here, so a probe can come
 * from an address of its own (X-Forwarded-For), and a forged X-Forwarded-Host is believed by
 * anything that reads the request's host.
 */

interface Context {
  gh: TestGatehouse;
  smtp: TestSmtp;
  api: AdminApi;
}

const test = anyTest as TestFn<Context>;
const PASSWORD = 'correct horse battery staple';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

test.before(async (t) => {
  const smtp = await startTestSmtp();
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_SMTP_URL: smtp.url, GATEHOUSE_MAIL_FROM: 'no-reply@example.com', GATEHOUSE_TRUST_PROXY: '1' } });
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'attacks');
  t.context = { gh, smtp, api: adminApi(gh, token) };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
  await t.context.smtp?.close();
});

const from = () => `203.0.113.${1 + (randomBytes(1)[0]! % 250)}`;
const tag = () => randomBytes(4).toString('hex');

/** POST /password-reset as a script does: fetch the form for its CSRF cookie and field, then post with the attacker's headers. */
async function askForReset(gh: TestGatehouse, email: string, headers: Record<string, string>) {
  const agent = new UserAgent();
  const form = await agent.open(`${gh.url}/password-reset`, { headers });
  const csrf = /name="csrf" value="([^"]+)"/.exec(form.html)![1]!;
  const started = performance.now();
  const res = await agent.request(`${gh.url}/password-reset`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ csrf, email }),
  });
  const html = await res.text();
  return {
    status: res.status,
    html: html.replaceAll(csrf, 'CSRF'),
    ms: performance.now() - started,
    cookies: res.headers.getSetCookie().map((c) => c.split('=')[0]),
  };
}

test.serial('a forged Host or X-Forwarded-Host never reaches the reset link: the mail points at the issuer', async (t) => {
  const { gh, smtp, api } = t.context;
  const username = `victim-${tag()}`;
  const id = await createUserDirectly(gh, username, PASSWORD);
  const email = `${username}@example.com`;
  const evil = {
    host: 'evil.example',
    'x-forwarded-host': 'evil.example',
    forwarded: 'host=evil.example',
    'x-forwarded-proto': 'https',
    'x-forwarded-for': from(),
  };
  const asked = await askForReset(gh, email, evil);
  t.is(asked.status, 200);
  const mail = await smtp.next(email);
  const link = linkIn(mail, `${gh.config.issuer}/password-reset/`);
  t.true(link.startsWith(`${gh.config.issuer}/`), link);
  t.false(mail.raw.includes('evil.example'), 'the forged host is nowhere in the mail');
  // The operator's door too: the admin API builds the link from the issuer, not the request.
  const handed = await api('POST', `/users/${id}/reset-link`, {});
  t.is(handed.status, 200);
  const raw = await fetch(`${gh.url}/admin/api/users/${id}/reset-link`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${(await gh.services.admin.createAdminToken(CLI_ACTOR, 'h')).token}`,
      'x-forwarded-host': 'evil.example',
      'content-type': 'application/json',
    },
    body: '{}',
  });
  const url = ((await raw.json()) as { url: string }).url;
  t.true(url.startsWith(`${gh.config.issuer}/password-reset/`), url);
});

test.serial('"Forgot your password?" answers an address with an account exactly as one without: same status, page, cookies, and no slower', async (t) => {
  const { gh, smtp } = t.context;
  const known: string[] = [];
  for (let i = 0; i < 6; i++) {
    const username = `known-${tag()}`;
    await createUserDirectly(gh, username, PASSWORD);
    known.push(`${username}@example.com`);
  }
  const unknown = known.map((e) => `nobody-${e}`);
  const answers = { known: [] as Awaited<ReturnType<typeof askForReset>>[], unknown: [] as Awaited<ReturnType<typeof askForReset>>[] };
  // Interleaved, so load on the machine falls on both alike.
  for (let i = 0; i < known.length; i++) {
    answers.known.push(await askForReset(gh, known[i]!, { 'x-forwarded-for': from() }));
    answers.unknown.push(await askForReset(gh, unknown[i]!, { 'x-forwarded-for': from() }));
  }
  for (let i = 0; i < known.length; i++) {
    const [k, u] = [answers.known[i]!, answers.unknown[i]!];
    t.is(k.status, u.status);
    t.deepEqual(k.cookies, u.cookies);
    t.is(k.html.replace(known[i]!, 'ADDRESS'), u.html.replace(unknown[i]!, 'ADDRESS'), 'the page says the same');
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const [k, u] = [median(answers.known.map((a) => a.ms)), median(answers.unknown.map((a) => a.ms))];
  // The account is looked up and mailed after the answer: no lookup to time. A coarse bound, so
  // a loaded machine does not fail it; the lookup-and-mail before the answer it guards against
  // (SMTP round trips) takes far longer.
  t.true(k < u * 3 + 30, `known ${k.toFixed(1)} ms vs unknown ${u.toFixed(1)} ms`);
  for (const email of known) await smtp.next(email);
});

test.serial(
  'twelve reset requests for one address at once, from twelve addresses: three are mailed, the rest are throttled, and the victim gets three mails',
  async (t) => {
    const { gh, smtp } = t.context;
    const username = `bombed-${tag()}`;
    const id = await createUserDirectly(gh, username, PASSWORD);
    const email = `${username}@example.com`;
    const answers = await Promise.all(Array.from({ length: 12 }, () => askForReset(gh, email, { 'x-forwarded-for': from() })));
    t.deepEqual(answers.map((a) => a.status).sort(), [...Array(3).fill(200), ...Array(9).fill(429)]);
    await gh.services.outbox!.idle();
    t.is(smtp.countTo(email), 3);
    t.is((await gh.services.db('account_links').where({ user_id: id, purpose: 'reset' })).length, 3, 'one link per mail; only the newest works');
    for (let i = 0; i < 3; i++) await smtp.next(email);
  },
);

test.serial('thirty device-code guesses at once from one address: at most ten are checked, and the right code then is locked out too', async (t) => {
  const { gh } = t.context;
  const client = await createClient(gh, ['--name', `Guessed ${tag()}`, '--type', 'public', '--grant', DEVICE_GRANT]);
  const cli = await relyingParty(gh, client, 'none');
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
  const address = from();
  const headers = { 'x-forwarded-for': address };
  /** A fresh form (its own session and xsrf token) posted with `code`: the form's token is single use, so each guess brings its own. */
  const formFor = async () => {
    const agent = new UserAgent();
    const page = await agent.open(`${gh.config.issuer}/device`, { headers });
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.html)![1]!;
    return (code: string) =>
      agent.request(`${gh.config.issuer}/device`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ xsrf, user_code: code }),
      });
  };
  const letters = 'BCDFGHJKLMNPQRSTVWXZ';
  const guesses = Array.from({ length: 30 }, (_, i) => `ZZZZ-Z${letters[i % 20]}${letters[Math.floor(i / 20)]}Z`).filter((g) => g !== device.user_code);
  const forms = await Promise.all(guesses.map(() => formFor()));
  const answers = await Promise.all(
    forms.map(async (post, i) => {
      const res = await post(guesses[i]!);
      return { status: res.status, html: await res.text() };
    }),
  );
  t.deepEqual(
    answers.filter((a) => a.status >= 500 || a.status === 400).map((a) => a.status),
    [],
    'each guess was read (none refused as a bad form, none a 500)',
  );
  const checked = answers.filter((a) => /That code is not right/.test(a.html)).length;
  t.true(checked <= 10, `${checked} guesses were checked`);
  t.true(answers.filter((a) => a.status === 429).length >= guesses.length - 10, 'the rest were refused as too many');
  const right = await (await formFor())(device.user_code);
  const rightHtml = await right.text();
  t.is(right.status, 429);
  t.notRegex(rightHtml, /Sign in on this device\?/);
});

test.serial(
  'two people pressing Continue for one device code at once (one read it off the screen): one signs the device in, the other is told the code was used',
  async (t) => {
    const { gh } = t.context;
    const client = await createClient(gh, ['--name', `Shared TV ${tag()}`, '--type', 'public', '--grant', DEVICE_GRANT]);
    const cli = await relyingParty(gh, client, 'none');
    const people = await Promise.all(
      ['owner', 'shoulder-surfer'].map(async (who) => {
        const username = `${who}-${tag()}`;
        return { who, username, sub: await createUserDirectly(gh, username, PASSWORD) };
      }),
    );
    // Raced several times: one run that lets both through is a finding.
    for (let round = 0; round < 5; round++) {
      const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
      const polling = oidc.pollDeviceAuthorizationGrant(cli, device);
      const agents = people.map(() => new UserAgent());
      const headers = { 'x-forwarded-for': from() };
      const codePages = await Promise.all(agents.map((a) => a.open(`${gh.config.issuer}/device`, { headers })));
      const confirms = await Promise.all(agents.map((a, i) => a.submit(codePages[i]!, /\/device$/, { user_code: device.user_code })));
      for (const c of confirms) t.regex(c.html, /Sign in on this device\?/, 'both may look at the confirmation page');
      const continued = await Promise.all(agents.map((a, i) => a.submit(confirms[i]!, /\/device$/, {})));
      const through = continued.map((c, i) => (/name="password"/.test(c.html) ? i : -1)).filter((i) => i >= 0);
      t.is(through.length, 1, `round ${round}: ${through.length} reached the sign-in`);
      const loser = continued.find((_, i) => !through.includes(i));
      t.regex(loser?.html ?? '', /That code was used already/);
      const winner = through[0]!;
      const consent = await agents[winner]!.submit(continued[winner]!, /\/login$/, { username: people[winner]!.username, password: PASSWORD });
      // A person who allowed the app in an earlier round is not asked again.
      const done = /name="decision"/.test(consent.html) ? await agents[winner]!.submit(consent, /\/consent$/, { decision: 'allow' }) : consent;
      t.regex(done.html, /Your device is signed in/);
      t.is((await polling).claims()!.sub, people[winner]!.sub, 'the device has the tokens of the one who signed it in');
      // Spent: entering it again (a replay) gets nowhere.
      const replay = await agents[1 - winner]!.submit(await agents[1 - winner]!.open(`${gh.config.issuer}/device`, { headers }), /\/device$/, {
        user_code: device.user_code,
      });
      t.regex(replay.html, /That code (was used already|is not right)/, 'a spent code is gone');
    }
  },
);

test.serial(
  "the resources endpoints and reset links refuse a person's access token, an API key, a client's token and a revoked admin token, and nothing changes",
  async (t) => {
    const { gh, api } = t.context;
    const audience = `https://api-${tag()}.example`;
    await gh.services.scopes.create({ name: `probe-${tag()}`, description: 'probe' }).catch(() => undefined);
    const scope = (await gh.services.scopes.list()).map((s) => s.name)[0]!;
    t.is((await api('POST', '/resources', { body: { audience, scopes: [scope] } })).status, 201);
    const victim = await createUserDirectly(gh, `target-${tag()}`, PASSWORD);
    const { client, clientSecret } = await gh.services.clients.create({ name: 'Service', type: 'confidential', grantTypes: ['client_credentials'] });
    const { key } = await gh.services.admin.createApiKey(CLI_ACTOR, client.clientId, ['userdata:read']);
    const accessToken = (await clientCredentialsToken(gh, client.clientId, clientSecret!)).body.access_token as string;
    const revoked = await gh.services.admin.createAdminToken(CLI_ACTOR, 'soon revoked');
    await gh.services.admin.revokeAdminToken(CLI_ACTOR, revoked.adminToken.id);
    const linksBefore = (await gh.services.db('account_links').where({ user_id: victim })).length;
    const resourceBefore = JSON.stringify(await gh.services.resources.get(audience));

    const who: Array<[string, Record<string, string>]> = [
      ['nobody', {}],
      ['an API key', { 'x-api-key': key }],
      ['an API key as a bearer', { authorization: `Bearer ${key}` }],
      ["a client's access token", { authorization: `Bearer ${accessToken}` }],
      ['a revoked admin token', { authorization: `Bearer ${revoked.token}` }],
    ];
    const calls: Array<[string, string, string | undefined]> = [
      ['POST', '/resources', JSON.stringify({ audience: `https://sneaky-${tag()}.example`, scopes: [scope] })],
      ['PATCH', `/resources/${encodeURIComponent(audience)}`, JSON.stringify({ name: 'owned' })],
      ['DELETE', `/resources/${encodeURIComponent(audience)}`, undefined],
      ['GET', '/resources', undefined],
      ['POST', `/users/${victim}/reset-link`, '{}'],
    ];
    const answers = await Promise.all(
      who.flatMap(([label, headers]) =>
        calls.map(async ([method, path, body]) => {
          const res = await fetch(`${gh.url}/admin/api${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body });
          return { label: `${label}: ${method} ${path}`, status: res.status, text: await res.text() };
        }),
      ),
    );
    t.deepEqual(
      answers.filter((a) => a.status !== 401).map((a) => `${a.label} → ${a.status}`),
      [],
    );
    t.false(
      answers.some((a) => a.text.includes('/password-reset/')),
      'no link in any answer',
    );
    t.is((await gh.services.db('account_links').where({ user_id: victim })).length, linksBefore, 'no reset link was made');
    t.is(JSON.stringify(await gh.services.resources.get(audience)), resourceBefore, 'the resource is as it was');
  },
);

const METADATA_URIS = [
  'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
  'https://169.254.169.254/computeMetadata/v1/',
  'https://2852039166/latest/', // 169.254.169.254 written as one number
  'https://[::ffff:169.254.169.254]/',
  'https://[fe80::1]/logout',
  'https://[fd00:ec2::254]/latest/',
  'https://metadata.google.internal/computeMetadata/v1/',
  'https://0.0.0.0/logout',
  'https://224.0.0.1/logout',
];

test.serial(
  'a back-channel logout URI pointing at a cloud metadata service or a link-local address is refused when a client is created or updated',
  async (t) => {
    const { gh, api } = t.context;
    const existing = await gh.services.clients.create({ name: 'Wiki', type: 'confidential', grantTypes: ['client_credentials'] });
    const before = (await gh.services.clients.list()).length;
    for (const uri of METADATA_URIS) {
      const created = await api('POST', '/clients', { body: { client_name: 'SSRF', grant_types: ['client_credentials'], backchannel_logout_uri: uri } });
      t.is(created.status, 400, `${uri}: ${created.text}`);
      t.regex(created.text, /backchannel_logout_uri|backchannelLogoutUri/, uri);
      t.regex(created.text, /metadata|link-local/, uri);
      const updated = await api('PATCH', `/clients/${existing.client.clientId}`, { body: { backchannel_logout_uri: uri } });
      t.is(updated.status, 400, `${uri}: ${updated.text}`);
    }
    t.is((await gh.services.clients.list()).length, before, 'no client was created');
    t.is((await gh.services.clients.get(existing.client.clientId)).backchannelLogoutUri, null, 'the client was not changed');
    // Loopback and private networks stay allowed: an app on the same host or network.
    for (const uri of ['http://127.0.0.1:9/logout', 'https://10.1.2.3/logout', 'https://wiki.internal.example/logout']) {
      const ok = await api('PATCH', `/clients/${existing.client.clientId}`, { body: { backchannel_logout_uri: uri } });
      t.is(ok.status, 200, `${uri}: ${ok.text}`);
    }
  },
);

test.serial('a back-channel URI whose name resolves to the metadata service, or one stored before the rule, is never sent to', async (t) => {
  // A listener standing in for whatever the address would reach: it must hear nothing.
  let reached = 0;
  const server = http.createServer((_req, res) => {
    reached++;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const fetched: string[] = [];
  const spyFetch: typeof fetch = async (input, init) => {
    fetched.push(String(input));
    return fetch(input, init);
  };
  const clientWith = (uri: string) => ({ clientId: 'app', backchannelLogoutUri: uri, idTokenSignedResponseAlg: 'RS256' }) as Client;
  const logoutVia = (uri: string, resolve: (host: string) => Promise<string[]>) =>
    new BackchannelLogout({
      issuer: t.context.gh.config.issuer,
      findClient: async () => clientWith(uri),
      privateJwks: () => t.context.gh.services.keys.privateJwks(),
      deliveries: () => ({}) as BackchannelDeliveries,
      log: { warn: () => undefined },
      fetch: spyFetch,
      resolve,
    });
  // DNS says the app's name is the metadata service (or a rebinding name that resolves so now).
  await t.throwsAsync(logoutVia(`http://app.example:${port}/logout`, async () => ['169.254.169.254']).deliver({ clientId: 'app', sub: 's' }), {
    message: /resolves to 169\.254\.169\.254/,
  });
  await t.throwsAsync(logoutVia(`http://app.example:${port}/logout`, async () => ['10.0.0.5', 'fe80::1']).deliver({ clientId: 'app', sub: 's' }), {
    message: /fe80::1/,
  });
  // A row written before the rule existed (or edited in the database).
  await t.throwsAsync(logoutVia('http://169.254.169.254/latest/', async () => []).deliver({ clientId: 'app', sub: 's' }), { message: /metadata/ });
  t.deepEqual(fetched, [], 'no request was made');
  t.is(reached, 0);
  // A name resolving to loopback is sent to: the check refuses addresses, not names.
  await logoutVia(`http://localhost:${port}/logout`, async () => ['127.0.0.1']).deliver({ clientId: 'app', sub: 's' });
  t.is(fetched.length, 1);
  t.is(reached, 1);
});
