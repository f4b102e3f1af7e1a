import fc from 'fast-check';

/**
 * Known-nasty strings: what attackers, broken clients and copy-paste accidents send. Every
 * hostile-input test draws from these as well as from fast-check's own generators.
 */
export const NASTY_STRINGS: readonly string[] = [
  // Empty, blank and whitespace
  '',
  ' ',
  '\t',
  '\u00a0',
  '\u3000',
  '\u200b',
  '\ufeff',
  // Control characters
  '\0',
  'a\0b',
  'admin\0',
  '\x01\x02\x03\x7f',
  '\x1b[31mred\x1b[0m',
  '\b\b\b\b',
  // CRLF and header injection
  '\r\n',
  'a\r\nSet-Cookie: gatehouse.admin=stolen',
  'x\r\nLocation: https://evil.example/\r\n\r\n<html>',
  '%0d%0aSet-Cookie:%20injected=1',
  '\n\nHTTP/1.1 200 OK\n',
  'a\rb\nc',
  // Odd Unicode: RTL override, combining marks, lone surrogates, full-width, look-alikes, emoji
  '\u202eevil\u202c',
  'gpj.exe\u202etxt',
  'a\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301',
  'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L',
  '\ud800',
  '\udfff',
  'a\ud800b',
  '\udc00\ud800',
  '\uffff\ufffe',
  '\ufffd',
  'ａｄｍｉｎ',
  '＜script＞alert(1)＜/script＞',
  'аdmin', // Cyrillic а
  'ℌ𝔢𝔩𝔩𝔬',
  '💩',
  '👨‍👩‍👧‍👦',
  '🏳️‍🌈',
  '\u{10ffff}',
  'ǅ ß ẞ ﬁ İ ı',
  '\u0000\u0085\u2028\u2029',
  // SQL injection
  "'",
  '"',
  "' OR '1'='1",
  "' OR 1=1 --",
  "'; DROP TABLE users; --",
  "1; DELETE FROM clients WHERE '1'='1",
  "\\'; select pg_sleep(5); --",
  "' UNION SELECT secret_hash, id FROM api_keys --",
  '%',
  '_',
  '%_%',
  '\\',
  // Template and expression injection
  '{{7*7}}',
  '{{constructor.constructor("return process")().exit()}}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder is the attack here
  '${7*7}',
  '#{7*7}',
  '<%= 7*7 %>',
  '{% raw %}{{7*7}}{% endraw %}',
  '{{ range.constructor("return global.process.mainModule")() }}',
  // HTML and script
  '<script>alert(1)</script>',
  '"><script>alert(1)</script>',
  "'><img src=x onerror=alert(1)>",
  '<svg/onload=alert(1)>',
  'javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  '</textarea><script>alert(1)</script>',
  '&lt;&amp;&#39;&quot;',
  '<!--',
  ']]>',
  // Path traversal and URL tricks
  '../../../../etc/passwd',
  '..%2f..%2f..%2fetc%2fpasswd',
  '..\\..\\..\\windows\\win.ini',
  '%2e%2e%2f',
  '/./',
  '//evil.example',
  'https://evil.example/',
  'http://127.0.0.1:8765/callback/../evil',
  'http://127.0.0.1:8765/callback#frag',
  'http://127.0.0.1:8765@evil.example/callback',
  'file:///etc/passwd',
  '%00',
  '%',
  '%zz',
  '%E0%A4%A',
  '%ed%a0%80',
  '%c0%af',
  '?',
  '#',
  '&',
  '=',
  '+',
  ';',
  // JSON and prototype tricks
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  '{"__proto__":{"admin":true}}',
  '[]',
  '{}',
  'null',
  'undefined',
  'NaN',
  'true',
  '-0',
  '1e309',
  '0x10',
  '9'.repeat(400),
  '-1',
  '2147483648',
  '9007199254740993',
  // Token-ish shapes
  'Bearer',
  'Bearer ',
  'ghk_',
  'ghk__',
  'ghk_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
  'gha_',
  'gha_AAAAAAAAAAAAAAAA_' + 'A'.repeat(43),
  'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.',
  'eyJhbGciOiJIUzI1NiJ9..',
  'a.b.c.d.e',
  // Absurd lengths (the longest ones come from hugeString())
  'A'.repeat(256),
  'A'.repeat(4096),
  '%'.repeat(2048),
  '\u202e'.repeat(1000),
  '💩'.repeat(2000),
];

/** Markers that must never come back verbatim in an HTML page (reflected script). */
export const SCRIPT_MARKERS = ['<script>alert(1)', '<img src=x onerror=alert(1)>', '<svg/onload=alert(1)>'];

/**
 * What must never be in a response: stack frames, file paths of the server, and the names of
 * the parts inside (database driver, query builder, JavaScript error types).
 */
