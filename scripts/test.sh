#!/usr/bin/env bash
# The one test command, used by README.md, `make test` and .ci/run:
# formatting, vet, a tidy go.mod, then every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that need Redis start their own redis-server (internal/redistest) and
# fail without one: stop here, before anything runs, saying how to get it.
have_redis_server() { # where internal/redistest looks
	if [[ -n ${CAPCHECK_TEST_REDIS_SERVER:-} ]]; then
		command -v "$CAPCHECK_TEST_REDIS_SERVER" >/dev/null 2>&1
		return
	fi
	command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server || -x /usr/local/bin/redis-server ]]
}
if ! have_redis_server; then
	cat >&2 <<-'EOF'
		test.sh: no redis-server found (PATH, /usr/bin, /usr/local/bin or $CAPCHECK_TEST_REDIS_SERVER);
		the tests that need Redis start their own and cannot run without it. Install it
		(Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis),
		set CAPCHECK_TEST_REDIS_SERVER to its path, or run .ci/run, which installs it.
	EOF
	exit 1
fi

unformatted=$(gofmt -l .)
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files are not formatted (run: gofmt -w .):" >&2
	echo "$unformatted" >&2
	exit 1
fi

go vet ./...

if ! go mod tidy -diff >/dev/null; then
	echo "go mod tidy would change go.mod or go.sum (run: go mod tidy)" >&2
	exit 1
fi

go test -race -count=1 ./...
