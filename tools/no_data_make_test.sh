#!/usr/bin/env bash
# `make test` as a new user's fresh clone runs it: no ../shared beside the clone, no LOCOLLM_DATA, no data cache, and
# (after the setup, which installs from the package registries) no network at all: a network namespace with only
# loopback (needs root, or unprivileged user namespaces: `unshare -rn`). Then `make demo` the same way.
# Run: bash tools/no_data_make_test.sh [WORKDIR]   (about 45 minutes on 2 cores; logs in WORKDIR)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work" && rm -rf "$work/locollm"
git clone -q --no-hardlinks "$repo" "$work/locollm"
cd "$work/locollm"
test ! -e ../shared || { echo "$work/shared exists: pick a WORKDIR without one"; exit 1; }
cache="${XDG_CACHE_HOME:-$HOME/.cache}/locollm/data"
test ! -e "$cache" || { echo "$cache exists (fetched data): move it away first"; exit 1; }
env -u LOCOLLM_DATA make setup-dev setup > "$work/setup.log" 2>&1
offline() { env -u LOCOLLM_DATA unshare -n bash -c 'ip link set lo up && "$@"' _ "$@"; }
start=$(date +%s)
offline make test > "$work/test.log" 2>&1
echo "make test: passed in $(( ($(date +%s) - start) / 60 )) min; $(grep -a -E '^[0-9]+ passed' "$work/test.log" | tail -1)"
offline make demo > "$work/demo.log" 2>&1
echo "make demo: $(tail -2 "$work/demo.log" | head -1)"
