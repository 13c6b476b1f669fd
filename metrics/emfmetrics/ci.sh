#!/usr/bin/env bash
# CI for metrics/emfmetrics (a nested module): vet and the race-enabled
# tests, which check every line against the EMF specification.
set -euo pipefail
cd "$(dirname "$0")"
test -z "$(gofmt -l .)" || { echo "gofmt would rewrite:"; gofmt -l .; exit 1; }
go vet ./...
go test -race -count=1 -timeout 3m ./...
