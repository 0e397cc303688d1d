#!/usr/bin/env bash
# What sharing quotas (and revocations) through Redis costs at the HTTP level:
# examples/resource_server.rs with RATE_LIMIT, once without REDIS_URL (A: in-process quotas,
# no revocation store) and once with a single-node REDIS_URL (B: quotas on lent cells,
# revocations mirrored from Redis), both loaded by `wrk -c64` on GET /protected-resource.
#
# Both servers run for the whole measurement and are loaded in turn, A B B A A B ..., so that
# the drift of a shared machine falls on both alike. Per round it reads the requests wrk
# completed and the CPU time each process used (utime + stime from /proc/<pid>/stat), and
# prints B/A for requests per second and for CPU time per request; at the end, the medians.
# The CPU of redis-server is shown beside B's (it is another process, usually another
# machine). Fails if any response is not 2xx.
#
# RATE_LIMIT is high enough (default 1000000/second per client: a burst of a million) that
# no request is refused: the comparison is about what a decision costs, not about 429s.
#
#   scripts/redis_quota_compare.sh                   # 6 rounds of 5 s, one client
#   ROUNDS=10 DURATION=10s scripts/redis_quota_compare.sh
#   CLIENTS=64 scripts/redis_quota_compare.sh        # 64 clients' tokens, round robin
#   EXTRA_B='RATE_LIMIT_EXACT=1' scripts/redis_quota_compare.sh   # B: one round trip each
#
# Needs wrk (`apt-get install wrk`), redis-server, openssl (signs the test tokens with the
# crate's Ed25519 test key) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-6}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-1}
RATE_LIMIT=${RATE_LIMIT:-1000000/second}
EXTRA_B=${EXTRA_B:-}

for tool in wrk redis-server openssl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
if [ -z "${SERVER:-}" ]; then
  cargo build --release --example resource_server >&2
  SERVER=target/release/examples/resource_server
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The test issuer's Ed25519 key (tests/keys): its JWKS, and CLIENTS tokens signed with it.
python3 - "$tmp" "$CLIENTS" <<'PY'
import base64, json, subprocess, sys, time, uuid
tmp, clients = sys.argv[1], int(sys.argv[2])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
der = subprocess.run(["openssl", "pkey", "-pubin", "-in", "tests/keys/ed25519_public.pem",
                      "-outform", "DER"], check=True, capture_output=True).stdout
jwk = {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "use": "sig",
       "x": b64(der[-32:])}
open(f"{tmp}/jwks.json", "w").write(json.dumps({"keys": [jwk]}))
header = b64(json.dumps({"alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1"}).encode())
now = int(time.time())
with open(f"{tmp}/tokens", "w") as out:
    for i in range(clients):
        claims = {"iss": "https://issuer.test", "aud": "https://api.test",
                  "sub": f"bench-{i}", "client_id": f"bench-{i}", "scope": "read",
                  "iat": now, "exp": now + 3600, "jti": str(uuid.uuid4())}
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
        open(f"{tmp}/signing-input", "w").write(signing_input)
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey",
                              "tests/keys/ed25519_private.pem", "-in", f"{tmp}/signing-input"],
                             check=True, capture_output=True).stdout
        out.write(f"{signing_input}.{b64(sig)}\n")
