#!/usr/bin/env bash
# Benchmark Confab against its peers in one run and regenerate docs/benchmarks.md.
#
#   scripts/bench.sh            full run (about 25 minutes on 2 cores)
#   scripts/bench.sh --smoke    seconds-long run of every scenario with small numbers;
#                               results go to $BENCH_RESULTS (default: a temporary
#                               directory) and docs/benchmarks.md is left alone
#
# Needs Rust, node/npm, python3 with venv, curl and taskset. The peers are installed
# here: bench/peers/node with `npm ci`, the Flask-SocketIO sample into two venvs from
# its pinned requirements, and the ngIRCd IRC daemon (the IRC fan-out peer) with
# apt-get from Debian's packages unless `ngircd` is already on the PATH. Every server binds to 127.0.0.1 and runs pinned to core 0
# (`taskset -c 0`); the generator runs on core 1.
# BENCH_SERVERS limits the servers, e.g. BENCH_SERVERS="confab reference".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

mode=full
if [[ "${1:-}" == "--smoke" ]]; then
    mode=smoke
fi

# One server process may hold about 19,900 connections under this machine's 20,000
# open-file limit; ask for as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)"

if [[ $mode == smoke ]]; then
    servers="${BENCH_SERVERS:-confab reference node ngircd}"
    profile=debug
    # Built one at a time: building both in one command unifies their dependencies'
    # features and rebuilds the server's dependency tree.
    cargo build -p confab
    cargo build -p confab-bench
    results="${BENCH_RESULTS:-$(mktemp -d)}"
    server_core=""
    generator_core=""
    fanout_args=(--members 30 --senders 3 --start-rate 300 --max-rate 600 --bisect 1
                 --cpu-rate 300 --cpu-runs 2 --step-secs 1 --drain-secs 2 --settle-secs 0.5)
    irc_fanout_args=("${fanout_args[@]}")
    idle_counts=100,200
    idle_hold=1
    # 200 connections exceed this, so that level runs in two generator worker processes.
    idle_args=(--per-process 150)
    storm_clients=200
    storm_rounds=2
    rooms_args=(--users 300 --rates 300 --step-secs 1 --drain-secs 2)
    seed_users=400
    history_sizes="2000"
    history_reads=100
else
    servers="${BENCH_SERVERS:-confab reference node flask-gevent flask-threading ngircd}"
    profile=release
    # Built one at a time: building both in one command unifies their dependencies'
    # features and rebuilds the server's dependency tree.
    cargo build --release -p confab
    cargo build --release -p confab-bench
    results="bench/results/latest"
    rm -rf "$results"
    server_core="taskset -c 0"
    generator_core="taskset -c 1"
    fanout_args=(--members 1000 --senders 10 --start-rate 10000 --max-rate 2000000
                 --bisect 4 --cpu-rate 20000 --step-secs 5 --drain-secs 3)
    # IRC registration and JOIN announcements take longer to settle than a Socket.IO
    # handshake, because every JOIN goes to every member already in the channel.
    irc_fanout_args=("${fanout_args[@]}" --settle-secs 5)
    idle_counts=1000,10000,19500
    idle_hold=10
    idle_args=()
    storm_clients=5000
    storm_rounds=3
    rooms_args=(--users 10000 --rates 20000,50000,100000 --step-secs 5 --drain-secs 3)
    seed_users=20000
    history_sizes="1000000 10000000"
    history_reads=2000
fi
mkdir -p "$results"
target_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/$profile"
confab="$target_dir/confab"
bench="$target_dir/confab-bench"
work="$(mktemp -d)"
started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Waits up to 30 s for a TCP port on 127.0.0.1 to accept connections.
wait_port() {
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "error: nothing listens on 127.0.0.1:$1 after 30 s; see $work/*.log" >&2
    return 1
}

# Starts server $1 on port $2 and sets server_pid. Confab keeps its data in $3 and
# serves IRC on port $4 if one is given.
start_server() {
    local kind=$1 port=$2 data=${3:-} irc_port=${4:-}
    local irc_args=(--irc-enabled false)
    if [[ -n $irc_port ]]; then
        # The default input budget would hold each sender to 4 lines a second.
        irc_args=(--irc-listen "127.0.0.1:$irc_port"
                  --irc-flood-burst 1000000 --irc-flood-rate 1000000)
    fi
    case $kind in
        confab)
            $server_core "$confab" serve --listen "127.0.0.1:$port" --data-dir "$data" \
                --send-rate 1000000 --send-burst 1000000 \
                --auth-rate 1000000 --auth-burst 1000000 --log warn \
                "${irc_args[@]}" \
                >>"$work/$kind.log" 2>&1 &
            ;;
        ngircd)
            write_ngircd_conf "$port" >"$work/ngircd.conf"
            $server_core ngircd --nodaemon --config "$work/ngircd.conf" \
                >>"$work/$kind.log" 2>&1 &
            ;;
        reference)
            $server_core "$bench" reference-server --listen "127.0.0.1:$port" \
                >>"$work/$kind.log" 2>&1 &
            ;;
        node)
            (cd bench/peers/node && PORT=$port exec $server_core node server.js) \
                >>"$work/$kind.log" 2>&1 &
            ;;
        flask-gevent | flask-threading)
            PORT=$port $server_core "bench/peers/flask/.venv-${kind#flask-}/bin/python" \
                bench/peers/flask/app.py >>"$work/$kind.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_port "$port"
    if [[ $kind == confab ]]; then
        # Confab binds its port before it opens the database, so an open port does not
        # mean that the migrations have run; /readyz returns 200 once the store responds.
        for _ in $(seq 1 300); do
            if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        echo "error: Confab on 127.0.0.1:$port not ready after 30 s; see $work/confab.log" >&2
        return 1
    fi
}

