import { type Compilable, CompiledQuery } from "kysely";

/** A statement to run inside a write batch; `uniqueKind` names the rule a unique violation breaks. */
export interface WriteStatement {
  sql: string;
  parameters: readonly unknown[];
  uniqueKind?: string;
}

/** A statement built by Kysely for the write queue; `uniqueKind` names what a violation means. */
export function statement(query: Compilable, uniqueKind?: string): WriteStatement {
  const compiled = query.compile();
  return { sql: compiled.sql, parameters: compiled.parameters, ...(uniqueKind === undefined ? {} : { uniqueKind }) };
}

const MARKER = "\u0000param:";

/**
 * A named placeholder for a query built once with Kysely and bound many times. Typed as
 * whatever the column wants, since it only stands in for the value.
 */
export function param<T>(name: string): T {
  return `${MARKER}${name}` as T;
}

/**
 * `count` placeholders for the items of the list value `name` (an `in (…)` list), bound to the
 * list's items in order: the list must have `count` items.
 */
export function paramList<T>(name: string, count: number): T[] {
  return Array.from({ length: count }, (_, i) => `${MARKER}${name}${LIST_ITEM}${i}` as T);
}

const LIST_ITEM = "#";

/**
 * A query built and compiled by Kysely once, in the store's SQL dialect, then bound to values
 * by name on every use: the hot paths skip building and compiling a query per request.
 */
export interface Prepared<Values extends Record<string, unknown>> {
  readonly sql: string;
  bind(values: Values): CompiledQuery;
  statement(values: Values, uniqueKind?: string): WriteStatement;
}

export function prepare<Values extends Record<string, unknown>>(query: Compilable): Prepared<Values> {
  const compiled = query.compile();
  // Each placeholder as the value's name and, for an item of a list (paramList), its position.
  const names = compiled.parameters.map((parameter): [string, number] => {
    if (typeof parameter !== "string" || !parameter.startsWith(MARKER)) {
      throw new Error(`prepared query has a literal parameter instead of param(): ${compiled.sql}`);
    }
    const [name, item] = parameter.slice(MARKER.length).split(LIST_ITEM);
    return [name!, item === undefined ? -1 : Number(item)];
  });
  const parametersOf = (values: Values) => names.map(([name, item]) => (item < 0 ? values[name] : (values[name] as readonly unknown[])[item]));
  return {
    sql: compiled.sql,
    bind: (values) => CompiledQuery.raw(compiled.sql, parametersOf(values)),
    statement: (values, uniqueKind) => ({
      sql: compiled.sql,
      parameters: parametersOf(values),
      ...(uniqueKind === undefined ? {} : { uniqueKind }),
    }),
  };
}
