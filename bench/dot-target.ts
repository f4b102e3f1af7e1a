/**
 * django-oauth-toolkit (Debian's python3-django-oauth-toolkit) under gunicorn with two workers,
 * over SQLite, as the reference point for client-credentials tokens and introspection:
 * one confidential client, made through Django's ORM as DOT's admin would.
 * Skipped, with one line saying how to install it, where the packages are not there.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, spawnServer } from './processes.ts';
import { idleRss, type Target } from './targets.ts';

const PYTHON = '/usr/bin/python3';
const GUNICORN = '/usr/bin/gunicorn';
export const DOT_INSTALL = 'apt-get install -y python3-django-oauth-toolkit gunicorn';

/** Why django-oauth-toolkit cannot run here, or undefined when it can. */
export function dotMissing(): string | undefined {
  if (!fs.existsSync(PYTHON) || !fs.existsSync(GUNICORN)) return `gunicorn or ${PYTHON} not installed (${DOT_INSTALL})`;
  try {
    execFileSync(PYTHON, ['-c', 'import oauth2_provider, django'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `python3-django-oauth-toolkit not installed (${DOT_INSTALL})`;
  }
}

const SETTINGS = `
SECRET_KEY = ${JSON.stringify(randomBytes(24).toString('hex'))}
DEBUG = False
ALLOWED_HOSTS = ['*']
INSTALLED_APPS = ['django.contrib.auth', 'django.contrib.contenttypes', 'oauth2_provider']
MIDDLEWARE = []
ROOT_URLCONF = 'dotbench.urls'
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': 'db.sqlite3'}}
USE_TZ = True
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
OAUTH2_PROVIDER = {'SCOPES': {'read': 'read', 'write': 'write', 'introspection': 'introspection'}}
`;
const URLS = `
from django.http import HttpResponse
from django.urls import include, path
urlpatterns = [path('o/', include('oauth2_provider.urls', namespace='oauth2_provider')), path('ready', lambda request: HttpResponse('ready'))]
`;

export async function startDot(label = 'django-oauth-toolkit'): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-dot-'));
  fs.mkdirSync(path.join(dir, 'dotbench'));
  fs.writeFileSync(path.join(dir, 'dotbench', '__init__.py'), '');
  fs.writeFileSync(path.join(dir, 'dotbench', 'settings.py'), SETTINGS);
  fs.writeFileSync(path.join(dir, 'dotbench', 'urls.py'), URLS);
  fs.writeFileSync(path.join(dir, 'dotbench', 'wsgi.py'), 'from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n');
  const env = { ...process.env, DJANGO_SETTINGS_MODULE: 'dotbench.settings', PYTHONPATH: dir };
  execFileSync(PYTHON, ['-m', 'django', 'migrate', '-v', '0'], { cwd: dir, env, stdio: 'pipe' });
  const cc = { clientId: 'bench-cc', clientSecret: randomBytes(32).toString('base64url') };
  // DOT 1.7 keeps the secret as it is given; its introspection endpoint takes client Basic auth.
  execFileSync(
    PYTHON,
    [
      '-c',
      `import django; django.setup()
from oauth2_provider.models import Application
Application.objects.create(client_id=${JSON.stringify(cc.clientId)}, client_secret=${JSON.stringify(cc.clientSecret)}, client_type='confidential', authorization_grant_type='client-credentials', name='bench')`,
    ],
    { cwd: dir, env, stdio: 'pipe' },
  );
  const port = await freePort();
  const server = await spawnServer({
    name: label,
    script: 'dot',
    port,
    env: { DJANGO_SETTINGS_MODULE: 'dotbench.settings', PYTHONPATH: dir },
    // Two workers, as the steering bench ran it; threaded, so that they keep connections alive as
    // every other target here does (sync workers close each one, and the load's reconnects fail).
    command: {
      file: GUNICORN,
      args: ['-w', '2', '-k', 'gthread', '--threads', '4', '--keep-alive', '30', '-b', `127.0.0.1:${port}`, '--log-level', 'warning', 'dotbench.wsgi'],
      cwd: dir,
    },
    readyPath: '/ready',
    workers: 2,
  });
  const idle = await idleRss(server);
  const unsupported = '/unsupported';
  return {
    label,
    kind: 'bare',
    server,
    paths: { token: '/o/token/', introspect: '/o/introspect/', userinfo: unsupported, discovery: unsupported, authorize: unsupported },
    cc,
    signIns: {
      issuer: server.url,
      forms: { authorizePath: unsupported, tokenPath: '/o/token/', login: { action: /$^/, fields: {} as never }, consent: { action: /$^/, fields: {} } },
      client: { clientId: '', clientSecret: '', redirectUri: '', scope: '' },
      nextUser: () => ({ username: '', password: '' }),
    },
    mainUser: { username: '', password: '' },
    notes: ['django-oauth-toolkit (Debian package) under gunicorn, 2 workers (gthread, 4 threads each), SQLite; client-credentials and introspection only'],
    idleRssBytes: idle.bytes,
    idleProcesses: idle.processes,
    stop: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
