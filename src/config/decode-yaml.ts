// Walks a parsed YAML document against a schema tree: yields the camelCase value with defaults filled
// in, every problem with its line and key path, and the line of every key. Input: the operator's YAML.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import type { ConfigProblem } from './config.js';
import { camelCase, type ObjectNode, type SchemaNode } from './schema-node.js';

export interface DecodeResult {
  /** The decoded value; meaningful only when `problems` is empty. */
  value: unknown;
  problems: ConfigProblem[];
  /** Key path -> 1-based line where that key (or list item) is written. */
  lines: Map<string, number>;
}

const INVALID = Symbol('invalid');

/** Decodes `doc.contents` against `schema`. Never throws on bad input; problems are collected. */
export function decodeYaml(doc: Document.Parsed, lineCounter: LineCounter, file: string, schema: SchemaNode): DecodeResult {
  const problems: ConfigProblem[] = [];
  const lines = new Map<string, number>();

  const lineOf = (node: unknown, fallback: number): number => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : fallback;
  };
  const report = (line: number, keyPath: string, message: string): typeof INVALID => {
    problems.push({ file, line, keyPath, message });
    return INVALID;
  };
  const isNull = (node: unknown): boolean => node === null || node === undefined || (isScalar(node) && node.value === null);
  const describe = (node: unknown): string => (isMap(node) ? 'a mapping' : isSeq(node) ? 'a list' : 'a single value');

  function decode(rawNode: unknown, node: SchemaNode, path: string, defaults: unknown, fallbackLine: number): unknown {
    let yamlNode = rawNode;
    if (isAlias(yamlNode)) {
      const target = yamlNode.resolve(doc);
      if (target === undefined) return report(lineOf(yamlNode, fallbackLine), path, `unknown alias *${yamlNode.source}`);
      yamlNode = target;
    }
    const line = lineOf(yamlNode, fallbackLine);
    switch (node.kind) {
      case 'nullable':
        return isNull(yamlNode) ? null : decode(yamlNode, node.inner, path, undefined, line);
      case 'union':
        return isMap(yamlNode) ? decode(yamlNode, node.object, path, undefined, line) : decode(yamlNode, node.scalar, path, undefined, line);
      case 'object':
        return decodeObject(yamlNode, node, path, (node.defaults ?? defaults) as Record<string, unknown> | undefined, line);
      case 'list': {
        if (isNull(yamlNode)) {
          return node.minItems ? report(line, path, `needs at least ${node.minItems} entr${node.minItems === 1 ? 'y' : 'ies'}`) : [];
        }
        if (!isSeq(yamlNode)) return report(line, path, `must be a list, not ${describe(yamlNode)} (e.g. [a, b] or one "- a" line per entry)`);
        if (node.minItems && yamlNode.items.length < node.minItems) {
          return report(line, path, `needs at least ${node.minItems} entr${node.minItems === 1 ? 'y' : 'ies'}`);
        }
        const out: unknown[] = [];
        yamlNode.items.forEach((item, index) => {
          const itemPath = `${path}[${index}]`;
          const itemLine = lineOf(item, line);
          lines.set(itemPath, itemLine);
          out.push(decode(item, node.item, itemPath, undefined, itemLine));
        });
        return out;
      }
      case 'map': {
        if (isNull(yamlNode)) return {};
        if (!isMap(yamlNode)) return report(line, path, `must be a mapping of ${node.keyName} to settings, not ${describe(yamlNode)}`);
        const out: Record<string, unknown> = {};
        const firstLine = new Map<string, number>();
        for (const pair of yamlNode.items) {
          const keyLine = lineOf(pair.key, line);
          const keyText = scalarText(pair.key);
          if (keyText === null) {
            report(keyLine, path, `each ${node.keyName} must be a plain name`);
            continue;
          }
          const keyProblem = node.checkKey(keyText);
          if (keyProblem !== null) {
            report(keyLine, `${path}.${keyText}`, keyProblem);
            continue;
          }
          const key = node.normalizeKey ? node.normalizeKey(keyText) : keyText;
          const childPath = `${path}.${key}`;
          const earlier = firstLine.get(key);
          if (earlier !== undefined) {
            report(keyLine, childPath, `${node.keyName} ${key} is already configured on line ${earlier}`);
            continue;
          }
          firstLine.set(key, keyLine);
          lines.set(childPath, keyLine);
          out[key] = decode(pair.value, node.value, childPath, undefined, keyLine);
        }
        return out;
      }
      default:
        return decodeScalar(yamlNode, node, path, line);
    }
  }

  function decodeObject(
    yamlNode: unknown,
    node: ObjectNode,
    path: string,
    defaults: Record<string, unknown> | undefined,
    line: number,
  ): unknown {
    if (!isNull(yamlNode) && !isMap(yamlNode)) {
      return report(line, path, `must be a mapping of keys to values, not ${describe(yamlNode)}`);
    }
    const out: Record<string, unknown> = {};
    const present = new Map<string, number>();
    const pairs = isMap(yamlNode) ? yamlNode.items : [];
    for (const pair of pairs) {
      const keyLine = lineOf(pair.key, line);
      const key = scalarText(pair.key);
      if (key === null) {
        report(keyLine, path, 'keys must be plain names');
        continue;
      }
      const childPath = path === '' ? key : `${path}.${key}`;
      const field = node.fields[key];
      if (field === undefined) {
        const hint = suggestKey(key, Object.keys(node.fields));
        report(keyLine, childPath, `unknown key${hint === null ? '' : ` (did you mean ${hint}?)`}`);
        continue;
      }
      present.set(key, keyLine);
      lines.set(childPath, keyLine);
      const camel = camelCase(key);
      out[camel] = decode(pair.value, field, childPath, defaults?.[camel], keyLine);
    }
    if (node.exactlyOneOf) {
      const given = node.exactlyOneOf.filter((key) => present.has(key));
      if (given.length === 0) {
        report(line, path, `needs ${node.exactlyOneOf.join(' or ')}`);
      } else if (given.length > 1) {
        const second = given[1] ?? '';
        report(present.get(second) ?? line, path, `use either ${given.join(' or ')}, not both`);
      }
    }
    for (const key of node.required ?? []) {
      if (!present.has(key)) report(line, path === '' ? key : `${path}.${key}`, 'is required here');
    }
    if (defaults) {
      for (const key of Object.keys(node.fields)) {
        const camel = camelCase(key);
        if (!present.has(key) && camel in defaults) out[camel] = structuredClone(defaults[camel]);
      }
    }
    return out;
  }

  function decodeScalar(yamlNode: unknown, node: SchemaNode, path: string, line: number): unknown {
    if (!isScalar(yamlNode) && yamlNode !== null && yamlNode !== undefined) {
      return report(line, path, `must be a single value, not ${describe(yamlNode)}`);
    }
    const value: unknown = isScalar(yamlNode) ? yamlNode.value : null;
    switch (node.kind) {
      case 'string': {
        let textValue: string;
        if (typeof value === 'string') {
          textValue = value;
        } else if (node.numbersAsText && isScalar(yamlNode) && yamlNode.type === 'PLAIN' && typeof value === 'number') {
          textValue = yamlNode.source ?? String(value);
        } else if (value === null) {
          return report(line, path, 'needs a value');
        } else {
          return report(line, path, `must be text; put quotes around ${String(value)} if you mean it as text`);
        }
        if (textValue.trim() === '') return report(line, path, 'must not be empty');
        const problem = node.check ? node.check(textValue) : null;
        if (problem !== null) return report(line, path, problem);
        return node.normalize ? node.normalize(textValue) : textValue;
      }
      case 'enum':
        if (typeof value === 'string' && node.values.includes(value)) return value;
        return report(line, path, `must be one of ${node.values.join(', ')}`);
      case 'boolean':
        if (typeof value === 'boolean') return value;
        return report(line, path, 'must be true or false');
      case 'integer':
        if (typeof value === 'number' && Number.isInteger(value) && value >= node.min && value <= node.max) return value;
        return report(
          line,
          path,
          node.max >= Number.MAX_SAFE_INTEGER
            ? `must be a whole number of at least ${node.min}`
            : `must be a whole number from ${node.min} to ${node.max}`,
        );
      case 'number': {
        const ok =
          typeof value === 'number' &&
          Number.isFinite(value) &&
          (node.exclusiveMin ? value > node.min : value >= node.min) &&
          (node.max === undefined || value <= node.max);
        if (ok) return value;
        if (node.max !== undefined) return report(line, path, `must be a number from ${node.min} to ${node.max}`);
        return report(line, path, `must be a number ${node.exclusiveMin ? 'greater than' : 'of at least'} ${node.min}`);
      }
      default:
        return report(line, path, 'unsupported schema node');
    }
  }

  lines.set('', lineOf(doc.contents, 1));
  const value = decode(doc.contents, schema, '', undefined, 1);
  return { value, problems, lines };
}

/** The text of a scalar key or value (numbers as written), or null when it is not a scalar. */
function scalarText(node: unknown): string | null {
  if (!isScalar(node)) return null;
  if (typeof node.value === 'string') return node.value;
  if (typeof node.value === 'number' || typeof node.value === 'boolean') return node.source ?? String(node.value);
  return null;
}

/** The known key the operator most likely meant: same letters ignoring case and separators, or a close spelling. */
export function suggestKey(key: string, known: readonly string[]): string | null {
  const squash = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]/g, '');
  const exact = known.find((candidate) => squash(candidate) === squash(key));
  if (exact !== undefined) return exact;
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(squash(key), squash(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
