#!/usr/bin/env bash
# Smoke test of the benchmark tool: the generator's unit tests, then every scenario of
# scripts/bench.sh with small numbers against Confab, the reference server, the
# Node.js peer and ngIRCd (IRC fan-out only). It checks the generator's own accounting (expected = received + lost,
# no duplicates) and that Confab delivers every message; it asserts no timings.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

echo "==> cargo test -p confab-bench"
cargo test -p confab-bench

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
echo "==> scripts/bench.sh --smoke"
BENCH_RESULTS="$results" BENCH_SERVERS="confab reference node ngircd" scripts/bench.sh --smoke

echo "==> checking the results"
python3 - "$results" <<'PY'
import json
import pathlib
import sys

results = pathlib.Path(sys.argv[1])
passed = failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAILED: {name} {detail}")


def load(name):
    path = results / f"{name}.json"
    check(f"{name}.json exists", path.exists())
    return json.loads(path.read_text()) if path.exists() else None


def steps(result):
    return [*result.get("cpu_runs", []), *result["steps"]]


for server in ["confab", "reference", "node"]:
    fanout = load(f"{server}-fanout")
    if fanout:
        for i, step in enumerate(steps(fanout)):
            label = f"{server} fan-out step {i}"
            check(f"{label}: expected = received + lost",
                  step["expected"] == step["received"] + step["lost"], step)
            check(f"{label}: no duplicates", step["duplicated"] == 0, step)
            check(f"{label}: something sent", step["messages_sent"] > 0, step)
        check(f"{server} fan-out: every comparison run kept", len(fanout["cpu_runs"]) == 2,
              fanout["cpu_runs"])
        check(f"{server} fan-out: no connection dropped", fanout["connections_dropped"] == 0,
              fanout["drop_reasons"])
    idle = load(f"{server}-idle")
    if idle:
        for level in idle["levels"]:
            check(f"{server} idle {level['connections']}: all connected",
                  level["connected"] == level["connections"], level["errors"])
            check(f"{server} idle {level['connections']}: all still open",
                  level["still_open"] == level["connected"])
            # scripts/bench.sh --smoke lets one generator process hold 150 connections.
            processes = 1 if level["connections"] <= 150 else 2
            check(f"{server} idle {level['connections']}: held by {processes} process(es)",
                  level["generator_processes"] == processes, level)
    storm = load(f"{server}-storm")
    if storm:
        check(f"{server} storm: every round kept", len(storm["rounds"]) == 2, storm["rounds"])
        for i, round_ in enumerate(storm["rounds"]):
            for phase in ["connect", "reconnect"]:
                check(f"{server} {phase} storm round {i}: no failure",
                      round_[phase]["failed"] == 0, round_[phase]["errors"])

for server in ["confab", "ngircd"]:
    irc = load(f"{server}-irc-fanout")
    if irc:
        for i, step in enumerate(steps(irc)):
            label = f"{server} IRC fan-out step {i}"
            check(f"{label}: expected = received + lost",
                  step["expected"] == step["received"] + step["lost"], step)
            check(f"{label}: no duplicates", step["duplicated"] == 0, step)
            check(f"{label}: something sent", step["messages_sent"] > 0, step)
            # A sender does not receive its own PRIVMSG, so each message reaches the
            # other members only.
            check(f"{label}: one delivery per other member",
                  step["expected"] == step["messages_sent"] * (irc["members"] - 1), step)
        check(f"{server} IRC fan-out: no connection dropped", irc["connections_dropped"] == 0,
              irc["drop_reasons"])

# Confab stores and delivers every message at these small rates.
fanout = load("confab-fanout")
if fanout:
    for i, step in enumerate(steps(fanout)):
        check(f"confab fan-out step {i}: nothing lost", step["lost"] == 0, step)
irc = load("confab-irc-fanout")
if irc:
    for i, step in enumerate(steps(irc)):
        check(f"confab IRC fan-out step {i}: nothing lost", step["lost"] == 0, step)
rooms = load("confab-rooms")
if rooms:
    for i, step in enumerate(rooms["steps"]):
        check(f"confab rooms step {i}: expected = received + lost",
              step["expected"] == step["received"] + step["lost"], step)
        check(f"confab rooms step {i}: nothing lost", step["lost"] == 0, step)
        check(f"confab rooms step {i}: no duplicates", step["duplicated"] == 0, step)
    check("confab rooms: several rooms", rooms["rooms"] > 1, rooms["rooms"])
history = load("confab-history-2000")
if history:
    check("confab history: all reads timed", history["reads"] == 100, history)

print(f"bench smoke: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
