/**
 * Which user events change the `details` (sequence and change date) that user reads return.
 *
 * A command answers with the sequence of the last event it wrote. ZITADEL's reads (GetUserByID,
 * ListUsers, v1 and v2) answer from its users projection instead, whose sequence and change date
 * move only on the events it reduces with them (internal/query/projection/user.go): creation,
 * state changes, username, profile, email, phone, avatar and machine changes. Codes, password
 * changes and checks, links, metadata and tokens leave them, so a read after a password change
 * shows the details from before it.
 */
export const PROJECTED_EVENT_TYPES: readonly string[] = [
  "user.human.added",
  "user.human.selfregistered",
  "user.machine.added",
  "user.machine.changed",
  "user.machine.secret.set",
  "user.machine.secret.removed",
  "user.locked",
  "user.unlocked",
  "user.deactivated",
  "user.reactivated",
  "user.username.changed",
  "user.domain.claimed",
  "user.human.profile.changed",
  "user.human.email.changed",
  "user.human.email.verified",
  "user.human.phone.changed",
  "user.human.phone.removed",
  "user.human.phone.verified",
  "user.human.avatar.added",
  "user.human.avatar.removed",
];
const PROJECTED_EVENTS: ReadonlySet<string> = new Set(PROJECTED_EVENT_TYPES);

/**
 * The sequence of the last of `events` (numbered from `firstSequence`) that moves a read's
 * details, or undefined when none does.
 */
export function projectedSequence(events: ReadonlyArray<{ type: string }>, firstSequence: number): number | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    if (PROJECTED_EVENTS.has(events[i]!.type)) return firstSequence + i;
  }
  return undefined;
}
