//! Failed sign-in throttling: the policy, and the wait it imposes on a key.
//!
//! Failures are counted per key (an account, a client address). After
//! [`ThrottlePolicy::free_failures`] failures under one key, each further attempt must wait
//! a delay that doubles with every failure, up to [`ThrottlePolicy::max_delay`]; a key
//! whose last failure is [`ThrottlePolicy::forget_after`] old starts again from zero. An
//! attacker can therefore slow an account down but never lock it out for longer than
//! `max_delay`.
//!
//! The counters themselves live behind the
//! [`SignInAttempts`](crate::ports::SignInAttempts) port, shared by every instance of the
//! service; what is here only computes, so that every implementation of the port throttles
//! alike.
//!
//! ```
//! use chrono::{DateTime, Duration};
//! use guildhall_domain::throttle::ThrottlePolicy;
//!
//! let policy = ThrottlePolicy::default();
//! let last = DateTime::from_timestamp(1_767_603_600, 0).unwrap();
//! assert_eq!(policy.wait(10, last, last), Duration::seconds(1));
//! assert_eq!(policy.wait(12, last, last + Duration::seconds(1)), Duration::seconds(3));
//! assert_eq!(policy.wait(12, last, last + Duration::hours(1)), Duration::zero(), "forgotten");
//! ```
//!
//! **Architecture Invariant:** nothing here reads the clock; `now` is a parameter.

use chrono::{DateTime, Duration, Utc};

/// How failed sign-ins are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before any delay (10).
    pub free_failures: u32,
    /// The first delay (1 s); each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay (15 min).
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (1 h).
    pub forget_after: Duration,
}

impl Default for ThrottlePolicy {
    /// 10 free failures, then 1 s doubling up to 15 min; forgotten after a quiet hour.
    fn default() -> Self {
        Self {
            free_failures: 10,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            forget_after: Duration::hours(1),
        }
    }
}

impl ThrottlePolicy {
    /// The delay owed after `count` failures, counted from the last of them: zero within
    /// the free failures, then `base_delay` doubling with each failure, capped at
    /// `max_delay`.
    #[must_use]
    pub fn delay_after(&self, count: u32) -> Duration {
        if count < self.free_failures {
            return Duration::zero();
        }
        let over = count - self.free_failures;
        let factor = if over >= 30 { i32::MAX } else { 1_i32 << over };
        self.base_delay.checked_mul(factor).map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }

    /// Whether a key whose last failure was at `last` is forgotten at `now`: its failures
    /// no longer count, and a new one starts again from zero.
    #[must_use]
    pub fn is_forgotten(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(last) >= self.forget_after
    }

    /// How long a key with `count` failures, the last at `last`, must still wait at
    /// `now` before an attempt may go ahead; zero when it may go ahead now (within the
    /// free failures, the delay has passed, or the key is forgotten).
    #[must_use]
    pub fn wait(&self, count: u32, last: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
        if self.is_forgotten(last, now) {
            return Duration::zero();
        }
        let elapsed = now.signed_duration_since(last);
        // Only overflows past chrono's range of ±292 million years: wait the longest.
        let wait = self.delay_after(count).checked_sub(&elapsed).unwrap_or(self.max_delay);
        wait.max(Duration::zero())
    }

    /// The count of a key with `count` failures, the last at `last`, after one more
    /// failure at `now`: a forgotten key starts again from zero.
    #[must_use]
    pub fn count_after_failure(&self, count: u32, last: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
        let kept = if self.is_forgotten(last, now) { 0 } else { count };
        kept.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_603_600, 0).unwrap()
    }

    #[test]
    fn ten_failures_are_free_and_the_eleventh_attempt_waits_a_second() {
        let policy = ThrottlePolicy::default();
        for count in 0..10 {
            assert_eq!(policy.wait(count, t0(), t0()), Duration::zero(), "{count} failures");
        }
        assert_eq!(policy.wait(10, t0(), t0()), Duration::seconds(1));
    }

    #[test]
    fn the_delay_doubles_with_each_failure_and_is_capped() {
        let policy = ThrottlePolicy::default();
        let delays: Vec<i64> = (10..22).map(|count| policy.delay_after(count).num_seconds()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::minutes(15), "no overflow, however many failures");
        let huge = ThrottlePolicy { base_delay: Duration::MAX, max_delay: Duration::MAX, ..policy };
        assert_eq!(huge.delay_after(20), Duration::MAX, "an overflowing product is capped");
    }

    #[test]
    fn the_wait_counts_from_the_last_failure() {
        let policy = ThrottlePolicy::default();
        assert_eq!(policy.wait(12, t0(), t0() + Duration::seconds(1)), Duration::seconds(3));
        assert_eq!(policy.wait(12, t0(), t0() + Duration::seconds(4)), Duration::zero());
        assert_eq!(policy.wait(12, t0(), t0() + Duration::seconds(40)), Duration::zero(), "never negative");
        assert_eq!(policy.wait(12, t0(), t0() - Duration::seconds(1)), Duration::seconds(5), "a clock that went back");
    }

    #[test]
    fn a_key_is_forgotten_after_a_quiet_hour_and_counts_again_from_zero() {
        let policy = ThrottlePolicy::default();
        let almost = t0() + Duration::hours(1) - Duration::nanoseconds(1);
        assert_eq!(policy.wait(30, t0(), t0() + Duration::minutes(14)), Duration::minutes(1));
        assert!(!policy.is_forgotten(t0(), almost));
        assert!(policy.is_forgotten(t0(), t0() + Duration::hours(1)));
        assert_eq!(policy.wait(30, t0(), t0() + Duration::hours(1)), Duration::zero());
        let slow = ThrottlePolicy { max_delay: Duration::hours(2), ..policy };
        assert_eq!(slow.wait(30, t0(), almost), Duration::hours(1) + Duration::nanoseconds(1));
        assert_eq!(slow.wait(30, t0(), t0() + Duration::hours(1)), Duration::zero(), "forgotten before the delay ends");
        assert_eq!(policy.count_after_failure(30, t0(), almost), 31);
        assert_eq!(policy.count_after_failure(30, t0(), t0() + Duration::hours(1)), 1);
        assert_eq!(policy.count_after_failure(u32::MAX, t0(), t0()), u32::MAX, "saturates");
    }

    #[test]
    fn the_policy_given_is_the_one_applied() {
        let policy = ThrottlePolicy {
            free_failures: 3,
            base_delay: Duration::seconds(10),
            max_delay: Duration::seconds(30),
            forget_after: Duration::minutes(5),
        };
        assert_eq!(policy.wait(2, t0(), t0()), Duration::zero());
        assert_eq!(policy.wait(3, t0(), t0()), Duration::seconds(10));
        assert_eq!(policy.wait(4, t0(), t0()), Duration::seconds(20));
        assert_eq!(policy.wait(5, t0(), t0()), Duration::seconds(30));
        assert_eq!(policy.wait(5, t0(), t0() + Duration::minutes(5)), Duration::zero());
    }
}
