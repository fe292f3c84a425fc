#!/bin/sh
# Makes curl (a client the HTTPS tests check devproxy against) available: Debian gives it optional
# priority, so minimal images lack it. Idempotent: installs nothing when `curl` exists; installs
# only as root, otherwise exits 1 so the caller can skip with a reason.
set -eu
command -v curl >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/apt-install.sh" ensure-curl curl ca-certificates
