#!/usr/bin/env bash
# The CPU an idle tchat screen uses: the real binary in a pseudo-terminal (tmux),
# hosting a room nobody talks in, measured from /proc over 10 s.
#
#   benches/idle_cpu.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
command -v tmux >/dev/null || { echo "tmux is needed (apt-get install tmux)" >&2; exit 1; }
cargo build --release --quiet --bin tchat
SOCK=$(mktemp -u /tmp/tchat-idle-XXXXXX)
trap 'tmux -S "$SOCK" kill-server 2>/dev/null || true; rm -f "$SOCK"' EXIT
tmux -S "$SOCK" new-session -d -x 100 -y 30 \
    "TCHAT_CONFIG=/dev/null exec target/release/tchat --host --bind 127.0.0.1 --port 0 --name idle"
PID=""
for _ in $(seq 50); do
    PID=$(tmux -S "$SOCK" list-panes -F '#{pane_pid}' 2>/dev/null | head -1)
    [[ -n "$PID" && -r /proc/$PID/stat ]] && break
    sleep 0.1
done
[[ -n "$PID" ]] || { echo "tchat did not start" >&2; exit 1; }
sleep 2 # let it draw its first screen and settle
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
before=$(ticks)
sleep "$SECS"
after=$(ticks)
echo "idle tchat screen: $(( (after - before) * 1000 / HZ )) ms of CPU in ${SECS} s (resolution $((1000 / HZ)) ms)"
