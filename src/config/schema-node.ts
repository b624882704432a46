// The small schema language the config schema is written in: one tree drives YAML validation and JSON Schema.
// Pure data and constructors; touches nothing.

interface Described {
  /** Shown in the JSON Schema (editor hover). */
  description?: string;
}

export interface StringNode extends Described {
  kind: 'string';
  /** Returns a problem message, or null when the text is acceptable. Runs on the trimmed text. */
  check?: (text: string) => string | null;
  /** Rewrites an accepted text into its canonical form (e.g. lower-case domain). */
  normalize?: (text: string) => string;
  /** Take an unquoted number (selector: 2026) as its source text instead of refusing it. */
  numbersAsText?: boolean;
  /** JSON Schema only: a pattern editors can check. */
  pattern?: string;
}

export interface EnumNode extends Described {
  kind: 'enum';
  values: readonly string[];
}

export interface IntegerNode extends Described {
  kind: 'integer';
  min: number;
  max: number;
}

export interface NumberNode extends Described {
  kind: 'number';
  /** Inclusive lower bound. */
  min: number;
  /** When true, `min` itself is refused. */
  exclusiveMin?: boolean;
  /** Inclusive upper bound; none when absent. */
  max?: number;
}

export interface BooleanNode extends Described {
  kind: 'boolean';
}

export interface NullableNode extends Described {
  kind: 'nullable';
  inner: SchemaNode;
}

export interface ListNode extends Described {
  kind: 'list';
  item: SchemaNode;
  minItems?: number;
}

export interface ObjectNode extends Described {
  kind: 'object';
  /** YAML (snake_case) key -> schema; the decoded object uses camelCase keys. */
  fields: Readonly<Record<string, SchemaNode>>;
  required?: readonly string[];
  /** Exactly one of these keys must be present. */
  exactlyOneOf?: readonly string[];
  /** Defaults (camelCase) for keys left out; nested objects take theirs from here too. */
  defaults?: object;
}

export interface MapNode extends Described {
  kind: 'map';
  /** What a key is, for messages ("domain"). */
  keyName: string;
  checkKey: (key: string) => string | null;
  normalizeKey?: (key: string) => string;
  value: SchemaNode;
}

/** A scalar form or a mapping form of the same thing, chosen by the YAML node's shape. */
export interface UnionNode extends Described {
  kind: 'union';
  scalar: SchemaNode;
  object: ObjectNode;
}

export type SchemaNode =
  | StringNode
  | EnumNode
  | IntegerNode
  | NumberNode
  | BooleanNode
  | NullableNode
  | ListNode
  | ObjectNode
  | MapNode
  | UnionNode;

/** snake_case YAML key -> camelCase property name. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_match, char: string) => char.toUpperCase());
}
