#!/bin/sh
# Makes Debian's chromium (and certutil, for a test NSS db) available to the browser tests.
# Idempotent: installs nothing when both exist; installs only as root, otherwise exits 1 so the
# caller can skip with a reason instead of failing.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v certutil >/dev/null 2>&1 || missing="$missing libnss3-tools"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-chromium: missing$missing and not root; install with: sudo apt-get install -y$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Test files run side by side: wait for another set-up's apt-get (same lock as docker-engine.ts)
# instead of failing on dpkg's lock.
exec 9>"${TMPDIR:-/tmp}/devproxy-test-apt.lock"
flock 9
# A stale package index makes apt-get install 404; refresh it only when the install needs it.
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends $missing >/dev/null
}
