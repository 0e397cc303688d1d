//! The buckets in process memory: one per named client, one per other caller (created on
//! its first request, swept out once refilled), one shared by anonymous requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil};

use super::key::Caller;
use super::quota::Quota;

/// A bucket of its own, for a named client or the anonymous requests.
struct Bucket {
    quota: Quota,
    limiter: DefaultDirectRateLimiter,
}

impl Bucket {
    fn new(quota: Quota) -> Self {
        Bucket {
            quota,
            limiter: DefaultDirectRateLimiter::direct(quota.governor()),
        }
    }

    fn check(&self) -> Result<(), Duration> {
        waited(self.limiter.check(), self.limiter.clock())
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.quota.fmt(f)
    }
}

/// The wait until the next conforming request, from governor's answer.
fn waited(
    outcome: Result<(), NotUntil<<DefaultClock as Clock>::Instant>>,
    clock: &DefaultClock,
) -> Result<(), Duration> {
    outcome.map_err(|not_until| not_until.wait_time_from(clock.now()))
}

/// A bucket per issuer, for a client id named for every issuer.
struct PerIssuer {
    quota: Quota,
    limiter: DefaultKeyedRateLimiter<Caller<'static>>,
}

impl fmt::Debug for PerIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.quota.fmt(f)
    }
}

/// The quotas named for one client id.
#[derive(Debug, Default)]
struct Named {
    /// The quota of this client id of every issuer, a bucket per issuer.
    any_issuer: Option<PerIssuer>,
    /// The quotas of this client id of one issuer each (these win over `any_issuer`).
    of_issuer: HashMap<String, Bucket>,
}

/// The bucket a named client draws from.
enum NamedBucket<'a> {
    Own(&'a Bucket),
    PerIssuer(&'a PerIssuer),
}

/// Which issuers a named client quota applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Issuers {
    /// The client id of every trusted issuer (each issuer's client has its own bucket).
    Any,
    /// The client id of this issuer only.
    One(String),
}

/// Every bucket of a rate limit.
pub(crate) struct Buckets {
    default_quota: Quota,
    /// Callers without a named quota, one bucket each.
    default: DefaultKeyedRateLimiter<Caller<'static>>,
    /// Client ids with a named quota; fixed after building, so lookups take no lock.
    clients: HashMap<String, Named>,
    /// `None`: anonymous requests are not limited.
    anonymous: Option<Bucket>,
    calls: AtomicU64,
    retain_every: u64,
}

impl Buckets {
    pub(crate) fn new(
        default: Quota,
        named: HashMap<(Issuers, String), Quota>,
        anonymous: Option<Quota>,
        retain_every: u64,
    ) -> Self {
        let mut clients: HashMap<String, Named> = HashMap::new();
        for ((issuers, id), quota) in named {
            let named = clients.entry(id).or_default();
            match issuers {
                Issuers::Any => {
                    named.any_issuer = Some(PerIssuer {
                        quota,
                        limiter: DefaultKeyedRateLimiter::keyed(quota.governor()),
                    });
                }
                Issuers::One(issuer) => {
                    named.of_issuer.insert(issuer, Bucket::new(quota));
                }
            }
        }
        Buckets {
            default_quota: default,
            default: DefaultKeyedRateLimiter::keyed(default.governor()),
            clients,
            anonymous: anonymous.map(Bucket::new),
            calls: AtomicU64::new(0),
            retain_every,
        }
    }

    /// Takes one request from `caller`'s bucket (the anonymous bucket for `None`);
    /// `Err(wait)` when it is over quota.
    pub(crate) fn check(&self, caller: Option<&Caller<'_>>) -> Result<(), Duration> {
        let Some(caller) = caller else {
            return self.anonymous.as_ref().map_or(Ok(()), Bucket::check);
        };
        match self.named(caller) {
            Some(NamedBucket::Own(bucket)) => return bucket.check(),
            Some(NamedBucket::PerIssuer(per_issuer)) => {
                let caller = caller.clone().into_owned();
                let limiter = &per_issuer.limiter;
                return waited(limiter.check_key(&caller), limiter.clock());
            }
            None => {}
        }
        self.sweep();
        let caller = caller.clone().into_owned();
        waited(self.default.check_key(&caller), self.default.clock())
    }

    /// The quota of `caller` (its named one, or the default; the anonymous one for `None`),
    /// or `None` when anonymous requests are not limited.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn quota_for(&self, caller: Option<&Caller<'_>>) -> Option<Quota> {
        match caller {
            None => self.anonymous.as_ref().map(|b| b.quota),
            Some(caller) => Some(match self.named(caller) {
                Some(NamedBucket::Own(bucket)) => bucket.quota,
                Some(NamedBucket::PerIssuer(per_issuer)) => per_issuer.quota,
                None => self.default_quota,
            }),
        }
    }

    /// The named quota of a client caller: its issuer's own, else the one for every issuer.
    fn named(&self, caller: &Caller<'_>) -> Option<NamedBucket<'_>> {
        let Caller::Client { issuer, id } = caller else {
            return None;
        };
        let named = self.clients.get(id.as_ref())?;
        match named.of_issuer.get(issuer.as_ref()) {
            Some(bucket) => Some(NamedBucket::Own(bucket)),
            None => named.any_issuer.as_ref().map(NamedBucket::PerIssuer),
        }
    }

    /// Once every `retain_every` calls, drops the keyed buckets that have fully refilled.
    fn sweep(&self) {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if calls.is_multiple_of(self.retain_every) {
            self.default.retain_recent();
            self.default.shrink_to_fit();
        }
    }

    /// The number of buckets held for callers without a named quota.
    pub(crate) fn tracked(&self) -> usize {
        self.default.len()
    }
}

impl fmt::Debug for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buckets")
            .field("default", &self.default_quota)
            .field("clients", &self.clients)
            .field("anonymous", &self.anonymous)
            .field("retain_recent_every", &self.retain_every)
            .finish()
    }
}
