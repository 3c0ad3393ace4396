#!/usr/bin/env bash
# Runs every Fuzz target in the module for $1 (default 10s) each, one after the
# other (go test -fuzz takes one target per run). The committed seed corpora run
# on every `go test` anyway; this adds a short bounded exploration.
set -euo pipefail
t=${1:-10s}
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/tmp/fuzz-$$.log 2>&1 || { cat /tmp/fuzz-$$.log; exit 1; }
	done
done
echo "fuzz: all targets passed"
