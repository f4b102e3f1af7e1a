/**
 * The layout's dependency rules (README, "Layout"), read from the code itself: every import and
 * re-export in src/, adapters/, interactions/ and migrations/ (static, dynamic with a literal, and
 * `import('…')` types; type-only imports count too: knowing a library's types is knowing it),
 * parsed with TypeScript's own parser. A broken rule names each offending import as
 * "file → import", the import as a path from the repository root or a package name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCANNED = ['src', 'adapters', 'interactions', 'migrations'];

interface Import {
  /** The importing file, from the repository root: `src/app.ts`. */
  file: string;
  /** A module of ours as a path from the repository root (`adapters/knex.ts`), or a package name (`oidc-provider`, `@koa/router`, `node:fs`). */
  target: string;
}

interface Rule {
  name: string;
  /** Whether this import breaks the rule. */
  breaks(imp: Import): boolean;
}

/** A specifier as a path from the repository root (relative ones) or its package name. */
function targetOf(file: string, specifier: string): string {
  if (specifier.startsWith('.')) return path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  if (specifier.startsWith('node:')) return specifier;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Every module `source` (the text of `file`) imports or re-exports. */
function importsOf(file: string, source: string): Import[] {
  const found: Import[] = [];
  const add = (node: ts.Node | undefined) => {
    if (node && ts.isStringLiteralLike(node)) found.push({ file, target: targetOf(file, node.text) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS));
  return found;
}

/** The TypeScript files under the scanned folders, by path from the repository root. */
function treeFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const top of SCANNED) {
    for (const entry of fs.readdirSync(path.join(ROOT, top), { recursive: true, encoding: 'utf8' })) {
      const file = path.posix.join(top, entry.split(path.sep).join('/'));
      if (/\.[cm]?ts$/.test(file) && fs.statSync(path.join(ROOT, file)).isFile()) files.set(file, fs.readFileSync(path.join(ROOT, file), 'utf8'));
    }
  }
  return files;
}

const importsOfAll = (files: Map<string, string>) => [...files].flatMap(([file, source]) => importsOf(file, source));

/** "file → import" for each import that breaks `rule`, in file order. */
const violations = (rule: Rule, imports: Import[]) =>
  imports
    .filter((imp) => rule.breaks(imp))
    .map((imp) => `${imp.file} → ${imp.target}`)
    .sort();

/** `module` is `name` (with or without its extension) or, for `name/`, anything under it. */
const is = (module: string, name: string) =>
  name.endsWith('/') ? module.startsWith(name) : module.replace(/\.[cm]?[jt]s$/, '') === name.replace(/\.[cm]?[jt]s$/, '');
const isPackage = (module: string, ...names: string[]) => names.some((name) => module === name);

/** The oidc-provider boundary: src/oidc/, and adapters/ (its storage contract). */
const inOidcBoundary = (file: string) => is(file, 'src/oidc/') || is(file, 'adapters/');
/** The services wiring: builds the adapters it hands to src/oidc/. */
const SERVICES_WIRING = 'src/services.ts';
/** Route modules: HTTP in and out, storage only through services. */
const isRouteModule = (file: string) => /(^|[/-])routes\.ts$/.test(file) || is(file, 'src/admin/pages/');
/** Domain services: rules and storage, no HTTP. */
const DOMAINS = ['accounts', 'clients', 'keys', 'scopes', 'apikeys', 'userdata', 'settings'];
const isDomainService = (file: string) => DOMAINS.some((domain) => is(file, `src/${domain}/`)) && !isRouteModule(file);
/** The entry points: nothing builds on them; the CLI's own modules build on each other. */
const isEntryPoint = (module: string) => is(module, 'src/server.ts') || is(module, 'src/cli.ts') || is(module, 'src/cli/');
const inCli = (file: string) => is(file, 'src/cli.ts') || is(file, 'src/cli/');

const RULES: Rule[] = [
  {
    name: 'only src/oidc/ (and adapters/, its storage) imports oidc-provider',
    breaks: ({ file, target }) => !inOidcBoundary(file) && isPackage(target, 'oidc-provider'),
  },
  {
    name: 'only src/oidc/ and the services wiring import adapters/',
    breaks: ({ file, target }) => !inOidcBoundary(file) && file !== SERVICES_WIRING && is(target, 'adapters/'),
  },
  {
    name: 'route modules do not import knex: they reach storage through services',
    breaks: ({ file, target }) => isRouteModule(file) && isPackage(target, 'knex'),
  },
  {
    name: 'domain services do not import Koa',
    breaks: ({ file, target }) => isDomainService(file) && (isPackage(target, 'koa', '@koa/router') || /^(@koa\/|koa-)/.test(target)),
  },
  {
    name: 'nothing imports the entry points (src/server.ts, src/cli.ts, src/cli/)',
    breaks: ({ file, target }) => isEntryPoint(target) && !inCli(file),
  },
  {
    name: 'migrations import nothing of the application (src/, adapters/, interactions/)',
    breaks: ({ file, target }) => is(file, 'migrations/') && ['src/', 'adapters/', 'interactions/'].some((dir) => is(target, dir)),
  },
];

