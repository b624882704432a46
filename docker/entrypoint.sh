#!/bin/sh
# dkimgate's container entrypoint: runs one dkimgate command, "serve" when none is given.
# exec replaces this shell, so dkimgate itself receives SIGTERM (drain, then exit) and SIGHUP (reload).
# The configuration is $DKIMGATE_CONFIG plus the DKIMGATE_* overrides: the config loader reads both.
set -eu

# The application directory: the entrypoint lives in its docker/ folder (/app/docker in the image).
app=$(cd "$(dirname "$0")/.." && pwd)

# No arguments, or only options (docker run IMAGE --config /x.yaml): they are serve's.
if [ "$#" -eq 0 ]; then
  set -- serve
else
  case "$1" in
    -*) set -- serve "$@" ;;
  esac
fi

# A young generation (V8 semi-space) of at most 4 MB: V8 then never marks the old generation over and over
# while the daemon relays large messages (README, Development: bench:e2e).
exec node --max-semi-space-size=4 "$app/dist/cli.js" "$@"
