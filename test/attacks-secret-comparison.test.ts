/**
 * Timing attacks on secret comparison: every place Gatehouse compares a presented secret with
 * the one it knows (client secrets, API keys, admin tokens, CSRF tokens, passwords) goes through
 * crypto.timingSafeEqual, or compares outputs of a hash the attacker cannot steer. Checked two
 * ways, neither by the clock (wall-clock timing assertions would be flaky):
 * - the source: no ===, !==, == or != (nor Buffer#equals, Buffer.compare, localeCompare)
 *   between two values named like secrets, anywhere in src/, interactions/ or adapters/;
 * - behaviour: crypto.timingSafeEqual is wrapped, and each comparison site is called with a
 *   wrong and with the right secret; the wrapper must see every one of those calls.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type Koa from 'koa';
import ts from 'typescript';
import { csrfValid } from '../src/web/csrf.ts';
import { verifyDjangoHash } from '../src/accounts/django-hashers.ts';
import { hashPassword, verifyPassword } from '../src/accounts/passwords.ts';
import { csrfMatches, type AdminSession } from '../src/admin/sessions.ts';
import { checkClientSecret, hashClientSecret, storePlainClientSecret } from '../src/clients/secrets.ts';
import { KeyedTokens } from '../src/settings/keyed-tokens.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Names of values that hold a secret or something derived from one. */
const SECRET_NAME = /(secret|password|passw|csrf|xsrf|token|apikey|api_key|hash|digest|hmac|signature|presented|submitted|expected|actual|stored|verifier|challenge)$/i;
/** Names that end like a secret but are about one (its id, type, length, name…), not the secret itself. */
const ABOUT_A_SECRET = /(id|ids|type|hint|kind|length|name|names|count|prefix|scheme|method|endpoint|url|uri|at|ttl|exp|expiry|expires|format)$/i;

function terminalName(node: ts.Expression): string | undefined {
  let n: ts.Node = node;
  for (;;) {
    if (ts.isParenthesizedExpression(n) || ts.isNonNullExpression(n) || ts.isAsExpression(n) || ts.isTypeAssertionExpression(n) || ts.isAwaitExpression(n)) n = n.expression;
    else break;
  }
  if (ts.isIdentifier(n)) return n.text;
  if (ts.isPropertyAccessExpression(n)) return n.name.text;
  if (ts.isElementAccessExpression(n) && ts.isStringLiteralLike(n.argumentExpression)) return n.argumentExpression.text;
  if (ts.isCallExpression(n)) return terminalName(n.expression);
  return undefined;
}

const namesASecret = (node: ts.Expression) => {
  const name = terminalName(node);
  return name !== undefined && SECRET_NAME.test(name) && !ABOUT_A_SECRET.test(name);
};

/** A value that is not a secret whatever its name: a literal, typeof, undefined or null. */
function isConstant(node: ts.Expression): boolean {
  if (ts.isParenthesizedExpression(node)) return isConstant(node.expression);
  return (
    ts.isLiteralExpression(node) ||
    ts.isNoSubstitutionTemplateLiteral(node) ||
    ts.isTypeOfExpression(node) ||
    node.kind === ts.SyntaxKind.NullKeyword ||
    node.kind === ts.SyntaxKind.TrueKeyword ||
    node.kind === ts.SyntaxKind.FalseKeyword ||
    (ts.isIdentifier(node) && node.text === 'undefined') ||
    (ts.isPrefixUnaryExpression(node) && ts.isNumericLiteral(node.operand))
  );
}

const EQUALITY = new Set([ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken, ts.SyntaxKind.EqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsToken]);

interface Finding {
  where: string;
  code: string;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'public' || e.name === 'views' ? [] : sourceFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Every comparison in our sources that is not constant-time and involves a value named like a secret. */
function suspiciousComparisons(): { findings: Finding[]; files: number; comparisons: number } {
  const findings: Finding[] = [];
  let comparisons = 0;
  const files = ['src', 'interactions', 'adapters'].flatMap((d) => sourceFiles(path.join(root, d)));
  for (const file of files) {
    const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const report = (node: ts.Node) => {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart());
      findings.push({ where: `${path.relative(root, file)}:${line + 1}`, code: node.getText().replace(/\s+/g, ' ') });
    };
    const visit = (node: ts.Node) => {
      if (ts.isBinaryExpression(node) && EQUALITY.has(node.operatorToken.kind)) {
        comparisons++;
        const sides = [node.left, node.right];
        if (!sides.some(isConstant) && sides.some(namesASecret)) report(node);
      }
      if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
        const method = node.expression.name.text;
        const operands = [node.expression.expression, ...node.arguments];
        if ((method === 'equals' || method === 'compare' || method === 'localeCompare') && operands.some(namesASecret)) report(node);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { findings, files: files.length, comparisons };
}

test('no secret, token, key, CSRF token or password in our sources is compared with ===, !==, ==, != or Buffer#equals', (t) => {
  const { findings, files, comparisons } = suspiciousComparisons();
  t.true(files > 40, `only ${files} files scanned`);
  t.true(comparisons > 100, `only ${comparisons} comparisons seen: is the scan looking at the code?`);
  t.deepEqual(findings, [], 'compare these with crypto.timingSafeEqual (or compare digests of them)');
});

test('the scan does catch a plain comparison of secrets (so a clean result means something)', (t) => {
  const probe = ts.createSourceFile('probe.ts', 'if (presented === client.secret || csrf !== expectedCsrf || a.clientId === b.clientId || token === undefined) {}', ts.ScriptTarget.Latest, true);
  const caught: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isBinaryExpression(node) && EQUALITY.has(node.operatorToken.kind) && ![node.left, node.right].some(isConstant) && [node.left, node.right].some(namesASecret)) caught.push(node.getText());
    ts.forEachChild(node, visit);
  };
  visit(probe);
  t.deepEqual(caught, ['presented === client.secret', 'csrf !== expectedCsrf']);
});

