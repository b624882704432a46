#!/usr/bin/python3
# Interop peer: verifies every DKIM-Signature of messages with Debian's dkimpy (python3-dkim),
# fetching keys over DNS from the resolver given with --dns HOST:PORT (dnspython, no system resolver).
#
# usage: dkimpy-verify.py --dns HOST:PORT FILE... ; prints one JSON line per signature, top first:
#   {"file": F, "index": 0, "result": "pass"|"fail", "domain": "...", "selector": "...", "detail": "..."}
# ("result": "unparsable" with index null when dkimpy cannot parse the header) and exits 0:
# the verdicts are the output.
import argparse
import json
import logging
import sys

# dnspython imports httpx/requests for DNS-over-HTTPS we never use: ~150 ms per run. Hide them.
for _optional in ('httpx', 'requests'):
    sys.modules.setdefault(_optional, None)

try:
    import dkim
except ImportError:
    sys.stderr.write('dkimpy-verify: python module dkim missing: apt-get install python3-dkim\n')
    sys.exit(3)
try:
    import dns.exception
    import dns.rdatatype
    import dns.resolver
except ImportError:
    sys.stderr.write('dkimpy-verify: python module dns missing: apt-get install python3-dnspython\n')
    sys.exit(3)


def make_dnsfunc(server):
    host, _, port = server.rpartition(':')
    if not host:
        host, port = port, '53'
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [host.strip('[]')]
    r.port = int(port)
    r.use_edns(0, 0, 4096)

    def dnsfunc(name, timeout=5):
        # dkimpy calls dnsfunc(b'sel._domainkey.example.com.', timeout=5) and wants the
        # concatenated strings of one TXT record as bytes, or None when there is none.
        if isinstance(name, bytes):
            name = name.decode('ascii')
        try:
            ans = r.resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False,
                            lifetime=timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.resolver.NoNameservers as e:  # SERVFAIL / REFUSED
            raise dkim.DnsTimeoutError('servfail: {0}'.format(e))
        except dns.exception.Timeout as e:
            raise dkim.DnsTimeoutError('timeout: {0}'.format(e))
        if ans.rrset is None:
            return None
        for rd in ans.rrset:
            return b''.join(rd.strings)
        return None

    return dnsfunc


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        if record.levelno >= logging.INFO:
            self.records.append(record.getMessage())


def verify_file(path, dnsfunc, minkey):
    with open(path, 'rb') as f:
        msg = f.read()
    try:
        count = sum(1 for n, _ in dkim.DKIM(msg).headers if n.lower() == b'dkim-signature')
    except dkim.DKIMException as e:  # dkimpy cannot parse the header at all
        print(json.dumps({'file': path, 'index': None, 'result': 'unparsable', 'domain': None,
                          'selector': None, 'detail': '%s: %s' % (type(e).__name__, e)}), flush=True)
        return
    for idx in range(count):
        handler = ListHandler()
        logger = logging.getLogger('dkimpy-verify-%d' % idx)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        d = dkim.DKIM(msg, logger=logger, minkey=minkey, timeout=5)
        out = {'file': path, 'index': idx, 'result': 'fail', 'domain': None, 'selector': None,
               'detail': None}
        try:
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            out['result'] = 'pass' if ok else 'fail'
            if not ok:
                out['detail'] = '; '.join(handler.records) or 'signature did not verify'
        except dkim.DKIMException as e:
            out['detail'] = '%s: %s' % (type(e).__name__, e)
        except Exception as e:  # a peer bug must still yield a verdict line
            out['detail'] = 'exception %s: %s' % (type(e).__name__, e)
        for attr in ('domain', 'selector'):
            v = getattr(d, attr, None)
            if isinstance(v, bytes):
                v = v.decode('utf-8', 'replace')
            out[attr] = v
        print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description='verify every DKIM signature of messages with dkimpy')
    p.add_argument('--dns', required=True, help='HOST:PORT of the DNS server to ask')
    p.add_argument('--minkey', type=int, default=1024)
    p.add_argument('files', nargs='+')
    a = p.parse_args()
    dnsfunc = make_dnsfunc(a.dns)
    for path in a.files:
        verify_file(path, dnsfunc, a.minkey)
    sys.exit(0)


if __name__ == '__main__':
    main()
