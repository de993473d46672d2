#!/usr/bin/env bash
# The one test command, used by README.md, `make test` and .ci/run:
# formatting, vet, go.mod tidiness, then every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l .)
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files are not formatted (run: gofmt -w .):" >&2
	echo "$unformatted" >&2
	exit 1
fi

go vet ./...

if ! go mod tidy -diff; then
	echo "go.mod/go.sum are not tidy (run: go mod tidy)" >&2
	exit 1
fi

go test -race -count=1 ./...
