//! `examples/demo.rs` as a real process: every case passes, it exits 0, and its output
//! carries no token, no secret and no private key.

#[path = "common/example.rs"]
mod example;

use std::process::{Command, Stdio};

#[test]
fn demo_passes_every_case() {
    let binary = example::build_example("demo");

    let output = Command::new(&binary)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(
        output.status.success(),
        "demo exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("18 passed, 0 failed"),
        "no `18 passed, 0 failed` line:\n{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // It reads on a 100-column terminal.
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}"
        );
    }

    // Tokens (a JWS starts with `{"` = `eyJ`), the demo's secrets and demo-jwt-client's
    // private key never appear.
    let all = format!("{stdout}\n{stderr}");
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/keys/demo-jwt-client.pem"
    ))
    .expect("the demo key");
    let key_lines = key.lines().filter(|l| !l.starts_with("-----"));
    for needle in [
        "eyJ",
        "demo-secret",
        "reader-secret",
        "demo-service-secret",
        "guessed-secret",
        "alice-password",
        "PRIVATE KEY",
    ]
    .into_iter()
    .chain(key_lines)
    {
        assert!(
            !all.contains(needle),
            "the output contains {needle:?}:\n{all}"
        );
    }

    // The two cases of the outgoing layers: an exchanged token, with its actor, at API 2;
    // a token obtained by a signed assertion, at the API.
    for case in [
        "token exchange (RFC 8693)",
        "200 (sub demo-client, act.sub demo-service, scope read)",
        "private_key_jwt client (RFC 7523)",
        "200 (demo-jwt-client)",
    ] {
        assert!(stdout.contains(case), "no {case:?}:\n{stdout}");
    }
}
