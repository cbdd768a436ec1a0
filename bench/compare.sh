#!/usr/bin/env bash
# The guard of the serving paths against the next regression. It builds two
# versions of tokenauthd, the working tree ("new") and a git revision
# ("old", main by default), starts a daemon of each and the do-nothing
# floors (bench/nothing), and runs every path of both, interleaved, in one
# `tokenauthd bench`:
#
#   stdio    the stdin/stdout helper              floor: nothing
#   socket   serve, its socket dialled directly   floor: nothing -socket
#            (as Prosody's module does)
#   relay    connect in front of serve            floor: nothing -relay in front
#            (as ejabberd's extauth does)                of nothing -socket
#
# It prints the machine and its load, the bench's own table, then one line
# per path: the floor's, old's and new's p50, new/old and new/floor, the CPU
# per request (pipelined and lockstep) and the RSS after. Then the daemons
# again, with HOSTS configured hosts against one, each build against itself,
# and a control: a second one-host daemon of the working tree, whose ratio
# to the first is the noise of that run.
# Every change to the serving path brings such a comparison to BENCHMARKS.md.
# Figures from a loaded machine are noise: read the load with them.
#
# usage: bench/compare.sh [REV [OUT.md]]
#   RUNS=5 interleaved runs; LOCKSTEP=5000 and PIPELINED=100000 tokens per
#   run; HOSTS=10000 (0 skips the hosts comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
rev=${1:-main}
out=${2:-/dev/stdout}
runs=${RUNS:-5}
lockstep=${LOCKSTEP:-5000}
pipelined=${PIPELINED:-100000}
hosts=${HOSTS:-10000}

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

old_commit=$(git rev-parse --verify "$rev^{commit}")
mkdir "$dir/old-src"
git archive "$old_commit" | tar -x -C "$dir/old-src"
(cd "$dir/old-src" && go build -o "$dir/old" .)
go build -o "$dir/new" .
go build -o "$dir/nothing" ./bench/nothing
old_desc="$rev ($(git rev-parse --short "$old_commit"))"
new_desc="the working tree ($(git describe --always --dirty))"
td=$dir/new

