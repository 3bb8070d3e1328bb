#!/usr/bin/env bash
# Run the cluster tests in tests/cluster: three confab nodes sharing PostgreSQL and a
# Redis server that the tests start on a free port, behind nginx as in
# docs/deployment.md. Installs redis-server, nginx and the PostgreSQL client with
# apt-get when they are missing. PostgreSQL itself must be running: by default the
# local `test` database with trust authentication, or CONFAB_TEST_DATABASE_URL.
#
# Arguments are passed to pytest, e.g. `scripts/test-cluster.sh -k redis -x`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "==> cargo build"
cargo build
target_dir="${CARGO_TARGET_DIR:-target}"
confab_bin="$(cd "$target_dir" && pwd)/debug/confab"

# The cluster tests share the end-to-end suite's virtual environment and support code.
venv=tests/e2e/.venv
if [[ ! -x "$venv/bin/python" ]]; then
    echo "==> creating $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/e2e/requirements.txt

echo "==> pytest tests/cluster (CONFAB_BIN=$confab_bin)"
cd tests/cluster
CONFAB_BIN="$confab_bin" "../../$venv/bin/python" -m pytest "$@"
