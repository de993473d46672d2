#!/usr/bin/env bash
# The one test command, used by README.md, `make test` and .ci/run:
# formatting, vet, a tidy go.mod, then every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

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
