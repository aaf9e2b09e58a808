#!/usr/bin/env bash
# Fan-out, latency and memory of a tchat host next to ngircd (a C IRC server), on this
# machine, in the same run. Loopback only; every run is bounded in peers and seconds.
#
#   benches/compare.sh            # the full table (about 10 minutes)
#   QUICK=1 benches/compare.sh    # one repeat, shorter runs, fewer points
#   KEEP=1 benches/compare.sh     # also tchat with --keep (a durable room)
#   TLS=1 benches/compare.sh      # also tchat with every peer on TLS
#
# Installs ngircd (Debian's package) if it is missing. The server runs on one core and
# the load generator on another (taskset); each point is repeated and the median shown.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-3}
SECS=${SECS:-5}
POINTS=${POINTS:-"10 100 500 1000"}
if [[ -n "${QUICK:-}" ]]; then REPEATS=1; SECS=2; POINTS="10 100 500"; fi
TCHAT_PORT=${TCHAT_PORT:-7979}
IRC_PORT=${IRC_PORT:-6679}

if ! command -v ngircd >/dev/null; then
    echo "installing ngircd…" >&2
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ngircd >/dev/null
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
cargo build --release --quiet --bin tchat --example loadgen
TCHAT=target/release/tchat
LOAD=target/release/examples/loadgen
ulimit -n 65536 2>/dev/null || ulimit -n 16384
if [[ $(nproc) -ge 2 ]]; then SERVER_CPU=0; LOAD_CPU=1; else SERVER_CPU=0; LOAD_CPU=0; fi

WORK=$(mktemp -d)
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

cat >"$WORK/ngircd.conf" <<CONF
[Global]
    Name = bench.localhost
    Info = load test
    Listen = 127.0.0.1
    Ports = $IRC_PORT
    PidFile = $WORK/ngircd.pid
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxPenaltyTime = 0
    MaxNickLength = 16
    PingTimeout = 600
    PongTimeout = 600
[Options]
    DNS = no
    Ident = no
    PAM = no
    MorePrivacy = no
CONF

# shellcheck source=benches/common.sh
source benches/common.sh

start_tchat() {
    # Limits raised for the benchmark: no flood limit, room for 5000, 16 MiB backlog.
    XDG_CONFIG_HOME="$WORK/config" taskset -c $SERVER_CPU "$TCHAT" --host --headless --bind 127.0.0.1 --port "$TCHAT_PORT" \
        --burst 0 --max-peers 5000 --max-backlog 16777216 \
        --addr-burst 0 --max-per-address 0 --joins-per-minute 0 "$@" 2>/dev/null &
    SERVER_PID=$!
    wait_port "$TCHAT_PORT"
}

start_ngircd() {
    taskset -c $SERVER_CPU ngircd --nodaemon --config "$WORK/ngircd.conf" >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_port "$IRC_PORT"
}

# run SERVER ARGS… : one load run on a fresh server; prints the loadgen's raw line.
run() {
    local server=$1; shift
    local mode port
    if [[ $server == tchat || $server == tchat-tls ]]; then start_tchat; mode=tchat; port=$TCHAT_PORT
    elif [[ $server == tchat-keep ]]; then
        # A fresh room file for every run, on the same disk as the work directory.
        rm -f "$WORK"/room.db*
        start_tchat --keep "$WORK/room.db"; mode=tchat; port=$TCHAT_PORT
    else start_ngircd; mode=irc; port=$IRC_PORT; fi
    local tls=()
    if [[ $server == tchat-tls ]]; then tls=(--tls); fi
    taskset -c $LOAD_CPU "$LOAD" --raw --mode "$mode" --addr "127.0.0.1:$port" \
        --pid "$SERVER_PID" "${tls[@]}" "$@" || echo "failed=1"
    stop_server
}

RESULTS="$WORK/results"
: >"$RESULTS"
record() { # record POINT SERVER ARGS…
    local point=$1 server=$2; shift 2
    for r in $(seq "$REPEATS"); do
        echo "  $server $point (run $r/$REPEATS)" >&2
        echo "point=$point server=$server $(run "$server" "$@")" >>"$RESULTS"
    done
}

