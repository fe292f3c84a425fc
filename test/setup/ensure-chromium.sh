#!/bin/sh
# Makes Debian's chromium (and certutil, for a test NSS db) available to the browser tests.
# Idempotent: installs nothing when both exist; installs only as root, otherwise exits 1 so the
# caller can skip with a reason instead of failing.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v certutil >/dev/null 2>&1 || missing="$missing libnss3-tools"
[ -z "$missing" ] && exit 0
# shellcheck disable=SC2086 # one word per package
exec sh "$(dirname "$0")/apt-install.sh" ensure-chromium $missing
