# Shared by the measurement scripts. Source it from the repository's root.

# Builds the end-to-end bench server (benches/e2e_server.rs) and prints its executable's path.
e2e_server() {
  cargo bench --bench e2e_server --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e_server" and m.get("executable"):
        print(m["executable"])'
}
