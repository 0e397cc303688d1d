//! Wycheproof JOSE test vectors (C2SP/wycheproof, Apache-2.0; see `tests/vectors/README.md`).
//!
//! Every JWS case of `json_web_signature_test.json`, `json_web_crypto_test.json` and
//! `json_web_key_test.json` goes through [`KeySet::verify_signature`] (signature-only: the
//! payloads are arbitrary bytes, not JWT claims), with a key set built from the group's key:
//! the public JWK through [`Key::from_jwk_json`], or, for symmetric groups, the `oct` secret
//! through [`Key::hmac`] (the only way this crate takes a symmetric key).
//!
//! Rules: a `valid` case must verify, an `invalid` case must be rejected (a key the loader
//! refuses counts as a rejection), an `acceptable` case may go either way. The only exceptions
//! are [`KNOWN_BAD`] (each pinned to the exact outcome we produce, so the list cannot rot) and
//! the skip rules in [`skip_reason`] (features we do not support, for `valid` cases only).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bearer_guard::{ConfigError, ErrorKind, KeySet, keys::Algorithm, keys::Key};
use serde_json::Value;

const SIGNATURE_FILE: &str = "json_web_signature_test.json";
const CRYPTO_FILE: &str = "json_web_crypto_test.json";
const KEY_FILE: &str = "json_web_key_test.json";

/// What we did with one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `verify_signature` returned the payload.
    Accepted,
    /// `verify_signature` refused the JWS.
    Rejected(ErrorKind),
    /// The group's key (or a key of its set) was refused when loaded.
    KeyRefused,
}

/// A case where we knowingly disagree with the vector file.
struct KnownBad {
    file: &'static str,
    tc: u64,
    /// Our outcome, exactly: the test fails if it changes, in either direction.
    ours: Outcome,
    why: &'static str,
}

/// Cases where the vector file is wrong, or where we deliberately differ. Each entry pins our
/// exact outcome; the test fails if the case then agrees with the file, or fails differently.
const KNOWN_BAD: &[KnownBad] = &[
    // ---- Errors in the vector file ----
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 367,
        ours: Outcome::Accepted,
        why: "vector bug: `invalidBase64Padding` is byte-identical to the valid tc357 \
              (the padding it names is not in the string)",
    },
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 370,
        ours: Outcome::Accepted,
        why: "vector bug: `invalidBase64PaddingInPayload` is byte-identical to the valid tc357",
    },
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 372,
        ours: Outcome::Rejected(ErrorKind::Malformed),
        why: "marked valid although a `?` is inserted into the base64url header; a strict \
              decoder refuses it (RFC 7515 §2 allows no characters outside base64url)",
    },
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 373,
        ours: Outcome::Rejected(ErrorKind::InvalidSignature),
        why: "marked valid although a `?` is inserted into the base64url payload (the MAC is \
              checked over the compact text before the payload is decoded, hence \
              InvalidSignature rather than Malformed)",
    },
    // ---- Deliberate: one key pins one algorithm ----
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 346,
        ours: Outcome::Rejected(ErrorKind::AlgorithmMismatch),
        why: "RFC 7520 Figure 20 is a PS384 signature, but the JWK says `alg: PS256`; the key \
              pins PS256, so the token's PS384 is refused",
    },
    KnownBad {
        file: SIGNATURE_FILE,
        tc: 350,
        ours: Outcome::Rejected(ErrorKind::AlgorithmMismatch),
        why: "as tc346, with `key_ops: [verify]`",
    },
    // ---- Deliberate: no weak-key fingerprinting ----
    KnownBad {
        file: CRYPTO_FILE,
        tc: 46,
        ours: Outcome::Accepted,
        why: "ROCA-vulnerable RSA key (CVE-2017-15361): the signature is genuine and the key is \
              2056 bits; we do not fingerprint ROCA moduli (the key is configured as trusted)",
    },
    KnownBad {
        file: KEY_FILE,
        tc: 7,
        ours: Outcome::Accepted,
        why: "same ROCA key and token as json_web_crypto_test tc46",
    },
    // ---- Deliberate: a key set may mix explicitly configured key types ----
    KnownBad {
        file: CRYPTO_FILE,
        tc: 47,
        ours: Outcome::Accepted,
        why: "flag JsonWebKeyset/MixedKeySet (Ambiguous): a set holding an HMAC and an EC key. \
              The HMAC key is added explicitly through Key::hmac and the token is a genuine \
              HS256 MAC under it; algorithm pinning prevents any confusion. Through the JWKS \
              loader the `oct` member is dropped and the token is refused (checked separately)",
    },
    KnownBad {
        file: KEY_FILE,
        tc: 4,
        ours: Outcome::Accepted,
        why: "flag DuplicateKid (Ambiguous): two HMAC keys configured with the same kid; the \
              token is a genuine MAC under the first one, which lookup picks (first key with \
              that kid and algorithm). Both keys are trusted configuration, so no forgery is \
              possible; KeySet does not refuse duplicate kids",
    },
    KnownBad {
        file: KEY_FILE,
        tc: 1,
        ours: Outcome::Accepted,
        why: "same mixed set and token as json_web_crypto_test tc47",
    },
];

