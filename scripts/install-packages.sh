#!/usr/bin/env bash
# Install the Debian packages given as arguments, changing nothing golive did not create:
#
# - only packages that are missing are installed (nothing at all when none is);
# - no daemon is started by the install: a policy-rc.d that forbids it is put in place
#   for the install -- only if there is none (an operator's own is left as it is) -- and
#   removed afterwards, on every exit path, only if this script created it;
# - the services of the packages installed here are not left enabled at boot (their
#   units are disabled again); services of packages that were already there are not touched;
# - no process is stopped: nothing is ever killed by name.
#
# GOLIVE_POLICY_RC_D overrides the policy file's path (for the self-test).
set -euo pipefail

POLICY=${GOLIVE_POLICY_RC_D:-/usr/sbin/policy-rc.d}
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: Debian packages missing (${missing[*]}); run as root or install them" >&2
  exit 1
fi

created_policy=0
cleanup() {
  if [ "$created_policy" = 1 ]; then
    rm -f -- "$POLICY"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# golive setup: no service starts while packages install (removed after)\nexit 101\n' > "$POLICY"
  chmod 0755 "$POLICY"
  created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The units of the packages installed here are not left enabled (deb-systemd-helper and
# update-rc.d enable them at install time even where nothing is started).
for p in "${missing[@]}"; do
  while IFS= read -r unit; do
    [ -n "$unit" ] || continue
    name=$(basename -- "$unit")
    if command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper disable "$name" >/dev/null 2>&1 || true
    elif command -v systemctl >/dev/null 2>&1; then
      systemctl disable --quiet -- "$name" >/dev/null 2>&1 || true
    fi
  done < <(dpkg -L "$p" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|socket|timer)$' || true)
  while IFS= read -r script; do
    [ -n "$script" ] || continue
    if command -v update-rc.d >/dev/null 2>&1; then
      update-rc.d -f "$(basename -- "$script")" disable >/dev/null 2>&1 || true
    fi
  done < <(dpkg -L "$p" 2>/dev/null | grep -E '^/etc/init\.d/[^/]+$' || true)
done
