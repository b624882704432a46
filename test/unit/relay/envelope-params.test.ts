import { describe, expect, it } from 'vitest';
import { NO_CAPABILITIES, type NextHopCapabilities } from '../../../src/relay/ehlo-capabilities.js';
import { encodeXtext, formatMailParams, formatRcptParams, growDeclaredSize, type EnvelopeParams } from '../../../src/relay/envelope-params.js';

const ALL: NextHopCapabilities = { ...NO_CAPABILITIES, size: true, eightBitMime: true, smtpUtf8: true, dsn: true };

describe('formatMailParams', () => {
  it('passes SIZE, BODY, SMTPUTF8, RET and ENVID to a next hop that announced them', () => {
    expect(formatMailParams({ SIZE: '1234', BODY: '8bitmime', SMTPUTF8: true, RET: 'hdrs', ENVID: 'QQ314159' }, ALL)).toEqual({
      text: ' SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159',
      dropped: [],
    });
  });

  it.each<[string, string | true, NextHopCapabilities, string]>([
    ['SIZE', '10', { ...ALL, size: false }, 'SIZE: next hop does not announce SIZE'],
    ['BODY', '8BITMIME', { ...ALL, eightBitMime: false }, 'BODY: next hop does not announce 8BITMIME'],
    ['SMTPUTF8', true, { ...ALL, smtpUtf8: false }, 'SMTPUTF8: next hop does not announce SMTPUTF8'],
    ['RET', 'FULL', { ...ALL, dsn: false }, 'RET: next hop does not announce DSN'],
    ['ENVID', 'x', { ...ALL, dsn: false }, 'ENVID: next hop does not announce DSN'],
    ['SIZE', '12a', ALL, 'SIZE: invalid value'],
    ['SIZE', true, ALL, 'SIZE: invalid value'],
    ['BODY', 'BINARYMIME', ALL, 'BODY: invalid value'],
    ['SMTPUTF8', 'yes', ALL, 'SMTPUTF8: invalid value'],
    ['RET', 'ALL', ALL, 'RET: invalid value'],
    ['ENVID', 'a\r\nRCPT TO:<x@y>', ALL, 'ENVID: invalid value'],
    ['ENVID', 'x'.repeat(101), ALL, 'ENVID: invalid value'],
    ['AUTH', '<>', ALL, 'AUTH: not relayed'],
    ['REQUIRETLS', true, ALL, 'REQUIRETLS: not relayed'],
  ])('drops %s=%j when it cannot be passed on', (key, value, caps, reason) => {
    expect(formatMailParams({ [key]: value }, caps)).toEqual({ text: '', dropped: [reason] });
  });

  it('encodes ENVID as xtext', () => {
    expect(formatMailParams({ envid: 'a+b=c d' }, ALL).text).toBe(' ENVID=a+2Bb+3Dc+20d');
  });
});

describe('formatRcptParams', () => {
  it('passes NOTIFY and ORCPT, the address part of ORCPT as xtext', () => {
    expect(formatRcptParams({ NOTIFY: 'success,failure', ORCPT: 'rfc822;user+tag@example.org' }, ALL)).toEqual({
      text: ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+2Btag@example.org',
      dropped: [],
    });
  });

  it.each([
    ['NOTIFY', 'NEVER,SUCCESS', 'NOTIFY: invalid value'],
    ['NOTIFY', 'SOMETIMES', 'NOTIFY: invalid value'],
    ['ORCPT', 'no-semicolon', 'ORCPT: invalid value'],
    ['ORCPT', ';user@example.org', 'ORCPT: invalid value'],
    ['ORCPT', 'rfc822;', 'ORCPT: invalid value'],
    ['ORCPT', 'rfc822;a\nb', 'ORCPT: invalid value'],
    ['XFOO', 'bar', 'XFOO: not relayed'],
  ])('drops %s=%j', (key, value, reason) => {
    expect(formatRcptParams({ [key]: value }, ALL)).toEqual({ text: '', dropped: [reason] });
  });

  it('drops DSN parameters for a next hop without DSN', () => {
    expect(formatRcptParams({ NOTIFY: 'NEVER', ORCPT: 'rfc822;a@b.example' }, NO_CAPABILITIES).dropped).toHaveLength(2);
  });
});

describe('encodeXtext', () => {
  it.each([
    ['plain', 'plain'],
    ['a+b', 'a+2Bb'],
    ['a=b', 'a+3Db'],
    ['ü', '+C3+BC'],
    ['~!', '~!'],
  ])('encodes %j as %j', (input, output) => {
    expect(encodeXtext(input)).toBe(output);
  });
});

describe('growDeclaredSize', () => {
  it.each<[EnvelopeParams, EnvelopeParams]>([
    [{ SIZE: '1000', BODY: '8BITMIME' }, { SIZE: '1500', BODY: '8BITMIME' }],
    [{ size: '0' }, { size: '500' }],
    [{ BODY: '7BIT' }, { BODY: '7BIT' }],
    [{ SIZE: 'big' }, { SIZE: 'big' }],
    [{ SIZE: true }, { SIZE: true }],
  ])('grows a valid SIZE by the added bytes and leaves anything else alone: %j', (params, expected) => {
    expect(growDeclaredSize(params, 500)).toEqual(expected);
  });
});