/// Why a `valid` case whose key we refuse may be skipped instead of failing.
fn skip_reason(keys: &[&Value], err: &ConfigError) -> Option<&'static str> {
    if keys.iter().any(|k| k["crv"] == "P-521") {
        return Some("ES512 / P-521 not supported");
    }
    if matches!(err, ConfigError::HmacSecretTooShort { .. }) {
        return Some("HMAC key shorter than the hash output (RFC 7518 §3.2)");
    }
    None
}

fn vectors(file: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "vectors",
        "wycheproof",
        file,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn hmac_alg(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        _ => None,
    }
}

/// Loads one JWK: `oct` through [`Key::hmac`] with the JWK's `alg` and `kid`, anything else
/// through [`Key::from_jwk_json`].
fn load_key(jwk: &Value) -> Result<Key, ConfigError> {
    if jwk["kty"] == "oct" {
        let alg = jwk["alg"].as_str().unwrap_or("");
        let alg = hmac_alg(alg)
            .ok_or_else(|| ConfigError::UnsupportedAlgorithm(format!("{alg} (oct)")))?;
        // Lenient about unused trailing bits: the short-key vectors (tc10-12) encode `k` with
        // non-zero ones. Key material is configuration, not attacker input.
        let lenient = GeneralPurpose::new(
            &alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_encode_padding(false)
                .with_decode_padding_mode(DecodePaddingMode::RequireNone)
                .with_decode_allow_trailing_bits(true),
        );
        let secret = lenient
            .decode(jwk["k"].as_str().unwrap_or(""))
            .expect("vector `k` is base64url");
        let key = Key::hmac(secret, alg)?;
        Ok(match jwk["kid"].as_str() {
            Some(kid) => key.with_kid(kid),
            None => key,
        })
    } else {
        Key::from_jwk_json(&serde_json::to_vec(jwk).expect("serialize JWK"))
    }
}

/// The JWKs of a group: its public key (set) if any, else its private one (HMAC groups).
fn group_keys(group: &Value) -> Vec<&Value> {
    let source = if group["public"].is_object() {
        &group["public"]
    } else {
        &group["private"]
    };
    match source["keys"].as_array() {
        Some(keys) => keys.iter().collect(),
        None => vec![source],
    }
}

fn load_group(keys: &[&Value]) -> Result<KeySet, ConfigError> {
    keys.iter().map(|jwk| load_key(jwk)).collect()
}

/// Counts for one vector file.
#[derive(Default)]
struct Tally {
    total: usize,
    run: usize,
    as_expected: usize,
    rejected_at_load: usize,
    skipped: BTreeMap<&'static str, usize>,
    known_bad: Vec<u64>,
    rejections: BTreeMap<String, usize>,
    jwks_path_checks: usize,
    failures: Vec<String>,
}

impl Tally {
    fn print(&self, file: &str) {
        println!(
            "wycheproof {file}: {} cases: run {}, passed as expected {} ({} of them by refusing \
             the key), known-bad {} {:?}, skipped {}",
            self.total,
            self.run,
            self.as_expected,
            self.rejected_at_load,
            self.known_bad.len(),
            self.known_bad,
            self.skipped.values().sum::<usize>(),
        );
        for (reason, n) in &self.skipped {
            println!("    skipped {n:>3}: {reason}");
        }
        let kinds: Vec<String> = self
            .rejections
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!("    rejections by kind: {}", kinds.join(", "));
        if self.jwks_path_checks > 0 {
            println!(
                "    JWKS-loader path: {} invalid cases re-checked through KeySet::from_jwks_json",
                self.jwks_path_checks
            );
        }
    }
}

fn outcome(keys: &Result<KeySet, ConfigError>, jws: &str) -> (Outcome, Option<Vec<u8>>) {
    match keys {
        Err(_) => (Outcome::KeyRefused, None),
        Ok(keys) => match keys.verify_signature(jws) {
            Ok(payload) => (Outcome::Accepted, Some(payload)),
            Err(e) => (Outcome::Rejected(e.kind()), None),
        },
    }
}

