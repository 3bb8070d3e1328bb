#!/usr/bin/env bash
# IRC gateway checks that need more than `cargo test`: a real IRC client library (the
# `irc` package from PyPI) exchanging text with a python-socketio client, and, when
# irctest is available, the irctest conformance suite run through Confab's controller in
# tests/irctest, failing on any failure not listed in tests/irctest/known-failures.txt. The raw-protocol tests in tests/irc_protocol.rs
# run with `cargo test`.
#
# Usage: scripts/test-irc.sh [PYTEST_ARGS]   (IRCTEST_DIR=/path/to/irctest to add irctest)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

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
echo "==> installing tests/e2e/requirements.txt and requirements-irc.txt into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/e2e/requirements.txt -r tests/e2e/requirements-irc.txt

echo "==> pytest tests/e2e/irc_client_check.py (real IRC client library)"
CONFAB_BIN="$confab_bin" "$venv/bin/python" -m pytest tests/e2e/irc_client_check.py

# irctest comes from IRCTEST_DIR (a checkout), or else from a bare git mirror of
# github.com/progval/irctest at IRCTEST_GIT_DIR, exported into a temporary directory that
# is deleted on exit. Its code never enters this repository.
irctest_git_dir="${IRCTEST_GIT_DIR:-/work/.mirror/progval+irctest/repo}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [[ -z "${IRCTEST_DIR:-}" && -d "$irctest_git_dir" ]]; then
    echo "==> exporting irctest $(git --git-dir="$irctest_git_dir" rev-parse --short HEAD) from $irctest_git_dir"
    mkdir "$scratch/irctest"
    git --git-dir="$irctest_git_dir" archive HEAD | tar -x -C "$scratch/irctest"
    IRCTEST_DIR="$scratch/irctest"
fi
if [[ -z "${IRCTEST_DIR:-}" ]]; then
    echo "==> irctest skipped: set IRCTEST_DIR to an irctest checkout, or IRCTEST_GIT_DIR to a bare mirror (github.com/progval/irctest)"
    exit 0
fi
if [[ ! -f "$IRCTEST_DIR/irctest/__init__.py" ]]; then
    echo "error: IRCTEST_DIR=$IRCTEST_DIR does not contain irctest/__init__.py" >&2
    exit 1
fi
echo "==> irctest from $IRCTEST_DIR against $confab_bin"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests/irctest/requirements.txt
irctest_dir="$(cd "$IRCTEST_DIR" && pwd)"
controller_dir="$repo_root/tests/irctest"
report="$scratch/report.xml"
# The specification files docs/irc.md reports on. Other files test features Confab does
# not implement (WHOWAS, MONITOR, bans and more) and would only add known failures.
spec_files=(
    account_tag away away_notify cap chathistory connection_registration echo_message
    extended_join isupport join labeled_responses message_tags messages oper part pingpong
    quit sasl topic utf8
)
spec_paths=()
for name in "${spec_files[@]}"; do
    spec_paths+=("irctest/server_tests/$name.py")
done
(
    cd "$irctest_dir"
    CONFAB_BIN="$confab_bin" PYTHONPATH="$controller_dir:$irctest_dir" \
        "$repo_root/$venv/bin/python" -m pytest \
        --controller confab_controller \
        -m 'not Ergo and not Sable and not deprecated and not strict and not arbitrary_client_tags' \
        -p no:cacheprovider -q --timeout 20 --junitxml="$report" \
        "${spec_paths[@]}" "$@" || true
)
# Every failure must be listed in tests/irctest/known-failures.txt (causes in
# docs/irc.md); a failure not listed there, such as a regression, fails this script.
"$venv/bin/python" tests/irctest/check_results.py "$report" tests/irctest/known-failures.txt
