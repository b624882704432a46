#!/usr/bin/python3
# Differential peer: random messages (odd whitespace, folding, header case, repeated fields, trailing blank
# lines), random canonicalizations, header lists and l=, then random edits a relay might make (whitespace,
# case, refolding) or a forger would (a changed address, an added line); dkimpy (Debian python3-dkim) gives its
# verdict on every result. Deterministic for a seed.
#
# usage:
#   dkimpy-differential.py dkimpy-signs SEED N DIR     dkimpy signs N messages (key DIR/key.pem, record DIR/record.txt),
#                                                     edits them, verifies: DIR/d-I.eml, one JSON line each
#   dkimpy-differential.py unsigned SEED N DIR        N unsigned messages DIR/u-I.eml (for the other implementation)
#   dkimpy-differential.py edit-verify SEED DIR       edits each DIR/s-I.eml (signed by the other implementation),
#                                                     writes DIR/e-I.eml and verifies it: one JSON line each
# JSON line: {"file": F, "dkimpy": "pass"|"fail"|"error: ...", "canon": "h/b"|null, "edit": NAME}
#
# Never generated: a space before a header's colon ("From :"), which RFC 5322's obsolete syntax allows but
# dkimpy reads as an mbox "From " separator line and drops (Mail::DKIM and dkimgate read it as the From field).
import glob
import json
import os
import random
import re
import sys

try:
    import dkim
except ImportError:
    sys.stderr.write('dkimpy-differential: python module dkim missing: apt-get install python3-dkim\n')
    sys.exit(3)

SELECTOR = b's1'
DOMAIN = b'example.com'
WORDS = [b'alpha', b'beta', b'gamma', b'x', b'42', b'caf\xc3\xa9', b'a:b', b';', b'=', b'(c)', b'"q"']
SPACING = [b' ', b'  ', b'\t', b' \t ']


def words(rnd, k, spacing=b' '):
    return spacing.join(rnd.choice(WORDS) for _ in range(k))


def header(rnd):
    fields = [
        (b'From', b'Alice <alice@example.com>'),
        (b'To', b'bob@example.org'),
        (b'Subject', words(rnd, rnd.randint(0, 6))),
        (b'Date', b'Mon, 7 Dec 2026 10:00:00 +0000'),
        (b'Message-ID', b'<%d@x.example>' % rnd.randint(0, 10**6)),
    ]
    for _ in range(rnd.randint(0, 3)):
        fields.append((rnd.choice([b'X-A', b'x-a', b'X-B', b'Cc', b'Reply-To']), words(rnd, rnd.randint(0, 5))))
    rnd.shuffle(fields)
    lines = []
    for name, value in fields:
        value = value + rnd.choice([b'', b'', b' ', b'\t'])
        if rnd.random() < 0.3 and b' ' in value:
            at = value.index(b' ')
            value = value[:at] + b'\r\n' + rnd.choice([b' ', b'\t', b'  ']) + value[at + 1:]
        lines.append(name + rnd.choice([b':', b': ', b':  ', b':\t']) + value)
    return b'\r\n'.join(lines) + b'\r\n'


def body(rnd):
    lines = []
    for _ in range(rnd.randint(0, 8)):
        spacing = rnd.choice(SPACING)
        lines.append(rnd.choice([b''] + SPACING) + words(rnd, rnd.randint(0, 6), spacing) + rnd.choice([b''] + SPACING))
    text = b'\r\n'.join(lines) + (b'\r\n' if lines else b'')
    return text + rnd.choice([b'', b'\r\n', b'\r\n\r\n', b' \r\n\r\n'])


def message(rnd):
    return header(rnd) + b'\r\n' + body(rnd)


def edit(rnd, msg):
    """One random edit: some only matter to simple canonicalization, some break any signature."""
    head, sep, rest = msg.partition(b'\r\n\r\n')
    name = rnd.choice(['none', 'header-spacing', 'body-spacing', 'name-case', 'trailing-space', 'blank-line',
                       'added-line', 'changed-address', 'refolded'])
    if name == 'header-spacing':
        head = re.sub(rb'(?<=[^\r\n]) (?=\S)', lambda _: rnd.choice([b' ', b'  ', b'\t']), head, count=2)
    elif name == 'body-spacing':
        rest = re.sub(rb' ', lambda _: rnd.choice([b' ', b'  ', b'\t']), rest, count=3)
    elif name == 'name-case':
        head = re.sub(rb'^(Subject|To|From)(?=:)', lambda m: m.group(1).upper(), head, count=1, flags=re.M)
    elif name == 'trailing-space':
        rest = rest.replace(b'\r\n', b' \r\n', 1)
    elif name == 'blank-line':
        rest = rest + b'\r\n'
    elif name == 'added-line':
        rest = rest + b'x\r\n'
    elif name == 'changed-address':
        head = head.replace(b'bob@', b'bOb@', 1)
    elif name == 'refolded':
        head = re.sub(rb'\r\n[ \t]+', b' ', head, count=1)
    return head + sep + rest, name


def verdict(msg, record):
    def dnsfunc(name, timeout=5):
        return record if name.rstrip(b'.').lower() == b's1._domainkey.example.com' else None
    try:
        return 'pass' if dkim.verify(msg, dnsfunc=dnsfunc) else 'fail'
    except Exception as error:  # a verdict too: dkimpy refused the message
        return 'error: %s' % type(error).__name__


def main():
    mode, seed = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(seed)
    out = sys.argv[-1]
    record = open(os.path.join(out, 'record.txt'), 'rb').read().strip() if mode != 'unsigned' else None
    if mode == 'dkimpy-signs':
        key = open(os.path.join(out, 'key.pem'), 'rb').read()
        for i in range(int(sys.argv[3])):
            msg = message(rnd)
            canon = (rnd.choice([b'simple', b'relaxed']), rnd.choice([b'simple', b'relaxed']))
            include = rnd.choice([None, [b'from'], [b'from', b'to', b'subject'], [b'from', b'x-a', b'x-a', b'cc', b'subject', b'date']])
            signature = dkim.sign(msg, SELECTOR, DOMAIN, key, canonicalize=canon, include_headers=include, length=rnd.random() < 0.15)
            edited, name = edit(rnd, signature + msg)
            path = os.path.join(out, 'd-%d.eml' % i)
            open(path, 'wb').write(edited)
            print(json.dumps({'file': path, 'dkimpy': verdict(edited, record), 'canon': b'/'.join(canon).decode(), 'edit': name}))
    elif mode == 'unsigned':
        for i in range(int(sys.argv[3])):
            open(os.path.join(out, 'u-%d.eml' % i), 'wb').write(message(rnd))
    elif mode == 'edit-verify':
        for path in sorted(glob.glob(os.path.join(out, 's-*.eml')), key=lambda p: int(re.search(r'(\d+)\.eml$', p).group(1))):
            edited, name = edit(rnd, open(path, 'rb').read())
            target = os.path.join(out, 'e-' + os.path.basename(path)[2:])
            open(target, 'wb').write(edited)
            print(json.dumps({'file': target, 'dkimpy': verdict(edited, record), 'canon': None, 'edit': name}))
    else:
        sys.stderr.write('dkimpy-differential: unknown mode %s\n' % mode)
        sys.exit(2)


main()