/// Runs every case of one file. JWE cases are skipped, but still fed to a key set made of every
/// key loaded from the file, which must refuse them.
fn run_file(file: &'static str) -> Tally {
    let doc = vectors(file);
    let mut tally = Tally::default();
    let mut all_keys = KeySet::default();
    let mut seen_known_bad = Vec::new();

    for group in doc["testGroups"].as_array().expect("testGroups") {
        let jwks = group_keys(group);
        let keys = load_group(&jwks);
        if let Ok(set) = &keys {
            for key in set.iter() {
                all_keys = all_keys.with(key.clone());
            }
        }
        // For key *sets*, also go through the JWKS loader (which drops `oct` members): it
        // must never accept an invalid case either.
        let is_key_set = group["private"]["keys"]
            .as_array()
            .is_some_and(|k| k.len() > 1);
        let jwks_doc = is_key_set.then(|| {
            let doc = if group["public"]["keys"].is_array() {
                &group["public"]
            } else {
                &group["private"]
            };
            KeySet::from_jwks_json(&serde_json::to_vec(doc).expect("serialize JWKS"))
        });

        for test in group["tests"].as_array().expect("tests") {
            tally.total += 1;
            let tc = test["tcId"].as_u64().expect("tcId");
            let result = test["result"].as_str().expect("result");
            let label = format!("{file} tc{tc} ({})", test["comment"].as_str().unwrap_or(""));

            if let Some(jwe) = test.get("jwe") {
                let jwe = jwe.as_str().map_or_else(|| jwe.to_string(), str::to_owned);
                *tally
                    .skipped
                    .entry("JWE (encryption) is not a JWS: out of scope")
                    .or_default() += 1;
                if let Ok(payload) = all_keys.verify_signature(&jwe) {
                    tally
                        .failures
                        .push(format!("{label}: a JWE verified as a JWS ({payload:?})"));
                }
                continue;
            }
            let jws = match &test["jws"] {
                Value::String(s) => s.clone(),
                // JSON serialization: only the compact form is supported; give it the text.
                other => other.to_string(),
            };

            let (ours, payload) = outcome(&keys, &jws);

            if let Some(Ok(set)) = &jwks_doc
                && result == "invalid"
            {
                tally.jwks_path_checks += 1;
                if set.verify_signature(&jws).is_ok() {
                    tally
                        .failures
                        .push(format!("{label}: accepted through the JWKS loader"));
                }
            }

            if let Some(bad) = KNOWN_BAD.iter().find(|b| b.file == file && b.tc == tc) {
                seen_known_bad.push(tc);
                tally.run += 1;
                if ours == bad.ours {
                    tally.known_bad.push(tc);
                } else {
                    tally.failures.push(format!(
                        "{label}: known-bad entry is stale: listed as {:?} ({}), now {ours:?} \
                         (file says {result}); update KNOWN_BAD",
                        bad.ours, bad.why
                    ));
                }
                continue;
            }

            if let (Outcome::KeyRefused, Err(err)) = (ours, &keys) {
                if result == "valid" {
                    match skip_reason(&jwks, err) {
                        Some(reason) => *tally.skipped.entry(reason).or_default() += 1,
                        None => tally
                            .failures
                            .push(format!("{label}: valid, but the key was refused: {err}")),
                    }
                    continue;
                }
                tally.run += 1;
                tally.as_expected += 1;
                tally.rejected_at_load += 1;
                *tally
                    .rejections
                    .entry(format!("key refused ({})", config_error_name(err)))
                    .or_default() += 1;
                continue;
            }

            tally.run += 1;
            let ok = match (result, ours) {
                ("valid", Outcome::Accepted) => {
                    let expected = jws.split('.').nth(1).and_then(|p| B64.decode(p).ok());
                    if payload != expected {
                        tally
                            .failures
                            .push(format!("{label}: accepted with a different payload"));
                    }
                    true
                }
                ("invalid", Outcome::Rejected(_)) | ("acceptable", _) => true,
                _ => false,
            };
            if let Outcome::Rejected(kind) = ours {
                *tally.rejections.entry(format!("{kind:?}")).or_default() += 1;
            }
            if ok {
                tally.as_expected += 1;
            } else {
                tally
                    .failures
                    .push(format!("{label}: file says {result}, we say {ours:?}"));
            }
        }
    }

    for bad in KNOWN_BAD.iter().filter(|b| b.file == file) {
        if !seen_known_bad.contains(&bad.tc) {
            tally.failures.push(format!(
                "{file}: known-bad tc{} not found in the file",
                bad.tc
            ));
        }
    }
    tally
}

