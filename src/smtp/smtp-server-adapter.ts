// Makes smtp-server send our enhanced status codes (RFC 3463/7372) instead of its guess from the
// reply code alone: it maps every 451 to 4.3.0 and every 550 to 5.1.1, but our 451 may be 4.4.1
// and our 550 may be 5.7.20. A reply text starting with "x.y.z " carries the code to use.
// Touches: SMTPConnection.prototype.send of the smtp-server version we pin (checked by tests).

import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const LEADING_CODE = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/s;

/** smtp-server's own replies whose enhanced code the contract pins differently. */
function overrideFor(code: number, data: unknown, context: unknown): string | null {
  if (code === 538) return '5.7.11';
  if (code === 550 && context === 'NOT_AUTHORIZED') return '5.7.1';
  if (code === 421 && typeof data === 'string' && data.includes('Too many connected clients')) return '4.7.0';
  return null;
}

type Send = (this: InstanceType<typeof SMTPConnection>, code: number, data?: unknown, context?: unknown) => void;

let installed = false;

export function installEnhancedStatusCodes(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as { send: Send; _useEnhancedStatusCodes(): boolean };
  const original = proto.send;
  proto.send = function send(code, data, context) {
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