const tree = importsOfAll(treeFiles());

test('the scan reads the tree: files in every scanned folder, and the imports it knows are there', (t) => {
  const files = new Set(tree.map((imp) => imp.file.split('/')[0]));
  t.deepEqual([...files].sort(), [...SCANNED].sort());
  t.true(
    tree.some((imp) => imp.file === 'src/services.ts' && is(imp.target, 'adapters/')),
    'src/services.ts builds the adapters',
  );
  t.true(
    tree.some((imp) => is(imp.target, 'src/config.ts')),
    'someone imports src/config.ts',
  );
});

for (const rule of RULES) {
  test(rule.name, (t) => {
    const found = violations(rule, tree);
    for (const line of found) t.log(line);
    t.deepEqual(found, [], 'each import listed breaks the rule');
  });
}

test('a probe: each rule fails on a small tree that breaks it, for every way of importing, and passes the imports it allows', (t) => {
  const fixture = new Map<string, string>([
    ['src/app.ts', "import type Provider from 'oidc-provider';\nimport { KnexAdapter } from '../adapters/knex.ts';\nimport { loadConfig } from './config.ts';"],
    ['src/services.ts', "import { KnexAdapter } from '../adapters/knex.ts';\nimport type { Provider } from 'oidc-provider';"],
    ['src/oidc/provider.ts', "import Provider, { errors } from 'oidc-provider';\nexport { adapterFor } from '../../adapters/index.ts';"],
    ['adapters/knex.ts', "import type { Adapter } from 'oidc-provider';\nimport { rowOf } from './payload-row.ts';"],
    ['src/grants/service.ts', "type Grant = InstanceType<import('oidc-provider').default['Grant']>;"],
    ['src/admin/pages/users.ts', "import type { Knex } from 'knex';"],
    ['src/userdata/routes.ts', "export type { Knex } from 'knex';\nimport Router from '@koa/router';"],
    ['interactions/routes.ts', "import knex = require('knex');"],
    ['src/accounts/service.ts', "const { default: Router } = await import('@koa/router');\nimport type { Knex } from 'knex';"],
    ['src/keys/service.ts', "import type Koa from 'koa';\nimport { koaBody } from 'koa-body';"],
    ['src/health/checks.ts', "import { main } from '../server.ts';\nimport { run } from '../cli/index.ts';"],
    ['src/cli/commands/users.ts', "import { usage } from '../usage.ts';\nimport { run } from '../../cli.ts';"],
    ['src/cli.ts', "import { dispatch } from './cli/index.ts';"],
    ['migrations/20260101000000_x.ts', "import type { Knex } from 'knex';\nimport { hashPassword } from '../src/accounts/passwords.ts';"],
  ]);
  const imports = importsOfAll(fixture);
  const expected: Record<string, string[]> = {
    'only src/oidc/ (and adapters/, its storage) imports oidc-provider': [
      'src/app.ts → oidc-provider',
      'src/grants/service.ts → oidc-provider',
      'src/services.ts → oidc-provider',
    ],
    'only src/oidc/ and the services wiring import adapters/': ['src/app.ts → adapters/knex.ts'],
    'route modules do not import knex: they reach storage through services': [
      'interactions/routes.ts → knex',
      'src/admin/pages/users.ts → knex',
      'src/userdata/routes.ts → knex',
    ],
    'domain services do not import Koa': ['src/accounts/service.ts → @koa/router', 'src/keys/service.ts → koa', 'src/keys/service.ts → koa-body'],
    'nothing imports the entry points (src/server.ts, src/cli.ts, src/cli/)': [
      'src/health/checks.ts → src/cli/index.ts',
      'src/health/checks.ts → src/server.ts',
    ],
    'migrations import nothing of the application (src/, adapters/, interactions/)': ['migrations/20260101000000_x.ts → src/accounts/passwords.ts'],
  };
  t.deepEqual(
    Object.keys(expected),
    RULES.map((rule) => rule.name),
    'the probe covers every rule',
  );
  for (const rule of RULES) t.deepEqual(violations(rule, imports), expected[rule.name], rule.name);
  t.deepEqual(
    violations(
      { name: 'everything', breaks: () => true },
      importsOfAll(new Map([['src/x.ts', "// import 'not-an-import';\nconst s = \"import 'nor-this'\";"]])),
    ),
    [],
    'comments and strings are not imports',
  );
});
