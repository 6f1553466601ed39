#!/usr/bin/env bash
# Install everything golive and its lab need on a fresh Debian 12 machine (run as root):
# the Debian servers the lab and the self-tests start (nginx, haproxy, openssh-server,
# PostgreSQL, Prometheus, Alertmanager and node-exporter for the monitoring lab, testssl.sh
# for the benchmark, Docker Engine + Compose + busybox-static for the containers family's
# private engine) and a virtual environment in .venv with golive
# installed in editable mode.  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nginx-light gunicorn openssh-server openssh-client haproxy postgresql redis-server sqlite3 iproute2 procps testssl.sh git chromium openssl wrk
              prometheus prometheus-alertmanager prometheus-node-exporter docker.io docker-compose busybox-static
              python3-pip)

need_apt=0
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: Debian packages missing (${APT_PACKAGES[*]}); run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Install without starting any packaged daemon (docker.io would start a system dockerd
  # with its own bridge and iptables rules): a policy-rc.d that forbids starts, only for
  # the install and only when the machine has none of its own.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  apt_rc=0
  apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null || apt_rc=$?
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$apt_rc" = 0 ] || { echo "setup: apt-get install failed ($apt_rc)" >&2; exit 1; }
fi
# Debian starts nothing here (no systemd); make sure packaged daemons did not grab ports.
pkill -x nginx 2>/dev/null || true

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/pip install -q -e '.[lab,k8s,dev]' > .venv/pip-install.log 2>&1; then
  tail -40 .venv/pip-install.log >&2
  echo "setup: pip install failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
echo "setup: done ($(.venv/bin/python --version), golive $(.venv/bin/python -c 'import golive; print(golive.__version__)'))"
