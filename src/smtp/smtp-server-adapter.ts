// Two things smtp-server cannot be told through its options, added to its connection class:
// 1. our enhanced status codes (RFC 3463/7372) instead of its guess from the reply code alone (it
//    maps every 451 to 4.3.0 and every 550 to 5.1.1, but our 451 may be 4.4.1 and our 550 5.7.20):
//    a reply text starting with "x.y.z " carries the code to use;
// 2. AUTH kept out of the EHLO reply while the session is in clear text and the server refuses AUTH
//    there (smtp-server advertises it anyway, then answers 538): RFC 3207 §4.2 / RFC 4954 §4;
// 3. XFORWARD trusted by CIDR block (its useXForward takes exact addresses only): a server option
//    `proxyAllowed(address)` decides, so XFORWARD is advertised only to trusted peers and others get
//    550 5.7.1 (interface.md §4).
// Touches: SMTPConnection.prototype of the smtp-server version we pin (checked by integration tests).

import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const LEADING_CODE = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s;

/** smtp-server's own replies whose enhanced code the contract pins differently. */
function overrideFor(code: number, data: unknown, context: unknown): string | null {
  if (code === 538) return '5.7.11';
  if (code === 550 && context === 'NOT_AUTHORIZED') return '5.7.1';
  if (code === 421 && typeof data === 'string' && data.includes('Too many connected clients')) return '4.7.0';
  if (code === 421 && typeof data === 'string' && data.includes('Server shutting down')) return '4.3.2';
  return null;
}

type Send = (this: InstanceType<typeof SMTPConnection>, code: number, data?: unknown, context?: unknown) => void;

/** The extra server option read by the patched proxy check. */
export interface ProxyAllowedOption {
  proxyAllowed?: (address: string) => boolean;
}

interface ConnectionInternals {
  send: Send;
  secure: boolean;
  _proxyCommandAllowed(command: string, option: string): boolean;
  _originalRemoteAddress: string;
  _server: { options: ProxyAllowedOption & { allowInsecureAuth?: boolean } };
}

let installed = false;

export function installSmtpServerAdapter(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals;
  const originalAllowed = proto._proxyCommandAllowed;
  proto._proxyCommandAllowed = function proxyCommandAllowed(this: ConnectionInternals, command: string, option: string) {
    const decide = this._server.options.proxyAllowed;
    if (command === 'XFORWARD' && decide) return originalAllowed.call(this, command, option) && decide(this._originalRemoteAddress);
    return originalAllowed.call(this, command, option);
  };
  const original = proto.send;
  proto.send = function send(code, data, context) {
    const self = this as unknown as ConnectionInternals;
    if (code === 250 && Array.isArray(data) && !self.secure && !self._server.options.allowInsecureAuth) {
      data = (data as unknown[]).filter((line, i) => i === 0 || typeof line !== 'string' || !/^AUTH\b/i.test(line));
    }
    const useEnhanced = (this as unknown as { _useEnhancedStatusCodes(): boolean })._useEnhancedStatusCodes();
    if (typeof data === 'string') {
      const m = LEADING_CODE.exec(data);
      if (m) return original.call(this, code, useEnhanced ? data : m[2], false);
    }
    const override = overrideFor(code, data, context);
    if (override && typeof data === 'string') return original.call(this, code, useEnhanced ? `${override} ${data}` : data, false);
    return original.call(this, code, data, context);
  };
}
