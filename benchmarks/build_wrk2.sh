#!/usr/bin/env bash
# Build wrk2 (github.com/giltene/wrk2, the constant-throughput wrk; not packaged for Debian 12)
# from a source checkout into benchmarks/.tools/wrk2, for benchmarks/bench_load.py.
#     benchmarks/build_wrk2.sh /path/to/wrk2-source     # needs gcc, make, libssl-dev, zlib1g-dev
# The checkout is copied to a temporary folder (its own bundled LuaJIT is built there) and
# removed afterwards; only the binary is kept.
set -euo pipefail
src=${1:?usage: $0 WRK2_SOURCE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
build=$(mktemp -d /tmp/golive-wrk2-XXXXXX)
trap 'rm -rf "$build"' EXIT
cp -a "$src"/. "$build"/
make -C "$build" -j"$(nproc)" >"$build/build.log" 2>&1 || { tail -30 "$build/build.log"; exit 1; }
mkdir -p "$here/.tools"
install -m 0755 "$build/wrk" "$here/.tools/wrk2"
echo "built $here/.tools/wrk2"
