#!/usr/bin/perl
# Interop peer: signs messages with Perl Mail::DKIM (Debian libmail-dkim-perl) and prints each one
# with the DKIM-Signature field prepended. Reads FILE (or stdin), writes stdout (or batch outputs).
#
# usage: mail-dkim-sign.pl --domain D --selector S --key FILE [--algorithm rsa-sha256|rsa-sha1]
#          [--canon HEADER/BODY] [--headers from:from:subject] [--length] [--identity ADDR]
#          [--timestamp UNIX] [--expiry UNIX] [FILE]
#        mail-dkim-sign.pl --batch JOBS.json   ([{"args": [options..., FILE], "output": PATH}, ...];
#          one JSON line {"output", "error"} per job)
# The key is an RSA PKCS#1 PEM. Mail::DKIM 1.20230212 has no ed25519-sha256 (it says so and fails).
# --headers is the exact h= list (a name listed twice oversigns it), not Mail::DKIM's defaults.
use strict;
use warnings;
use Getopt::Long qw(GetOptionsFromArray);

BEGIN {
    eval { require Mail::DKIM::Signer; require Mail::DKIM::Signature; require JSON::PP; 1 } or do {
        print STDERR "mail-dkim-sign: Mail::DKIM missing: apt-get install libmail-dkim-perl\n";
        exit 3;
    };
}

sub parse_options {
    my @argv = @_;
    my %o    = (
        algorithm => 'rsa-sha256',
        canon     => 'relaxed/relaxed',
        headers   => 'from:to:subject:date:message-id',
    );
    GetOptionsFromArray( \@argv, \%o, 'domain=s', 'selector=s', 'key=s', 'algorithm=s', 'canon=s',
        'headers=s', 'length', 'identity=s', 'timestamp=i', 'expiry=i' )
      or die "usage: mail-dkim-sign.pl --domain D --selector S --key FILE [options] [FILE]\n";
    for my $req (qw(domain selector key)) {
        defined $o{$req} or die "mail-dkim-sign: --$req is required\n";
    }
    $o{algorithm} =~ /^rsa-sha(1|256)$/
      or die "mail-dkim-sign: Mail::DKIM $Mail::DKIM::VERSION cannot sign with $o{algorithm}\n";
    $o{canon} .= '/simple' unless $o{canon} =~ m{/};
    $o{file} = $argv[0];
    return \%o;
}

sub slurp {
    my ($path) = @_;
    local $/;
    my $data;
    if ( defined $path ) {
        open my $fh, '<:raw', $path or die "mail-dkim-sign: cannot read $path: $!\n";
        $data = <$fh>;
        close $fh;
    }
    else {
        binmode STDIN;
        $data = <STDIN>;
    }
    return defined $data ? $data : '';
}

# Signs $msg; with $body_count defined, the signature carries l=$body_count.
# Returns (signature object, canonicalized body length as Mail::DKIM counted it).
sub sign_once {
    my ( $o, $msg, $body_count ) = @_;
    my $policy = sub {
        my $signer = shift;
        my $sig    = Mail::DKIM::Signature->new(
            Algorithm => $o->{algorithm},
            Method    => $o->{canon},
            Headers   => $o->{headers},
            Domain    => $o->{domain},
            Selector  => $o->{selector},
            ( defined $o->{identity}  ? ( Identity   => $o->{identity} )  : () ),
            ( defined $o->{timestamp} ? ( Timestamp  => $o->{timestamp} ) : () ),
            ( defined $o->{expiry}    ? ( Expiration => $o->{expiry} )    : () ),
        );
        $sig->body_count($body_count) if defined $body_count;
        $signer->add_signature($sig);
        return;
    };
    my $dkim = Mail::DKIM::Signer->new( Policy => $policy, KeyFile => $o->{key} );
    $dkim->PRINT($msg);
    $dkim->CLOSE;
    ( $dkim->result // '' ) eq 'signed' or die "mail-dkim-sign: not signed\n";
    my $bc  = $dkim->{algorithms}[0]{body_canon};
    my $len = $bc->body_count;
    # simple body canonicalization of an empty body is one CRLF, which Mail::DKIM emits
    # outside its byte count (Canonicalization::simple::finish_body)
    $len += 2 if $o->{canon} =~ m{/simple$} && !$bc->{canonicalize_body_started};
    return ( $dkim->signature, $len );
}

sub signed_message {
    my ( $o, $msg ) = @_;
    my ( $signature, $len ) = sign_once( $o, $msg, undef );
    ($signature) = sign_once( $o, $msg, $len ) if $o->{length};
    return $signature->as_string . "\015\012" . $msg;
}

binmode STDOUT;
if ( @ARGV == 2 && $ARGV[0] eq '--batch' ) {
    my $json = JSON::PP->new->canonical;
    my $jobs = $json->decode( slurp( $ARGV[1] ) );
    local $| = 1;
    for my $job (@$jobs) {
        my $error;
        eval {
            my $o   = parse_options( @{ $job->{args} } );
            my $out = signed_message( $o, slurp( $o->{file} ) );
            open my $fh, '>:raw', $job->{output} or die "cannot write $job->{output}: $!\n";
            print {$fh} $out;
            close $fh or die "cannot write $job->{output}: $!\n";
            1;
        } or do {
            $error = $@ || 'unknown error';
            chomp $error;
        };
        print $json->encode( { output => $job->{output}, error => $error } ), "\n";
    }
    exit 0;
}

my $o = eval { parse_options(@ARGV) } or do {
    print STDERR $@;
    exit 2;
};
print signed_message( $o, slurp( $o->{file} ) );
exit 0;
