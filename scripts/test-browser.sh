#!/usr/bin/env bash
# Run the web client's end-to-end tests in headless Chromium (tests/browser).
#
# Installs what is missing: Debian's chromium, a CJK font, a colour emoji font, irssi and
# tmux (apt-get, as root), and playwright-core and typescript from
# tests/browser/package-lock.json (npm ci).
# Builds confab when CONFAB_BIN is unset. Type-checks the client's modules with tsc
# --checkJs, then runs the tests. Each test file starts its own servers on free loopback
# ports with temporary data directories. Screenshots go to artifacts/browser/, which git ignores.
#
# Arguments are passed to `node --test`, e.g. `scripts/test-browser.sh tests/browser/chat.test.js`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

chromium_bin="${CHROMIUM_BIN:-/usr/bin/chromium}"
# Without an emoji font, Chromium draws emoji in messages and screenshots as empty boxes.
if [[ ! -x "$chromium_bin" ]] || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" \
    || ! fc-list 2>/dev/null | grep -qi "noto color emoji"; then
    echo "==> installing chromium, a CJK font and an emoji font with apt-get"
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "error: $chromium_bin, a CJK font or an emoji font is missing; run as root or install chromium, fonts-wqy-microhei and fonts-noto-color-emoji" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium fonts-wqy-microhei fonts-noto-color-emoji >/dev/null
fi

# tests/browser/irc.test.js drives irssi, a real IRC client, inside tmux.
if ! command -v irssi >/dev/null || ! command -v tmux >/dev/null; then
    echo "==> installing irssi and tmux with apt-get"
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "error: irssi or tmux is missing; run as root or install irssi (1.2 or newer) and tmux" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq irssi tmux >/dev/null
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "==> installing nodejs and npm with apt-get"
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "error: node and npm are missing; install nodejs (20.10 or newer) and npm" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi
# --test-concurrency needs node 20.10 or newer.
node_version="$(node -p 'process.versions.node')"
if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 10) ? 0 : 1)'; then
    echo "error: node $node_version is too old for the browser tests; install node 20.10 or newer" >&2
    exit 1
fi

if [[ ! -d tests/browser/node_modules/playwright-core || ! -d tests/browser/node_modules/typescript ]]; then
    echo "==> npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "==> tsc: type-check web/*.js from their JSDoc (tests/browser/tsconfig.json)"
(cd tests/browser && node_modules/.bin/tsc -p tsconfig.json)

if [[ -z "${CONFAB_BIN:-}" ]]; then
    echo "==> cargo build"
    cargo build
    target_dir="${CARGO_TARGET_DIR:-target}"
    CONFAB_BIN="$(cd "$target_dir" && pwd)/debug/confab"
fi
export CONFAB_BIN CHROMIUM_BIN="$chromium_bin"
export BROWSER_ARTIFACTS="${BROWSER_ARTIFACTS:-$repo_root/artifacts/browser}"

if [[ $# -eq 0 ]]; then
    set -- tests/browser/*.test.js
fi
echo "==> node --test ($*), screenshots in $BROWSER_ARTIFACTS"
node --test --test-concurrency=1 --test-reporter=spec "$@"
