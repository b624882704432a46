// The next hop's replies as our client hears them: code and class kept (RFC 3463: the enhanced code's class is that of
// the reply we send), and no internal host name in the text.

import { describe, expect, it } from 'vitest';
import { refusalReply } from '../../../src/smtp/next-hop-replies.js';

const reply = (code: number, enhanced: string | null, text: string) => ({ code, enhanced, text, lines: [text] });

describe('refusalReply', () => {
  it('passes a 4xx/5xx on with its code and enhanced code', () => {
    expect(refusalReply(reply(552, '5.3.4', 'message too big'), [])).toEqual({ code: 552, enhanced: '5.3.4', text: 'next hop: message too big' });
    expect(refusalReply(reply(450, '4.2.0', 'busy'), [])).toMatchObject({ code: 450, enhanced: '4.2.0' });
  });

  it('turns 421 into 451 and keeps its 4.x.x code', () => {
    expect(refusalReply(reply(421, '4.3.2', 'going down'), [])).toMatchObject({ code: 451, enhanced: '4.3.2' });
  });

  it.each([
    [250, '2.0.0'],
    [354, null],
    [221, '2.0.0'],
  ])('a %s is no refusal: 451 with 4.0.0, never an enhanced code of another class', (code, enhanced) => {
    expect(refusalReply(reply(code, enhanced, 'ok whatever'), [])).toMatchObject({ code: 451, enhanced: '4.0.0' });
  });
});

describe('refusalReply hides the next hop names', () => {
  it('in any letter case, every occurrence', () => {
    const r = refusalReply(reply(550, '5.1.1', 'rejected by MX-INTERNAL.corp.lan; see mx-internal.CORP.lan/help'), ['mx-internal.corp.lan']);
    expect(r.text).toBe('next hop: rejected by next-hop; see next-hop/help');
  });

  it('as whole words only: a short name inside another word stays', () => {
    const r = refusalReply(reply(452, '4.2.2', 'mailbox full on mail (10.0.0.1)'), ['mail', '10.0.0.1']);
    expect(r.text).toBe('next hop: mailbox full on next-hop (next-hop)');
  });

  it('a name with regular-expression characters is matched literally', () => {
    expect(refusalReply(reply(550, '5.7.1', 'denied by [10.0.0.1] and 10a0b0c1'), ['[10.0.0.1]']).text).toBe('next hop: denied by next-hop and 10a0b0c1');
  });
});
