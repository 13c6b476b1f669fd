#!/usr/bin/env bash
# CI for metrics/prommetrics (a nested module): vet and the race-enabled
# tests, which include scraping /metrics after a real producer and consumer
# ran on kinesistest.
set -euo pipefail
cd "$(dirname "$0")"
test -z "$(gofmt -l .)" || { echo "gofmt would rewrite:"; gofmt -l .; exit 1; }
go vet ./...
go test -race -count=1 -timeout 3m ./...
