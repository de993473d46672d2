#!/usr/bin/env bash
# bench-enqueue: time `capcheck enqueue` on a generated list against a private
# redis-server, and print rows/s, peak RSS, Redis bytes per enqueued number and
# the share of rows the normalizer's fast path decided without libphonenumber's
# parser.
#
#   scripts/bench-enqueue.sh                 # 1,000,000 rows
#   ROWS=10000000 scripts/bench-enqueue.sh   # 10M rows (the list takes ~450 MB)
#
# Env: ROWS (default 1000000), CHUNK (chunk size, default 1000), WORK (folder
# for the binaries, the list and the output; default a new temp folder, removed
# at the end unless KEEP=1). Uses the real `capcheck enqueue` when the binary
# has that command, else enqueue/internal/benchenqueue (same enqueue.Run).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
CHUNK=${CHUNK:-1000}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

go build -o "$WORK/benchgen" ./enqueue/internal/benchgen
go build -o "$WORK/benchenqueue" ./enqueue/internal/benchenqueue
cli=""
if go build -o "$WORK/capcheck" ./cmd/capcheck 2>/dev/null && "$WORK/capcheck" enqueue --help >/dev/null 2>&1; then
	cli="$WORK/capcheck"
fi

list="$WORK/list-$ROWS.csv"
if [[ ! -s "$list" ]]; then
	echo "generating $ROWS rows -> $list" >&2
	"$WORK/benchgen" -rows "$ROWS" -out "$list"
fi

prog=bench-enqueue
. scripts/lib.sh
need redis-server redis-cli
cleanup() {
	stop_all
	if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
start_redis "$WORK"
port=$redis_port
url="redis://127.0.0.1:$port/0"
used() { redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }

before=$(used)
start=$(date +%s.%N)
if [[ -n "$cli" ]]; then
	echo "running: capcheck enqueue --input $list --chunk-size $CHUNK" >&2
	# Debug level for the normalizer's line (the fast path's share).
	/usr/bin/time -v -o "$WORK/time.txt" "$cli" enqueue --input "$list" --redis "$url" \
		--chunk-size "$CHUNK" --out "$WORK/out" --log-level debug >"$WORK/stdout.txt" 2>"$WORK/stderr.txt" || rc=$?
	cat "$WORK/stderr.txt" >&2
	[[ "${rc:-0}" == 0 ]] || exit "$rc"
else
	echo "running: benchenqueue -input $list -chunk-size $CHUNK (no enqueue command in ./cmd/capcheck yet)" >&2
	/usr/bin/time -v -o "$WORK/time.txt" "$WORK/benchenqueue" -input "$list" -redis "$url" \
		-chunk-size "$CHUNK" -out "$WORK/out" | tee "$WORK/stdout.txt" >&2
fi
end=$(date +%s.%N)
after=$(used)

rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time.txt")
job=$(redis-cli -p "$port" zrange capcheck:jobs 0 0)
uniq=$(redis-cli -p "$port" hget "capcheck:job:{$job}" valid)
library=$(sed -n 's/.*msg=normalizer .*parsed_by_library=\([0-9]*\).*/\1/p' "$WORK/stderr.txt" 2>/dev/null | tail -1)
awk -v rows="$ROWS" -v lib="${library:-}" -v s="$start" -v e="$end" -v rss="$rss_kb" -v b="$before" -v a="$after" -v u="$uniq" -v cores="$(nproc)" 'BEGIN {
	secs = e - s
	printf "rows            %d (%d unique valid numbers)\n", rows, u
	printf "wall time       %.2f s on %d cores\n", secs, cores
	printf "throughput      %.0f rows/s\n", rows / secs
	printf "peak RSS        %.1f MB\n", rss / 1024
	printf "redis memory    +%.1f MB, %.1f bytes per enqueued number\n", (a - b) / 1048576, (a - b) / u
	if (lib != "") {
		printf "fast path       %.3f%% of rows decided without libphonenumber'"'"'s parser (%d parsed by it)\n", 100 * (rows - lib) / rows, lib
	}
}'
