#!/usr/bin/env bash
# CI for metrics/otelmetrics (a nested module): vet and the race-enabled
# tests, read through the SDK's manual reader.
set -euo pipefail
cd "$(dirname "$0")"
test -z "$(gofmt -l .)" || { echo "gofmt would rewrite:"; gofmt -l .; exit 1; }
go vet ./...
go test -race -count=1 -timeout 3m ./...
