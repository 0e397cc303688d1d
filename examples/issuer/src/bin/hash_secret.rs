//! Prints the argon2id hash (PHC string) of a client secret or a user's password read from
//! standard input, for the `secret_hash` of a client in `examples/clients.toml` or the
//! `password_hash` of a user in `examples/users.toml`.
//!
//! ```text
//! read -rs SECRET && printf %s "$SECRET" | cargo run -p bearer-guard-issuer --bin hash_secret
//! ```
//!
//! The secret is one line, at most 1 KiB; one trailing line break is removed, nothing else.
//! It is never printed: only the hash is, on standard output. Prefer piping it in as above
//! (`read -s` keeps it off the screen and out of the shell history) and use a long random
//! secret, e.g. `openssl rand -base64 32`.
//!
//! The hash uses argon2id with the crate's default parameters (m=19456 KiB, t=2, p=1, the
//! OWASP recommendation). Use the same parameters for every client and every user: the
//! issuer answers an unknown client (or username) with a dummy verification using the
//! parameters of one of them, so that it costs what a wrong secret costs.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

const MAX_SECRET: usize = 1024;

fn main() -> ExitCode {
    match run() {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("hash_secret: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("type the secret and press Enter, then Ctrl-D (it is echoed: prefer a pipe)");
    }
    let mut input = Vec::new();
    stdin
        .lock()
        .take(MAX_SECRET as u64 + 3)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    let secret = std::str::from_utf8(&input).map_err(|_| "the secret is not UTF-8")?;
    let secret = secret
        .strip_suffix("\r\n")
        .or_else(|| secret.strip_suffix('\n'))
        .unwrap_or(secret);
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    if secret.len() > MAX_SECRET {
        return Err(format!("the secret is longer than {MAX_SECRET} bytes"));
    }
    if secret.contains(['\n', '\r']) {
        return Err("the secret must be one line".into());
    }
    if secret.len() < 16 {
        eprintln!("hash_secret: warning: a secret shorter than 16 bytes is easy to guess");
    }
    let hash = Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| format!("hashing failed: {e}"))?;
    Ok(hash.to_string())
}
