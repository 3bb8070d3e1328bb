#!/usr/bin/env bash
# Compare two Confab server binaries under the same fan-out load, alternating them.
#
#   scripts/bench-ab.sh BEFORE_BINARY AFTER_BINARY OUT_DIR [ROUNDS]
#
# Each round runs BEFORE_BINARY, then AFTER_BINARY, each with a fresh data directory,
# listening on 127.0.0.1 and pinned to core 0, and drives it with `confab-bench fanout`
# on core 1 (one room of 1,000 guests, 10 of them sending plain `message` events).
# The IRC gateway is off, so that its fixed port cannot clash with another server.
# Results go to OUT_DIR/{before,after}-ROUND.json and server logs beside them; a summary
# of server CPU per delivery is printed at the end. Alternating the binaries spreads the
# load of other processes on the machine over both.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 BEFORE_BINARY AFTER_BINARY OUT_DIR [ROUNDS]" >&2
    exit 2
fi
before=$1 after=$2 out=$3 rounds=${4:-2}
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
bench="$target_dir/release/confab-bench"
port=${BENCH_PORT:-39411}

ulimit -n "$(ulimit -Hn)"
(cd "$repo_root" && cargo build --release -p confab-bench)
mkdir -p "$out"

server_pid=""
data=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [[ -n "$data" ]] && rm -rf "$data"
    return 0
}
trap cleanup EXIT

for round in $(seq 1 "$rounds"); do
    for label in before after; do
        if [[ $label == before ]]; then binary=$before; else binary=$after; fi
        data=$(mktemp -d)
        taskset -c 0 "$binary" serve --listen "127.0.0.1:$port" --data-dir "$data" \
            --send-rate 1000000 --send-burst 1000000 \
            --auth-rate 1000000 --auth-burst 1000000 --log warn \
            --irc-enabled false \
            >"$out/$label-$round.log" 2>&1 &
        server_pid=$!
        listening=no
        for _ in $(seq 1 300); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                listening=yes
                break
            fi
            sleep 0.1
        done
        if [[ $listening == no ]]; then
            echo "error: $binary does not listen on 127.0.0.1:$port after 30 s; see $out/$label-$round.log" >&2
            exit 1
        fi
        echo "==> $label, round $round: load average $(cut -d' ' -f1-3 /proc/loadavg)"
        timeout 300 taskset -c 1 "$bench" fanout --addr "127.0.0.1:$port" --kind confab \
            --pid "$server_pid" --members 1000 --senders 10 --start-rate 10000 \
            --max-rate 2000000 --bisect 2 --cpu-rate 20000 --step-secs 3 --drain-secs 3 \
            --out "$out/$label-$round.json"
        cleanup
        server_pid=""
        data=""
    done
done

python3 - "$out" <<'PY'
import json, pathlib, sys

for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    run = json.loads(path.read_text())
    at = run["at_cpu_rate"]
    steps = [at] + run["steps"]
    cpu = sum(s["server_cpu_us"] for s in steps)
    received = sum(s["received"] for s in steps)
    print(f"{path.stem}: server CPU per delivery {at['server_cpu_us_per_delivery']:.2f} µs "
          f"at 20,000/s, {cpu / received:.2f} µs over all steps; "
          f"p50/p99 {at['p50_us'] / 1000:.0f}/{at['p99_us'] / 1000:.0f} ms; "
          f"RSS {at['server_rss_kib'] / 1024:.0f} MiB; lost {sum(s['lost'] for s in steps)}")
PY
