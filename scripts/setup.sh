#!/usr/bin/env bash
# Install everything golive and its lab need on a fresh Debian 12 machine (run as root):
# the Debian servers the lab and the self-tests start (nginx, haproxy, openssh-server,
# PostgreSQL, Prometheus, Alertmanager and node-exporter for the monitoring lab, testssl.sh
# for the benchmark, Docker Engine + Compose + busybox-static for the containers family's
# private engine) and a virtual environment in .venv with golive
# installed in editable mode.  Safe to run again, and on a machine that runs other
# services: it starts, stops and enables nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nginx-light gunicorn openssh-server openssh-client haproxy postgresql redis-server sqlite3 iproute2 procps testssl.sh git chromium openssl wrk
              prometheus prometheus-alertmanager prometheus-node-exporter docker.io docker-compose busybox-static
              python3-pip python3-fastapi python3-uvicorn python3-h5py python3-psycopg2 python3-redis python3-aiohttp)

# Only missing packages are installed; no service is started or left enabled by the
# install, and nothing already running on the machine is stopped (scripts/install-packages.sh).
scripts/install-packages.sh "${APT_PACKAGES[@]}"

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