# Prints an ngIRCd configuration that listens on 127.0.0.1:$1 only. Penalties are
# off (MaxPenaltyTime = 0), because ngIRCd otherwise throttles a client to a few
# commands a second, as Confab's default input budget does. Connections per address
# are not limited, since the generator opens hundreds from each. ngIRCd started as
# root switches to the unprivileged user `nobody` after reading this file.
write_ngircd_conf() {
    cat <<EOF
[Global]
Name = bench.ngircd
Info = confab-bench IRC peer
Listen = 127.0.0.1
Ports = $1
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
EOF
}

stop_server() {
    # The server may already have exited under load.
    kill "$server_pid" 2>/dev/null || echo "warning: server $server_pid had already exited" >&2
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

install_peers() {
    for kind in $servers; do
        case $kind in
            node)
                echo "==> npm ci in bench/peers/node"
                (cd bench/peers/node && npm ci --no-audit --no-fund --silent)
                ;;
            flask-gevent | flask-threading)
                local venv="bench/peers/flask/.venv-${kind#flask-}"
                if [[ ! -x "$venv/bin/python" ]]; then
                    python3 -m venv "$venv"
                fi
                echo "==> installing bench/peers/flask/requirements-${kind#flask-}.txt"
                "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                    -r "bench/peers/flask/requirements-${kind#flask-}.txt"
                ;;
            ngircd)
                if ! command -v ngircd >/dev/null; then
                    if [[ $(id -u) -ne 0 ]]; then
                        echo "error: ngircd is missing; install it as root with 'apt-get install ngircd'" >&2
                        exit 1
                    fi
                    echo "==> apt-get install ngircd"
                    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ngircd
                fi
                ;;
        esac
    done
}

# Runs one generator subcommand against the running server.
generate() {
    local scenario=$1 kind=$2 port=$3
    shift 3
    echo "==> $kind: $scenario"
    if ! $generator_core "$bench" "$scenario" --addr "127.0.0.1:$port" --kind "$kind" \
        --pid "$server_pid" --out "$results/$kind-$scenario.json" "$@"; then
        # A peer that breaks under load is a result too; the smoke test's checks notice
        # the missing file.
        echo "warning: $kind $scenario failed; its result is missing" >&2
    fi
}

# Creates a Confab data directory with the schema, then seeds it.
seed_confab() {
    local data=$1 users=$2 messages=$3 manifest=$4
    start_server confab 3100 "$data"
    stop_server
    "$bench" seed --db "$data/confab.db" --users "$users" --messages "$messages" \
        --manifest "$manifest"
}

install_peers
port=3100
for kind in $servers; do
    port=$((port + 1))
    if [[ $kind == confab ]]; then
        data="$work/confab-data"
        manifest="$work/manifest.json"
        seed_confab "$data" "$seed_users" 0 "$manifest"

        # Each scenario on a fresh process, so memory and queues start clean.
        start_server confab $port "$data"
        generate idle confab $port --counts "$idle_counts" --hold-secs "$idle_hold" "${idle_args[@]}" \
            --manifest "$manifest"
        stop_server
        start_server confab $port "$data"
        generate storm confab $port --clients "$storm_clients" --rounds "$storm_rounds" \
            --manifest "$manifest"
        stop_server
        start_server confab $port "$data"
        generate fanout confab $port "${fanout_args[@]}"
        stop_server
        start_server confab $port "$data"
        generate rooms confab $port --manifest "$manifest" "${rooms_args[@]}"
        stop_server
        # The IRC port is 1,000 above the HTTP port; the generator uses only IRC here.
        start_server confab $port "$data" $((port + 1000))
        generate irc-fanout confab $((port + 1000)) "${irc_fanout_args[@]}"
        stop_server

        for size in $history_sizes; do
            hdata="$work/confab-history-$size"
            seed_confab "$hdata" 200 "$size" "$work/history-$size.json"
            start_server confab $port "$hdata"
            echo "==> confab: history with $size messages"
            $generator_core "$bench" history --addr "127.0.0.1:$port" \
                --manifest "$work/history-$size.json" --reads "$history_reads" \
                --out "$results/confab-history-$size.json"
            stop_server
            rm -rf "$hdata"
        done
    elif [[ $kind == ngircd ]]; then
        # ngIRCd is a peer for the IRC scenario only; any channel name creates a channel.
        start_server ngircd $port
        generate irc-fanout ngircd $port "${irc_fanout_args[@]}" --channel '#bench'
        stop_server
    else
        start_server "$kind" $port
        generate idle "$kind" $port --counts "$idle_counts" --hold-secs "$idle_hold" "${idle_args[@]}"
        stop_server
        start_server "$kind" $port
        generate storm "$kind" $port --clients "$storm_clients" --rounds "$storm_rounds"
        stop_server
        start_server "$kind" $port
        generate fanout "$kind" $port "${fanout_args[@]}"
        stop_server
    fi
done

finished_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
{
    echo "- Run: $started_at to $finished_at, \`scripts/bench.sh\` ($mode), commit $(git rev-parse --short HEAD)."
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; memory $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r)."
    echo "- Load average (1, 5, 15 min) before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "- Versions: $(rustc --version), node $(node --version), $(python3 --version), $(ngircd --version 2>/dev/null | head -1 | cut -d- -f1)."
} >"$results/run-info.md"

if [[ $mode == smoke ]]; then
    echo "results in $results"
else
    "$bench" report --results "$results" --template bench/report-template.md \
        --out docs/benchmarks.md --plots docs/benchmarks
fi
