//! [`Quota`]: how many requests a client may make, as GCRA parameters.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A client's quota: a burst of requests, refilled one at a time at a steady rate (GCRA, the
/// algorithm `governor` implements, and the shared Redis store too).
///
/// `Quota::per_minute(120)` allows a burst of 120 requests, refilled at 120 a minute (one
/// every 500 ms); [`allow_burst`](Self::allow_burst) changes the burst. It also parses from
/// text, for configuration: `"120/minute"`, `"10/second"`, `"1000/hour"` (or `s`, `m`,
/// `h`, `min`).
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use bearer_guard::rate_limit::Quota;
/// let quota: Quota = "120/minute".parse()?;
/// assert_eq!(quota, Quota::per_minute(NonZeroU32::new(120).unwrap()));
/// assert_eq!(quota.burst().get(), 120);
/// assert_eq!(quota.replenish_interval(), Duration::from_millis(500));
/// # Ok::<(), bearer_guard::rate_limit::InvalidQuota>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Quota(governor::Quota);

impl Quota {
    /// `n` requests a second, in a burst of up to `n`.
    #[must_use]
    pub const fn per_second(n: NonZeroU32) -> Self {
        Quota(governor::Quota::per_second(n))
    }

    /// `n` requests a minute, in a burst of up to `n`.
    #[must_use]
    pub const fn per_minute(n: NonZeroU32) -> Self {
        Quota(governor::Quota::per_minute(n))
    }

    /// `n` requests an hour, in a burst of up to `n`.
    #[must_use]
    pub const fn per_hour(n: NonZeroU32) -> Self {
        Quota(governor::Quota::per_hour(n))
    }

    /// One request every `period`, in a burst of one; `None` for a zero period.
    #[must_use]
    pub fn with_period(period: Duration) -> Option<Self> {
        governor::Quota::with_period(period).map(Quota)
    }

    /// The same rate, with bursts of up to `burst` requests.
    #[must_use]
    pub const fn allow_burst(self, burst: NonZeroU32) -> Self {
        Quota(self.0.allow_burst(burst))
    }

    /// The largest burst.
    #[must_use]
    pub fn burst(&self) -> NonZeroU32 {
        self.0.burst_size()
    }

    /// The time it takes to earn back one request.
    #[must_use]
    pub fn replenish_interval(&self) -> Duration {
        self.0.replenish_interval()
    }

    pub(crate) fn governor(self) -> governor::Quota {
        self.0
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("burst", &self.burst())
            .field("replenish_interval", &self.replenish_interval())
            .finish()
    }
}

/// Text that is not a quota: see [`Quota`]'s `FromStr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidQuota(String);

impl fmt::Display for InvalidQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid quota `{}`: expected `<n>/second`, `<n>/minute` or `<n>/hour` with n > 0",
            self.0.escape_debug()
        )
    }
}

impl std::error::Error for InvalidQuota {}

impl FromStr for Quota {
    type Err = InvalidQuota;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidQuota(s.to_owned());
        let (count, per) = s.trim().split_once('/').ok_or_else(invalid)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| invalid())?;
        match per.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Ok(Quota::per_second(count)),
            "m" | "min" | "minute" => Ok(Quota::per_minute(count)),
            "h" | "hour" => Ok(Quota::per_hour(count)),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_per_period() {
        let n = |n| NonZeroU32::new(n).expect("non-zero");
        assert_eq!("10/second".parse(), Ok(Quota::per_second(n(10))));
        assert_eq!(" 120 / minute ".parse(), Ok(Quota::per_minute(n(120))));
        assert_eq!("5/h".parse(), Ok(Quota::per_hour(n(5))));
        for bad in [
            "",
            "10",
            "0/second",
            "-1/second",
            "10/day",
            "ten/second",
            "10/",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }
}