fn config_error_name(err: &ConfigError) -> &'static str {
    match err {
        ConfigError::HmacSecretTooShort { .. } => "HmacSecretTooShort",
        ConfigError::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
        ConfigError::RsaKeyTooSmall { .. } => "RsaKeyTooSmall",
        ConfigError::InvalidKey { .. } => "InvalidKey",
        ConfigError::InvalidJson(_) => "InvalidJson",
        ConfigError::NoUsableKeys => "NoUsableKeys",
        _ => "other",
    }
}

fn check(file: &'static str) {
    let tally = run_file(file);
    tally.print(file);
    assert!(
        tally.failures.is_empty(),
        "{} disagreement(s) in {file}:\n  {}",
        tally.failures.len(),
        tally.failures.join("\n  ")
    );
    assert_eq!(
        tally.total,
        usize::try_from(vectors(file)["numberOfTests"].as_u64().expect("count")).expect("usize"),
        "every case of {file} is accounted for"
    );
}

#[test]
fn json_web_signature_vectors() {
    check(SIGNATURE_FILE);
}

#[test]
fn json_web_crypto_vectors() {
    check(CRYPTO_FILE);
}

#[test]
fn json_web_key_vectors() {
    check(KEY_FILE);
}

/// `json_web_key_test.json` through [`Key::from_jwk_json`] alone: every key of a group whose
/// cases are all `invalid` must fail to load, or else be unusable for those cases (checked by
/// [`json_web_key_vectors`]; listed here so that such keys stay visible).
#[test]
fn json_web_key_loading() {
    let doc = vectors(KEY_FILE);
    let (mut keys, mut loaded) = (0, 0);
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut loaded_but_unusable = Vec::new();
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        let tests = group["tests"].as_array().expect("tests");
        let all_invalid = tests.iter().all(|t| t["result"] == "invalid");
        let tcs: Vec<u64> = tests.iter().filter_map(|t| t["tcId"].as_u64()).collect();
        let comment = group["comment"].as_str().unwrap_or("");
        for jwk in group_keys(group) {
            keys += 1;
            match Key::from_jwk_json(&serde_json::to_vec(jwk).expect("serialize")) {
                Ok(key) => {
                    loaded += 1;
                    // A loaded key must be a public signature key of a supported kind.
                    if jwk["kty"] == "oct" || jwk.get("d").is_some() {
                        failures.push(format!("{comment} {tcs:?}: secret key loaded: {key:?}"));
                    }
                    if all_invalid {
                        loaded_but_unusable.push(format!("{comment} {tcs:?}"));
                    }
                }
                Err(err) => {
                    *refused
                        .entry(format!(
                            "{} ({})",
                            config_error_name(&err),
                            short_reason(&err)
                        ))
                        .or_default() += 1;
                }
            }
        }
    }
    println!(
        "wycheproof {KEY_FILE} keys via Key::from_jwk_json: {keys} keys, {loaded} loaded, {} refused",
        keys - loaded
    );
    for (reason, n) in &refused {
        println!("    refused {n:>2}: {reason}");
    }
    println!(
        "    loaded although all their cases are invalid (must be rejected at verification; \
         see json_web_key_vectors): {loaded_but_unusable:?}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

fn short_reason(err: &ConfigError) -> String {
    match err {
        ConfigError::InvalidKey { reason, .. } => reason.clone(),
        ConfigError::InvalidJson(_) => "not a single JWK".into(),
        other => other.to_string(),
    }
}

/// The key-set groups through the JWKS loader: `oct` members are dropped, so the mixed set
/// that [`KNOWN_BAD`] lists as accepted (explicit HMAC key) is refused on this path.
#[test]
fn jwks_loader_refuses_the_mixed_keyset_token() {
    let doc = vectors(CRYPTO_FILE);
    let group = doc["testGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["comment"] == "jws_mixedSymmetryKeyset")
        .expect("mixed keyset group");
    let set = KeySet::from_jwks_json(&serde_json::to_vec(&group["private"]).expect("json"))
        .expect("the EC member loads");
    assert_eq!(set.len(), 1, "the oct member is dropped");
    let jws = group["tests"][0]["jws"].as_str().expect("jws");
    assert_eq!(
        set.verify_signature(jws).expect_err("refused").kind(),
        ErrorKind::UnknownKey
    );
}
