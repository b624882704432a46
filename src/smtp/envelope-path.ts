// The path of a MAIL FROM or RCPT TO command as the client wrote it, for smtp-server's address parser
// (see smtp-server-adapter.ts), which would otherwise change or refuse addresses a filter must pass on:
// it turns IDN A-labels into UTF-8 (user@xn--bcher-kva.example went to the next hop as user@bücher.example,
// without SMTPUTF8) and splits the command at spaces, so a quoted local part with a space
// ("john doe"@example.org, valid in RFC 5321 §4.1.2) was refused with 501.
// Input: one untrusted command line; pure.

export interface EnvelopePath {
  /** The address between < and >, without a source route ("@relay:"), exactly as written. */
  address: string;
  /** The command for smtp-server's parser: each quoted string of the path replaced by a stand-in it accepts. */
  forParser: string;
}

/** A stand-in for a quoted local part: smtp-server checks its syntax and length, and we keep the original. */
const QUOTED_STAND_IN = '"q"';
/** RFC 5321 §4.1.2 (A-d-l): a source route, which must be accepted and should be ignored. */
const SOURCE_ROUTE = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/;

/**
 * Characters no address may hold, quoted or not: C0 and C1 controls and invisible ones (smtp-server refuses the
 * same set outside quotes, against log and header injection; its parser never sees what is inside them).
 */
function isUnsafe(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x200b || code === 0x2060 || code === 0xfeff;
}

/**
 * Finds the <path> after the command's colon, honouring quoted strings (a ">" or space inside quotes is
 * part of the address). Returns null when there is no well-formed path (control characters in a quoted
 * string, an unclosed quote or bracket): smtp-server's parser then judges the command alone.
 */
export function readEnvelopePath(command: string): EnvelopePath | null {
  const colon = command.indexOf(':');
  if (colon === -1) return null;
  let open = colon + 1;
  while (command[open] === ' ' || command[open] === '\t') open++;
  if (command[open] !== '<') return null;
  let forParser = '';
  let copied = 0; // command[0, copied) is in forParser
  let i = open + 1;
  for (;;) {
    if (i >= command.length) return null;
    const c = command.charCodeAt(i);
    if (c === 0x3e /* > */) break;
    if (c === 0x3c /* < */) return null;
    if (c !== 0x22 /* " */) {
      i++;
      continue;
    }
    // A quoted string: qtextSMTP or a quoted pair (RFC 5321 §4.1.2), UTF-8 allowed (RFC 6531), no controls.
    let j = i + 1;
    for (;;) {
      if (j >= command.length) return null;
      const q = command.charCodeAt(j);
      if (isUnsafe(q)) return null;
      if (q === 0x22) break;
      if (q === 0x5c /* \ */) {
        if (j + 1 >= command.length || isUnsafe(command.charCodeAt(j + 1))) return null;
        j += 2;
      } else {
        j++;
      }
    }
    forParser += command.slice(copied, i) + QUOTED_STAND_IN;
    copied = j + 1;
    i = j + 1;
  }
  const path = command.slice(open + 1, i);
  return { address: path.replace(SOURCE_ROUTE, ''), forParser: copied === 0 ? command : forParser + command.slice(copied) };
}
