import test from 'ava';
import { basicAuth, rawBasicAuth } from './support/http.ts';
import { UserAgent } from './support/user-agent.ts';

const decoded = (header: string) => Buffer.from(header.replace(/^Basic /, ''), 'base64').toString('utf8');

test('basicAuth form-urlencodes the client id and the secret before joining them, as RFC 6749 §2.3.1 says', (t) => {
  t.is(decoded(basicAuth('my client', 's3cr:t+%/~é')), 'my+client:s3cr%3At%2B%25%2F%7E%C3%A9');
  t.is(decoded(basicAuth('K7j-hevstKeIZ8stEUCk-RJr', 'Dlted0i__Ms11io')), 'K7j-hevstKeIZ8stEUCk-RJr:Dlted0i__Ms11io');
});

test('rawBasicAuth sends id:secret as given, for a test that means to', (t) => {
  t.is(decoded(rawBasicAuth('my client', 's3cr:t')), 'my client:s3cr:t');
});

test("a UserAgent's cookies can be read, planted and sent without reaching into it", (t) => {
  const agent = new UserAgent();
  t.is(agent.cookieHeader(), '');
  agent.setCookie('a', '1');
  agent.setCookie('b', '2');
  t.is(agent.cookie('a'), '1');
  t.is(agent.cookie('c'), undefined);
  t.deepEqual(agent.cookieEntries(), [
    ['a', '1'],
    ['b', '2'],
  ]);
  t.is(agent.cookieHeader(), 'a=1; b=2');
});
