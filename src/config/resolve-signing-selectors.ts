// Flattens sign.domains into one entry per (From domain, selector) with every sign option resolved:
// global sign options < the domain's < the selector entry's. Pure; input: a validated Config.

import type { Config, SignOptions, SigningSelector } from './config.js';
import { expandTemplate } from './dkim-syntax.js';

/** Every key to sign with, in configuration order (domains, then each domain's selectors). */
export function resolveSigningSelectors(config: Config): SigningSelector[] {
  const out: SigningSelector[] = [];
  const sign = config.sign;
  const global: SignOptions = {
    digest: sign.digest,
    headerCanon: sign.headerCanon,
    bodyCanon: sign.bodyCanon,
    headerlist: sign.headerlist,
    key: sign.key,
    identity: sign.identity,
    lifetime: sign.lifetime,
    bodyLengthLimit: sign.bodyLengthLimit,
    copyHeaders: sign.copyHeaders,
  };
  for (const [fromDomain, domain] of Object.entries(sign.domains)) {
    const signingDomain = domain.baseDomain ?? fromDomain;
    domain.selectors.forEach((entry, index) => {
      const options: SignOptions = { ...global, ...definedOnly(domain.overrides), ...definedOnly(entry.overrides) };
      out.push({
        fromDomain,
        signingDomain,
        selector: entry.selector,
        keyPath: expandTemplate(options.key, signingDomain, entry.selector),
        algorithm: options.digest,
        headerCanon: options.headerCanon,
        bodyCanon: options.bodyCanon,
        headerList: options.headerlist,
        agentId: options.identity === null ? null : expandTemplate(options.identity, signingDomain, entry.selector),
        lifetimeHours: options.lifetime,
        bodyLengthLimit: options.bodyLengthLimit,
        copyHeaders: options.copyHeaders,
        signCondition: domain.signCondition ?? sign.signCondition,
        origin: `sign.domains.${fromDomain}` + (domain.selectors.length === 1 ? '.selector' : `.selectors[${index}]`),
      });
    });
  }
  return out;
}

function definedOnly(options: Partial<SignOptions>): Partial<SignOptions> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<SignOptions>;
}
