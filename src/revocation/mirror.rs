//! The copy of every revocation that a mirrored
//! [`RedisRevocations`](super::RedisRevocations) keeps in process, so that lookups need no
//! round trip (see [`RedisRevocations::mirror`](super::RedisRevocations::mirror)).
//!
//! Besides its own key, every revocation is appended to a log: three keys under one hash tag
//! (one Cluster slot), written by one script: a counter, the entries by sequence number, the
//! entries by expiry (to forget expired ones). An entry is
//! `<nonce> <keep until> <issuer length> <issuer><jti>`, the nonce random. A mirror reads the
//! entries after the last one it read, that one included: when that one is gone or another
//! stands at its number (a failover lost writes, and the counter went back), it reads the
//! whole log again. A promoted replica holds a prefix of the primary's writes, so checking
//! the last entry read is enough.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use super::unix_now;
use crate::redis_conn::RedisConnection;

/// Appends one revocation to the log, drops the expired entries, and keeps the three keys
/// until the last entry expires.
///
/// KEYS: the counter, the entries by sequence number, the entries by expiry.
/// ARGV: the entry, and when it may be forgotten (Unix seconds).
const APPEND: &str = r"
if redis.replicate_commands then
  redis.replicate_commands()
end
local now = tonumber(redis.call('TIME')[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #gone do
  redis.call('ZREM', KEYS[2], gone[i])
end
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - now
if redis.call('TTL', KEYS[1]) < ttl then
  for i = 1, 3 do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return seq
";

/// The log's keys, under one hash tag.
#[derive(Clone, Debug)]
pub(super) struct LogKeys {
    counter: String,
    by_seq: String,
    by_expiry: String,
}

impl LogKeys {
    pub(super) fn new(prefix: &str) -> Self {
        // `{<prefix>log}`: the tag is the same in the three keys whatever the prefix holds.
        let tag = format!("{{{prefix}log}}");
        LogKeys {
            counter: format!("{tag}:n"),
            by_seq: format!("{tag}:seq"),
            by_expiry: format!("{tag}:exp"),
        }
    }

    /// The command that appends `issuer`'s `jti`, kept until `keep_until` (Unix seconds).
    pub(super) fn append(&self, issuer: &str, jti: &str, keep_until: i64) -> redis::Cmd {
        let nonce = RandomState::new().build_hasher().finish();
        let entry = format!("{nonce:016x} {keep_until} {} {issuer}{jti}", issuer.len());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(APPEND)
            .arg(3)
            .arg(&self.counter)
            .arg(&self.by_seq)
            .arg(&self.by_expiry)
            .arg(entry)
            .arg(keep_until);
        cmd
    }
}

/// One entry of the log: `(issuer, jti, keep until)`.
fn parse(entry: &str) -> Option<(&str, &str, i64)> {
    let (_nonce, rest) = entry.split_once(' ')?;
    let (keep, rest) = rest.split_once(' ')?;
    let (len, rest) = rest.split_once(' ')?;
    let len: usize = len.parse().ok()?;
    let (issuer, jti) = (rest.get(..len)?, rest.get(len..)?);
    Some((issuer, jti, keep.parse().ok()?))
}

/// The revocations held, and where reading stopped.
struct Held {
    /// The last entry read: its number and its text.
    last: Option<(u64, String)>,
    /// Revoked tokens by `jti`: their issuers, and until when each entry matters.
    by_jti: HashMap<Box<str>, Vec<(Box<str>, i64)>>,
    /// The earliest of those times: when to sweep.
    next_expiry: i64,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            last: None,
            by_jti: HashMap::new(),
            next_expiry: i64::MAX,
        }
    }
}

impl Held {
    fn add(&mut self, entries: &[(String, f64)], now: i64) {
        for (entry, seq) in entries {
            if let Some((issuer, jti, keep)) = parse(entry)
                && keep > now
            {
                let issuers = self.by_jti.entry(jti.into()).or_default();
                match issuers.iter_mut().find(|(i, _)| &**i == issuer) {
                    Some((_, held)) => *held = (*held).max(keep),
                    None => issuers.push((issuer.into(), keep)),
                }
                self.next_expiry = self.next_expiry.min(keep);
            }
            // Scores are whole numbers below 2^53: exact in a double.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let seq = *seq as u64;
            self.last = Some((seq, entry.clone()));
        }
    }

