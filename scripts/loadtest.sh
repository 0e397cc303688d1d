#!/usr/bin/env bash
# End-to-end load test with wrk: one minimal axum handler served at /open and, behind
# RequireScope with one repeated token, at /guarded (benches/e2e_server.rs, one
# single-threaded runtime). The server is pinned to one core and wrk to the other, so they
# do not compete; the two paths alternate ROUNDS times and the medians are compared. Fails if
# any response is not 2xx.
#
#   scripts/loadtest.sh                      # 5 rounds of 5 s per path
#   ROUNDS=3 DURATION=10s scripts/loadtest.sh
#
# Needs wrk (`apt-get install wrk`), taskset (util-linux) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
BIND=${BIND:-127.0.0.1:18002}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo bench --bench e2e_server --no-run --quiet 2>/dev/null
server=$(cargo bench --bench e2e_server --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e_server" and m.get("executable"):
        print(m["executable"])')

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$server" "$BIND" "$tmp/token" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$tmp/server.log" || { cat "$tmp/server.log" >&2; exit 1; }
auth="Authorization: Bearer $(cat "$tmp/token")"

run() { # path, [header]
  local out
  if [ $# -gt 1 ]; then
    out=$(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "$2" "http://$BIND$1")
  else
    out=$(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://$BIND$1")
  fi
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1: non-2xx responses:" >&2; echo "$out" >&2; exit 1
  fi
  grep "Requests/sec" <<<"$out" | awk '{print $2}'
}

open=(); guarded=()
run /open >/dev/null; run /guarded "$auth" >/dev/null   # warm-up
for i in $(seq 1 "$ROUNDS"); do
  open+=("$(run /open)")
  guarded+=("$(run /guarded "$auth")")
  echo "round $i: /open ${open[-1]} req/s, /guarded ${guarded[-1]} req/s"
done
python3 - "${open[*]}" "${guarded[*]}" <<'EOF'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]
g = [float(x) for x in sys.argv[2].split()]
mo, mg = statistics.median(o), statistics.median(g)
print(f"median /open {mo:.0f} req/s, /guarded {mg:.0f} req/s: guarded/open = {mg / mo:.3f}")
EOF
