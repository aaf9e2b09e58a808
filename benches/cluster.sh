#!/usr/bin/env bash
# Fan-out of one room served by 1, 2 and 3 hosts through NATS JetStream, against the
# single host with its in-memory room, on this machine: the load generator's peers
# are spread over the hosts (`loadgen --also`), every peer sends as fast as its socket
# takes it, and every peer receives everything. Then the paced latency (one sender at
# 200 lines/s, 100 peers), which shows what the stream adds to each event.
#
#   benches/cluster.sh                     # defaults below
#   PEERS=100 SECS=3 REPEATS=3 benches/cluster.sh
#
# Needs nats-server (Debian: apt-get install nats-server). Everything listens on
# loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS=${PEERS:-100}
SECS=${SECS:-3}
REPEATS=${REPEATS:-3}
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
[[ -x $NATS ]] || { echo "cluster.sh: nats-server is not installed" >&2; exit 1; }

cargo build --release --quiet --bin tchat --example loadgen
TCHAT=target/release/tchat
LOAD=target/release/examples/loadgen
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true

WORK=$(mktemp -d)
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# shellcheck source=benches/common.sh
source benches/common.sh

NATS_PORT=$(free_port)
"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/js" >/dev/null 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT"

RUN=0
# run HOSTS ARGS… : one load run on fresh hosts (0: the single host, no cluster).
run() {
    local hosts=$1; shift
    RUN=$((RUN + 1))
    local cluster=()
    local n=$hosts
    if [[ $hosts -gt 0 ]]; then cluster=(--cluster "nats://127.0.0.1:$NATS_PORT" --room "bench$RUN"); else n=1; fi
    local addrs=()
    for _ in $(seq "$n"); do
        local port
        port=$(free_port)
        XDG_CONFIG_HOME="$WORK/config" TCHAT_CONFIG=/dev/null "$TCHAT" --host --headless --bind 127.0.0.1 --port "$port" \
            --burst 0 --max-peers 5000 --max-backlog 16777216 \
            --addr-burst 0 --max-per-address 0 --joins-per-minute 0 "${cluster[@]}" 2>/dev/null &
        PIDS+=($!)
        wait_port "$port"
        addrs+=("127.0.0.1:$port")
    done
    local also=()
    for a in "${addrs[@]:1}"; do also+=(--also "$a"); done
    "$LOAD" --raw --mode tchat --addr "${addrs[0]}" "${also[@]}" "$@" || echo "failed=1"
    stop_all
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

printf "%-22s %16s %12s %12s %10s\n" "room" "deliveries/s" "p50 ms" "p99 ms" "lost"
for hosts in 0 1 2 3; do
    label=$([[ $hosts == 0 ]] && echo "single host" || echo "$hosts host(s), NATS")
    fan=(); p50=(); p99=(); lost=()
    for _ in $(seq "$REPEATS"); do
        line=$(run "$hosts" --peers "$PEERS" --secs "$SECS")
        fan+=("$(echo "$line" | field per_sec)")
        lost+=("$(echo "$line" | field lost)")
        line=$(run "$hosts" --peers "$PEERS" --senders 1 --rate 200 --secs "$SECS")
        p50+=("$(echo "$line" | field p50_ms)")
        p99+=("$(echo "$line" | field p99_ms)")
    done
    printf "%-22s %16s %12s %12s %10s\n" "$label" \
        "$(printf '%s\n' "${fan[@]}" | median)" \
        "$(printf '%s\n' "${p50[@]}" | median)" \
        "$(printf '%s\n' "${p99[@]}" | median)" \
        "$(printf '%s\n' "${lost[@]}" | sort -g | tail -1)"
done
kill "$NATS_PID" 2>/dev/null || true
