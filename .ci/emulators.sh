# shellcheck shell=bash
# Source this file, then call `emulators_start`. It installs (cached under
# .cache/npm) and starts kinesalite, kinesis-mock and dynalite on free
# loopback ports, waits for each to answer, exports their endpoints, and
# registers `emulators_stop` to kill them by PID on exit.
#
#   source .ci/emulators.sh && emulators_start
#   go test -tags integration ./...
#
# Exported: SHARDFLOW_KINESALITE_ENDPOINT, SHARDFLOW_KINESIS_MOCK_ENDPOINT,
# SHARDFLOW_DYNALITE_ENDPOINT, SHARDFLOW_NODE_MODULES (for aws-kinesis-agg).

_emu_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_emu_cache="$_emu_root/.cache/npm"
_emu_pids=()
_emu_logs="$_emu_root/.cache/logs"

emulators_install() {
  mkdir -p "$_emu_cache" "$_emu_logs"
  if [ -f "$_emu_cache/.installed-v1" ]; then return 0; fi
  (
    cd "$_emu_cache"
    [ -f package.json ] || echo '{"name":"shardflow-emulators","private":true}' > package.json
    npm install --no-audit --no-fund --loglevel=error \
      kinesalite@3.3.3 kinesis-local@0.6.2 dynalite@4.0.0 aws-kinesis-agg@4.2.8
  )
  touch "$_emu_cache/.installed-v1"
}

_emu_free_port() {
  python3 - <<'PY' 2>/dev/null || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

_emu_wait() { # name port seconds
  local name=$1 port=$2 deadline=$((SECONDS + $3))
  until curl -s -o /dev/null -X POST "http://127.0.0.1:$port/"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "emulators: $name did not answer on port $port; its log:" >&2
      tail -50 "$_emu_logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  echo "emulators: $name answers on 127.0.0.1:$port"
}

emulators_stop() {
  local pid
  for pid in "${_emu_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${_emu_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  _emu_pids=()
}

emulators_start() {
  emulators_install
  trap emulators_stop EXIT
  local kl dl km kmtls
  kl=$(_emu_free_port); dl=$(_emu_free_port); km=$(_emu_free_port); kmtls=$(_emu_free_port)

  node --require "$_emu_root/.ci/emulator-guard.js" "$_emu_cache/node_modules/kinesalite/cli.js" --port "$kl" \
    --createStreamMs 50 --deleteStreamMs 50 --updateStreamMs 50 --shardLimit 1000 >"$_emu_logs/kinesalite.log" 2>&1 &
  _emu_pids+=($!)
  node --require "$_emu_root/.ci/emulator-guard.js" "$_emu_cache/node_modules/dynalite/cli.js" --port "$dl" --createTableMs 50 \
    >"$_emu_logs/dynalite.log" 2>&1 &
  _emu_pids+=($!)
  # kinesis-mock reads server.json from its working directory.
  (cd "$_emu_cache/node_modules/kinesis-local" && \
    KINESIS_MOCK_PLAIN_PORT=$km KINESIS_MOCK_TLS_PORT=$kmtls \
    CREATE_STREAM_DURATION=50ms DELETE_STREAM_DURATION=50ms UPDATE_STREAM_DURATION=50ms \
    REGISTER_STREAM_CONSUMER_DURATION=50ms DEREGISTER_STREAM_CONSUMER_DURATION=50ms \
    MERGE_SHARDS_DURATION=50ms SPLIT_SHARD_DURATION=50ms UPDATE_SHARD_COUNT_DURATION=50ms \
    exec node main.js) >"$_emu_logs/kinesis-mock.log" 2>&1 &
  _emu_pids+=($!)

  _emu_wait kinesalite "$kl" 60
  _emu_wait dynalite "$dl" 60
  _emu_wait kinesis-mock "$km" 120

  export SHARDFLOW_KINESALITE_ENDPOINT="http://127.0.0.1:$kl"
  export SHARDFLOW_DYNALITE_ENDPOINT="http://127.0.0.1:$dl"
  export SHARDFLOW_KINESIS_MOCK_ENDPOINT="http://127.0.0.1:$km"
  export SHARDFLOW_NODE_MODULES="$_emu_cache/node_modules"
}
