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

# free_port prints a loopback port nothing answers on, below the kernel's
# range for outgoing connections: a port there may be the local end of a
# client's connection, which nothing answers on but a server cannot bind.
free_port() {
	local p lo=32768
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((lo > 12000)) || lo=32768
	while :; do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}

# wait_until CMD...: retries CMD for up to 30 s (a loaded host starts slowly).
wait_until() {
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "$prog: timed out waiting for: $*" >&2
	return 1
}

# REDIS_WAIT: how long start_redis waits for a fresh server to answer (a
# host at load 20+ may take well over 30 s to run a new process).
REDIS_WAIT=${REDIS_WAIT:-180}

# start_redis DIR: starts a private redis-server on a free loopback port
# (never the system one), its files in DIR, and returns once it answers
# PING, waiting up to REDIS_WAIT seconds. A server that exits (its port
# taken meanwhile) is started again on another port. It sets redis_port and
# redis_pid (declare them local to keep them local).
start_redis() {
	local try start
	for try in 1 2 3; do
		redis_port=$(free_port)
		redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
			--daemonize no --dir "$1" --loglevel warning >"$1/redis.log" 2>&1 &
		redis_pid=$!
		pids+=("$redis_pid")
		start=$SECONDS
		while ((SECONDS - start < REDIS_WAIT)); do
			[[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && return 0
			kill -0 "$redis_pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$redis_pid" 2>/dev/null; then
			echo "$prog: redis-server on port $redis_port did not answer PING within ${REDIS_WAIT}s" \
				"(load average $(cut -d' ' -f1-3 /proc/loadavg)); raise REDIS_WAIT on a busy host" >&2
			return 1
		fi
		echo "$prog: redis-server on port $redis_port exited (try $try of 3): $(tail -n 3 "$1/redis.log" | tr '\n' ' ')" >&2
	done
	return 1
}

# stop_all kills the processes of pids and waits for them.
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}

# scratch VAR: sets VAR to a new temporary folder; when the script exits,
# stop_all runs and the folder is removed.
scratch() {
	local dir
	dir=$(mktemp -d)
	printf -v "$1" '%s' "$dir"
	trap 'stop_all; rm -rf "'"$dir"'"' EXIT
}
