#!/usr/bin/env bash
# Measures a worker fleet against the simulator: a private redis-server,
# `capcheck mock-api --rate MOCK_RATE` (a bit above the fleet's rate, so a
# 429 means the fleet overran its limit), WORKERS `capcheck worker`
# processes sharing `--rate RATE`, and a job of NUMBERS numbers. It prints
# the requests, the 429s the workers saw, the rate achieved, the makespan
# against the ideal, the workers' CPU per 1,000 numbers and the largest
# number of requests the simulator saw in one sliding second.
#
# Usage: scripts/bench-worker.sh   (or: make bench-worker)
# Knobs (environment): NUMBERS=100000 RATE=200 MOCK_RATE=210 WORKERS=3
# BATCH=50 CONCURRENCY=16 CHUNK=1000 LATENCY=20ms
set -euo pipefail
cd "$(dirname "$0")/.."

NUMBERS=${NUMBERS:-100000}
RATE=${RATE:-200}
MOCK_RATE=${MOCK_RATE:-210}
WORKERS=${WORKERS:-3}
BATCH=${BATCH:-50}
CONCURRENCY=${CONCURRENCY:-16}
CHUNK=${CHUNK:-1000}
LATENCY=${LATENCY:-20ms}

for tool in redis-server redis-cli curl jq; do
	command -v "$tool" >/dev/null || { echo "bench-worker: $tool is needed (apt-get install -y redis-server curl jq)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a loopback port nothing answers on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}

# wait_until CMD...: retries CMD for up to 10 s.
wait_until() {
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "bench-worker: timed out waiting for: $*" >&2
	return 1
}

go build -o "$work/capcheck" ./cmd/capcheck
bin=$work/capcheck
# The real `capcheck enqueue` when the binary has it, else the same
# enqueue.Run through enqueue/internal/benchenqueue.
if "$bin" enqueue --help >/dev/null 2>&1; then
	enqueue_cmd() { "$bin" enqueue --redis "$1" --out "$2" --input "$3" --job "$4" --chunk-size "$5" --log-level warn >/dev/null; }
else
	go build -o "$work/benchenqueue" ./enqueue/internal/benchenqueue
	enqueue_cmd() { "$work/benchenqueue" -redis "$1" -out "$2" -input "$3" -job "$4" -chunk-size "$5" >/dev/null 2>&1; }
fi

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize no --dir "$work" --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
wait_until redis-cli -p "$redis_port" ping
redis_url=redis://127.0.0.1:$redis_port/0

key=bench-key-$RANDOM$RANDOM
printf '%s' "$key" >"$work/key"
mock_port=$(free_port)
"$bin" mock-api --listen "127.0.0.1:$mock_port" --sid bench --api-key-file "$work/key" \
	--rate "$MOCK_RATE" --latency "$LATENCY" --seed 1 --log-level warn 2>"$work/mock.log" &
pids+=($!)
mock=http://127.0.0.1:$mock_port
wait_until curl -sf "$mock/stats"

# Unique, valid mobile numbers of India.
awk -v n="$NUMBERS" 'BEGIN { print "phone"; for (i = 0; i < n; i++) printf "+9198%08d\n", i }' >"$work/input.csv"

worker_pids=()
for i in $(seq "$WORKERS"); do
	"$bin" worker --redis "$redis_url" --out "$work/out" --api-url "$mock" --sid bench \
		--api-key-file "$work/key" --rate "$RATE" --batch-size "$BATCH" \
		--concurrency "$CONCURRENCY" --log-level warn 2>"$work/worker$i.log" &
	worker_pids+=($!)
	pids+=($!)
done
sleep 1 # let the workers start: the run measures the fleet, not its start-up

job=bench
start=$(date +%s.%N)
enqueue_cmd "$redis_url" "$work/out" "$work/input.csv" "$job" "$CHUNK"
while :; do
	state=$(redis-cli -p "$redis_port" hget "capcheck:job:{$job}" state)
	[[ $state == done || $state == failed ]] && break
	for p in "${worker_pids[@]}"; do
		kill -0 "$p" 2>/dev/null || { echo "bench-worker: a worker died:" >&2; cat "$work"/worker*.log >&2; exit 1; }
	done
	sleep 0.05
done
end=$(date +%s.%N)

# CPU of the workers (user + system), from /proc, before they exit.
ticks=0
for p in "${worker_pids[@]}"; do
	t=$(awk '{ print $14 + $15 }' "/proc/$p/stat")
	ticks=$((ticks + t))
done
hz=$(getconf CLK_TCK)
for p in "${worker_pids[@]}"; do kill -TERM "$p"; done
for p in "${worker_pids[@]}"; do wait "$p" || { echo "bench-worker: a worker exited $? on SIGTERM" >&2; exit 1; }; done

summary=$work/out/$job/summary.json
stats=$(curl -sf "$mock/stats")
requests=$(jq .requests "$summary")
awk -v n="$NUMBERS" -v rate="$RATE" -v workers="$WORKERS" -v batch="$BATCH" -v conc="$CONCURRENCY" \
	-v state="$state" -v requests="$requests" -v mock_requests="$(jq .requests <<<"$stats")" \
	-v r429="$(jq .rate_limited_429s "$summary")" -v mock429="$(jq .rate_limited <<<"$stats")" \
	-v rps="$(jq .requests_per_second "$summary")" -v check="$(jq .check_seconds "$summary")" \
	-v accepted="$(jq .results.accepted "$summary")" -v failed="$(jq .results.failed "$summary")" \
	-v makespan="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" \
	-v cpu="$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { print t / hz }')" \
	-v maxwin="$(jq .max_window <<<"$stats")" 'BEGIN {
	printf "numbers %d, %d workers x concurrency %d, --rate %g, --batch-size %d: job %s (%d accepted, %d failed)\n", n, workers, conc, rate, batch, state, accepted, failed
	printf "requests                          %d (simulator saw %d)\n", requests, mock_requests
	printf "429s seen by the workers          %d (simulator sent %d)\n", r429, mock429
	printf "achieved requests/s / rate        %.3f (%.1f req/s over %.2f s of checking)\n", rps / rate, rps, check
	printf "makespan / (requests / rate)      %.3f (%.2f s from enqueue to done; ideal %.2f s)\n", makespan / (requests / rate), makespan, requests / rate
	printf "worker CPU s per 1,000 numbers    %.4f (%.2f s in all)\n", cpu / (n / 1000), cpu
	printf "simulator MaxWindow               %d requests in one sliding second (limit %g + 1)\n", maxwin, rate
}'
