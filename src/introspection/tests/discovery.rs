//! Discovery of the endpoint (RFC 8414), its retry after a failure, and the URL rules
//! checked when the introspection is built.

use super::*;

#[tokio::test]
async fn the_endpoint_can_be_discovered() {
    let stub = Stub::new(|path, _| match path {
        "/.well-known/oauth-authorization-server" => Ok((
            200,
            format!(r#"{{"issuer":"{ISS}","introspection_endpoint":"{ISS}/introspect/here"}}"#),
        )),
        "/introspect/here" => Ok((200, active_body())),
        _ => Ok((404, String::new())),
    });
    let introspection = Introspection::discover(ISS, "api", SECRET)
        .http_client(Client(Arc::clone(&stub)))
        .build()
        .expect("valid");
    introspection.ready().await.expect("discovered");
    assert!(format!("{introspection:?}").contains("/introspect/here"));
    let introspection = introspection.bind(rules());
    assert!(matches!(
        introspection.introspect(TOKEN).await,
        Answer::Active(_)
    ));
    // Once: the metadata is not read again.
    assert!(matches!(
        introspection.introspect("another").await,
        Answer::Active(_)
    ));
    assert_eq!(stub.calls(), 3);

    // Metadata without the endpoint, or of another issuer.
    for metadata in [
        format!(r#"{{"issuer":"{ISS}"}}"#),
        r#"{"issuer":"https://evil.example","introspection_endpoint":"https://evil.example/i"}"#
            .into(),
        format!(r#"{{"issuer":"{ISS}","introspection_endpoint":"http://plain.example/i"}}"#),
    ] {
        let stub = Stub::new(move |_, _| Ok((200, metadata.clone())));
        let introspection = Introspection::discover(ISS, "api", SECRET)
            .http_client(Client(Arc::clone(&stub)))
            .build()
            .expect("valid");
        let err = introspection.ready().await.expect_err("not usable");
        assert!(matches!(err, ConfigError::Discovery(_)), "{err:?}");
        let answer = introspection.bind(rules()).introspect(TOKEN).await;
        assert!(
            matches!(answer, Answer::Unavailable(Unavailable::Discovery)),
            "{answer:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_discovery_is_not_tried_again_before_the_retry_time() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let issuer_up = Arc::clone(&up);
    let stub = Stub::new(move |path, _| match path {
        _ if !issuer_up.load(Ordering::SeqCst) => Ok((503, String::new())),
        "/.well-known/oauth-authorization-server" => Ok((
            200,
            format!(r#"{{"issuer":"{ISS}","introspection_endpoint":"{ISS}/i"}}"#),
        )),
        "/i" => Ok((200, active_body())),
        _ => Ok((404, String::new())),
    });
    let introspection = Introspection::discover(ISS, "api", SECRET)
        .http_client(Client(Arc::clone(&stub)))
        .discovery_retry(Duration::from_secs(5))
        .build()
        .expect("valid");
    introspection.ready().await.expect_err("the issuer is down");
    let attempt = stub.calls();
    assert!(attempt >= 1);

    // Within the retry time: every token is answered 503 at once, the issuer is not asked.
    let bound = introspection.bind(rules());
    for token in ["token-a", "token-b", "token-c"] {
        let answer = bound.introspect(token).await;
        assert!(
            matches!(answer, Answer::Unavailable(Unavailable::Discovery)),
            "{answer:?}"
        );
    }
    let err = introspection.ready().await.expect_err("not tried");
    assert!(err.to_string().contains("not tried again"), "{err}");
    assert_eq!(stub.calls(), attempt, "asked again within the retry time");

    // After it, one new attempt, which fails again while the issuer is down...
    tokio::time::advance(Duration::from_secs(6)).await;
    introspection.ready().await.expect_err("still down");
    assert_eq!(stub.calls(), 2 * attempt);
    // ... and finds the endpoint once the issuer is back.
    up.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(
        bound.introspect("token-d").await,
        Answer::Active(_)
    ));
}

#[test]
fn insecure_endpoints_are_refused_at_build_time() {
    let build = |url: &str| Introspection::builder(url, "api", SECRET).build().map(drop);
    assert!(build("https://issuer.example/i").is_ok());
    assert!(build("http://127.0.0.1:9/i").is_ok());
    assert!(matches!(
        build("http://issuer.example/i"),
        Err(ConfigError::InsecureUrl(_))
    ));
    assert!(matches!(
        build("https://u:hunter2@issuer.example/i"),
        Err(ConfigError::CredentialsInUrl(_))
    ));
    assert!(
        Introspection::builder("http://issuer.example/i", "api", SECRET)
            .allow_insecure_http()
            .build()
            .is_ok()
    );
    let builder = Introspection::discover("http://issuer.example", "api", SECRET);
    assert!(!format!("{builder:?}").contains("hunter2"));
    assert!(matches!(builder.build(), Err(ConfigError::InsecureUrl(_))));
    let builder = Introspection::builder("https://u:hunter3@issuer.example/i", "api", SECRET);
    let shown = format!("{builder:?}");
    assert!(shown.contains("https://***@issuer.example/i"), "{shown}");
    assert!(!shown.contains("hunter"), "{shown}");
}
