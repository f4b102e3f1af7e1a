/** `users create|list|show|set-password|disable|enable|grant-admin|remove-admin|unlock|reset-link|mfa reset`. */
import type { Services } from '../../services.ts';
import type { User } from '../../accounts/service.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { userJson } from '../../admin/representations.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';
import { readPassword } from '../password.ts';

function userText(user: User): string {
  return [
    `id (sub):  ${user.id}`,
    `username:  ${user.username}`,
    `email:     ${user.email}${user.emailVerified ? ' (verified)' : ''}`,
    ...(user.name ? [`name:      ${user.name}`] : []),
    `admin:     ${user.isAdmin ? 'yes' : 'no'}`,
    `status:    ${user.disabled ? 'disabled' : 'active'}${user.mustResetPassword ? ', must reset password' : ''}`,
  ].join('\n');
}

const userOptions = {
  username: { type: 'string' },
  email: { type: 'string' },
  name: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  admin: { type: 'boolean' },
  'email-verified': { type: 'boolean' },
  search: { type: 'string' },
  'send-verification': { type: 'boolean' },
  send: { type: 'boolean' },
} satisfies Options;

async function run(services: Services, { sub, args, out, stdin }: Invocation): Promise<void> {
  const { values, positionals } = parse(args, userOptions);
  const password = () => readPassword({ fromStdin: Boolean(values['password-stdin']), stdin });
  switch (sub) {
    case 'create': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (!values.username) throw new UsageError('missing --username');
      if (!values.email) throw new UsageError('missing --email');
      if (values['send-verification'] && !services.config.mail)
        throw new UsageError('--send-verification needs mail: set GATEHOUSE_SMTP_URL and GATEHOUSE_MAIL_FROM');
      const user = await services.admin.createUser(CLI_ACTOR, {
        username: values.username,
        email: values.email,
        name: values.name,
        password: await password(),
        isAdmin: Boolean(values.admin),
        emailVerified: Boolean(values['email-verified']),
      });
      if (!values['send-verification']) return out.print(userText(user), userJson(user));
      // The user exists either way; a mail that cannot go out is said, and the exit code says it too.
      const { expiresAt } = await services.emailVerification.send(user.id);
      return out.print(`${userText(user)}\nverification mail sent to ${user.email} (link valid until ${expiresAt.toISOString()})`, {
        ...userJson(user),
        verification_sent: true,
      });
    }
    case 'list': {
      const users = await services.accounts.list(values.search);
      return out.print(
        users.length
          ? users.map((u) => `${u.id}  ${u.username}  ${u.email}${u.isAdmin ? '  [admin]' : ''}${u.disabled ? '  [disabled]' : ''}`).join('\n')
          : 'no users',
        users.map(userJson),
      );
    }
    case 'show': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      return out.print(userText(user), userJson(user));
    }
    case 'set-password': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserPassword(CLI_ACTOR, user.id, await password());
      return out.print(`password changed for ${updated.username}`, userJson(updated));
    }
    case 'disable':
    case 'enable': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserDisabled(CLI_ACTOR, user.id, sub === 'disable');
      return out.print(`${updated.username} is ${updated.disabled ? 'disabled; its sessions and tokens are revoked' : 'enabled'}`, userJson(updated));
    }
    case 'grant-admin':
    case 'remove-admin': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserAdmin(CLI_ACTOR, user.id, sub === 'grant-admin');
      return out.print(`${updated.username} is ${updated.isAdmin ? 'now an admin' : 'no longer an admin'}`, userJson(updated));
    }
    case 'unlock': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const { user: unlocked, cleared } = await services.admin.unlockUser(CLI_ACTOR, user.id);
      return out.print(`${unlocked.username} can sign in again from every address (${cleared} lock${cleared === 1 ? '' : 's'} and counters cleared)`, {
        ...userJson(unlocked),
        counters_cleared: cleared,
      });
    }
    case 'reset-link': {
      if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
      const named = values.username ?? positionals[0];
      if (!named) throw new UsageError('missing --username (or a user id)');
      const user = await services.accounts.resolve(named);
      const link = await services.admin.createResetLink(CLI_ACTOR, user.id, { send: Boolean(values.send) });
      const until = link.expiresAt.toISOString();
      if (link.sent) return out.print(`reset link mailed to ${user.email} (valid once, until ${until})`, { sent: true, email: user.email, expires_at: until });
      return out.print(`${link.url}\nvalid once, until ${until}: hand it to ${user.username} yourself`, { url: link.url, expires_at: until });
    }
    case 'mfa': {
      if (positionals[0] !== 'reset') throw new UsageError('usage: users mfa reset ID|USERNAME');
      if (positionals.length > 2) throw new UsageError(`unexpected argument ${positionals[2]}`);
      const user = await services.accounts.resolve(requireId(positionals.slice(1), 'user id or username'));
      const { user: reset, removed } = await services.admin.resetUserMfa(CLI_ACTOR, user.id);
      const said = removed
        ? `${reset.username}'s authenticator app and recovery codes are removed: they sign in with their password alone`
        : `${reset.username} had no authenticator app; nothing changed`;
      return out.print(said, { ...userJson(reset), authenticator_removed: removed });
    }
    default:
      throw new UsageError(`unknown users command ${sub ?? '(none)'}`);
  }
}

export const users: Command = {
  subcommands: ['create', 'list', 'show', 'set-password', 'disable', 'enable', 'grant-admin', 'remove-admin', 'unlock', 'reset-link', 'mfa'],
  options: userOptions,
  run,
};
