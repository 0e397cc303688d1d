#!/usr/bin/env bash
# The README's picture of the Grafana dashboard (examples/grafana/dashboard.json), from the
# metrics of a real load run of examples/resource_server.rs scraped by a real Prometheus.
#
#   scripts/dashboard_picture.sh                  # writes docs/dashboard.png (~2 minutes)
#   DURATION=120 OUT=/tmp/d.png scripts/dashboard_picture.sh
#   KEEP=1 scripts/dashboard_picture.sh           # keep the temporary directory (logs,
#                                                 # Prometheus data, the HTML page)
#
# Grafana is not needed: scripts/render_dashboard.py evaluates every panel's PromQL against
# the Prometheus HTTP API (query_range over the load window) and draws the panels in their
# gridPos layout as SVG; headless Chromium takes the screenshot.
#
# What runs, all on loopback ports picked free, in a temporary directory:
# - redis-server (no persistence): revocations, quotas and the opaque tokens' store;
# - two companion issuers (examples/issuer): A issues JWTs, B opaque tokens (TOKEN_FORMAT=
#   opaque) that the resource server introspects (as demo-resource);
# - examples/resource_server.rs, trusting B then A (introspection goes to the first
#   issuer), with RATE_LIMIT, REDIS_URL and a short INTROSPECTION_CACHE_TTL;
# - prometheus, scraping its GET /metrics every second.
# Then DURATION seconds (default 80) of wrk load:
#   the whole time   valid JWTs of demo-client (GET and POST) and of reader (POST: not its
#                    scope), opaque tokens of B, requests without a token, garbage and
#                    malformed tokens, JWTs with a broken signature, expired ones, ones for
#                    another audience;
#   at 15 s, 30 s    5000 distinct valid JWTs signed with A's key (SIGNING_KEY_FILE) by this
#                    script, each used once: more than the verified-token cache holds (4096),
#                    so it evicts; asking the issuer for that many would take minutes of argon2;
#   at 25 s          two of demo-client's tokens revoked at A, one opaque token at B;
#   at 35 s, 10 s    a burst of reader's tokens over RATE_LIMIT (429s);
#   at 52 s, 8 s     Redis paused (CLIENT PAUSE): revocation lookups, quotas and B's
#                    introspection answers time out (503s);
#   at 62 s, 10 s    issuer A stopped, tokens with an unknown kid sent meanwhile (the key
#                    refetch they trigger fails), then A restarted with the same key.
#
# Needs: cargo, redis-server + redis-cli, prometheus (2.x), wrk, chromium, curl, python3
# with `cryptography` (Ed25519 signatures for the minted tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
DURATION=${DURATION:-80}
OUT=${OUT:-docs/dashboard.png}
RATE_LIMIT=${RATE_LIMIT:-100/second}
RATE_INTERVAL=${RATE_INTERVAL:-10s}
STEP=${STEP:-2}
KEEP=${KEEP:-0}
AUDIENCE=http://127.0.0.1:8001   # the demo clients' resource (examples/clients.toml)

for tool in cargo redis-server redis-cli prometheus wrk chromium curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done
python3 -c 'import cryptography' 2>/dev/null ||
  { echo "python3 needs the cryptography package (pip install cryptography)" >&2; exit 2; }
