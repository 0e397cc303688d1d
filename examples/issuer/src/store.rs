//! Where authorization codes, refresh-token families, opaque access tokens and registered
//! clients live: in this process's memory, or in Redis (`REDIS_URL`) so that replicas share
//! them. Every entry has a TTL. Keys carry a SHA-256 of the token, never the token: a Redis
//! dump leaks nothing usable.
//!
//! The store offers a few primitives; the single-use rules are built on `put_new` (Redis
//! `SET NX`), which exactly one of two concurrent callers wins. Every Redis command names one
//! key (the list's `RPUSH` + `EXPIRE` transaction too), so the same store runs on a single
//! node, a Redis Cluster or behind Sentinel (`bearer_guard::redis_conn::RedisConnection`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::redis_conn::RedisConnection;
use redis::AsyncCommands as _;
use sha2::{Digest as _, Sha256};

/// Most entries of the memory store; past that, writes fail (503) until entries expire.
const MAX_MEMORY_ENTRIES: usize = 100_000;

/// The store failed; carries a reason, never a key's token.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store unavailable: {}", self.0)
    }
}

/// A key-value store with TTLs.
#[derive(Clone)]
pub enum Store {
    /// This process only.
    Memory(Arc<Mutex<HashMap<String, Entry>>>),
    /// A Redis (single node, Cluster or Sentinel) every replica points at.
    Redis(RedisConnection),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Memory(_) => "Store::Memory",
            Store::Redis(_) => "Store::Redis",
        })
    }
}

#[derive(Debug)]
pub struct Entry {
    value: Value,
    expires: Instant,
}

#[derive(Debug)]
enum Value {
    One(String),
    List(Vec<String>),
}

/// SHA-256 of a token, base64url: what keys carry instead of the token.
pub fn digest(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError(format!("Redis: {:?}", e.kind()))
}

impl Store {
    /// An empty in-memory store.
    pub fn memory() -> Store {
        Store::Memory(Arc::new(Mutex::new(HashMap::new())))
    }

    /// Connects to Redis (commands time out after 500 ms): `url` is a `REDIS_URL` value, one
    /// URL, a Cluster's comma-separated seeds or `redis+sentinel://...`. The error never
    /// quotes the URL, which may hold a password.
    pub async fn redis(url: &str) -> Result<Store, StoreError> {
        let conn = RedisConnection::builder(url)
            .timeout(Duration::from_millis(500))
            .connect()
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(Store::Redis(conn))
    }

    /// A Redis store on an existing connection (shared with the other Redis stores).
    pub fn redis_with(conn: RedisConnection) -> Store {
        Store::Redis(conn)
    }

    /// Sets `key` to `value` for `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(map) => {
                insert(map, key, Value::One(value.to_owned()), ttl, true).map(|_| ())
            }
            Store::Redis(conn) => conn
                .clone()
                .set_ex::<_, _, ()>(key, value, ttl_secs(ttl))
                .await
                .map_err(|e| redis_error(&e)),
        }
    }

    /// Sets `key` only if it is absent: `true` for the one caller that did.
    pub async fn put_new(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(map) => insert(map, key, Value::One(value.to_owned()), ttl, false),
            Store::Redis(conn) => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs(ttl))
                    .query_async(&mut conn.clone())
                    .await
                    .map_err(|e| redis_error(&e))?;
                Ok(set.is_some())
            }
        }
    }

    /// The value of `key`, if set and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(map) => {
                let map = lock(map);
                Ok(match map.get(key) {
                    Some(Entry {
                        value: Value::One(v),
                        expires,
                    }) if *expires > Instant::now() => Some(v.clone()),
                    _ => None,
                })
            }
            Store::Redis(conn) => conn.clone().get(key).await.map_err(|e| redis_error(&e)),
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(map) => {
                lock(map).remove(key);
                Ok(())
            }
            Store::Redis(conn) => conn
                .clone()
                .del::<_, ()>(key)
                .await
                .map_err(|e| redis_error(&e)),
        }
    }

    /// Appends `item` to the list at `key`, which then lives `ttl` from now.
    pub async fn push(&self, key: &str, item: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(map) => {
                let mut guard = lock(map);
                let now = Instant::now();
                if let Some(entry) = guard.get_mut(key).filter(|e| e.expires > now)
                    && let Value::List(items) = &mut entry.value
                {
                    items.push(item.to_owned());
                    entry.expires = now + ttl;
                    return Ok(());
                }
                drop(guard);
                insert(map, key, Value::List(vec![item.to_owned()]), ttl, true).map(|_| ())
            }
            Store::Redis(conn) => redis::pipe()
                .atomic()
                .rpush(key, item)
                .ignore()
                .expire(key, i64::try_from(ttl_secs(ttl)).unwrap_or(i64::MAX))
                .ignore()
                .query_async::<()>(&mut conn.clone())
                .await
                .map_err(|e| redis_error(&e)),
        }
    }

    /// The items of the list at `key`.
    pub async fn list(&self, key: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(map) => Ok(match lock(map).get(key) {
                Some(Entry {
                    value: Value::List(items),
                    expires,
                }) if *expires > Instant::now() => items.clone(),
                _ => Vec::new(),
            }),
            Store::Redis(conn) => conn
                .clone()
                .lrange(key, 0, -1)
                .await
                .map_err(|e| redis_error(&e)),
        }
    }
}

fn lock(map: &Mutex<HashMap<String, Entry>>) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Inserts unless (`overwrite` false) a live entry exists; sweeps expired entries when full.
fn insert(
    map: &Mutex<HashMap<String, Entry>>,
    key: &str,
    value: Value,
    ttl: Duration,
    overwrite: bool,
) -> Result<bool, StoreError> {
    let now = Instant::now();
    let mut map = lock(map);
    if !overwrite && map.get(key).is_some_and(|e| e.expires > now) {
        return Ok(false);
    }
    if map.len() >= MAX_MEMORY_ENTRIES && !map.contains_key(key) {
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_MEMORY_ENTRIES {
            return Err(StoreError("the memory store is full".into()));
        }
    }
    map.insert(
        key.to_owned(),
        Entry {
            value,
            expires: now + ttl,
        },
    );
    Ok(true)
}

/// Redis TTLs are whole seconds: round up, at least one.
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0).max(u64::from(ttl.is_zero()))
}
