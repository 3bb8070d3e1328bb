#!/usr/bin/env bash
# Run the whole test suite: the Rust unit and integration tests, the end-to-end tests in
# tests/e2e (python-socketio and requests against the built confab binary), then the
# browser, IRC client, benchmark smoke and cluster suites. The Python packages go into
# tests/e2e/.venv from tests/e2e/requirements.txt on first use, and each later script
# installs what its suite needs.
#
# Arguments are passed to the end-to-end pytest run, e.g. `scripts/test.sh -k presence -x`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

echo "==> cargo test --all-targets"
cargo test --all-targets

echo "==> cargo build"
cargo build
target_dir="${CARGO_TARGET_DIR:-target}"
confab_bin="$(cd "$target_dir" && pwd)/debug/confab"

venv=tests/e2e/.venv
if [[ ! -x "$venv/bin/python" ]]; then
    echo "==> creating $venv"
    if ! python3 -m venv "$venv"; then
        rm -rf "$venv"
        echo "error: python3 -m venv failed; on Debian or Ubuntu install python3-venv" >&2
        exit 1
    fi
fi
echo "==> installing tests/e2e/requirements.txt into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/e2e/requirements.txt

echo "==> pytest tests/e2e (CONFAB_BIN=$confab_bin)"
CONFAB_BIN="$confab_bin" "$venv/bin/python" -m pytest tests/e2e "$@"
CONFAB_BIN="$confab_bin" scripts/test-browser.sh
scripts/test-irc.sh
scripts/test-bench.sh
scripts/test-cluster.sh
