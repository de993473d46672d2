#!/usr/bin/env bash
# Measures `capcheck callbacks`: a private redis-server, one receiver, and a
# load generator on loopback (callbacks/internal/loadgen) that makes jobs
# await NUMBERS distinct numbers, then sends one authenticated JSON callback
# per number: most as fast as CONNS connections go (callbacks/s), the last
# PACED at RATE/s (p50/p99 latency). It prints those, the receiver's peak
# RSS, Redis bytes per awaited number, and the receiver's CPU per callback
# (while callbacks are sent: registering the numbers is not counted).
#
# Usage: scripts/bench-callbacks.sh   (or: make bench-callbacks)
# Knobs (environment): NUMBERS=1000000 PACED=200000 RATE=10000 CONNS=128 JOBS=10
set -euo pipefail
cd "$(dirname "$0")/.."

NUMBERS=${NUMBERS:-1000000}
PACED=${PACED:-200000}
RATE=${RATE:-10000}
CONNS=${CONNS:-128}
JOBS=${JOBS:-10}

prog=bench-callbacks
. scripts/lib.sh
need redis-server redis-cli curl

scratch work

go build -o "$work/capcheck" ./cmd/capcheck
go build -o "$work/loadgen" ./callbacks/internal/loadgen

start_redis "$work"

token=bench-token-$RANDOM$RANDOM
printf '%s' "$token" >"$work/token"
cb_port=$(free_port)
"$work/capcheck" callbacks --redis "redis://127.0.0.1:$redis_port/0" --callback-listen "127.0.0.1:$cb_port" \
	--callback-token-file "$work/token" --log-level warn 2>"$work/callbacks.log" &
recv=$!
pids+=($recv)
wait_until curl -sf "http://127.0.0.1:$cb_port/healthz"

# cpu PID: user + system CPU seconds of a process so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
recv_cpu0=$(cpu "$recv")
"$work/loadgen" -redis "127.0.0.1:$redis_port" -url "http://127.0.0.1:$cb_port/callback" -token "$token" \
	-numbers "$NUMBERS" -paced "$PACED" -rate "$RATE" -conns "$CONNS" -jobs "$JOBS"
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$recv/status")
echo "receiver     peak RSS $((rss / 1024)) MB"
# CPU per callback does not depend on what else the machine runs: the
# figure to compare when the machine is shared.
awk -v n="$NUMBERS" -v rc="$(cpu "$recv")" -v rc0="$recv_cpu0" 'BEGIN {
	printf "cpu          receiver %.1f us per callback (load average %s)\n", (rc - rc0) / n * 1e6, "'"$(cut -d' ' -f1 /proc/loadavg)"'"
}'
kill -TERM "$recv"
wait "$recv" || { echo "bench-callbacks: the receiver exited $? on SIGTERM" >&2; cat "$work/callbacks.log" >&2; exit 1; }
