//! `examples/demo.rs` as a real process: all twelve cases pass, it exits 0, and its output
//! carries no token and no secret.
//!
//! Examples are not `CARGO_BIN_EXE_*` targets, and `cargo test --test demo` does not build
//! them (a plain `cargo test` does). So the test asks cargo for the demo binary first: with
//! the profile and features this test was built with, that is a no-op after `cargo test` and a
//! rebuild after an edit, never a stale binary. The binary itself then runs directly.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Builds `examples/demo.rs` like this test (profile, features) and returns its executable.
fn build_demo() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile dir>/deps/demo-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .expect("the test binary lives in target/<profile>/deps");
    let profile = match profile_dir {
        "debug" => "dev",
        other => other,
    };

    let features: Vec<&str> = [
        ("rust_crypto", cfg!(feature = "rust_crypto")),
        ("aws_lc_rs", cfg!(feature = "aws_lc_rs")),
        ("axum", cfg!(feature = "axum")),
        ("tonic", cfg!(feature = "tonic")),
        ("redis", cfg!(feature = "redis")),
        ("remote", cfg!(feature = "remote")),
        ("client", cfg!(feature = "client")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();

    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", "demo", "--profile", profile])
        .args(["--no-default-features", "--features", &features.join(",")])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit());
    // The variables cargo sets for a test run would change build scripts' fingerprints
    // (e.g. ring's `CARGO_MANIFEST_DIR`) and force rebuilds of dependencies.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cargo.env_remove(name);
        }
    }
    let output = cargo.output().expect("run cargo build");
    assert!(output.status.success(), "cargo build --example demo failed");

    // The `compiler-artifact` message of the example names its executable.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "demo")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no demo executable")
}

#[test]
fn demo_passes_every_case() {
    let binary = build_demo();

    let started = Instant::now();
    let output = Command::new(&binary)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(
        output.status.success(),
        "demo exited with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("12 passed, 0 failed"),
        "no `12 passed, 0 failed` line:\n{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        elapsed < Duration::from_secs(30),
        "the demo took {elapsed:?}"
    );

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
