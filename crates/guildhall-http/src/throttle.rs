//! Failed sign-in throttling, per account and per client address.
//!
//! After `free_failures` failures under one key, each further attempt must wait a delay
//! that doubles with every failure, up to `max_delay`; a key is forgotten `forget_after`
//! its last failure, and a successful sign-in clears the account's key. An attacker can
//! therefore slow an account down but never lock it out for longer than `max_delay`.
//!
//! Counters live in this process: behind several instances each keeps its own, so the
//! effective limit is multiplied by the instance count (recorded as a known limitation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use guildhall_domain::ports::Clock;

/// Throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Off: never refuse (for benchmarks that measure the hash rate).
    pub enabled: bool,
    /// Failures allowed before any delay (10).
    pub free_failures: u32,
    /// The first delay (1 s); each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay (15 min).
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (1 h).
    pub forget_after: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            free_failures: 10,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            forget_after: Duration::hours(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

/// Keys kept at most; past this, forgotten keys are swept, then the oldest dropped.
const MAX_KEYS: usize = 100_000;

/// Counts failed sign-ins.
#[allow(missing_debug_implementations)] // holds the clock
pub struct SignInThrottle {
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl SignInThrottle {
    /// A throttle reading time from `clock`.
    #[must_use]
    pub fn new(settings: ThrottleSettings, clock: Arc<dyn Clock>) -> Self {
        Self { settings, clock, failures: Mutex::new(HashMap::new()) }
    }

    fn delay_after(&self, count: u32) -> Duration {
        if count < self.settings.free_failures {
            return Duration::zero();
        }
        let over = count - self.settings.free_failures;
        let factor = if over >= 30 { i32::MAX } else { 1_i32 << over };
        self.settings.base_delay.checked_mul(factor).map_or(self.settings.max_delay, |d| d.min(self.settings.max_delay))
    }

    /// Whether an attempt under `keys` may go ahead now; if so, the attempt is counted
    /// as a failure at once, before the password is checked, so that a burst of
    /// concurrent guesses cannot all pass before the first one is counted. A success
    /// then clears the account ([`Self::succeeded`]); an attempt that ends before a
    /// password was judged is given back ([`Self::refund`]).
    ///
    /// # Errors
    /// The number of whole seconds (at least 1) until the longest-waiting key allows an
    /// attempt.
    pub fn attempt(&self, keys: &[&str]) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let mut failures = self.failures.lock().map_err(|_| 1_u64)?;
        let wait = keys
            .iter()
            .filter_map(|key| failures.get(*key))
            .filter(|f| now - f.last < self.settings.forget_after)
            .map(|f| f.last + self.delay_after(f.count) - now)
            .max()
            .unwrap_or_else(Duration::zero);
        if wait > Duration::zero() {
            let millis = u64::try_from(wait.num_milliseconds()).unwrap_or(u64::MAX);
            return Err(millis.div_ceil(1000).max(1));
        }
        self.record(&mut failures, keys, now);
        Ok(())
    }

    fn record(&self, failures: &mut HashMap<String, Failures>, keys: &[&str], now: DateTime<Utc>) {
        if failures.len() >= MAX_KEYS {
            let forget_after = self.settings.forget_after;
            failures.retain(|_, f| now - f.last < forget_after);
            if failures.len() >= MAX_KEYS {
                // Flooded with distinct keys: keep the most recent half.
                let mut lasts: Vec<DateTime<Utc>> = failures.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                failures.retain(|_, f| f.last >= cut);
            }
        }
        for key in keys {
            let entry = failures.entry((*key).to_owned()).or_insert(Failures { count: 0, last: now });
            if now - entry.last >= self.settings.forget_after {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    /// Gives back an attempt counted by [`Self::attempt`] that turned out not to be a
    /// wrong guess (the password was right, or the check could not be made).
    pub fn refund(&self, keys: &[&str]) {
        if let Ok(mut failures) = self.failures.lock() {
            for key in keys {
                if let Some(entry) = failures.get_mut(*key) {
                    entry.count = entry.count.saturating_sub(1);
                    if entry.count == 0 {
                        failures.remove(*key);
                    }
                }
            }
        }
    }

    /// Clears `key` (a successful sign-in clears its account's count).
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use guildhall_domain::testing::ManualClock;

    fn throttle() -> (SignInThrottle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (SignInThrottle::new(ThrottleSettings::default(), clock.clone()), clock)
    }

    #[test]
    fn ten_attempts_are_free_and_the_eleventh_waits_a_second() {
        let (throttle, _) = throttle();
        for _ in 0..10 {
            assert_eq!(throttle.attempt(&["a"]), Ok(()));
        }
        assert_eq!(throttle.attempt(&["a"]), Err(1));
        assert_eq!(throttle.attempt(&["b"]), Ok(()), "other keys are not affected");
    }

    #[test]
    fn the_delay_doubles_and_is_capped() {
        let (throttle, clock) = throttle();
        for round in 0..40 {
            if let Err(wait) = throttle.attempt(&["a"]) {
                assert!(wait <= 15 * 60, "never longer than max_delay (round {round})");
                clock.advance(Duration::seconds(i64::try_from(wait).unwrap()));
                throttle.attempt(&["a"]).unwrap();
            }
        }
        assert_eq!(throttle.attempt(&["a"]), Err(15 * 60), "capped at max_delay");
        clock.advance(Duration::minutes(15));
        assert_eq!(throttle.attempt(&["a"]), Ok(()), "no permanent lockout");
    }

    #[test]
    fn success_clears_refunds_give_back_and_old_failures_are_forgotten() {
        let (throttle, clock) = throttle();
        for _ in 0..12 {
            let _ = throttle.attempt(&["a", "ip"]);
        }
        throttle.succeeded("a");
        assert!(throttle.attempt(&["a", "ip"]).is_err(), "the address still waits");
        clock.advance(Duration::hours(1));
        assert_eq!(throttle.attempt(&["ip"]), Ok(()), "forgotten after a quiet hour");
        for _ in 0..10 {
            throttle.attempt(&["c"]).unwrap();
        }
        throttle.refund(&["c"]);
        throttle.attempt(&["c"]).unwrap();
        assert!(throttle.attempt(&["c"]).is_err(), "the refund gave back exactly one attempt");
    }
}
