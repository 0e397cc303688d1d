#!/usr/bin/env bash
# Load test of examples/resource_server.rs with wrk: requests per second to
# /protected-resource with one repeated token, against /healthz with no auth, at 64
# connections. Fails if any response is not 2xx.
#
#   scripts/loadtest.sh            # 10 s per run
#   DURATION=30s scripts/loadtest.sh
#
# Needs wrk (`apt-get install wrk`), curl and a release build of the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ISSUER_BIND=127.0.0.1:18000
API_BIND=127.0.0.1:18001

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet --example issuer --example resource_server

tmp=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
pids=()
trap cleanup EXIT

wait_for() { # file
  for _ in $(seq 1 100); do grep -q "listening on" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start: $1" >&2; cat "$1" >&2; exit 1
}

# The issuer's demo client may ask for the resource http://127.0.0.1:8001 (examples/clients.toml).
BIND=$ISSUER_BIND RUST_LOG=warn target/release/examples/issuer >"$tmp/issuer.log" 2>&1 &
pids+=($!)
wait_for "$tmp/issuer.log"
ISSUER=http://$ISSUER_BIND AUDIENCE=http://127.0.0.1:8001 BIND=$API_BIND RUST_LOG=warn \
  target/release/examples/resource_server >"$tmp/api.log" 2>&1 &
pids+=($!)
wait_for "$tmp/api.log"

token=$(curl -fsS -u demo-client:demo-secret -d grant_type=client_credentials -d scope=read \
  -d resource=http://127.0.0.1:8001 "http://$ISSUER_BIND/oauth/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://$API_BIND/protected-resource"

run() { # name, url, [header]
  local out
  if [ $# -gt 2 ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "$3" "$2")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$2")
  fi
  echo "$out" >"$tmp/$1.wrk"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1: non-2xx responses:" >&2; echo "$out" >&2; exit 1
  fi
  grep "Requests/sec" <<<"$out" | awk '{print $2}'
}

healthz=$(run healthz "http://$API_BIND/healthz")
protected=$(run protected "http://$API_BIND/protected-resource" "Authorization: Bearer $token")
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, zero non-2xx responses"
printf '%-40s %12s req/s\n' "/healthz (no auth)" "$healthz"
printf '%-40s %12s req/s\n' "/protected-resource (one repeated token)" "$protected"
python3 -c "print(f'ratio protected/healthz: {$protected/$healthz:.3f}')"
