import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type ObjectDetails, ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type Details, DetailsSchema } from "../../gen/zitadel/object/v2/object_pb.js";
import { type User as UserV1, UserSchema as UserV1Schema, UserState as UserStateV1 } from "../../gen/zitadel/user_pb.js";
import { type User as UserV2, UserSchema as UserV2Schema, UserState as UserStateV2 } from "../../gen/zitadel/user/v2/user_pb.js";
import type { User } from "../domain/ports.js";

/**
 * `zitadel.v1.ObjectDetails` of a user. ZITADEL leaves change_date empty on create; we fill both
 * dates (equal on create), since a client can only be helped by a true change date.
 */
export function objectDetailsV1(user: User): ObjectDetails {
  return create(ObjectDetailsSchema, {
    sequence: BigInt(user.sequence),
    creationDate: timestampFromMs(user.createdAt),
    changeDate: timestampFromMs(user.changedAt),
    resourceOwner: user.orgId,
  });
}

/** `zitadel.v1.ObjectDetails` after a change: like ZITADEL, no creation date. */
export function changeDetailsV1(user: User): ObjectDetails {
  return create(ObjectDetailsSchema, {
    sequence: BigInt(user.sequence),
    changeDate: timestampFromMs(user.changedAt),
    resourceOwner: user.orgId,
  });
}

/** `zitadel.object.v2.Details` of a user. */
export function detailsV2(user: User): Details {
  return create(DetailsSchema, {
    sequence: BigInt(user.sequence),
    changeDate: timestampFromMs(user.changedAt),
    resourceOwner: user.orgId,
    creationDate: timestampFromMs(user.createdAt),
  });
}

/** `zitadel.object.v2.Details` after a change. */
export function changeDetailsV2(user: User): Details {
  return create(DetailsSchema, {
    sequence: BigInt(user.sequence),
    changeDate: timestampFromMs(user.changedAt),
    resourceOwner: user.orgId,
  });
}

/**
 * The details of a user read: the sequence and change date of ZITADEL's users projection (see
 * src/domain/user-details.ts), which a password change, a code or a link do not move.
 */
function readDetails(user: User) {
  const { sequence, changedAt } = user.projected ?? user;
  return { sequence: BigInt(sequence), changeDate: timestampFromMs(changedAt), resourceOwner: user.orgId };
}

/** `zitadel.v1.ObjectDetails` of a user read. */
function readDetailsV1(user: User): ObjectDetails {
  return create(ObjectDetailsSchema, { ...readDetails(user), creationDate: timestampFromMs(user.createdAt) });
}

/** `zitadel.object.v2.Details` of a user read (GetUserByID's and the user's). */
export function readDetailsV2(user: User): Details {
  return create(DetailsSchema, { ...readDetails(user), creationDate: timestampFromMs(user.createdAt) });
}

const STATE_V1 = {
  ACTIVE: UserStateV1.ACTIVE,
  INACTIVE: UserStateV1.INACTIVE,
  LOCKED: UserStateV1.LOCKED,
  INITIAL: UserStateV1.INITIAL,
} as const;

const STATE_V2 = {
  ACTIVE: UserStateV2.ACTIVE,
  INACTIVE: UserStateV2.INACTIVE,
  LOCKED: UserStateV2.LOCKED,
  INITIAL: UserStateV2.INITIAL,
} as const;

const optionalTimestamp = (ms: number | undefined): Timestamp | undefined => (ms === undefined ? undefined : timestampFromMs(ms));

/** Login names as the store read them (see src/store/login-names.ts), else the username. */
const loginNamesOf = (user: User) => user.loginNames ?? [user.username];
const preferredLoginNameOf = (user: User) => user.preferredLoginName ?? user.username;

export function userToV1(user: User): UserV1 {
  const { human, machine } = user;
  return create(UserV1Schema, {
    id: user.id,
    details: readDetailsV1(user),
    state: STATE_V1[user.state],
    userName: user.username,
    loginNames: loginNamesOf(user),
    preferredLoginName: preferredLoginNameOf(user),
    type: human
      ? {
          case: "human",
          value: {
            profile: {
              firstName: human.profile.givenName,
              lastName: human.profile.familyName,
              nickName: human.profile.nickName,
              displayName: human.profile.displayName,
              preferredLanguage: human.profile.preferredLanguage,
              gender: human.profile.gender,
            },
            email: { email: human.email.address, isEmailVerified: human.email.verified },
            phone: { phone: human.phone.number, isPhoneVerified: human.phone.verified },
            passwordChanged: optionalTimestamp(human.passwordChangedAt),
          },
        }
      : { case: "machine", value: { name: machine?.name ?? "", description: machine?.description ?? "" } },
  });
}

export function userToV2(user: User): UserV2 {
  const { human, machine } = user;
  return create(UserV2Schema, {
    userId: user.id,
    details: readDetailsV2(user),
    state: STATE_V2[user.state],
    username: user.username,
    loginNames: loginNamesOf(user),
    preferredLoginName: preferredLoginNameOf(user),
    type: human
      ? {
          case: "human",
          // The human's own userId, state, username and login names stay empty: ZITADEL's
          // humanToPb (internal/api/grpc/user/v2/query.go) fills them on the User only.
          value: {
            profile: {
              givenName: human.profile.givenName,
              familyName: human.profile.familyName,
              nickName: human.profile.nickName,
              displayName: human.profile.displayName,
              preferredLanguage: human.profile.preferredLanguage,
              gender: human.profile.gender,
            },
            email: { email: human.email.address, isVerified: human.email.verified },
            phone: { phone: human.phone.number, isVerified: human.phone.verified },
            passwordChangeRequired: human.passwordChangeRequired,
            passwordChanged: optionalTimestamp(human.passwordChangedAt),
          },
        }
      : { case: "machine", value: { name: machine?.name ?? "", description: machine?.description ?? "" } },
  });
}
