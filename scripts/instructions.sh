#!/usr/bin/env bash
# What the layer costs a request in instructions: the e2e server (benches/e2e_server.rs) runs
# under valgrind's callgrind while wrk calls /plain, then /guard, with the same repeated
# token; the instructions the server ran for each path, divided by the requests it served.
# `/floor` is the same handler behind a layer that only puts one record into the request:
# what axum and http charge any such layer (the route's service cloned and boxed per request,
# the extension map's fourth entry); `/guard` minus `/floor` is the layer's own work.
# Instructions are counted, not timed: the same build gives the same figures whatever else
# the machine does, so a change to the hot path can be weighed on a noisy machine. They leave
# out the kernel (the sockets), and an instruction is not a cycle (atomics, cache misses);
# scripts/loadtest.sh measures time.
#
#   scripts/instructions.sh              # the table: per path, then the difference
#   TOP=40 scripts/instructions.sh       # and the 40 functions that differ most
#
# Needs valgrind (`apt-get install valgrind`), wrk and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18012}
DURATION=${DURATION:-4s}
TOP=${TOP:-0}

for tool in valgrind callgrind_control callgrind_annotate wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
. scripts/common.sh
server=$(e2e_server)
[ -n "$server" ] || { echo "the e2e_server bench did not build" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$server" "127.0.0.1:$PORT" \
  "$tmp/token" >"$tmp/server" 2>"$tmp/valgrind" &
pid=$!
for _ in $(seq 1 300); do grep -q "listening on" "$tmp/server" 2>/dev/null && break; sleep 0.2; done
grep -q "listening on" "$tmp/server" || { cat "$tmp/valgrind" >&2; exit 1; }
auth="Authorization: Bearer $(cat "$tmp/token")"

load() { # path duration -> requests served
  wrk -t1 -c4 -d"$2" -H "$auth" "http://127.0.0.1:$PORT$1" >"$tmp/wrk"
  if grep -q "Non-2xx" "$tmp/wrk"; then echo "non-2xx responses:" >&2; cat "$tmp/wrk" >&2; exit 1; fi
  grep -E "^ +[0-9]+ requests" "$tmp/wrk" | awk '{print $1}'
}
# Warm-up: the first requests fill the caches, the allocator's free lists, the connections.
load /plain 1s >/dev/null
load /floor 1s >/dev/null
load /guard 1s >/dev/null
for path in /plain /floor /guard; do
  callgrind_control --zero "$pid" >/dev/null 2>&1
  requests=$(load "$path" "$DURATION")
  callgrind_control --dump="$path" "$pid" >/dev/null 2>&1
  dump=$(ls -t "$tmp"/out.* | head -1)
  echo "$path $requests $dump" >>"$tmp/runs"
done

python3 - "$tmp/runs" "$TOP" <<'PY'
import re, subprocess, sys

def functions(dump):
    """Self instructions per function, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", dump],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+?):(.*?)\s\[", line)
        if m:
            costs[m.group(3)] = costs.get(m.group(3), 0) + int(m.group(1).replace(",", ""))
    return costs

runs = {}
for line in open(sys.argv[1]):
    path, requests, dump = line.split()
    costs = functions(dump)
    total = int(re.search(r"^(?:summary|totals): (\d+)", open(dump).read(), re.M).group(1))
    runs[path] = (int(requests), total, costs)

(ro, to, co), (rf, tf, cf), (rg, tg, cg) = runs["/plain"], runs["/floor"], runs["/guard"]
print(f"/plain    {to / ro:8.0f} instructions per request ({ro} requests)")
print(f"/floor    {tf / rf:8.0f} instructions per request ({rf} requests)")
print(f"/guard    {tg / rg:8.0f} instructions per request ({rg} requests)")
print(f"the layer {tg / rg - to / ro:8.0f} instructions per request "
      f"({(tg / rg) / (to / ro):.3f}x the open path, user space only)")
print(f"  of which axum's and http's floor {tf / rf - to / ro:8.0f} "
      f"(a layer that only inserts one record), the decision {tg / rg - tf / rf:8.0f}")
top = int(sys.argv[2])
if top:
    # callgrind_annotate also lists main and the runtime's loop with everything under them.
    whole = lambda k: max(co.get(k, 0), cg.get(k, 0)) >= 0.99 * min(to, tg)
    rows = sorted(((cg.get(k, 0) / rg - co.get(k, 0) / ro, k)
                   for k in set(co) | set(cg) if not whole(k)), reverse=True)
    print(f"\nthe {top} functions whose self cost per request grew most:")
    for diff, name in rows[:top]:
        print(f"{diff:8.0f}  {name[:110]}")
PY