# try_start NAME COMMAND...: runs a server in the background and waits
# until its socket, $dir/NAME.sock, appears; fails if it does not.
try_start() {
  local name=$1
  shift
  "$@" 2>>"$dir/$name.log" &
  pids+=($!)
  for _ in $(seq 600); do
    [ -S "$dir/$name.sock" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not start:" >&2
  cat "$dir/$name.log" >&2
  return 1
}

# start NAME COMMAND...: try_start, or the end of the comparison.
start() { try_start "$@" || exit 1; }

# summary: reads the bench's table and prints one line per path, floor,
# old and new side by side.
summary() {
  awk -F' *\\| *' '
    function num(s) { sub(/ .*/, "", s); return s + 0 }
    function r(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f×", a / b) : "–" }
    /^\| / && NF >= 15 && $2 != "helper" {
      split($2, w, " "); path = w[1]; which = w[2]
      p50[path, which] = num($3); cpu[path, which] = num($10); cpul[path, which] = num($11)
      rss[path, which] = num($15)
      if (!(path in seen)) { seen[path] = 1; order[++n] = path }
    }
    END {
      print "| path | floor p50 | old p50 | new p50 | new / old | new / floor | old / floor | CPU / req old → new | new / old | CPU / req lockstep old → new | RSS after old → new |"
      print "|---|---|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= n; i++) {
        p = order[i]
        printf "| %s | %.1f µs | %.1f µs | %.1f µs | **%s** | **%s** | %s | %.2f → %.2f µs | %s | %.2f → %.2f µs | %d → %d MiB |\n",
          p, p50[p, "floor"], p50[p, "old"], p50[p, "new"], r(p50[p, "new"], p50[p, "old"]),
          r(p50[p, "new"], p50[p, "floor"]), r(p50[p, "old"], p50[p, "floor"]),
          cpu[p, "old"], cpu[p, "new"], r(cpu[p, "new"], cpu[p, "old"]),
          cpul[p, "old"], cpul[p, "new"], rss[p, "old"], rss[p, "new"]
      }
    }'
}

# bench_config FILE: a replay capacity no run fills (a daemon takes some
# 200,000 tokens a run, and more than its capacity within their two
# minutes is a loss that refuses them), and isuser as a boolean, which
# every build reads (a fresh configuration says "seen", which builds
# before it refuse); auth, which is what is measured, does not read it.
bench_config() {
  sed -i 's/^isuser = "seen"$/isuser = true/' "$1"
  sed -i '1a [replay]\ncapacity = 8000000' "$1"
}

"$td" bench -hosts 1 -write-config "$dir/one.toml"
bench_config "$dir/one.toml"
start nothing "$dir/nothing" -socket "$dir/nothing.sock"
start old "$dir/old" serve -config "$dir/one.toml" -socket "$dir/old.sock"
start new "$dir/new" serve -config "$dir/one.toml" -socket "$dir/new.sock"

{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(uname -sr), $(go version | cut -d' ' -f3)."
  echo "Old: $old_desc. New: $new_desc."
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "### Every path, old and new, interleaved"
  echo
  "$td" bench -config "$dir/one.toml" -runs "$runs" -lockstep "$lockstep" -pipelined "$pipelined" \
    -helper "stdio floor=$dir/nothing" -helper "stdio old=$dir/old" -helper "stdio new=$dir/new" \
    -socket "socket floor=$dir/nothing.sock" -socket "socket old=$dir/old.sock" -socket "socket new=$dir/new.sock" \
    -helper "relay floor=$dir/nothing -relay $dir/nothing.sock" \
    -helper "relay old=$dir/old connect -socket $dir/old.sock" \
    -helper "relay new=$dir/new connect -socket $dir/new.sock" | tee "$dir/table.md"
  echo
  summary <"$dir/table.md"
  echo
  echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
  if [ "$hosts" -gt 0 ]; then
    echo
    echo "### The daemon with $hosts hosts against one host, tokens spread over all"
    echo
    # Over 1,000 hosts the secrets are credential files, in many.toml.d.
    "$td" bench -hosts "$hosts" -write-config "$dir/many.toml" 2>/dev/null
    bench_config "$dir/many.toml"
    export CREDENTIALS_DIRECTORY=$dir/many.toml.d
    builds=(new)
    # Fresh daemons for both sides: the first ones hold the records of the
    # comparison above.
    start old-one "$dir/old" serve -config "$dir/one.toml" -socket "$dir/old-one.sock"
    start new-one "$dir/new" serve -config "$dir/one.toml" -socket "$dir/new-one.sock"
    # A control: a second daemon like new-one. What separates the two is
    # noise alone, and its ratio says how much a ratio of this run can hold.
    start new-control "$dir/new" serve -config "$dir/one.toml" -socket "$dir/new-control.sock"
    start new-many "$dir/new" serve -config "$dir/many.toml" -socket "$dir/new-many.sock"
    # An old build may not read credential files ("%d/"): then it is left out.
    if try_start old-many "$dir/old" serve -config "$dir/many.toml" -socket "$dir/old-many.sock" 2>/dev/null; then
      builds=(old new)
    fi
    # One bench, the targets taking turns: tokens for the one-host daemons
    # from one.toml, for the others spread over the hosts of many.toml.
    set -- -socket "new control=$dir/new-control.sock" -target-config "new control=$dir/one.toml"
    for b in "${builds[@]}"; do
      set -- "$@" -socket "$b 1=$dir/$b-one.sock" -target-config "$b 1=$dir/one.toml" -socket "$b many=$dir/$b-many.sock"
    done
    "$td" bench -config "$dir/many.toml" -runs "$runs" -lockstep "$lockstep" -pipelined "$pipelined" "$@" |
    awk -F' *\\| *' -v hosts="$hosts" '
      function num(s) { sub(/ .*/, "", s); return s + 0 }
      /^\| (old|new) (1|many|control) / {
        split($2, w, " "); k = w[1] " " w[2]
        p50[k] = num($3); cpu[k] = num($10); rss[k] = num($15)
      }
      END {
        print "| build | p50, 1 host | p50, " hosts " hosts | ratio | CPU / req, 1 host | CPU / req, " hosts " hosts | RSS after, 1 → " hosts " hosts |"
        print "|---|---|---|---|---|---|---|"
        split("old new", b, " ")
        for (i = 1; i <= 2; i++) {
          if (!((b[i] " many") in p50)) continue
          one = p50[b[i] " 1"]; many = p50[b[i] " many"]
          printf "| %s | %.1f µs | %.1f µs | **%.2f×** | %.2f µs | %.2f µs | %d → %d MiB |\n", b[i], one, many, many / one,
            cpu[b[i] " 1"], cpu[b[i] " many"], rss[b[i] " 1"], rss[b[i] " many"]
        }
        c = p50["new control"]; one = p50["new 1"]
        printf "| control: new, 1 host, another daemon | %.1f µs | %.1f µs | **%.2f×** | %.2f µs | %.2f µs | %d → %d MiB |\n", one, c, c / one,
          cpu["new 1"], cpu["new control"], rss["new 1"], rss["new control"]
      }'
    echo
    echo "Medians of $runs runs, the daemons taking turns. Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
  fi
} >"$out"
