#!/usr/bin/env bash
# The layer's cached request, this tree against an earlier commit, in one run: both builds of
# `benches/layer.rs` run alternately, round after round, so that the noise of a shared machine
# falls on both alike; prints each algorithm's median `layer, cached` time for both and their
# ratio, and each build's cache hit minus a bare `service_fn` (the layer's own cost).
#
#   scripts/bench_against.sh            # against HEAD~1
#   scripts/bench_against.sh 920e9b0    # against that commit
#   ROUNDS=7 scripts/bench_against.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD~1}
rounds=${ROUNDS:-5}
tmp=$(mktemp -d)
cleanup() { git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add --detach -q "$tmp/before" "$rev"
# Each tree builds into a target directory of its own: in one directory, the two builds of
# the same package share their artifacts, and cargo, finding the other tree's build newer
# than these sources, would call it fresh and run it for both (the earlier tree's builds are
# kept under target/bench-against, for the next comparison).
target=${CARGO_TARGET_DIR:-$PWD/target}

bench_exe() { # dir target-dir -> path of its `layer` bench executable
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench layer --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "layer" and m.get("executable"):
        print(m["executable"])'
}
before=$(bench_exe "$tmp/before" "$target/bench-against")
after=$(bench_exe "$PWD" "$target")
[ -n "$before" ] && [ -n "$after" ] || { echo "a bench did not build" >&2; exit 1; }
# The executables share a file name pattern; keep copies so that neither build replaces the other.
cp "$before" "$tmp/layer-before"; cp "$after" "$tmp/layer-after"

for i in $(seq 1 "$rounds"); do
  "$tmp/layer-before" --bench | awk -v r="$i" '$1 ~ /^(RS256|ES256|EdDSA)$/ {print "before", r, $1, $5, $8}' >>"$tmp/rows"
  "$tmp/layer-after" --bench | awk -v r="$i" '$1 ~ /^(RS256|ES256|EdDSA)$/ {print "after", r, $1, $5, $8}' >>"$tmp/rows"
done

python3 - "$tmp/rows" "$rev" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rev = sys.argv[2]
algs = []
for r in rows:
    if r[2] not in algs:
        algs.append(r[2])
print(f"layer, cached (us): {rev} against this tree, median of alternating runs")
print(f"{'alg':<8} {'before':>10} {'after':>10} {'after/before':>13}"
      f" {'hit - bare (ns): before':>24} {'after':>6}")
def hit_minus_bare(side, alg):
    """The median `cache hit - bare` column, when that build's bench prints it."""
    values = [float(r[4]) for r in rows if r[0] == side and r[2] == alg and len(r) > 4]
    return f"{statistics.median(values):.0f}" if values else "-"
for alg in algs:
    b = statistics.median(float(r[3]) for r in rows if r[0] == "before" and r[2] == alg)
    a = statistics.median(float(r[3]) for r in rows if r[0] == "after" and r[2] == alg)
    print(f"{alg:<8} {b:10.3f} {a:10.3f} {a / b:12.3f}x"
          f" {hit_minus_bare('before', alg):>24} {hit_minus_bare('after', alg):>6}")
PY
