import type { MailMessage } from './mailer.ts';

/**
 * The mails Gatehouse sends. Each holds a link and nothing secret besides it: never a password.
 * Plain text first (every client shows it), and the same words as simple HTML.
 */

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function compose(to: string, subject: string, lines: string[], link: { url: string; label: string }, after: string[]): MailMessage {
  const text = [...lines, '', link.url, '', ...after, '', '-- Gatehouse'].join('\n');
  const paragraphs = (ps: string[]) => ps.map((p) => `<p>${escapeHtml(p)}</p>`).join('\n');
  const html = `<!doctype html>
<html lang="en"><body style="font-family: sans-serif; line-height: 1.5">
${paragraphs(lines)}
<p><a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a></p>
<p style="color: #555; font-size: 90%">${escapeHtml(link.url)}</p>
${paragraphs(after)}
<p style="color: #555">Gatehouse</p>
</body></html>`;
  return { to, subject, text, html };
}

export function passwordResetMail(to: string, username: string, url: string, validMinutes: number): MailMessage {
  return compose(
    to,
    'Reset your password',
    [
      `Someone (hopefully you) asked to reset the password of the account "${username}".`,
      `Open this link within ${validMinutes} minutes to choose a new password:`,
    ],
    { url, label: 'Choose a new password' },
    ['The link works once. If you did not ask for it, ignore this mail: your password stays as it is.'],
  );
}

export function verificationMail(to: string, username: string, url: string, validHours: number): MailMessage {
  return compose(
    to,
    'Confirm your email address',
    [`Please confirm that ${to} is the email address of the account "${username}".`, `Open this link within ${validHours} hours:`],
    { url, label: 'Confirm my address' },
    ['If you did not expect this mail, ignore it: nothing changes.'],
  );
}
