import { describe, expect, it } from 'vitest';
import type { PolicyConfig } from '../../../src/config/config.js';
import type { DkimResult } from '../../../src/dkim/results.js';
import type { SignatureVerdict } from '../../../src/dkim/verify.js';
import { addressDomain, mailboxAddresses } from '../../../src/mail/author-domains.js';
import { applyVerifyPolicy, isAligned } from '../../../src/policy/apply-verify-policy.js';

function verdict(result: DkimResult, domain: string | null, testing = false): SignatureVerdict {
  return {
    result,
    reason: null,
    detail: null,
    domain,
    selector: 's1',
    identity: null,
    algorithm: 'rsa-sha256',
    canonicalization: 'relaxed/relaxed',
    keyBits: 2048,
    headerB: 'AbCdEfGh',
    testing,
  };
}

function policy(over: Partial<PolicyConfig> = {}): PolicyConfig {
  return {
    onTemperror: 'accept',
    require: [
      { domain: 'example.bank', aligned: true },
      { domain: 'loose.example', aligned: false },
    ],
    dryRun: false,
    ...over,
  };
}

describe('applyVerifyPolicy', () => {
  it.each<[string, SignatureVerdict[], string[]]>([
    ['an aligned pass for a required domain', [verdict('pass', 'example.bank')], ['example.bank']],
    ['a pass by a parent domain of a required domain', [verdict('pass', 'bank.example')], ['news.bank.example']],
    ['any passing signature when alignment is not required', [verdict('pass', 'esp.example')], ['loose.example']],
    ['an aligned pass beside failing signatures', [verdict('fail', 'example.bank'), verdict('pass', 'EXAMPLE.BANK')], ['example.bank']],
    ['a message from a domain without a rule, unsigned', [], ['other.example']],
    ['a failing signature from a domain without a rule', [verdict('fail', 'other.example')], ['other.example']],
    ['a From domain in another case', [verdict('pass', 'example.bank')], ['Example.Bank.']],
  ])('accepts %s', (_name, verdicts, from) => {
    const rules = policy({ require: [...policy().require, { domain: 'news.bank.example', aligned: true }] });
    expect(applyVerifyPolicy(verdicts, from, rules)).toEqual({ kind: 'accept' });
  });

  it.each<[string, SignatureVerdict[], 'no_passing' | 'none_acceptable' | 'not_aligned']>([
    ['no signature at all (5.7.20)', [], 'no_passing'],
    ['only failing signatures (5.7.20)', [verdict('fail', 'example.bank'), verdict('permerror', 'example.bank'), verdict('neutral', null)], 'no_passing'],
    ['only a testing-mode pass (5.7.21)', [verdict('pass', 'example.bank', true)], 'none_acceptable'],
    ['only policy results (5.7.21)', [verdict('policy', 'example.bank')], 'none_acceptable'],
    ['a pass by another domain (5.7.22)', [verdict('pass', 'esp.example')], 'not_aligned'],
    ['a pass by a subdomain of the author domain (5.7.22)', [verdict('pass', 'mail.example.bank')], 'not_aligned'],
    ['a pass by a look-alike domain (5.7.22)', [verdict('pass', 'badexample.bank')], 'not_aligned'],
    ['a pass by a bare TLD (5.7.22)', [verdict('pass', 'bank')], 'not_aligned'],
    ['an aligned testing-mode pass and an unaligned pass (5.7.22)', [verdict('pass', 'example.bank', true), verdict('pass', 'esp.example')], 'not_aligned'],
  ])('rejects a required aligned domain with %s', (_name, verdicts, status) => {
    expect(applyVerifyPolicy(verdicts, ['example.bank'], policy())).toMatchObject({ kind: 'reject', status, domain: 'example.bank', dryRun: false });
  });

  it('gives each rejection a reason naming the domain', () => {
    expect(applyVerifyPolicy([], ['example.bank'], policy())).toEqual({
      kind: 'reject',
      status: 'no_passing',
      domain: 'example.bank',
      dryRun: false,
      reason: 'no passing signature for example.bank',
    });
  });

  it('rejects a required domain without alignment only when nothing acceptable passed', () => {
    expect(applyVerifyPolicy([verdict('pass', 'esp.example', true)], ['loose.example'], policy())).toMatchObject({ kind: 'reject', status: 'none_acceptable' });
    expect(applyVerifyPolicy([verdict('fail', 'loose.example')], ['loose.example'], policy())).toMatchObject({ kind: 'reject', status: 'no_passing' });
  });

  it('applies the rule to a required domain among several From fields (its signatures are all policy)', () => {
    const verdicts = [verdict('policy', 'example.bank')];
    expect(applyVerifyPolicy(verdicts, ['other.example', 'example.bank'], policy())).toMatchObject({ kind: 'reject', status: 'none_acceptable', domain: 'example.bank' });
  });

  it('does not apply a rule to subdomains of the required domain', () => {
    expect(applyVerifyPolicy([], ['mail.example.bank'], policy())).toEqual({ kind: 'accept' });
  });

  it('marks a rejection dryRun under dry_run', () => {
    expect(applyVerifyPolicy([], ['example.bank'], policy({ dryRun: true }))).toMatchObject({ kind: 'reject', status: 'no_passing', dryRun: true });
  });

  describe('temperror', () => {
    it('accepts a temperror without a pass by default', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'other.example')], ['other.example'], policy())).toEqual({ kind: 'accept' });
    });

    it('tempfails a temperror without a pass under on_temperror: tempfail', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'other.example'), verdict('fail', 'x.example')], ['other.example'], policy({ onTemperror: 'tempfail' }))).toEqual({
        kind: 'tempfail',
        dryRun: false,
        reason: 'temporary DNS failure and no passing signature',
      });
    });

    it('accepts a temperror beside a pass under on_temperror: tempfail', () => {
      const verdicts = [verdict('temperror', 'other.example'), verdict('pass', 'esp.example')];
      expect(applyVerifyPolicy(verdicts, ['other.example'], policy({ onTemperror: 'tempfail' }))).toEqual({ kind: 'accept' });
    });

    it('marks the tempfail dryRun under dry_run', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'a.example')], ['a.example'], policy({ onTemperror: 'tempfail', dryRun: true }))).toMatchObject({ kind: 'tempfail', dryRun: true });
    });

    it('tempfails, never rejects, a required domain whose aligned signature hit a temperror, even with on_temperror: accept', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'example.bank')], ['example.bank'], policy())).toMatchObject({ kind: 'tempfail', dryRun: false });
      expect(applyVerifyPolicy([verdict('pass', 'esp.example'), verdict('temperror', 'example.bank')], ['example.bank'], policy())).toMatchObject({ kind: 'tempfail' });
    });

    it('rejects a required aligned domain when only an unaligned signature hit a temperror', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'esp.example')], ['example.bank'], policy({ onTemperror: 'tempfail' }))).toMatchObject({ kind: 'reject', status: 'no_passing' });
    });

    it('tempfails a required domain without alignment on any temperror', () => {
      expect(applyVerifyPolicy([verdict('temperror', 'esp.example')], ['loose.example'], policy())).toMatchObject({ kind: 'tempfail' });
    });
  });
});