(( DURATION >= 75 )) || { echo "DURATION must be at least 75 (seconds)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

forget() { local p kept=(); for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done; pids=("${kept[@]}"); }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits for "listening on <addr>" in a process's stdout and prints the address.
listening() { # file pid
  for _ in $(seq 1 300); do
    if grep -q "listening on" "$1" 2>/dev/null; then sed -n 's/.*listening on //p' "$1" | head -1; return; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "no 'listening on' in $1:" >&2; cat "$1" "${1%.out}.err" >&2 2>/dev/null; exit 1
}
# The executable of a cargo build's artifact.
executable() { # name, then cargo build arguments
  local name=$1; shift
  cargo build "$@" --message-format=json 2>"$tmp/build.err" |
    python3 -c 'import json,sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])' "$name" | tail -1
}

log "building the example and the issuer"
server=$(executable resource_server --example resource_server)
issuer=$(executable issuer -p bearer-guard-issuer)
[ -x "$server" ] && [ -x "$issuer" ] || { cat "$tmp/build.err" >&2; exit 1; }

# --- Redis
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_url="redis://127.0.0.1:$redis_port/"

# --- The issuers. A signs with a key of this script's (kept across its restart, and used to
# mint the eviction and expired tokens); B keeps its opaque tokens in Redis database 1.
python3 - "$tmp/a.pem" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
open(sys.argv[1], "wb").write(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
start_issuer_a() { # bind
  BIND=$1 SIGNING_KEY_FILE="$tmp/a.pem" REDIS_URL=$redis_url RUST_LOG=warn \
    "$issuer" >"$tmp/issuer-a.out" 2>>"$tmp/issuer-a.err" &
  issuer_a_pid=$!
  pids+=($issuer_a_pid)
}
start_issuer_a 127.0.0.1:0
a_addr=$(listening "$tmp/issuer-a.out" "$issuer_a_pid")
BIND=127.0.0.1:0 TOKEN_FORMAT=opaque REDIS_URL="${redis_url}1" RUST_LOG=warn \
  "$issuer" >"$tmp/issuer-b.out" 2>"$tmp/issuer-b.err" &
pids+=($!)
b_addr=$(listening "$tmp/issuer-b.out" $!)
log "issuer A (JWT) at $a_addr, issuer B (opaque) at $b_addr, Redis at $redis_port"

# --- The resource server
ISSUER="http://$b_addr,http://$a_addr" AUDIENCE=$AUDIENCE BIND=127.0.0.1:0 \
  RATE_LIMIT=$RATE_LIMIT REDIS_URL=$redis_url \
  INTROSPECTION_CLIENT_ID=demo-resource INTROSPECTION_CLIENT_SECRET=demo-resource-secret \
  INTROSPECTION_CACHE_TTL=5 RUST_LOG=warn \
  "$server" >"$tmp/server.out" 2>"$tmp/server.err" &
pids+=($!)
rs_addr=$(listening "$tmp/server.out" $!)
url="http://$rs_addr/protected-resource"
log "resource server at $rs_addr (RATE_LIMIT=$RATE_LIMIT)"

# --- Prometheus
prom_port=$(free_port)
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: resource_server
    static_configs:
      - targets: ["$rs_addr"]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null || { cat "$tmp/prometheus.log" >&2; exit 1; }
log "prometheus at 127.0.0.1:$prom_port, scraping http://$rs_addr/metrics every second"

# --- Tokens
token() { # issuer-addr client secret scope resource
  curl -sSf -u "$2:$3" -d grant_type=client_credentials -d scope="$4" -d resource="$5" \
    "http://$1/oauth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
log "fetching tokens from the issuers (client credentials)"
for _ in $(seq 1 12); do token "$a_addr" demo-client demo-secret "read write" "$AUDIENCE"; done >"$tmp/valid"
for _ in $(seq 1 4); do token "$a_addr" reader reader-secret read "$AUDIENCE"; done >"$tmp/reader"
for _ in $(seq 1 2); do token "$a_addr" demo-client demo-secret read http://127.0.0.1:8002; done >"$tmp/other-audience"
for _ in $(seq 1 8); do token "$b_addr" demo-client demo-secret "read write" "$AUDIENCE"; done >"$tmp/opaque"
kid=$(curl -sSf "http://$a_addr/.well-known/jwks.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["kid"])')

# Tokens this script makes: signed with A's key (eviction set, expired ones), with a key A
# never had (unknown kid), real ones with a broken signature, malformed and garbage strings;
# then the request mixes wrk cycles through (method, token; "-" for no token).
python3 - "$tmp" "http://$a_addr" "$AUDIENCE" "$kid" <<'PY'
import base64, json, os, random, sys, time
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

tmp, issuer, audience, kid = sys.argv[1:5]
key = serialization.load_pem_private_key(open(f"{tmp}/a.pem", "rb").read(), None)
stranger = Ed25519PrivateKey.generate()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def jwt(claims, key=key, kid=kid):
    head = b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}." + b64(key.sign(f"{head}.{body}".encode()))

def claims(client, iat, lifetime=3600, scope="read"):
    return {"iss": issuer, "aud": audience, "sub": client, "client_id": client, "scope": scope,
            "iat": iat, "exp": iat + lifetime, "jti": b64(os.urandom(16))}

now = int(time.time())
lines = lambda name: open(f"{tmp}/{name}").read().split()
def write(name, rows):
    with open(f"{tmp}/{name}", "w") as f:
        f.writelines(f"{m}\t{t}\n" for m, t in rows)

write("evict.mix", [("GET", jwt(claims("minted-load", now))) for _ in range(5000)])
unknown = [jwt(claims("demo-client", now), key=stranger, kid="retired-key") for _ in range(5)]
write("unknown.mix", [("GET", t) for t in unknown])
expired = [jwt(claims("demo-client", now - 4000)) for _ in range(5)]

def broken(t):  # a real token, one signature character changed
    head, body, sig = t.split(".")
    i = len(sig) // 2
    return f"{head}.{body}.{sig[:i]}{'A' if sig[i] != 'A' else 'B'}{sig[i + 1:]}"

valid, reader, opaque = lines("valid"), lines("reader"), lines("opaque")
kinds = [  # weight, choices of (method, token)
    (60, [("GET", t) for t in valid]),
    (8, [("POST", t) for t in valid]),
    (6, [("GET", t) for t in reader]),
    (4, [("POST", t) for t in reader]),   # reader has no `write`: insufficient_scope
    (8, [("GET", t) for t in opaque]),    # introspected at B
    (4, [("GET", "-")]),                  # no token
    (3, [("GET", "not-a-jwt-" + b64(os.urandom(12))) for _ in range(20)]),  # introspected: inactive
    (2, [("GET", "eyJhbGciOiJFZERTQSJ9.bm90LWpzb24.c2ln")]),  # JWT-shaped, payload not JSON: introspected
    (2, [("GET", broken(t)) for t in valid[:4]]),
    (2, [("GET", t) for t in expired]),
    (1, [("GET", t) for t in lines("other-audience")]),
]
rng = random.Random(27)
mix = [rng.choice(rng.choices([c for _, c in kinds], [w for w, _ in kinds])[0]) for _ in range(2000)]
write("main.mix", mix)
write("burst.mix", [("GET", t) for t in reader])
PY

# wrk: cycles through a mix file (args: file, delay between a connection's requests in ms).
cat >"$tmp/mix.lua" <<'LUA'
local reqs, i, pause = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    local method, token = line:match("^(%S+)\t(.*)$")
    local headers = {}
    if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
    local body = nil
    if method == "POST" then headers["Content-Type"] = "application/json"; body = "{}" end
    reqs[#reqs + 1] = wrk.format(method, nil, headers, body)
  end
  pause = tonumber(args[2]) or 0
  i = math.random(#reqs)
end
function request() i = i % #reqs + 1; return reqs[i] end
function delay() return pause end
LUA
load() { # name duration-s connections delay-ms mix
  wrk -t1 -c"$3" -d"$2s" --timeout 5s -s "$tmp/mix.lua" "$url" -- "$tmp/$5" "$4" \
    >"$tmp/wrk-$1.txt" 2>&1 &
  pids+=($!)
}

sleep 3
start=$(date +%s)
at() { local wait=$(( start + $1 - $(date +%s) )); (( wait > 0 )) && sleep "$wait"; return 0; }
log "load: $DURATION s"
load main "$DURATION" 4 20 main.mix
at 15; log "eviction set: 5000 distinct tokens in 30 s"
load evict 30 4 20 evict.mix
at 25; log "revoking two tokens at A and one at B"
for t in $(head -2 "$tmp/valid"); do
  curl -sSf -u demo-client:demo-secret -d token="$t" "http://$a_addr/oauth/revoke"
done
curl -sSf -u demo-client:demo-secret -d token="$(head -1 "$tmp/opaque")" "http://$b_addr/oauth/revoke"
at 35; log "burst over RATE_LIMIT"
load burst 10 4 5 burst.mix
at 52; log "Redis paused for 8 s"
redis-cli -p "$redis_port" client pause 8000 all >/dev/null
at 62; log "issuer A stopped; unknown kids meanwhile"
kill "$issuer_a_pid"; wait "$issuer_a_pid" 2>/dev/null || true
forget "$issuer_a_pid"
load unknown 10 1 100 unknown.mix
at 72; log "issuer A restarted"
: >"$tmp/issuer-a.out"
start_issuer_a "$a_addr"
listening "$tmp/issuer-a.out" "$issuer_a_pid" >/dev/null
at "$DURATION"; sleep 4
end=$(date +%s)
for f in "$tmp"/wrk-*.txt; do log "$(basename "$f" .txt): $(grep -h 'Requests/sec' "$f" | tr -s ' ')"; done

log "rendering $OUT"
mkdir -p "$(dirname "$OUT")"
python3 scripts/render_dashboard.py --prometheus "http://127.0.0.1:$prom_port" \
  --start $((start - 10)) --end "$end" --step "$STEP" --rate-interval "$RATE_INTERVAL" \
  --html "$tmp/dashboard.html" --png "$OUT" \
  --note "examples/resource_server.rs under ${DURATION} s of wrk load (scripts/dashboard_picture.sh), scraped every 1 s by Prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}')"