PY
# wrk sends the tokens in turn, one per request.
cat >"$tmp/tokens.lua" <<LUA
local tokens = {}
for line in io.lines("$tmp/tokens") do tokens[#tokens + 1] = "Bearer " .. line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { Authorization = tokens[i] })
end
LUA

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")

start() { # name port [VAR=value ...] -> the server's pid in $tmp/<name>.pid
  local name=$1 port=$2; shift 2
  env -u REDIS_URL -u RATE_LIMIT_EXACT ISSUER=https://issuer.test AUDIENCE=https://api.test \
    JWKS_FILE="$tmp/jwks.json" RATE_LIMIT="$RATE_LIMIT" BIND="127.0.0.1:$port" \
    RUST_LOG=warn "$@" "$SERVER" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  echo $! >"$tmp/$name.pid"
}
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
port_a=$(free_port); port_b=$(free_port)
start a "$port_a"
# shellcheck disable=SC2086 # EXTRA_B is a list of VAR=value words
start b "$port_b" REDIS_URL="redis://127.0.0.1:$redis_port/" $EXTRA_B
for name in a b; do
  for _ in $(seq 1 100); do grep -q "listening on" "$tmp/$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$tmp/$name.out" || { cat "$tmp/$name.err" >&2; exit 1; }
done

cpu_ticks() { # pid -> utime + stime, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
load() { # name port duration -> "requests cpu_ticks redis_ticks seconds"
  local pid before after rb ra
  pid=$(cat "$tmp/$1.pid")
  before=$(cpu_ticks "$pid"); rb=$(cpu_ticks "$redis_pid")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3" -s "$tmp/tokens.lua" \
    "http://127.0.0.1:$2/protected-resource" >"$tmp/wrk.$1"
  after=$(cpu_ticks "$pid"); ra=$(cpu_ticks "$redis_pid")
  if grep -q "Non-2xx" "$tmp/wrk.$1"; then
    echo "non-2xx responses from $1:" >&2; cat "$tmp/wrk.$1" >&2; exit 1
  fi
  local requests secs
  requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.$1")
  secs=$(awk '/requests in/ {sub(/s,/, "", $4); print $4}' "$tmp/wrk.$1")
  echo "$requests $((after - before)) $((ra - rb)) $secs"
}

ticks=$(getconf CLK_TCK)
load a "$port_a" 2s >/dev/null; load b "$port_b" 2s >/dev/null   # warm-up
: >"$tmp/rows"
for i in $(seq 1 "$ROUNDS"); do
  if (( i % 2 )); then order="a b"; else order="b a"; fi
  for name in $order; do
    port=$port_a; [ "$name" = b ] && port=$port_b
    echo "$i $name $(load "$name" "$port" "$DURATION")" >>"$tmp/rows"
  done
done

python3 - "$tmp/rows" "$ticks" "$RATE_LIMIT" "$CLIENTS" "$EXTRA_B" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
tick_us = 1e6 / int(sys.argv[2])
by = {}
for r, name, requests, cpu, redis_cpu, secs in rows:
    by.setdefault(int(r), {})[name] = (int(requests), int(cpu) * tick_us, int(redis_cpu) * tick_us, float(secs))
print(f"RATE_LIMIT={sys.argv[3]}, {sys.argv[4]} client(s); A: no REDIS_URL; B: single-node REDIS_URL {sys.argv[5]}")
print(f"{'round':>5} {'A req/s':>9} {'B req/s':>9} {'rps B/A':>8} {'A us/req':>9} {'B us/req':>9} {'cpu B/A':>8} {'redis us/req':>13}")
rps_ratios, cpu_ratios = [], []
for r in sorted(by):
    (na, ca, _, sa), (nb, cb, rb, sb) = by[r]["a"], by[r]["b"]
    ra, rb_ = na / sa, nb / sb
    ua, ub = ca / na, cb / nb
    rps_ratios.append(rb_ / ra); cpu_ratios.append(ub / ua)
    print(f"{r:>5} {ra:9.0f} {rb_:9.0f} {rb_ / ra:8.3f} {ua:9.2f} {ub:9.2f} {ub / ua:8.3f} {rb / nb:13.2f}")
med = statistics.median
print(f"median of {len(rps_ratios)} rounds: req/s B/A {med(rps_ratios):.3f} "
      f"(min {min(rps_ratios):.3f}, max {max(rps_ratios):.3f}); "
      f"CPU time per request B/A {med(cpu_ratios):.3f} "
      f"(min {min(cpu_ratios):.3f}, max {max(cpu_ratios):.3f})")
PY
