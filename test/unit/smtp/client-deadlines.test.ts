import { describe, expect, it } from 'vitest';
import { ClientDeadlines, clientPhase, type WatchedConnection } from '../../../src/smtp/client-deadlines.js';
import { REPLIES } from '../../../src/smtp/reply-codes.js';

function conn(over: Partial<{ dataMode: boolean; remainder: string; pending: boolean; dataStream: boolean; flowing: boolean | null }> = {}) {
  const sent: string[] = [];
  const c: WatchedConnection & { sent: string[] } = {
    _socket: { bytesRead: 0, readableFlowing: over.flowing ?? true, destroyed: false },
    _parser: { _dataMode: over.dataMode ?? false, _remainder: over.remainder ?? '' },
    _dataStream: over.dataStream ? {} : null,
    _handlerPending: over.pending ?? false,
    _closing: false,
    _closed: false,
    remoteAddress: '192.0.2.1',
    send(code, data) {
      sent.push(`${code} ${data}`);
      c._closing = true;
    },
    sent,
  };
  return c;
}

describe('clientPhase', () => {
  it.each([
    ['between commands', {}, 'idle'],
    ['mid command line', { remainder: 'MAIL FR' }, 'sending'],
    ['in DATA', { dataMode: true, dataStream: true }, 'sending'],
    ['message in, we decide', { dataMode: false, dataStream: true }, 'waiting'],
    ['a handler runs (next hop asked)', { pending: true, remainder: 'x' }, 'waiting'],
    ['socket paused by our backpressure', { dataMode: true, dataStream: true, flowing: false }, 'waiting'],
  ] as const)('%s: %s', (_name, over, phase) => {
    expect(clientPhase(conn(over))).toBe(phase);
  });
});

describe('ClientDeadlines', () => {
  const setUp = (c: ReturnType<typeof conn>, limits = { sessionTimeout: 100, minDataRate: 100, dataRateWindow: 2 }) => {
    const shed: string[] = [];
    const d = new ClientDeadlines(() => [c], () => limits, REPLIES, (reason) => shed.push(reason));
    return { d, shed };
  };

  it('sheds a client that sends under the floor over a whole window, with 421 4.4.2', () => {
    const c = conn({ dataMode: true, dataStream: true });
    const { d, shed } = setUp(c);
    d.check(0);
    c._socket.bytesRead = 150; // 75 bytes/s over the 2 s window: under 100
    d.check(1000);
    expect(shed).toEqual([]);
    d.check(2000);
    expect(shed).toEqual(['too_slow']);
    expect(c.sent[0]).toMatch(/^421 4\.4\.2 /);
  });

  it('keeps a client at the floor, and never measures while it waits for us or idles', () => {
    const c = conn({ dataMode: true, dataStream: true });
    const { d, shed } = setUp(c);
    d.check(0);
    c._socket.bytesRead = 200;
    d.check(2000);
    (c._parser as { _dataMode: boolean })._dataMode = false; // message in: we decide, for a long time
    d.check(10_000);
    d.check(20_000);
    expect(shed).toEqual([]);
  });

  it('ends a session past session_timeout unless we owe it a reply', () => {
    const c = conn({ pending: true });
    const { d, shed } = setUp(c, { sessionTimeout: 5, minDataRate: 0, dataRateWindow: 2 });
    d.check(0);
    d.check(6000);
    expect(shed).toEqual([]);
    c._handlerPending = false;
    d.check(7000);
    expect(shed).toEqual(['session_timeout']);
  });
});