    fn sweep(&mut self, now: i64) {
        if self.by_jti.is_empty() || now < self.next_expiry {
            return;
        }
        let mut next = i64::MAX;
        self.by_jti.retain(|_, issuers| {
            issuers.retain(|(_, keep)| *keep > now);
            for (_, keep) in issuers.iter() {
                next = next.min(*keep);
            }
            !issuers.is_empty()
        });
        self.next_expiry = next;
    }
}

/// The copy of the log in this process.
pub(super) struct Mirror {
    max_staleness: Duration,
    keys: LogKeys,
    prefix: String,
    epoch: Instant,
    /// When the last read that succeeded was sent, in µs since `epoch`, plus one (0: none
    /// yet). The copy holds every revocation written before then.
    fresh_at: AtomicU64,
    /// How many `jti`s are held: while none is, a lookup takes no lock.
    held_count: AtomicUsize,
    held: RwLock<Held>,
    started: AtomicBool,
}

impl Mirror {
    /// A copy of the log of the store with this key prefix.
    pub(super) fn new(prefix: &str, max_staleness: Duration) -> Self {
        Mirror {
            max_staleness,
            keys: LogKeys::new(prefix),
            prefix: prefix.to_owned(),
            epoch: Instant::now(),
            fresh_at: AtomicU64::new(0),
            held_count: AtomicUsize::new(0),
            held: RwLock::new(Held::default()),
            started: AtomicBool::new(false),
        }
    }

    pub(super) fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    /// How often the log is read: a quarter of the staleness allowed, at least every 10 ms.
    fn every(&self) -> Duration {
        (self.max_staleness / 4).max(Duration::from_millis(10))
    }

