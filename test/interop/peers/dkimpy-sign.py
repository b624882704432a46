#!/usr/bin/python3
# Interop peer: signs one message with Debian's dkimpy (python3-dkim) and prints it with the
# DKIM-Signature field prepended. Reads FILE (or stdin), writes stdout; touches nothing else.
#
# Run with /usr/bin/python3 (Debian's), not a pyenv python3 without dkimpy.
#
# usage: dkimpy-sign.py --domain D --selector S --key FILE
#          [--algorithm rsa-sha256|rsa-sha1|ed25519-sha256] [--canon HEADER/BODY]
#          [--headers from:from:subject] [--length] [--identity ADDR]
#          [--timestamp UNIX] [--expiry UNIX] [FILE]
#        dkimpy-sign.py --batch JOBS.json   (many messages in one process; see batch())
# The RSA key is PKCS#1 PEM; the Ed25519 key is the base64 of the 32-byte seed (dkimpy's form).
import argparse
import json
import sys

# dnspython imports httpx/requests for DNS-over-HTTPS we never use: ~150 ms per run. Hide them.
for _optional in ('httpx', 'requests'):
    sys.modules.setdefault(_optional, None)

try:
    import dkim
except ImportError:
    sys.stderr.write('dkimpy-sign: python module dkim missing: apt-get install python3-dkim\n')
    sys.exit(3)


class FixedClockDKIM(dkim.DKIM):
    """dkimpy 1.1 has no t=/x= parameters: rewrite the tag list before it is hashed and signed."""

    timestamp = None
    expiry = None

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):
        out = []
        for tag, value in fields:
            if tag == b't' and self.timestamp is not None:
                value = str(self.timestamp).encode('ascii')
            out.append((tag, value))
            if tag == b't' and self.expiry is not None:
                out.append((b'x', str(self.expiry).encode('ascii')))
        return super().gen_header(out, include_headers, canon_policy, header_name, pk, standardize)


def parser():
    p = argparse.ArgumentParser(description='sign a message with dkimpy')
    p.add_argument('--domain', required=True)
    p.add_argument('--selector', required=True)
    p.add_argument('--key', required=True)
    p.add_argument('--algorithm', default='rsa-sha256',
                   choices=['rsa-sha256', 'rsa-sha1', 'ed25519-sha256'])
    p.add_argument('--canon', default='relaxed/relaxed')
    p.add_argument('--headers', default='from:to:subject:date:message-id',
                   help='colon-separated h= list, bottom-up; repeat a name to oversign it')
    p.add_argument('--length', action='store_true', help='add l=')
    p.add_argument('--identity', default=None)
    p.add_argument('--timestamp', type=int, default=None)
    p.add_argument('--expiry', type=int, default=None, help='absolute x= (unix seconds)')
    p.add_argument('file', nargs='?')
    return p


def sign(a, msg):
    """Returns msg with the DKIM-Signature field dkimpy made for the options a prepended."""
    with open(a.key, 'rb') as f:
        key = f.read()
    if a.algorithm == 'ed25519-sha256':
        key = key.strip()
    hc, _, bc = a.canon.partition('/')
    if not bc:
        bc = 'simple'
    include = [h.strip().encode('ascii') for h in a.headers.split(':') if h.strip()]
    d = FixedClockDKIM(msg, signature_algorithm=a.algorithm.encode('ascii'))
    d.timestamp = a.timestamp
    d.expiry = a.expiry
    sig = d.sign(a.selector.encode('ascii'), a.domain.encode('ascii'), key,
                 identity=a.identity.encode('utf-8') if a.identity else None,
                 canonicalize=(hc.encode('ascii'), bc.encode('ascii')),
                 include_headers=include, length=a.length)
    return sig + msg


def batch(path):
    """--batch JOBS.json: [{"args": [options..., FILE], "output": PATH}, ...]; one JSON line per job."""
    with open(path, 'rb') as f:
        jobs = json.load(f)
    p = parser()
    for job in jobs:
        out = {'output': job['output'], 'error': None}
        try:
            a = p.parse_args(job['args'])
            with open(a.file, 'rb') as f:
                signed = sign(a, f.read())
            with open(job['output'], 'wb') as f:
                f.write(signed)
        except SystemExit:
            out['error'] = 'bad options: %r' % (job['args'],)
        except Exception as e:
            out['error'] = '%s: %s' % (type(e).__name__, e)
        print(json.dumps(out), flush=True)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--batch':
        batch(sys.argv[2])
        return
    a = parser().parse_args()
    if a.file:
        with open(a.file, 'rb') as f:
            msg = f.read()
    else:
        msg = sys.stdin.buffer.read()
    sys.stdout.buffer.write(sign(a, msg))


if __name__ == '__main__':
    main()
