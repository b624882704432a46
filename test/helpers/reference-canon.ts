// Naive, obviously-correct reference canonicalizations (RFC 6376 §3.4) used to check the fast ones.

export function referenceRelaxedBody(body: string): string {
  if (body === '') return '';
  const lines = body.split('\r\n');
  // A final element without CRLF is a last line lacking its CRLF (or '' when the body ends in CRLF).
  const endsWithCrlf = body.endsWith('\r\n');
  if (endsWithCrlf) lines.pop();
  const canon = lines.map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (canon.length > 0 && canon[canon.length - 1] === '') canon.pop();
  return canon.length === 0 ? '' : canon.join('\r\n') + '\r\n';
}

export function referenceSimpleBody(body: string): string {
  let b = body;
  if (!b.endsWith('\r\n')) b += '\r\n';
  while (b.endsWith('\r\n\r\n')) b = b.slice(0, -2);
  return b;
}

export function referenceRelaxedHeader(field: string): string {
  const colon = field.indexOf(':');
  const name = field.slice(0, colon).replace(/[ \t\r\n]+$/, '').toLowerCase();
  const value = field
    .slice(colon + 1)
    .replace(/\r\n$/, '')
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/[\r\n]/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ /, '')
    .replace(/ $/, '');
  return `${name}:${value}\r\n`;
}