    fn us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the copy was read from Redis within the staleness allowed.
    fn is_fresh(&self) -> bool {
        let at = self.fresh_at.load(Ordering::Acquire);
        at != 0
            && (self.us(Instant::now()) + 1).saturating_sub(at)
                <= u64::try_from(self.max_staleness.as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the copy is fresh and holds no revoked token with this `jti`, of any issuer.
    pub(super) fn clear(&self, jti: &str) -> bool {
        if !self.is_fresh() {
            return false;
        }
        if self.held_count.load(Ordering::Acquire) == 0 {
            return true;
        }
        !self
            .held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_jti
            .contains_key(jti)
    }

    /// Whether `issuer`'s `jti` is revoked, when the copy is fresh.
    pub(super) fn answer(&self, issuer: &str, jti: &str) -> Option<bool> {
        if !self.is_fresh() {
            return None;
        }
        if self.held_count.load(Ordering::Acquire) == 0 {
            return Some(false);
        }
        let now = unix_now();
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        Some(held.by_jti.get(jti).is_some_and(|issuers| {
            issuers
                .iter()
                .any(|(i, keep)| &**i == issuer && *keep > now)
        }))
    }

    /// Starts reading the log in the background, once, if a Tokio runtime is at hand;
    /// `outage` records (and logs) the reads that fail. The task ends with the last clone of
    /// the store.
    pub(super) fn start(self: &Arc<Self>, conn: &RedisConnection, outage: &Arc<super::Outage>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = Poller {
            mirror: Arc::downgrade(self),
            conn: conn.clone(),
            keys: self.keys.clone(),
            outage: Arc::clone(outage),
            prefix: self.prefix.clone(),
            every: self.every(),
            timeout: self.max_staleness,
        };
        runtime.spawn(task.run());
    }

    /// Reads what was appended since the last read (or everything, the first time and
    /// after a failover lost writes) and updates the copy.
    async fn sync(&self, conn: &mut RedisConnection, keys: &LogKeys) -> redis::RedisResult<()> {
        let last = self
            .held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last
            .clone();
        let read = |from: Option<u64>| {
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(&keys.by_seq);
            match from {
                Some(seq) => cmd.arg(seq),
                None => cmd.arg("-inf"),
            };
            cmd.arg("+inf").arg("WITHSCORES");
            cmd
        };
        let now = unix_now();
        if let Some((seq, entry)) = &last {
            let entries: Vec<(String, f64)> = read(Some(*seq)).query_async(conn).await?;
            let same = entries
                .first()
                .is_some_and(|(first, score)| first == entry && same_seq(*score, *seq));
            if same {
                let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
                held.add(&entries[1..], now);
                held.sweep(now);
                self.held_count.store(held.by_jti.len(), Ordering::Release);
                return Ok(());
            }
            // The last entry read is gone (expired, or lost in a failover): read it all.
        }
        let entries: Vec<(String, f64)> = read(None).query_async(conn).await?;
        let mut held = Held::default();
        held.add(&entries, now);
        held.sweep(now);
        let count = held.by_jti.len();
        *self.held.write().unwrap_or_else(PoisonError::into_inner) = held;
        self.held_count.store(count, Ordering::Release);
        Ok(())
    }

    /// A read sent at `sent` succeeded.
    fn synced(&self, sent: Instant) {
        self.fresh_at.fetch_max(self.us(sent) + 1, Ordering::AcqRel);
    }
}

#[allow(clippy::cast_precision_loss)]
fn same_seq(score: f64, seq: u64) -> bool {
    // Sequence numbers stay far below 2^53: exact in a double.
    (score - seq as f64).abs() < 0.5
}

/// The background reads of a [`Mirror`].
struct Poller {
    mirror: Weak<Mirror>,
    conn: RedisConnection,
    keys: LogKeys,
    outage: Arc<super::Outage>,
    prefix: String,
    every: Duration,
    timeout: Duration,
}

impl Poller {
    async fn run(mut self) {
        loop {
            let Some(mirror) = self.mirror.upgrade() else {
                return;
            };
            let sent = Instant::now();
            let read = tokio::time::timeout(self.timeout, mirror.sync(&mut self.conn, &self.keys));
            match read.await {
                Ok(Ok(())) => {
                    mirror.synced(sent);
                    super::store_answered(&self.outage, &self.prefix);
                }
                Ok(Err(e)) => super::store_failed(&self.outage, &self.prefix, &e.to_string()),
                Err(_) => super::store_failed(
                    &self.outage,
                    &self.prefix,
                    &format!("no answer within {:?}", self.timeout),
                ),
            }
            drop(mirror);
            tokio::time::sleep_until((sent + self.every).into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, &str, i64, u64)]) -> Vec<(String, f64)> {
        list.iter()
            .map(|(issuer, jti, keep, seq)| {
                #[allow(clippy::cast_precision_loss)]
                let seq = *seq as f64;
                (format!("00ff {keep} {} {issuer}{jti}", issuer.len()), seq)
            })
            .collect()
    }

    #[test]
    fn entries_name_the_issuer_by_length_so_any_jti_parses() {
        assert_eq!(
            parse("0123 1700000000 19 https://issuer.testa b#c"),
            Some(("https://issuer.test", "a b#c", 1_700_000_000))
        );
        assert_eq!(parse("0123 5 3 abcjti"), Some(("abc", "jti", 5)));
        assert_eq!(parse("0123 5 30 abc"), None, "length past the end");
        assert_eq!(parse("0123 x 3 abcjti"), None);
        let keys = LogKeys::new("p:");
        for key in [&keys.counter, &keys.by_seq, &keys.by_expiry] {
            assert!(key.starts_with("{p:log}:"), "{key}");
        }
    }

    #[test]
    fn held_revocations_are_found_by_jti_and_forgotten_once_expired() {
        let mut held = Held::default();
        held.add(
            &entries(&[
                ("https://a.test", "j1", 100, 1),
                ("https://b.test", "j1", 50, 2),
                ("https://a.test", "j2", 10, 3),
                ("https://a.test", "old", 5, 4),
            ]),
            5,
        );
        assert_eq!(held.by_jti.len(), 2, "the expired entry is not kept");
        assert_eq!(held.last.as_ref().map(|l| l.0), Some(4));
        assert_eq!(held.next_expiry, 10);
        held.sweep(10);
        assert!(!held.by_jti.contains_key("j2"));
        assert_eq!(held.next_expiry, 50);
        held.sweep(60);
        assert_eq!(held.by_jti["j1"].len(), 1);
        held.sweep(100);
        assert!(held.by_jti.is_empty());
    }
}
