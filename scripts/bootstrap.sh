#!/usr/bin/env bash
# Makes .venv exactly what uv.lock says (hash-checked): the locked dependencies, the project
# itself editable, and the extras in BOOTSTRAP_EXTRAS (comma-separated; default: test).
#
# Needs only a Python >= 3.11 (scripts/uv installs the pinned uv with it, and .venv is made
# with it). Syncs only when uv.lock, pyproject.toml, the extras or the uv pin changed since the
# last sync (a stamp in .venv records them). A uv.lock that no longer matches pyproject.toml
# fails here (`uv sync --locked`): run `make lock` and commit uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=${BOOTSTRAP_EXTRAS:-test}
uv_pin=$(sed -n 's/^UV_VERSION=//p' scripts/uv)
stamp=.venv/.synced
want="uv $uv_pin; extras $extras; $(cat uv.lock pyproject.toml | cksum)"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

args=(sync --locked --quiet)
for extra in ${extras//,/ }; do args+=(--extra "$extra"); done
# A new .venv gets the first suitable Python on PATH; an existing one keeps its own.
[ -x .venv/bin/python ] || args+=(--python "$(scripts/uv --pick-python)")
echo "bootstrap: syncing .venv with uv.lock (extras: $extras)" >&2
scripts/uv "${args[@]}"
echo "$want" >"$stamp"