describe('isAligned', () => {
  it.each<[string | null, string, boolean]>([
    ['example.com', 'example.com', true],
    ['Example.COM', 'example.com', true],
    ['example.com', 'news.example.com', true],
    ['example.com.', 'a.b.example.com', true],
    ['news.example.com', 'example.com', false],
    ['ample.com', 'example.com', false],
    ['com', 'example.com', false],
    [null, 'example.com', false],
    ['', 'example.com', false],
  ])('d=%s with author %s: %s', (d, author, expected) => {
    expect(isAligned(d, author)).toBe(expected);
  });
});

describe('internationalized author domains (RFC 6532)', () => {
  // The pipeline passes header text with each byte one character (latin1); rule domains are A-labels.
  const headerText = (domain: string) => Buffer.from(domain, 'utf8').toString('latin1');
  const idnRule = policy({ require: [{ domain: 'xn--bnk-qla.test', aligned: true }] });

  it.each([
    ['UTF-8 bytes of the U-labels', headerText('bänk.test')],
    ['UTF-8 bytes of upper-case U-labels', headerText('BÄNK.Test.')],
    ['a Unicode string', 'bänk.test'],
    ['latin1 bytes (not UTF-8), read as the characters they are', 'b\xe4nk.test'],
  ])('holds a From domain given as %s to the rule for its A-labels', (_name, from) => {
    expect(applyVerifyPolicy([], [from], idnRule)).toMatchObject({ kind: 'reject', status: 'no_passing', domain: 'xn--bnk-qla.test' });
    expect(applyVerifyPolicy([verdict('pass', 'xn--bnk-qla.test')], [from], idnRule)).toEqual({ kind: 'accept' });
  });

  it('aligns d= in A-labels with the From domain in U-labels, and a parent with a subdomain in U-labels', () => {
    expect(isAligned('xn--bnk-qla.test', headerText('bänk.test'))).toBe(true);
    expect(isAligned('xn--bnk-qla.test', headerText('post.bänk.test'))).toBe(true);
    expect(isAligned('bank.test', headerText('bänk.test'))).toBe(false);
  });

  it('matches no rule, and never throws, for bytes that are not UTF-8 or not a domain', () => {
    for (const from of ['\xff\xfe.test', headerText('a\u00ad\u200b.test'), headerText('☃☃☃'.repeat(30))]) {
      expect(applyVerifyPolicy([], [from], idnRule)).toEqual({ kind: 'accept' });
    }
  });
});

