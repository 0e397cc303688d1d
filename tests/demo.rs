//! `examples/demo.rs` as a real process: every case passes, it exits 0, and its output
//! carries no token and no secret.

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
        stdout.contains("16 passed, 0 failed"),
        "no `16 passed, 0 failed` line:\n{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // It reads on a 100-column terminal.
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}"
        );
    }

    // Tokens (a JWS starts with `{"` = `eyJ`) and the demo's secrets never appear.
    let all = format!("{stdout}\n{stderr}");
    for needle in [
        "eyJ",
        "demo-secret",
        "reader-secret",
        "guessed-secret",
        "alice-password",
    ] {
        assert!(
            !all.contains(needle),
            "the output contains {needle:?}:\n{all}"
        );
    }
}
