import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../../src/config/json-schema.js';

type Schema = { properties: Record<string, Schema & { default?: unknown }>; additionalProperties?: unknown; type?: unknown };

describe('configJsonSchema', () => {
  it('matches the committed config/dkimgate.schema.json (regenerate it with scripts/write-config-schema.mjs)', () => {
    const committed: unknown = JSON.parse(readFileSync(new URL('../../../config/dkimgate.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(configJsonSchema());
  });

  it('lists every top-level key of interface.md §3 and refuses others', () => {
    const schema = configJsonSchema() as unknown as Schema;
    expect(Object.keys(schema.properties)).toEqual([
      'authserv_id',
      'listen',
      'next_hop',
      'relay_hosts',
      'xforward_hosts',
      'users_file',
      'limits',
      'verify',
      'policy',
      'sign',
      'dns',
      'metrics',
    ]);
    expect(schema.additionalProperties).toBe(false);
  });

  it('carries the defaults in snake_case', () => {
    const schema = configJsonSchema() as unknown as Schema;
    expect(schema.properties['limits']?.properties['max_message_size']?.default).toBe(52428800);
    expect(schema.properties['sign']?.properties['key']?.default).toBe('keys/%{d}/%{s}.pem');
    expect(schema.properties['listen']?.default).toEqual([
      { host: '127.0.0.1', port: 10027, protocol: 'smtp', tls: null, relay_hosts: null, xforward_hosts: null, allow_insecure_auth: false, line_endings: 'normalize' },
    ]);
    expect(schema.properties['authserv_id']?.default).toBeUndefined();
  });
});
