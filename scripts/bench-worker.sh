#!/usr/bin/env bash
# Measures a worker fleet against the simulator, end to end, as an operator
# runs it: a private redis-server, `capcheck mock-api` refusing the
# (RATE+2)-th request of any sliding second (limit RATE+1, so a 429 means the
# fleet overran its limit) with LATENCY per answer, WORKERS `capcheck worker`
# processes sharing `--rate RATE`, `capcheck enqueue` of NUMBERS numbers and
# `capcheck wait`. Each run prints the figures of docs/benchmarks.md:
#
#   achieved/rate   requests per second in the steady part (the full seconds
#                   of the simulator's arrivals, less the first and the last
#                   two) over --rate, with the lowest and highest second
#   429s            answers 429 the simulator sent
#   max window      most requests in one sliding second (limit RATE+1)
#   first request   from the start of enqueue to the simulator's first arrival
#   wait return     from the simulator's last answer to `capcheck wait` exiting
#   makespan        start of enqueue to wait's exit, over requests/RATE
#   CPU/1000        the workers' CPU seconds (user+system) per 1,000 numbers,
#                   from their start (cpu_per_1000: with their start-up,
#                   about 0.1 s each, and the second before the enqueue) or
#                   from the start of enqueue (cpu_job_per_1000: the job's
#                   own; a replica started mid-run counts whole)
#   ctxsw/call      the workers' voluntary context switches (all threads) per
#                   API call the simulator answered
#   Redis B/number  Redis used_memory (INFO memory) when the job is done, less
#                   before the enqueue, per queued number: chunk blobs,
#                   outcomes, bitmaps, counters and the tasks, and the
#                   buffers of the clients' new connections; the dataset
#                   figure (used_memory_dataset) leaves those out, and the
#                   job-keys figure is the MEMORY USAGE of the job's own keys
#
# Usage:
#   scripts/bench-worker.sh            one run, with the knobs below
#   scripts/bench-worker.sh suite [N [K]]
#                                      N rounds (default 1) of the matrix:
#                                      200/s x 50 and 1000/s x 10, 3 and 20
#                                      replicas, and (in the first K rounds,
#                                      default N) 3 replicas with one
#                                      SIGKILLed and another started mid-run
# KILL=2 is KILL=1 with a chunk task handed to the killed replica as it
# died, before it held the chunk (a pending one, taken as asynq's dequeue
# does).
# Knobs (environment): NUMBERS=90000 RATE=200 BATCH=50 WORKERS=3 KILL=0
# CONCURRENCY=16 CHUNK=1000 LATENCY=30ms MOCK_RATE=RATE+1; for a trace,
# LOG_LEVEL=debug (workers: each call, each chunk), MOCK_LOG_LEVEL=debug
# (the simulator: each request, JSON, with its duration) and KEEP=DIR (the
# run's logs, the simulator's /stats and the start and end times, in Unix
# µs, are copied to DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

prog=bench-worker
. scripts/lib.sh
need redis-server redis-cli curl jq

scratch top

bin=${BIN:-}
if [[ -z $bin ]]; then
	go build -o "$top/capcheck" ./cmd/capcheck
	bin=$top/capcheck
fi

now_us() { echo $(($(date +%s%N) / 1000)); }

