#!/usr/bin/env bash
# Makes docs/report-demo.png, the README's picture of a report: runs the
# demo job (capcheck run --demo) and screenshots its report.html in headless
# Chromium (Debian's chromium package).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$browser" ]]; then
	echo "chromium is not installed (apt-get install chromium)" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/capcheck" ./cmd/capcheck
"$work/capcheck" run --demo --input examples/numbers.csv --out "$work/out" --job demo --log-level warn

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$work/profile" --hide-scrollbars --window-size=1000,1500 \
	--screenshot="$PWD/docs/report-demo.png" "file://$work/out/demo/report.html" 2>/dev/null
echo "wrote docs/report-demo.png"
