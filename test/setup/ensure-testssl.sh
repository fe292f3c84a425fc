#!/bin/sh
# Makes Debian's testssl.sh available to the TLS scan test. Idempotent: installs nothing when
# `testssl` exists; installs only as root, otherwise exits 1 so the caller can skip with a reason.
set -eu
command -v testssl >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/apt-install.sh" ensure-testssl testssl.sh