// Behaviour: every comparison site goes through crypto.timingSafeEqual.

let calls = 0;
const original = crypto.timingSafeEqual;

/** Runs `work` with crypto.timingSafeEqual wrapped (live in every module's named import); how many calls it made. */
async function countingTimingSafeEqual(work: () => Promise<unknown> | unknown): Promise<number> {
  calls = 0;
  crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    calls++;
    return original(a, b);
  }) as typeof crypto.timingSafeEqual;
  syncBuiltinESMExports();
  try {
    await work();
    return calls;
  } finally {
    crypto.timingSafeEqual = original;
    syncBuiltinESMExports();
  }
}

/** Checks one comparison site: the right secret passes, wrong ones fail, and each call compared in constant time. */
async function constantTime(t: import('ava').ExecutionContext, what: string, check: (presented: string) => Promise<boolean> | boolean, right: string, wrongs: string[]) {
  t.is(await countingTimingSafeEqual(async () => t.true(await check(right), `${what}: the right secret is refused`)), 1, `${what}: the right secret was not compared with timingSafeEqual`);
  for (const wrong of wrongs) {
    const n = await countingTimingSafeEqual(async () => t.false(await check(wrong), `${what}: a wrong secret is accepted`));
    t.is(n, 1, `${what}: ${JSON.stringify(wrong.slice(0, 20))}… was not compared with timingSafeEqual`);
  }
}

/** A wrong value of the same length as `right`, differing in its first or its last character. */
const flip = (right: string, at: 'first' | 'last') => {
  const i = at === 'first' ? 0 : right.length - 1;
  return right.slice(0, i) + (right[i] === 'A' ? 'B' : 'A') + right.slice(i + 1);
};

test.serial('client secrets (our HMAC form) are compared in constant time', async (t) => {
  const key = crypto.randomBytes(32);
  const secret = crypto.randomBytes(32).toString('base64url');
  const stored = hashClientSecret(secret, key);
  await constantTime(t, 'client secret', async (p) => (await checkClientSecret(stored, p, key)).matches, secret, [flip(secret, 'first'), flip(secret, 'last'), '', 'x']);
});

test.serial('client secrets kept plain for HS256 are compared in constant time, through digests (so their length does not show)', async (t) => {
  const secret = crypto.randomBytes(32).toString('base64url');
  const stored = storePlainClientSecret(secret);
  await constantTime(t, 'plain client secret', async (p) => (await checkClientSecret(stored, p, crypto.randomBytes(32))).matches, secret, [flip(secret, 'last'), `${secret}x`, '']);
});

test.serial('API keys and admin tokens are compared in constant time', async (t) => {
  for (const prefix of ['ghk_', 'gha_']) {
    const tokens = new KeyedTokens(prefix, crypto.randomBytes(32));
    const issued = tokens.issue();
    const { secret } = tokens.parse(issued.token)!;
    await constantTime(t, `${prefix} token`, (p) => tokens.matches(issued.secretHash, p), secret, [flip(secret, 'first'), flip(secret, 'last')]);
  }
});

test.serial('admin CSRF tokens are compared in constant time', async (t) => {
  const session: AdminSession = { userId: 'u', csrf: crypto.randomBytes(32).toString('base64url'), createdAt: new Date(), lastSeenAt: new Date() };
  await constantTime(t, 'admin CSRF', (p) => csrfMatches(session, p), session.csrf, [flip(session.csrf, 'first'), flip(session.csrf, 'last')]);
});

test.serial('interaction CSRF tokens (sign-in and consent forms) are compared in constant time', async (t) => {
  const token = crypto.randomBytes(32).toString('base64url');
  const ctx = { cookies: { get: () => token } } as unknown as Koa.Context;
  await constantTime(t, 'interaction CSRF', (p) => csrfValid(ctx, p), token, [flip(token, 'first'), flip(token, 'last')]);
});

test.serial('passwords (scrypt) and imported Django PBKDF2 hashes are compared in constant time', async (t) => {
  const password = 'correct horse battery staple';
  const stored = await hashPassword(password);
  await constantTime(t, 'scrypt password', (p) => verifyPassword(stored, p), password, ['correct horse battery stapl3']);
  const salt = 'seasalt1234';
  const django = `pbkdf2_sha256$1000$${salt}$${crypto.pbkdf2Sync(password, salt, 1000, 32, 'sha256').toString('base64')}`;
  await constantTime(t, 'Django PBKDF2 password', (p) => verifyDjangoHash(django, p), password, ['Correct horse battery staple', '']);
});

// A CSRF token the length of a real one but not ASCII: the byte lengths differ, which
// timingSafeEqual refuses with a RangeError (a 500) unless the bytes are what is measured.
test.serial('a CSRF token of the right length in non-ASCII characters is simply refused, not an error', (t) => {
  const session: AdminSession = { userId: 'u', csrf: crypto.randomBytes(32).toString('base64url'), createdAt: new Date(), lastSeenAt: new Date() };
  const odd = 'é'.repeat(session.csrf.length);
  t.notThrows(() => t.false(csrfMatches(session, odd)));
  const ctx = { cookies: { get: () => session.csrf } } as unknown as Koa.Context;
  t.notThrows(() => t.false(csrfValid(ctx, odd)));
});
