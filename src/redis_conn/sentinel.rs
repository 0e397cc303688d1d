//! A Sentinel-managed primary: asked of the Sentinels, and asked again in the background when
//! it stops answering as a primary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;

/// The primary named by Sentinels, asked again when it stops answering as a primary.
pub(super) struct SentinelConn {
    pub(super) sentinel: tokio::sync::Mutex<SentinelClient>,
    pub(super) current: RwLock<Option<ConnectionManager>>,
    pub(super) config: ConnectionManagerConfig,
    pub(super) timeout: Duration,
    pub(super) refreshing: AtomicBool,
}

impl SentinelConn {
    pub(super) fn current(&self) -> Option<ConnectionManager> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The primary's connection; asks the Sentinels first when there is none yet.
    pub(super) async fn manager(&self) -> RedisResult<ConnectionManager> {
        match self.current() {
            Some(conn) => Ok(conn),
            None => self.resolve().await,
        }
    }

    /// Asks the Sentinels for the primary, and connects to it (lazily).
    pub(super) async fn resolve(&self) -> RedisResult<ConnectionManager> {
        let ask = async { self.sentinel.lock().await.async_get_client().await };
        let client = tokio::time::timeout(self.timeout.saturating_mul(2), ask)
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no Sentinel answered",
                ))
            })??;
        let conn = client.get_connection_manager_lazy(self.config.clone())?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn.clone());
        Ok(conn)
    }

    /// After a failed command: asks the Sentinels again, in the background, when the error
    /// says the primary may have moved (one refresh at a time).
    pub(super) fn check(self: &Arc<Self>, error: Option<&redis::RedisError>) {
        let Some(e) = error else { return };
        let moved = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if !moved || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _ = this.resolve().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }
}
