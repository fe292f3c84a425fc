#!/bin/sh
# Makes Debian's testssl.sh available to the TLS scan test. Idempotent: installs nothing when
# `testssl` exists; installs only as root, otherwise exits 1 so the caller can skip with a reason.
set -eu
command -v testssl >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-testssl: testssl.sh is missing and this is not root; install with: sudo apt-get install -y testssl.sh" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Test files run side by side: wait for another set-up's apt-get (same lock as docker-engine.ts)
# instead of failing on dpkg's lock.
exec 9>"${TMPDIR:-/tmp}/devproxy-test-apt.lock"
flock 9
# A stale package index makes apt-get install 404; refresh it only when the install needs it.
apt-get install -y --no-install-recommends testssl.sh >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends testssl.sh >/dev/null
}
