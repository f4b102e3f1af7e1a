import type { Knex } from 'knex';
import { djangoHashProblem, isDjangoHash, isUnusableDjangoPassword } from '../../accounts/django-hashers.ts';
import { usernameKey } from '../../accounts/service.ts';
import { ValidationError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { collisionReason, provenanceOf, recordImported } from './provenance.ts';
import { clip, fieldErrors, type Collision, type UserReport } from './report.ts';
import type { DotData, DotUser } from './source.ts';

/**
 * DOT's users become Gatehouse users with the same subject, keeping a Django password hash
 * Gatehouse can check (re-hashed at the first sign-in); a user Gatehouse has that this source
 * did not import is a collision, and one it imported before is only ever disabled.
 */

interface PlannedUser {
  id: string;
  username: string;
  email: string;
  name: string;
  isAdmin: boolean;
  disabled: boolean;
  passwordHash: string | null;
  notes: string[];
}

function planUser(u: DotUser): PlannedUser {
  const notes: string[] = [];
  let passwordHash: string | null = u.password;
  const hashProblem = isDjangoHash(u.password) ? djangoHashProblem(u.password) : undefined;
  if (isUnusableDjangoPassword(u.password) || !u.password) {
    passwordHash = null;
    notes.push('has no usable password in DOT: imported as "must reset", cannot sign in until an operator sets one');
  } else if (!isDjangoHash(u.password)) {
    passwordHash = null;
    notes.push(`password hash format "${clip(u.password.split('$')[0]!, 40)}" is not supported: imported as "must reset"`);
  } else if (hashProblem) {
    passwordHash = null;
    notes.push(`password hash refused (${hashProblem}): imported as "must reset"`);
  } else {
    notes.push('password kept (Django hash); re-hashed with scrypt at the first sign-in');
  }
  if (!u.isActive) notes.push('inactive in DOT: imported disabled; its tokens are not carried over');
  if (u.isStaff || u.isSuperuser) notes.push('staff/superuser in DOT: Gatehouse admin');
  return {
    id: String(u.id),
    username: u.username,
    email: u.email,
    name: `${u.firstName} ${u.lastName}`.trim(),
    isAdmin: u.isStaff || u.isSuperuser,
    disabled: !u.isActive,
    passwordHash,
    notes,
  };
}

export interface UsersOutcome {
  reports: UserReport[];
  collisions: Collision[];
  /** Users DOT made inactive since they were imported: disabled once the run is committed (which revokes their tokens). */
  disabled: string[];
}

export async function importUsers(trx: Knex, data: DotData, services: Services, label: string): Promise<UsersOutcome> {
  const out: UsersOutcome = { reports: [], collisions: [], disabled: [] };
  for (const u of data.users) {
    const plan = planUser(u);
    const report: UserReport = { sub: plan.id, username: clip(plan.username), outcome: 'imported', notes: plan.notes };
    out.reports.push(report);
    const refuse = (reason: string, collision = false) => {
      report.outcome = 'refused';
      report.notes = [reason];
      if (collision) out.collisions.push({ kind: 'user', id: plan.id, name: report.username, reason });
    };

    const existing = await trx('users').where({ id: plan.id }).first();
    if (existing) {
      const provenance = await provenanceOf(trx, 'user', plan.id, label);
      if (provenance.from !== 'this source') {
        refuse(collisionReason(`sub ${plan.id} is Gatehouse user "${clip(String(existing.username))}", who`, provenance), true);
        continue;
      }
      // Imported before: Gatehouse owns the user now. Nothing the operator set is reverted
      // (username, email, name, password, admin flag, disabled); DOT can only disable.
      report.notes = ['already imported; kept as it is in Gatehouse (a re-run never loosens: it can only disable)'];
      if (existing.username !== plan.username || existing.email !== plan.email || existing.name !== plan.name) {
        report.notes.push("DOT's username, email or name differ from Gatehouse's: Gatehouse's are kept");
      }
      if (plan.disabled && !existing.disabled) {
        report.outcome = 'updated';
        report.notes.push('inactive in DOT now: disabled, and its sessions and tokens revoked');
        out.disabled.push(plan.id);
      } else {
        report.outcome = 'unchanged';
      }
      continue;
    }

    const holder = await trx('users')
      .where({ username_key: usernameKey(plan.username) })
      .first('id', 'username');
    if (holder) {
      const provenance = await provenanceOf(trx, 'user', String(holder.id), label);
      const what = `username "${clip(plan.username)}" is Gatehouse user ${holder.id}, who`;
      refuse(
        provenance.from === 'this source'
          ? `collides: username "${clip(plan.username)}" is already user ${holder.id} of this source (another DOT user of the same name, ignoring case): refused`
          : collisionReason(what, provenance),
        true,
      );
      continue;
    }

    try {
      await services.accounts.createImported(trx, plan);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      refuse(`refused: ${fieldErrors(err)} (the rules of users create)`);
      continue;
    }
    await recordImported(trx, 'user', plan.id, label);
  }
  return out;
}
