import { foldCase } from "../domain/user-queries.js";

/** The text columns of a user row that have a search key. */
interface KeyedColumns {
  username: string;
  given_name: string;
  family_name: string;
  nick_name: string;
  display_name: string;
  email: string;
}

/**
 * A user row with its search keys: the text columns case-folded in JavaScript (`foldCase`),
 * since SQLite's lower() folds ASCII only. Every write of a keyed column writes its key too.
 */
export function withSearchKeys<const Row extends KeyedColumns>(row: Row) {
  return {
    ...row,
    username_lower: foldCase(row.username),
    given_name_lower: foldCase(row.given_name),
    family_name_lower: foldCase(row.family_name),
    nick_name_lower: foldCase(row.nick_name),
    display_name_lower: foldCase(row.display_name),
    email_lower: foldCase(row.email),
  };
}
