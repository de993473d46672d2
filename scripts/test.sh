#!/usr/bin/env bash
# The one test command, used by README.md, `make test` and .ci/run:
# formatting, vet, then every test with the race detector.
# (`make lint` also checks that go mod tidy leaves no diff.)
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l .)
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files are not formatted (run: gofmt -w .):" >&2
	echo "$unformatted" >&2
	exit 1
fi

go vet ./...

go test -race -count=1 ./...
