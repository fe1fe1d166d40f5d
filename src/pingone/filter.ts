import type { TextField, TextMethod, UserFilter } from "../domain/user-queries.js";
import { invalidData } from "./errors.js";

/**
 * PingOne's SCIM-like `filter` for `GET /users` (docs.pingidentity.com directory/p1_scim_filter_language):
 * `attr op "value"` with eq, sw, ew, co; `and`/`or` in any case (Terraform sends `AND`/`OR`,
 * terraform-provider-pingone internal/filter/scimFilter.go); parentheses; and
 * `memberOfGroups[id eq "…"]`. Parsed into the domain's user filter; an attribute or operator
 * this service cannot search gets 400 INVALID_DATA / INVALID_FILTER naming what is supported.
 */
type Token = { kind: "word"; text: string } | { kind: "string"; text: string } | { kind: "punct"; text: "(" | ")" | "[" | "]" };

const MAX_FILTER_LENGTH = 4096;
const MAX_DEPTH = 20;

const TEXT_ATTRIBUTES: Record<string, TextField> = {
  username: "username",
  email: "email",
  "name.given": "givenName",
  "name.family": "familyName",
  "name.formatted": "displayName",
  nickname: "nickName",
};
const TEXT_OPERATORS: Record<string, TextMethod> = {
  eq: "equalsIgnoreCase",
  sw: "startsWithIgnoreCase",
  ew: "endsWithIgnoreCase",
  co: "containsIgnoreCase",
};

export const SUPPORTED_ATTRIBUTES = ["id", ...Object.keys(TEXT_ATTRIBUTES), "population.id", "enabled", "memberOfGroups"];
export const SUPPORTED_OPERATORS = ["eq", "sw", "ew", "co", "and", "or"];

function invalidFilter(message: string) {
  return invalidData("filter", message, "INVALID_FILTER", {
    supportedAttributes: SUPPORTED_ATTRIBUTES,
    supportedOperators: SUPPORTED_OPERATORS,
  });
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "(" || ch === ")" || ch === "[" || ch === "]") {
      tokens.push({ kind: "punct", text: ch });
      i++;
    } else if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) throw invalidFilter("The filter has an unterminated string");
      try {
        tokens.push({ kind: "string", text: JSON.parse(text.slice(i, j + 1)) as string });
      } catch {
        throw invalidFilter("The filter has an invalid string escape");
      }
      i = j + 1;
    } else {
      const match = /^[A-Za-z0-9_.:-]+/.exec(text.slice(i));
      if (!match) throw invalidFilter(`Unexpected character ${JSON.stringify(ch)} at position ${i + 1} of the filter`);
      tokens.push({ kind: "word", text: match[0] });
      i += match[0].length;
    }
  }
  return tokens;
}

export function parseUserFilter(text: string): UserFilter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`The filter is longer than ${MAX_FILTER_LENGTH} characters`);
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const isWord = (token: Token | undefined, word: string) => token?.kind === "word" && token.text.toLowerCase() === word;
  const expect = (punct: string) => {
    const token = tokens[pos++];
    if (token?.kind !== "punct" || token.text !== punct) throw invalidFilter(`Expected "${punct}" in the filter`);
  };

  function or(depth: number): UserFilter {
    if (depth > MAX_DEPTH) throw invalidFilter(`The filter is nested deeper than ${MAX_DEPTH} levels`);
    const parts = [and(depth)];
    while (isWord(peek(), "or")) {
      pos++;
      parts.push(and(depth));
    }
    return parts.length === 1 ? parts[0]! : { kind: "or", filters: parts };
  }

  function and(depth: number): UserFilter {
    const parts = [atom(depth)];
    while (isWord(peek(), "and")) {
      pos++;
      parts.push(atom(depth));
    }
    return parts.length === 1 ? parts[0]! : { kind: "and", filters: parts };
  }

  function atom(depth: number): UserFilter {
    const token = tokens[pos++];
    if (token?.kind === "punct" && token.text === "(") {
      const inner = or(depth + 1);
      expect(")");
      return inner;
    }
    if (token?.kind !== "word") throw invalidFilter("Expected an attribute name in the filter");
    const attribute = token.text;
    if (peek()?.kind === "punct" && peek()!.text === "[") {
      if (attribute !== "memberOfGroups") throw invalidFilter(`The attribute ${attribute} cannot be filtered with [ ]`);
      pos++;
      or(depth + 1); // the group condition: parsed for its syntax; no user is in a group here
      expect("]");
      return { kind: "ids", ids: [] };
    }
    const operator = tokens[pos++];
    if (operator?.kind !== "word") throw invalidFilter(`Expected an operator after ${attribute} in the filter`);
    const op = operator.text.toLowerCase();
    const value = tokens[pos++];
    if (!value || value.kind === "punct") throw invalidFilter(`Expected a value after ${attribute} ${operator.text} in the filter`);
    return condition(attribute, op, value);
  }

  const result = or(0);
  if (pos !== tokens.length) throw invalidFilter("Unexpected text after the end of the filter");
  return result;
}

function condition(attribute: string, op: string, value: Token): UserFilter {
  const onlyEq = () => {
    if (op !== "eq") throw invalidFilter(`The operator ${op} is not supported for ${attribute}`);
  };
  const text = () => {
    if (value.kind !== "string") throw invalidFilter(`The value for ${attribute} must be a quoted string`);
    return value.text;
  };
  if (attribute === "id") {
    onlyEq();
    return { kind: "ids", ids: [text()] };
  }
  if (attribute === "population.id") {
    onlyEq();
    return { kind: "org", orgId: text() };
  }
  if (attribute === "enabled") {
    onlyEq();
    const enabled = value.text.toLowerCase();
    if (value.kind !== "word" || (enabled !== "true" && enabled !== "false")) throw invalidFilter("The value for enabled must be true or false");
    const inactive: UserFilter = { kind: "state", state: "INACTIVE" };
    return enabled === "true" ? { kind: "not", filter: inactive } : inactive;
  }
  if (attribute === "memberOfGroups.id") {
    onlyEq();
    text();
    return { kind: "ids", ids: [] };
  }
  const field = TEXT_ATTRIBUTES[attribute];
  if (!field) throw invalidFilter(`The attribute ${attribute} cannot be filtered; supported: ${SUPPORTED_ATTRIBUTES.join(", ")}`);
  const method = TEXT_OPERATORS[op];
  if (!method) throw invalidFilter(`The operator ${op} is not supported; supported: ${SUPPORTED_OPERATORS.join(", ")}`);
  return { kind: "text", field, value: text(), method };
}
