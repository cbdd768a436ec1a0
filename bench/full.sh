#!/usr/bin/env bash
# Builds tokenauthd and the baselines and runs the whole comparison with
# `tokenauthd bench`, printing markdown: the machine, then one table per
# measurement, then the Go benchmarks. (bench/compare.sh compares two
# builds of tokenauthd, path by path.)
#
# usage: bench/full.sh [OUT.md]        (RUNS=5 runs of each helper by default)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
runs=${RUNS:-5}
out=${1:-/dev/stdout}

dir=$(mktemp -d)
serve_pid=
nothing_pid=
cleanup() {
  for pid in $serve_pid $nothing_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

go build -o "$dir/tokenauthd" .
go build -o "$dir/nothing" ./bench/nothing
td=$dir/tokenauthd
"$td" gen-secrets h0.bench.test > "$dir/config.toml"

# start_daemon starts a fresh `tokenauthd serve` (an empty replay store) on
# $dir/sock.
start_daemon() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; fi
  rm -f "$dir/sock"
  "$td" serve -config "$dir/config.toml" -socket "$dir/sock" 2>>"$dir/serve.log" &
  serve_pid=$!
  for _ in $(seq 100); do [ -S "$dir/sock" ] && return; sleep 0.05; done
  echo "serve did not start:" >&2; cat "$dir/serve.log" >&2; exit 1
}

# The do-nothing helper on a Unix socket: the floor of the daemon's path.
"$dir/nothing" -socket "$dir/nothing.sock" &
nothing_pid=$!
for _ in $(seq 100); do [ -S "$dir/nothing.sock" ] && break; sleep 0.05; done

bench() { "$td" bench -config "$dir/config.toml" "$@"; }
nothing="nothing (floor)=$dir/nothing"
python="Python + pyotp=bench/pyhelper.py"
connect="connect + serve=$td connect -socket $dir/sock"
socket="serve, socket dialled directly=$dir/sock"
nothing_socket="nothing on a socket=$dir/nothing.sock"
connect_nothing="connect + nothing on a socket=$td connect -socket $dir/nothing.sock"

{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(uname -sr), $(go version | cut -d' ' -f3)."
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "### ejabberd framing"
  echo
  start_daemon
  bench -runs "$runs" -helper "$nothing" -helper "tokenauthd=$td" -helper "$python" -helper "$connect" -socket "$socket" \
    -socket "$nothing_socket" -helper "$connect_nothing"
  echo
  echo "### generic framing (Prosody's mod_auth_external)"
  echo
  start_daemon
  bench -runs "$runs" -protocol generic -helper "$nothing" -helper "tokenauthd=$td -protocol generic" \
    -helper "$python" -helper "$connect -protocol generic"
  echo
  echo "### Replays: every token sent twice"
  echo
  start_daemon
  # The baselines take the second copies: bench reports it and fails.
  bench -runs 1 -lockstep 1000 -pipelined 10000 -replay -helper "$nothing" -helper "tokenauthd=$td" \
    -helper "$python" -helper "$connect" 2>/dev/null || true
  echo
  echo "### Hosts: 1, 100 and 10,000 configured, tokens spread over all"
  echo
  for h in 1 100 10000; do
    "$td" bench -hosts "$h" -runs 3 -helper "$nothing" -helper "tokenauthd, $h hosts=$td" | grep '^| tokenauthd'
  done | { echo "| helper | p50 | p90 | p99 | max | p50 / floor | p99 / floor | pipelined | CPU / req | CPU / req lockstep | first reply | accepted | replays refused | RSS after (peak) |"
           echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"; cat; }
  echo
  echo "### 1 M live nonces: RSS after 1,000,000 tokens accepted (replay capacity 1 M)"
  echo
  start_daemon
  bench -runs 1 -lockstep 0 -pipelined 1000000 -helper "tokenauthd=$td" -socket "$socket"
  echo
  echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "### Go benchmarks: cost against hosts and live records"
  echo
  echo '```'
  go test -run '^$' -bench 'VerifyHosts|VerifyLiveNonces|RecordLiveNonces|MemoryHeldBytes' -benchmem \
    -benchtime 200000x ./verifier ./replay | grep -E '^(Benchmark|ok)'
  echo '```'
} > "$out"
