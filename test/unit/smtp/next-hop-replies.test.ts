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