# ctx_switches PID...: the voluntary context switches of the processes'
# threads (a thread that exited is not counted: Go keeps its threads).
ctx_switches() {
	local t=0 p
	for p in "$@"; do t=$((t + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'))); done
	echo "$t"
}

# cpu_ticks PID...: user+system clock ticks of the processes.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
	echo "$t"
}

# run_one RATE BATCH WORKERS KILL: one run; prints the figures.
run_one() {
	local rate=$1 batch=$2 workers=$3 kill=$4
	local numbers=${NUMBERS:-90000} conc=${CONCURRENCY:-16} chunk=${CHUNK:-1000} latency=${LATENCY:-30ms}
	local mock_rate=${MOCK_RATE:-$((rate + 1))}
	local work
	work=$(mktemp -d -p "$top")

	local redis_port redis_pid
	start_redis "$work"
	local redis_url=redis://127.0.0.1:$redis_port/0
	rcli() { redis-cli -p "$redis_port" "$@"; }

	printf 'bench-key-%s' "$RANDOM$RANDOM" >"$work/key"
	local mock_port
	mock_port=$(free_port)
	"$bin" mock-api --listen "127.0.0.1:$mock_port" --sid bench --api-key-file "$work/key" \
		--rate "$mock_rate" --latency "$latency" --seed 1 --log-level "${MOCK_LOG_LEVEL:-warn}" --log-format json 2>"$work/mock.log" &
	local mock_pid=$!
	pids+=("$mock_pid")
	local mock=http://127.0.0.1:$mock_port
	wait_until curl -sf "$mock/stats"

	# Unique, valid mobile numbers of India.
	awk -v n="$numbers" 'BEGIN { print "phone"; for (i = 0; i < n; i++) printf "+9198%08d\n", i }' >"$work/input.csv"

	local wpids=() i
	start_worker() {
		"$bin" worker --redis "$redis_url" --out "$work/out" --api-url "$mock" --sid bench \
			--api-key-file "$work/key" --rate "$rate" --batch-size "$batch" \
			--concurrency "$conc" --log-level "${LOG_LEVEL:-info}" 2>>"$work/worker$1.log" &
		wpids+=($!)
		pids+=($!)
	}
	for i in $(seq "$workers"); do start_worker "$i"; done
	sleep 1 # let the workers start: the run measures the fleet, not its start-up
	local mem0 data0
	mem0=$(rcli info memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }')
	data0=$(rcli info memory | tr -d '\r' | awk -F: '/^used_memory_dataset:/ { print $2 }')

	local job=bench start ticks0
	ticks0=$(cpu_ticks "${wpids[@]}")
	start=$(now_us)
	"$bin" enqueue --redis "$redis_url" --out "$work/out" --input "$work/input.csv" --job "$job" \
		--chunk-size "$chunk" --log-level warn >/dev/null
	"$bin" wait "$job" --redis "$redis_url" --out "$work/out" --log-level warn >/dev/null 2>"$work/wait.log" &
	local waiter=$! killed_ticks=0 killed_switches=0
	pids+=("$waiter")
	if ((kill)); then
		# Mid-run, one replica is SIGKILLed (its chunks in flight are taken
		# over once their holds lapse, about 1 s) and another one starts.
		sleep "$(awk -v n="$numbers" -v b="$batch" -v r="$rate" 'BEGIN { print n / b / r / 2 }')"
		killed_ticks=$(cpu_ticks "${wpids[0]}") killed_switches=$(ctx_switches "${wpids[0]}")
		kill -9 "${wpids[0]}"
		wait "${wpids[0]}" 2>/dev/null || true
		if ((kill == 2)); then
			# It had just been handed a chunk task, not held yet: asynq's
			# dequeue script, with no worker behind it.
			local orphan
			orphan=$(rcli eval "local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
				if not id then return '' end
				redis.call('HSET', ARGV[1] .. id, 'state', 'active')
				redis.call('HDEL', ARGV[1] .. id, 'pending_since')
				redis.call('ZADD', KEYS[3], ARGV[2], id)
				return id" 3 'asynq:{capcheck}:pending' 'asynq:{capcheck}:active' 'asynq:{capcheck}:lease' \
				'asynq:{capcheck}:t:' "$(($(date +%s) + 30))")
			echo "bench-worker: the task handed to the killed replica at $(now_us) µs: ${orphan:-none pending}" >&2
		fi
		start_worker new
	fi
	local wait_rc=0
	wait "$waiter" || wait_rc=$?
	local end
	end=$(now_us)
	local mem1 data1 keys
	mem1=$(rcli info memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }')
	data1=$(rcli info memory | tr -d '\r' | awk -F: '/^used_memory_dataset:/ { print $2 }')
	# The job's own keys (chunk blobs, outcomes, bitmaps, counters), by
	# MEMORY USAGE: what the job costs Redis, without the queue's keys and
	# the clients' buffers that INFO memory also counts. The chunk blobs
	# have hash tags of their own ({job:c...}).
	keys=$(rcli --scan --pattern "capcheck:job:{$job[}:]*" | while read -r k; do rcli memory usage "$k" samples 0; done | awk '{ s += $1 } END { print s + 0 }')

	local live=() p
	for p in "${wpids[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done
	local ticks
	ticks=$(($(cpu_ticks "${live[@]}") + killed_ticks))
	local switches
	switches=$(($(ctx_switches "${live[@]}") + killed_switches))
	for p in "${live[@]}"; do kill -TERM "$p"; done
	for p in "${live[@]}"; do wait "$p" || { echo "bench-worker: a worker exited $? on SIGTERM" >&2; }; done

	local stats summary=$work/out/$job/summary.json
	stats=$(curl -sf "$mock/stats")
	kill "$mock_pid" "$redis_pid" 2>/dev/null || true
	wait "$mock_pid" "$redis_pid" 2>/dev/null || true

	jq -r '.per_second | to_entries | sort_by(.key | tonumber) | .[].value' <<<"$stats" >"$work/per_second"
	awk -v n="$numbers" -v rate="$rate" -v workers="$workers" -v batch="$batch" -v kill="$kill" \
		-v wait_rc="$wait_rc" -v state="$(jq -r .state "$summary" 2>/dev/null || echo none)" \
		-v requests="$(jq .requests "$summary")" -v mock_requests="$(jq .requests <<<"$stats")" \
		-v r429="$(jq .rate_limited <<<"$stats")" -v maxwin="$(jq .max_window <<<"$stats")" \
		-v first="$(jq .first_arrival_us <<<"$stats")" -v last_answer="$(jq .last_answer_us <<<"$stats")" \
		-v switches="$switches" -v start="$start" -v end="$end" -v mem="$((mem1 - mem0))" -v data="$((data1 - data0))" -v keys="$keys" \
		-v cpu="$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }')" \
		-v cpu_job="$(awk -v t="$((ticks - ticks0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }')" '
	{ sec[NR] = $1 }
	END {
		# The steady part: the full seconds less the first and last two.
		lo = 3; hi = NR - 2; sum = 0; k = 0; min = -1; max = 0
		for (i = lo; i <= hi; i++) { sum += sec[i]; k++; if (min < 0 || sec[i] < min) min = sec[i]; if (sec[i] > max) max = sec[i] }
		steady = k ? sum / k / rate : 0
		ideal = requests / rate
		printf "RESULT rate=%d batch=%d replicas=%d kill=%d achieved=%.4f sec_min=%d sec_max=%d r429=%d maxwin=%d first_s=%.3f wait_s=%.3f makespan=%.4f cpu_per_1000=%.4f cpu_job_per_1000=%.4f ctxsw_per_call=%.1f redis_b_per_number=%.1f redis_dataset_b_per_number=%.1f redis_job_keys_b_per_number=%.1f requests=%d mock_requests=%d state=%s wait_rc=%d\n", \
			rate, batch, workers, kill, steady, min, max, r429, maxwin, (first - start) / 1e6, (end - last_answer) / 1e6, \
			(end - start) / 1e6 / ideal, cpu / (n / 1000), cpu_job / (n / 1000), switches / (mock_requests ? mock_requests : 1), mem / n, data / n, keys / n, requests, mock_requests, state, wait_rc
	}' "$work/per_second"
	# The limiters' counts, summed over the replicas that shut down.
	grep -h "rate limiter at shutdown" "$work"/worker*.log | tr ' ' '\n' | awk -F= '
		/^(permits|voided_late|voided_paused|voided_at_send|round_trips)=/ { sum[$1] += $2 }
		END { printf "LIMITER permits=%d voided_late=%d voided_paused=%d voided_at_send=%d round_trips=%d\n", sum["permits"], sum["voided_late"], sum["voided_paused"], sum["voided_at_send"], sum["round_trips"] }' || true
	if [[ -n ${KEEP:-} ]]; then
		echo "$start" >"$work/start_us"; echo "$end" >"$work/end_us"; echo "$stats" >"$work/stats.json"
		rm -rf "$work/out" "$work/input.csv"; mkdir -p "$KEEP"; cp -r "$work"/. "$KEEP"/
	fi
	rm -rf "$work"
}

if [[ ${1:-} == suite ]]; then
	# Each run is a process of its own: one that fails (a port taken
	# meanwhile, a start-up timeout) is reported and the suite goes on.
	rounds=${2:-1} kill_rounds=${3:-${2:-1}}
	one() { BIN=$bin NUMBERS=${NUMBERS:-90000} RATE=$1 BATCH=$2 WORKERS=$3 KILL=$4 "$0" || echo "RUN FAILED rate=$1 batch=$2 replicas=$3 kill=$4"; }
	for round in $(seq "$rounds"); do
		echo "# round $round of $rounds, $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
		one 200 50 3 0
		one 1000 10 3 0
		one 200 50 20 0
		one 1000 10 20 0
		if ((round <= kill_rounds)); then
			one 200 50 3 1
			one 1000 10 3 1
		fi
	done
else
	run_one "${RATE:-200}" "${BATCH:-50}" "${WORKERS:-3}" "${KILL:-0}"
fi