describe('cost', () => {
  // CPU time of one call, best of several (resists a loaded machine).
  function cpuMs(run: () => void): number {
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const started = process.cpuUsage();
      run();
      const used = process.cpuUsage(started);
      best = Math.min(best, (used.user + used.system) / 1000);
    }
    return best;
  }

  it('reads every author of a From value in time linear in its size (n and 8n characters, up to 1 MB)', () => {
    const fromValue = (bytes: number) => {
      const parts: string[] = [];
      for (let length = 0, i = 0; length < bytes; i++) {
        const part = i % 3 === 0 ? `"A, (B)" <a@d${i}.test>` : i % 3 === 1 ? `(c) a@d${i}.test` : `a@d${i}.test`;
        parts.push(part);
        length += part.length + 4;
      }
      return ` ${parts.join(',\r\n ')},\r\n ceo@example.bank`;
    };
    const run = (value: string) => applyVerifyPolicy([], mailboxAddresses(value).map((a) => addressDomain(a) ?? ''), policy());
    const small = fromValue(128 * 1024);
    const large = fromValue(1024 * 1024);
    expect(run(large)).toMatchObject({ kind: 'reject', domain: 'example.bank' });
    const ratio = cpuMs(() => run(large)) / Math.max(cpuMs(() => run(small)), 0.05);
    // linear is 8, quadratic 64; the slack absorbs a loaded machine (as test/fuzz/linear-time.test.ts)
    expect(ratio).toBeLessThan(20);
  });

  it('does not grow with authors times rules: a From naming 2,000 domains against 500 or 4,000 rules', () => {
    const authors = Array.from({ length: 2000 }, (_, i) => `author${i}.example`);
    const rules = (n: number) => policy({ require: Array.from({ length: n }, (_, i) => ({ domain: `rule${i}.example`, aligned: true })) });
    const few = cpuMs(() => applyVerifyPolicy([], authors, rules(500)));
    const many = cpuMs(() => applyVerifyPolicy([], authors, rules(4000)));
    // a search of every rule per author costs 8 times as much with 8 times the rules
    expect(many / Math.max(few, 0.05)).toBeLessThan(4);
  });
});

describe('several required authors', () => {
  const two = policy({ require: [{ domain: 'example.bank', aligned: true }, { domain: 'other.bank', aligned: true }] });

  it.each([
    ['after', ['example.bank', 'other.bank']],
    ['before', ['other.bank', 'example.bank']],
  ])('rejects for an author no DNS answer could satisfy, named %s one a retry might satisfy, rather than deferring', (_order, from) => {
    // example.bank's own signature hit a temperror; other.bank has no signature at all
    expect(applyVerifyPolicy([verdict('temperror', 'example.bank')], from, two)).toMatchObject({ kind: 'reject', status: 'no_passing', domain: 'other.bank' });
  });

  it('defers when every failing author might still be satisfied by a retry', () => {
    const verdicts = [verdict('temperror', 'example.bank'), verdict('pass', 'other.bank')];
    expect(applyVerifyPolicy(verdicts, ['example.bank', 'other.bank'], two)).toMatchObject({ kind: 'tempfail' });
  });
});