SERVERS="tchat ngircd"
if [[ -n "${KEEP:-}" ]]; then SERVERS="$SERVERS tchat-keep"; fi
if [[ -n "${TLS:-}" ]]; then SERVERS="$SERVERS tchat-tls"; fi
IDLE_SERVERS="tchat ngircd"
if [[ -n "${TLS:-}" ]]; then IDLE_SERVERS="$IDLE_SERVERS tchat-tls"; fi
echo "fan-out: every peer sends as fast as the socket takes it, ${SECS} s" >&2
for n in $POINTS; do
    for s in $SERVERS; do record "fanout-$n" "$s" --peers "$n" --secs "$SECS"; done
done
echo "paced latency" >&2
for s in $SERVERS; do
    record "paced-1x200" "$s" --peers 100 --senders 1 --rate 200 --secs "$SECS"
    record "paced-100x10" "$s" --peers 100 --rate 10 --secs "$SECS"
done
echo "idle memory" >&2
for n in 1 1000; do
    for s in $IDLE_SERVERS; do record "idle-$n" "$s" --peers "$n" --idle 3; done
done

python3 - "$RESULTS" <<'PY'
import sys, statistics
rows = []
for line in open(sys.argv[1]):
    d = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    rows.append(d)

def med(point, server, key):
    vals = [float(r[key]) for r in rows
            if r.get("point") == point and r.get("server") == server and key in r
            and r[key] not in ("-", "")]
    return statistics.median(vals) if vals else float("nan")

def ratio(a, b):
    return a / b if b else float("nan")

print(f"{'point':<16}{'tchat':>14}{'ngircd':>14}{'tchat/ngircd':>14}   (medians)")
points = sorted({r["point"] for r in rows}, key=lambda p: (p.split("-")[0], int(p.split("-")[1].split("x")[0])))
for p in points:
    kind = p.split("-")[0]
    if kind == "fanout":
        t, n = med(p, "tchat", "per_sec"), med(p, "ngircd", "per_sec")
        lost = med(p, "tchat", "lost"), med(p, "ngircd", "lost")
        print(f"{p:<16}{t/1e6:>12.2f} M{n/1e6:>12.2f} M{ratio(t, n):>14.2f}   deliveries/s (lost {lost[0]:.0f} / {lost[1]:.0f})")
        k = med(p, "tchat-keep", "per_sec")
        if k == k:
            print(f"{'  with --keep':<16}{k/1e6:>12.2f} M{'':>14}{ratio(k, t):>14.2f}   of tchat without it (lost {med(p, 'tchat-keep', 'lost'):.0f})")
        e = med(p, "tchat-tls", "per_sec")
        if e == e:
            print(f"{'  over TLS':<16}{e/1e6:>12.2f} M{'':>14}{ratio(e, n):>14.2f}   of ngircd in clear; {ratio(e, t):.2f} of tchat in clear (lost {med(p, 'tchat-tls', 'lost'):.0f})")
    elif kind == "paced":
        for key in ("p50_ms", "p99_ms", "max_ms"):
            t, n = med(p, "tchat", key), med(p, "ngircd", key)
            print(f"{p + ' ' + key[:-3]:<16}{t:>12.3f}ms{n:>12.3f}ms{ratio(t, n):>14.2f}")
            k = med(p, "tchat-keep", key)
            if k == k:
                print(f"{'  with --keep':<16}{k:>12.3f}ms{'':>14}{ratio(k, t):>14.2f}   of tchat without it")
    elif kind == "idle":
        t, n = med(p, "tchat", "kb_per_peer"), med(p, "ngircd", "kb_per_peer")
        print(f"{p:<16}{t:>11.2f} KB{n:>11.2f} KB{ratio(t, n):>14.2f}   RSS per idle peer")
        e = med(p, "tchat-tls", "kb_per_peer")
        if e == e:
            print(f"{'  over TLS':<16}{e:>11.2f} KB{'':>14}{ratio(e, n):>14.2f}   RSS per idle TLS peer")
PY
