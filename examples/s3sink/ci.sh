#!/usr/bin/env bash
# CI for examples/s3sink. The tests start their own S3 API server
# (gofakes3, on 127.0.0.1 through httptest) and stop it when they end; the
# end-to-end tests query the lake with DuckDB, whose engine the Go bindings
# link in through cgo, so a C compiler is needed (installed from Debian's
# packages when missing). The kinesalite/dynalite tests run when .ci/run
# has started the emulators (SHARDFLOW_*_ENDPOINT set).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null; then
  echo "C/C++ compiler not found (DuckDB's Go bindings need cgo); installing Debian's build-essential"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y build-essential
fi
export CGO_ENABLED=1

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt would rewrite:"; echo "$unformatted"; exit 1; fi
go vet ./...
go vet -tags integration ./...
go test -race -count=1 -timeout 5m ./...
# The benchmark must keep running (figures are read from it, not asserted).
go test -run '^$' -bench . -benchtime 2000x ./...
if [ -n "${SHARDFLOW_KINESALITE_ENDPOINT:-}" ] && [ -n "${SHARDFLOW_DYNALITE_ENDPOINT:-}" ]; then
  go test -race -count=1 -timeout 5m -tags integration -run 'Against' ./...
else
  echo "emulator endpoints not set: skipping the kinesalite/dynalite tests (source ../../.ci/emulators.sh && emulators_start)"
fi
