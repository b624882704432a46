#!/usr/bin/perl
# Interop peer: verifies every DKIM-Signature of messages with Perl Mail::DKIM (Debian
# libmail-dkim-perl), fetching keys from the DNS server given with --dns HOST:PORT (Net::DNS).
#
# usage: mail-dkim-verify.pl --dns HOST:PORT [--strict] FILE...
# Prints one JSON line per DKIM signature, top first:
#   {"file":F,"index":0,"result":"pass","detail":"pass","domain":"...","selector":"...","algorithm":"..."}
# result is Mail::DKIM's (pass, fail, invalid, temperror, none, ...); exits 0 once it has verdicts.
use strict;
use warnings;
use Getopt::Long qw(GetOptions);

BEGIN {
    eval { require Mail::DKIM::Verifier; require Mail::DKIM::DNS; 1 } or do {
        print STDERR "mail-dkim-verify: Mail::DKIM missing: apt-get install libmail-dkim-perl\n";
        exit 3;
    };
    eval { require Net::DNS::Resolver; require JSON::PP; 1 } or do {
        print STDERR "mail-dkim-verify: Net::DNS or JSON::PP missing: apt-get install libnet-dns-perl\n";
        exit 3;
    };
}

my %o;
GetOptions( \%o, 'dns=s', 'strict' )
  or die "usage: mail-dkim-verify.pl --dns HOST:PORT [--strict] FILE...\n";
defined $o{dns} or die "mail-dkim-verify: --dns HOST:PORT is required\n";
my ( $host, $port ) = $o{dns} =~ /^\[?([^\]]+?)\]?:(\d+)$/
  or die "mail-dkim-verify: --dns wants HOST:PORT, got $o{dns}\n";

Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(
        nameservers => [$host],
        port        => $port,
        recurse     => 1,
        udp_timeout => 3,
        tcp_timeout => 3,
        retry       => 1,
        searchlist  => [],
        defnames    => 0,
        dnsrch      => 0,
    )
);

my $json = JSON::PP->new->canonical;
binmode STDOUT;
local $| = 1;
@ARGV or die "usage: mail-dkim-verify.pl --dns HOST:PORT [--strict] FILE...\n";
for my $path (@ARGV) {
    my $msg;
    {
        local $/;
        open my $fh, '<:raw', $path or die "mail-dkim-verify: cannot read $path: $!\n";
        $msg = <$fh>;
        close $fh;
    }
    $msg = '' unless defined $msg;

    my $dkim = Mail::DKIM::Verifier->new( $o{strict} ? ( Strict => 1 ) : () );
    $dkim->PRINT($msg);
    $dkim->CLOSE;

    my $i = 0;
    for my $sig ( $dkim->signatures ) {
        next if $sig->isa('Mail::DKIM::DkSignature');    # skip DomainKeys signatures
        print $json->encode(
            {
                file      => $path,
                index     => $i++,
                result    => $sig->result,
                detail    => $sig->result_detail,
                domain    => scalar $sig->domain,
                selector  => scalar $sig->selector,
                algorithm => scalar $sig->algorithm,
            }
          ),
          "\n";
    }
}
exit 0;
