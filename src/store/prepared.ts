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
  const names = compiled.parameters.map((parameter) => {
    if (typeof parameter !== "string" || !parameter.startsWith(MARKER)) {
      throw new Error(`prepared query has a literal parameter instead of param(): ${compiled.sql}`);
    }
    return parameter.slice(MARKER.length);
  });
  const parametersOf = (values: Values) => names.map((name) => values[name]);
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
