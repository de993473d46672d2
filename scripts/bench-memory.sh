#!/usr/bin/env bash
# Measures the capability memory over three nights of one list, through
# mock-api with callbacks to `capcheck callbacks`, one worker, a private
# redis-server:
#   night 1  the list (ROWS rows, enqueue/internal/benchgen), every number sent;
#   night 2  the same list with 5% of its rows given new numbers, --recheck-after 24h;
#   night 3  after mock-api flips the answer of FLIP of the numbers, --recheck-after 0.
# It prints the requests of night 2 over night 1's (target <= 0.06), the
# makespans' ratio, night 3's changes.csv rows against the simulator's flips
# among the numbers answered capable or not (must match), Redis bytes per
# remembered number (INFO memory used_memory, the memory's keys alone, after
# the jobs' keys are deleted), the same at FILL remembered numbers (the
# target's scale: a fresh redis-server filled through capstore.Remember by
# capstore/internal/benchfill, INFO memory used_memory before and after;
# target <= 16), and enqueue rows/s and CPU of the list with and without
# the memory (benchenqueue, 90% of its numbers remembered, --recheck-after
# 24h against none).
#
# Usage: scripts/bench-memory.sh   (or: make bench-memory)
# Knobs (environment): ROWS=1000000 RATE=2000 BATCH=100 FLIP=0.01 CAPABLE=0.4
#   FILL=10000000 (0 skips the stage at scale: ~160 MB of Redis, 8 min at load 20)
#   REDIS_WAIT=180 (seconds a fresh redis-server may take to answer)
#   STAGE=all (enqueue: only the enqueue with and without the memory)
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
RATE=${RATE:-2000}
BATCH=${BATCH:-100}
FLIP=${FLIP:-0.01}
CAPABLE=${CAPABLE:-0.4}
FILL=${FILL:-10000000}
STAGE=${STAGE:-all}

prog=bench-memory
. scripts/lib.sh
need redis-server redis-cli curl python3

scratch work

go build -o "$work/capcheck" ./cmd/capcheck
go build -o "$work/benchgen" ./enqueue/internal/benchgen
go build -o "$work/benchenqueue" ./enqueue/internal/benchenqueue
go build -o "$work/benchfill" ./capstore/internal/benchfill

list1="$work/night1.csv"
"$work/benchgen" -rows "$ROWS" -out "$list1"
# Night 2's list: every 20th row gets a new number (a 7 after the country
# code: benchgen's numbers start with 6, 8 or 9), the rest as night 1.
python3 - "$list1" "$work/night2.csv" <<'PY'
import csv, sys
with open(sys.argv[1], newline='') as f, open(sys.argv[2], 'w', newline='') as g:
    r, w = csv.reader(f), csv.writer(g, lineterminator='\n')
    w.writerow(next(r))
    for i, row in enumerate(r):
        if i % 20 == 7:
            row[2] = '+91 7%09d' % (i % 1000000000)
        w.writerow(row)
PY

# enqueue_stage: the list enqueued with and without the memory, alternated,
# on a fresh server each; the CPU is the enqueue's alone (benchenqueue's
# own figures: its user+sys and Redis's INFO cpu, not -remember's filling).
enqueue_stage() {
	local round mode args
	: >"$work/eq.all"
	for round in 1 2 3; do
		for mode in none memory; do
			start_redis "$work"
			args=()
			[[ $mode == memory ]] && args=(-remember 0.9 -memory -recheck-after 24h)
			"$work/benchenqueue" -input "$list1" -redis "redis://127.0.0.1:$redis_port/0" \
				-job "e$round$mode" -out "$work/eq" "${args[@]}" >"$work/eq.out" 2>"$work/eq.err"
			local rate client server
			rate=$(awk '/ rows\/s/ {print $(NF-1)}' "$work/eq.out")
			read -r client server < <(awk '/^client CPU/ {gsub(/[s,]/, ""); print $3, $6}' "$work/eq.out")
			echo "$mode $rate $client $server" >>"$work/eq.all"
			echo "enqueue $mode round $round: $rate rows/s, $(awk -F', ' '/^rows/ {for (i = 1; i <= NF; i++) {split($i, kv, " "); n[kv[1]] = kv[2]}
				printf "%d valid, %d cached, %d sent", n["valid"], n["cached"], n["valid"] - n["cached"]}' "$work/eq.out")," \
				"client CPU $client s, Redis CPU $server s (load average $(cut -d' ' -f1 /proc/loadavg))"
			{ kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null || true
		done
	done
	# The ratios of the medians: memory over none (target >= 0.8).
	awk '{ r[$1] = r[$1] " " $2; c[$1] = c[$1] " " ($3 + $4) }
	function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
	END { printf "enqueue with the memory / without (medians): rows/s %.2f, speed by CPU (client+Redis) %.2f (target >= 0.8)\n",
		median(r["memory"]) / median(r["none"]), median(c["none"]) / median(c["memory"]) }' "$work/eq.all"
}
if [[ $STAGE == enqueue ]]; then
	enqueue_stage
	exit 0
fi

