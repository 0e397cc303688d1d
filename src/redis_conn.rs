//! How every Redis store of the crate connects (revocation, DPoP replay, quotas): one
//! reconnecting `ConnectionManager` with bounded connect and response times, one retry, and
//! errors that never echo the URL (it may hold a password).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The manager's settings: `connect` and `response` bound each attempt, one retry, at most
/// 2 s between reconnection attempts.
fn config(connect: Duration, response: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2))
}

/// The client for `url`; the error names the kind of problem, not the URL.
fn client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|e| format!("invalid Redis URL ({:?})", e.kind()))
}

/// Connects now, each step bounded by `timeout`.
pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager, String> {
    client(url)?
        .get_connection_manager_with_config(config(timeout, timeout))
        .await
        .map_err(|e| e.to_string())
}

/// A manager that connects on first use (the request path never waits for more than
/// `connect` to connect, nor `response` for an answer).
#[cfg(feature = "rate-limit")]
pub(crate) fn connect_lazy(
    url: &str,
    connect: Duration,
    response: Duration,
) -> Result<ConnectionManager, String> {
    client(url)?
        .get_connection_manager_lazy(config(connect, response))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let error = client("nonsense://user:hunter2@host").expect_err("invalid");
        assert!(error.starts_with("invalid Redis URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
