#!/usr/bin/env bash
# CI for examples/agent (a nested module): vet and the race-enabled tests.
# When the emulators are running (.ci/run starts them before calling this
# script), the -target aws path is also tested against kinesalite.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
go vet -tags integration ./...
go test -race -count=1 -timeout 3m ./...
if [ -n "${SHARDFLOW_KINESALITE_ENDPOINT:-}" ]; then
  go test -race -count=1 -timeout 3m -tags integration -run 'Against' ./...
else
  echo "SHARDFLOW_KINESALITE_ENDPOINT not set: skipping the kinesalite test (source ../../.ci/emulators.sh && emulators_start)"
fi
