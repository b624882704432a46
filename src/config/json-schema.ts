// Derives a JSON Schema (draft-07) of the YAML config from the schema tree, for editors' completion and checks.
// Pure; the checks that JSON Schema cannot express (CIDR host bits, headerlist syntax…) stay in config check.

import { CONFIG_SCHEMA } from './schema.js';
import type { SchemaNode } from './schema-node.js';
import { camelCase } from './schema-node.js';

type Json = Record<string, unknown>;

/** The JSON Schema of config/dkimgate.yaml (keys in snake_case, defaults included). */
export function configJsonSchema(): Json {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://dkimgate.invalid/dkimgate.schema.json',
    title: 'dkimgate configuration',
    ...toJsonSchema(CONFIG_SCHEMA, undefined),
  };
}

function toJsonSchema(node: SchemaNode, inherited: unknown): Json {
  const described: Json = node.description === undefined ? {} : { description: node.description };
  switch (node.kind) {
    case 'string':
      return {
        ...described,
        type: node.numbersAsText ? ['string', 'number'] : 'string',
        ...(node.numbersAsText ? {} : { minLength: 1 }),
        ...(node.pattern === undefined ? {} : { pattern: node.pattern }),
      };
    case 'enum':
      return { ...described, type: 'string', enum: [...node.values] };
    case 'integer':
      return {
        ...described,
        type: 'integer',
        minimum: node.min,
        ...(node.max >= Number.MAX_SAFE_INTEGER ? {} : { maximum: node.max }),
      };
    case 'number':
      return {
        ...described,
        type: 'number',
        ...(node.exclusiveMin ? { exclusiveMinimum: node.min } : { minimum: node.min }),
        ...(node.max === undefined ? {} : { maximum: node.max }),
      };
    case 'boolean':
      return { ...described, type: 'boolean' };
    case 'nullable':
      return { ...described, anyOf: [toJsonSchema(node.inner, undefined), { type: 'null' }] };
    case 'list':
      return {
        ...described,
        type: ['array', 'null'],
        items: toJsonSchema(node.item, undefined),
        ...(node.minItems === undefined ? {} : { minItems: node.minItems }),
      };
    case 'map':
      return { ...described, type: ['object', 'null'], additionalProperties: toJsonSchema(node.value, undefined) };
    case 'union':
      return { ...described, anyOf: [toJsonSchema(node.scalar, undefined), toJsonSchema(node.object, undefined)] };
    case 'object': {
      const defaults = (node.defaults ?? inherited) as Record<string, unknown> | undefined;
      const properties: Json = {};
      for (const [key, field] of Object.entries(node.fields)) {
        const fieldDefault = key === 'authserv_id' ? undefined : defaults?.[camelCase(key)];
        const schema = toJsonSchema(field, fieldDefault);
        const isObject = field.kind === 'object';
        properties[key] = fieldDefault === undefined || isObject ? schema : { ...schema, default: snakeKeys(fieldDefault) };
      }
      return {
        ...described,
        type: node.required === undefined && node.exactlyOneOf === undefined ? ['object', 'null'] : 'object',
        additionalProperties: false,
        properties,
        ...(node.required === undefined ? {} : { required: [...node.required] }),
        ...(node.exactlyOneOf === undefined ? {} : { oneOf: node.exactlyOneOf.map((key) => ({ required: [key] })) }),
      };
    }
  }
}

/** A camelCase default value in the YAML's snake_case form. */
function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key.replace(/[A-Z]/g, (char) => `_${char.toLowerCase()}`), snakeKeys(inner)]),
  );
}