start_redis "$work"
redis="redis://127.0.0.1:$redis_port/0"
used() { redis-cli -p "$redis_port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }

token=bench-token-$RANDOM$RANDOM
printf '%s' "$token" >"$work/token"
cb_port=$(free_port)
"$work/capcheck" callbacks --redis "$redis" --callback-listen "127.0.0.1:$cb_port" \
	--callback-token-file "$work/token" --log-level warn 2>"$work/callbacks.log" &
pids+=($!)
wait_until curl -sf "http://127.0.0.1:$cb_port/healthz"

key=bench-key-$RANDOM$RANDOM
# night N LIST RECHECK [mock-api flags]: prints "requests makespan_s".
night() {
	local n=$1 list=$2 recheck=$3
	shift 3
	local mport
	mport=$(free_port)
	"$work/capcheck" mock-api --listen "127.0.0.1:$mport" --sid bench --api-key "$key" --rate $((RATE * 2)) \
		--callback-url "http://127.0.0.1:$cb_port/callback" --callback-token-file "$work/token" \
		--capable-fraction "$CAPABLE" --log-level warn "$@" 2>"$work/mock$n.log" &
	local mock=$!
	pids+=($mock)
	wait_until curl -sf "http://127.0.0.1:$mport/stats"
	"$work/capcheck" worker --redis "$redis" --out "$work/out" --api-url "http://127.0.0.1:$mport" --sid bench \
		--api-key "$key" --rate "$RATE" --batch-size "$BATCH" --log-level warn 2>"$work/worker$n.log" &
	local worker=$!
	pids+=($worker)
	local start end
	start=$(date +%s.%N)
	"$work/capcheck" enqueue --redis "$redis" --out "$work/out" --input "$list" --job "night$n" \
		--callback-wait 10m --recheck-after "$recheck" --log-level warn >/dev/null
	"$work/capcheck" wait "night$n" --redis "$redis" --out "$work/out" --log-level warn >/dev/null
	end=$(date +%s.%N)
	local requests
	requests=$(curl -sf "http://127.0.0.1:$mport/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
	kill -TERM "$worker" "$mock" 2>/dev/null || true
	wait "$worker" "$mock" 2>/dev/null || true
	echo "$requests $(echo "$end - $start" | bc)"
}

read -r req1 span1 < <(night 1 "$list1" 0)
echo "night 1: $req1 requests, makespan ${span1}s"
read -r req2 span2 < <(night 2 "$work/night2.csv" 24h)
echo "night 2: $req2 requests, makespan ${span2}s (--recheck-after 24h, 5% of the rows replaced)"
read -r req3 span3 < <(night 3 "$work/night2.csv" 0 --flip-fraction "$FLIP")
echo "night 3: $req3 requests, makespan ${span3}s (--recheck-after 0, --flip-fraction $FLIP)"
awk -v a="$req2" -v b="$req1" -v c="$span2" -v d="$span1" 'BEGIN {
	printf "requests night2/night1 %.4f (target <= 0.06); makespan night2/night1 %.3f\n", a / b, c / d }'

# Night 3's changes against the simulator's flips: the numbers it answered
# capable or not on night 2 (rejected ones stay rejected) that it flips.
changes=$(($(wc -l <"$work/out/night3/changes.csv") - 1))
flips=$(python3 - "$FLIP" "$work/out/night2/results.csv" <<'PY'
import csv, sys
# mockapi.Flipped: splitmix64(digits ^ 0x9e3779b97f4a7c15) / 2^64 < fraction.
M = (1 << 64) - 1
def splitmix(x):
    x ^= x >> 30; x = (x * 0xbf58476d1ce4e5b9) & M
    x ^= x >> 27; x = (x * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
frac, n = float(sys.argv[1]), 0
with open(sys.argv[2], newline='') as f:
    for rec in csv.DictReader(f):
        if rec['capability'] in ('capable', 'not_capable') and splitmix(int(rec['number'][1:]) ^ 0x9e3779b97f4a7c15) / 2**64 < frac:
            n += 1
print(n)
PY
)
echo "night 3: changes.csv $changes rows, simulator's flips among the answered numbers $flips"

# The memory alone: delete every job's keys, then INFO memory.
remembered=$("$work/capcheck" memory stats --redis "$redis" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["numbers"])')
redis-cli -p "$redis_port" --scan --pattern 'capcheck:job:*' | xargs -r -n 1000 redis-cli -p "$redis_port" unlink >/dev/null
redis-cli -p "$redis_port" --scan --pattern 'asynq:*' | xargs -r -n 1000 redis-cli -p "$redis_port" unlink >/dev/null
mem=$(used)
start_redis "$work"
base=$(used)
{ kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null || true
awk -v m="$mem" -v b="$base" -v n="$remembered" 'BEGIN {
	printf "memory: %d numbers remembered, Redis %.1f MB over an empty server: %.1f bytes per number (the target, <= 16, is at 10M: below)\n", n, (m - b) / 1048576, (m - b) / n }'

# The memory at the target's scale: FILL numbers remembered on a fresh server.
if ((FILL > 0)); then
	start_redis "$work"
	"$work/benchfill" -redis "redis://127.0.0.1:$redis_port/0" -numbers "$FILL" 2>"$work/benchfill.log" >"$work/benchfill.out" ||
		{ echo "$prog: benchfill failed: $(tail -n 3 "$work/benchfill.log")" >&2; exit 1; }
	sed 's/^/memory at scale: /' "$work/benchfill.out"
	echo "memory at scale: target <= 16 bytes per remembered number at 10M (load average $(cut -d' ' -f1 /proc/loadavg))"
	{ kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null || true
fi

enqueue_stage
