#!/usr/bin/env bash
# Runs every Fuzz target in the module for $1 (default 10s) each, one after the
# other (go test -fuzz takes one target per run). The committed seed corpora run
# on every `go test` anyway; this adds a short bounded exploration. A failing
# target's output is printed; the temporary log is removed either way.
set -euo pipefail
t=${1:-10s}
log=$(mktemp "${TMPDIR:-/tmp}/kata-monitor-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
# FUZZ_PKGS limits the packages (default ./...).
go list -f '{{.ImportPath}} {{.Dir}}' ${FUZZ_PKGS:-./...} | while read -r pkg dir; do
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >"$log" 2>&1 || { cat "$log"; exit 1; }
	done
done
echo "fuzz: all targets passed"
