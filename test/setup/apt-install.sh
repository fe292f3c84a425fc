#!/bin/sh
# Installs Debian packages for the test set-up: `apt-install.sh <script name> <package>...`.
# Only as root, otherwise exits 1 naming the command to run, so the caller can skip with a reason.
set -eu
caller="$1"
shift
if [ "$(id -u)" != 0 ]; then
  echo "$caller: missing $* and this is not root; install with: sudo apt-get install -y $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Test files run side by side: wait for another set-up's apt-get (same lock as docker-engine.ts)
# instead of failing on dpkg's lock.
exec 9>"${TMPDIR:-/tmp}/devproxy-test-apt.lock"
flock 9
# On a fresh machine apt-daily or unattended-upgrades may hold dpkg's own lock: wait for it too.
apt="apt-get -o DPkg::Lock::Timeout=600"
# A stale package index makes apt-get install 404; refresh it only when the install needs it.
$apt install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
  $apt update >/dev/null
  $apt install -y --no-install-recommends "$@" >/dev/null
}