export const LEAK_PATTERNS: readonly RegExp[] = [
  /at .*\.[cm]?[tj]s:\d+/,
  /\bat (async )?[\w.<>]+ \(/,
  /node_modules/,
  /SqliteError/,
  /SQLITE_/,
  /\bknex\b/i,
  /\bTypeError\b/,
  /\bReferenceError\b/,
  /\bRangeError\b/,
  /\bSyntaxError\b/,
  /Maximum call stack/,
  /\/work\/|\/src\/|\/home\//,
  /syntax error at or near/i,
  /violates .* constraint/i,
  /duplicate key value/i,
];

const htmlEscaped = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/**
 * The first leak pattern found in `text`, or undefined. `echoes` are the inputs sent: a page may
 * show them back (a login form keeps the username), so they are taken out before looking.
 */
export function leakIn(text: string, echoes: readonly string[] = []): string | undefined {
  let rest = text;
  for (const echo of echoes) {
    if (echo.length < 3) continue;
    for (const form of [echo, htmlEscaped(echo), JSON.stringify(echo).slice(1, -1)]) rest = rest.split(form).join('');
  }
  return LEAK_PATTERNS.find((p) => p.test(rest))?.source;
}

/** A long string: over the limits of every route (form bodies 16–32 KiB, JSON 64 KiB, provider 56 KiB). */
export const hugeString = (bytes: number, unit = 'A') => unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)));

/** One nasty string: from the corpus, from fast-check's Unicode and binary generators, or a mix. */
export function nastyString(options: { maxLength?: number } = {}): fc.Arbitrary<string> {
  const maxLength = options.maxLength ?? 300;
  const corpus = fc.constantFrom(...NASTY_STRINGS.filter((s) => s.length <= Math.max(maxLength, 10)));
  return fc.oneof(
    { weight: 4, arbitrary: corpus },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength }) },
    { weight: 2, arbitrary: fc.tuple(corpus, fc.string({ maxLength: 20 }), corpus).map(([a, b, c]) => `${a}${b}${c}`) },
  );
}

/** A nasty string that is not `except` (when a test must not send a valid value by accident). */
export const nastyStringExcept = (except: (s: string) => boolean, options: { maxLength?: number } = {}) =>
  nastyString(options).filter((s) => !except(s));

/** JSON texts that are not what any route wants: broken, wrong type, duplicate keys, deep, huge numbers. */
export const BROKEN_JSON: readonly string[] = [
  '',
  ' ',
  '{',
  '}',
  '{"a":',
  '{"a":1,}',
  "{'a':1}",
  '{a:1}',
  '[]',
  '[1,2,3]',
  'null',
  'true',
  '0',
  '"a string"',
  '{"a":1}{"b":2}',
  '{"a":1} trailing',
  '{"a":"\\ud800"}',
  '{"a":"\\u0000"}',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":1e400}',
  '{"a":-0}',
  '{"__proto__":{"isAdmin":true,"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  '{"a":1,"a":2}',
  '\ufeff{"a":1}',
  '{"a":"' + 'x'.repeat(100) + '"}',
  '[' .repeat(10_000) + ']'.repeat(10_000),
  '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000),
  '{"a":'.repeat(12_000) + '{}' + '}'.repeat(12_000),
  '['.repeat(30_000) + ']'.repeat(30_000),
  '{"a":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}',
  '\x00\x01\x02',
  '\xff\xfe{\x00"\x00a\x00"\x00:\x001\x00}\x00',
];

/** A JSON text drawn from BROKEN_JSON, from fast-check's JSON generator, or plain nasty text. */
export function hostileJsonText(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...BROKEN_JSON) },
    { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 2, arbitrary: nastyString() },
    { weight: 2, arbitrary: fc.dictionary(nastyString({ maxLength: 40 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }).map((o) => JSON.stringify(o)) },
  );
}

/** Content types a client might send, right and wrong. */
export const CONTENT_TYPES: readonly (string | undefined)[] = [
  undefined,
  '',
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=klingon',
  'application/merge-patch+json',
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=klingon',
  'application/x-www-form-urlencoded; charset=utf-16le',
  'multipart/form-data; boundary=----x',
  'multipart/form-data',
  'text/plain',
  'text/html',
  'application/xml',
  'application/octet-stream',
  '*/*',
  'application/',
  ';;;',
  'application/json, application/x-www-form-urlencoded',
  'application/jsonx',
  'APPLICATION/JSON',
  'application/json; boundary=\u00ff',
];

/** Methods a client may send. Methods Koa's router does not know (TRACE, PROPFIND …) are in UNKNOWN_METHODS. */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'FOO'] as const;
export const UNKNOWN_METHODS = ['TRACE', 'PROPFIND', 'MKCOL', 'LOCK', 'SEARCH', 'PURGE'] as const;
