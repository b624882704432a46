// The garbage collections a daemon started with --trace-gc runs while one session relays the same message again and
// again: the tests of what relaying leaves behind for V8. Touches: a loopback socket to the daemon.

import { expect } from 'vitest';
import type { RunningDkimgate } from './dkimgate-process.js';
import { RawClient } from './raw-smtp-client.js';

/**
 * Relays `data` (dot-stuffed, ending in CRLF.CRLF) `messages` times over one pipelining session and returns the
 * --trace-gc lines the daemon printed after the first `warmUp` messages.
 */
export async function gcTraceOfOneSession(gate: RunningDkimgate, data: string, messages: number, warmUp: number): Promise<string[]> {
  const client = await RawClient.open(gate.listeners[0]!.port);
  expect((await client.command('EHLO client.test')).code).toBe(250);
  let linesAtWarmUp = 0;
  for (let i = 0; i < messages; i++) {
    if (i === warmUp) linesAtWarmUp = gate.lines.length;
    client.write('MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
    for (const code of [250, 250, 354]) expect((await client.read()).code).toBe(code);
    client.write(data);
    expect((await client.read()).code).toBe(250);
  }
  client.close();
  return gate.lines.slice(linesAtWarmUp).filter((l) => l.msg === 'not JSON').map((l) => String(l.text));
}
