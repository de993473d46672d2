# lib.sh: the start-up the bench scripts share. Source it from the
# repository's root after setting prog, the name messages start with.
# Processes started in the background go into pids; stop_all ends them.

pids=()

# need TOOL...: stops the script (exit 2) when a tool is missing.
need() {
	local tool pkg
	for tool in "$@"; do
		pkg=$tool
		[[ $tool == redis-* ]] && pkg=redis-server
		command -v "$tool" >/dev/null || { echo "$prog: $tool is needed (apt-get install -y $pkg)" >&2; exit 2; }
	done
}

# free_port prints a loopback port nothing answers on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}

# wait_until CMD...: retries CMD for up to 30 s (a loaded host starts slowly).
wait_until() {
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "$prog: timed out waiting for: $*" >&2
	return 1
}

# start_redis DIR: starts a private redis-server on a free loopback port
# (never the system one), its files in DIR, and returns once it answers. It
# sets redis_port and redis_pid (declare them local to keep them local).
start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize no --dir "$1" --loglevel warning >"$1/redis.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	wait_until redis-cli -p "$redis_port" ping
}

# stop_all kills the processes of pids and waits for them.
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
