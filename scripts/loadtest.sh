#!/usr/bin/env bash
# End-to-end load test with wrk: one minimal axum handler served at /plain and, behind
# RequireScope, at /guard, both called with the same repeated token
# (benches/e2e_server.rs, one single-threaded runtime per server).
#
# On a shared machine, runs one after the other differ by more than the layer costs (other
# tenants take the core at will). So the two paths run side by side: two servers pinned
# together to one core (the scheduler gives each half of it), two wrk pinned together to the
# other, for the same seconds; whatever the neighbours do hits both alike, and the ratio of
# the requests served is the ratio of their costs. Each round swaps which server serves which
# path. Fails if any response is not 2xx.
#
#   scripts/loadtest.sh                      # 6 rounds of 5 s
#   ROUNDS=10 DURATION=10s scripts/loadtest.sh
#   GUARDED=/guard-layer scripts/loadtest.sh   # the layer added with MethodRouter::layer
#   SEQUENTIAL=1 scripts/loadtest.sh   # one server on one core, one wrk on the other, the
#                                      # paths in turn (wrk may then be the bottleneck,
#                                      # which hides part of the layer's cost)
#
# Needs wrk (`apt-get install wrk`), taskset (util-linux) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-6}
CONNECTIONS=${CONNECTIONS:-16}
PORTS=(18002 18003)
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
GUARDED=${GUARDED:-/guard}
SEQUENTIAL=${SEQUENTIAL:-0}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
. scripts/common.sh
server=$(e2e_server)
[ -n "$server" ] || { echo "the e2e_server bench did not build" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

for port in "${PORTS[@]}"; do
  taskset -c "$SERVER_CPU" "$server" "127.0.0.1:$port" "$tmp/token.$port" >"$tmp/server.$port" 2>&1 &
  pids+=($!)
done
for port in "${PORTS[@]}"; do
  for _ in $(seq 1 100); do grep -q "listening on" "$tmp/server.$port" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$tmp/server.$port" || { cat "$tmp/server.$port" >&2; exit 1; }
done
# Both servers sign with the crate's test key: either token passes either server. Both paths
# get the same request, token included (hyper parses the same bytes): only the layer differs.
auth="Authorization: Bearer $(cat "$tmp/token.${PORTS[0]}")"

load() { # port path duration -> wrk's output in $tmp/wrk.<port>
  taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$3" -H "$auth" "http://127.0.0.1:$1$2" \
    >"$tmp/wrk.$1"
}
rps() { # port
  if grep -q "Non-2xx" "$tmp/wrk.$1"; then
    echo "non-2xx responses:" >&2; cat "$tmp/wrk.$1" >&2; exit 1
  fi
  grep "Requests/sec" "$tmp/wrk.$1" | awk '{print $2}'
}

divide() { # guarded open: their ratio
  python3 -c "print(f'{$1 / $2:.3f}')"
}
summary() { # how, then the ratios: their median, min and max
  local how=$1; shift
  python3 -c "import statistics, sys; r=[float(x) for x in sys.argv[1:]]; print(f'$GUARDED / /plain, $how, median of {len(r)} rounds: {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})')" "$@"
}

both() { # port-a path-a port-b path-b duration: the two loads at once
  load "$1" "$2" "$5" & local one=$!
  load "$3" "$4" "$5" & local two=$!
  wait "$one" "$two"
}

if [ "$SEQUENTIAL" = 1 ]; then
  port=${PORTS[0]}
  load "$port" /plain 1s   # warm-up
  ratios=()
  for i in $(seq 1 "$ROUNDS"); do
    load "$port" /plain "$DURATION"; open=$(rps "$port")
    load "$port" "$GUARDED" "$DURATION"; guarded=$(rps "$port")
    ratio=$(divide "$guarded" "$open")
    ratios+=("$ratio")
    echo "round $i: /plain $open req/s, then $GUARDED $guarded req/s: $ratio"
  done
  summary "one after the other" "${ratios[@]}"
  exit 0
fi

both "${PORTS[0]}" /plain "${PORTS[1]}" "$GUARDED" 1s   # warm-up
ratios=()
for i in $(seq 1 "$ROUNDS"); do
  if (( i % 2 )); then a=${PORTS[0]}; b=${PORTS[1]}; else a=${PORTS[1]}; b=${PORTS[0]}; fi
  both "$a" /plain "$b" "$GUARDED" "$DURATION"
  open=$(rps "$a"); guarded=$(rps "$b")
  ratio=$(divide "$guarded" "$open")
  ratios+=("$ratio")
  echo "round $i: /plain $open req/s, $GUARDED $guarded req/s side by side: $ratio"
done
summary "side by side" "${ratios[@]}"
