//! Builds an example for a test that runs it as a real process.
//!
//! Examples are not `CARGO_BIN_EXE_*` targets, and `cargo test --test <name>` does not build
//! them (a plain `cargo test` does). So the test asks cargo for the example binary first: with
//! the profile and features this test was built with, that is a no-op after `cargo test` and
//! a rebuild after an edit, never a stale binary. (The same steps as `tests/demo.rs`, for any
//! example.)
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The cargo profile the calling test was built with (`dev` for `target/debug`).
fn profile() -> String {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile dir>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .expect("the test binary lives in target/<profile>/deps");
    match profile_dir {
        "debug" => "dev",
        other => other,
    }
    .to_owned()
}

/// Builds `examples/<name>.rs` like the calling test (profile, features); returns its path.
pub fn build_example(name: &str) -> PathBuf {
    let features: Vec<&str> = [
        ("rust_crypto", cfg!(feature = "rust_crypto")),
        ("aws_lc_rs", cfg!(feature = "aws_lc_rs")),
        ("axum", cfg!(feature = "axum")),
        ("tonic", cfg!(feature = "tonic")),
        ("redis", cfg!(feature = "redis")),
        ("remote", cfg!(feature = "remote")),
        ("client", cfg!(feature = "client")),
        ("dpop-client", cfg!(feature = "dpop-client")),
        ("mtls", cfg!(feature = "mtls")),
        ("rate-limit", cfg!(feature = "rate-limit")),
        ("metrics", cfg!(feature = "metrics")),
        ("test-util", cfg!(feature = "test-util")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let features = features.join(",");
    cargo_build(
        &[
            "--example",
            name,
            "--no-default-features",
            "--features",
            &features,
        ],
        name,
    )
}

/// Builds the binary `bin` of the workspace's package `package` (the companion issuer's
/// `issuer`, say) with the calling test's profile; returns its path.
pub fn build_bin(package: &str, bin: &str) -> PathBuf {
    cargo_build(&["-p", package, "--bin", bin], bin)
}

/// `cargo build <args> --profile <the test's>`; the path of the executable named `target`.
fn cargo_build(args: &[&str], target: &str) -> PathBuf {
    let profile = profile();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("build")
        .args(args)
        .args(["--profile", &profile])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit());
    // The variables cargo sets for a test run would change build scripts' fingerprints
    // (e.g. ring's `CARGO_MANIFEST_DIR`) and force rebuilds of dependencies.
    for (var, _) in std::env::vars_os() {
        let Some(var) = var.to_str() else { continue };
        if var.starts_with("CARGO_PKG_")
            || var.starts_with("CARGO_BIN_EXE_")
            || matches!(
                var,
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
            cargo.env_remove(var);
        }
    }
    let output = cargo.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build {} failed",
        args.join(" ")
    );

    // The `compiler-artifact` message of the target names its executable.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for {target}"))
}
