//! Failed sign-in throttling, per account and per client address.
//!
//! After `free_failures` failures under one key, each further attempt must wait a delay
//! that doubles with every failure, up to `max_delay`; a key is forgotten `forget_after`
//! its last failure, and a successful sign-in clears the account's key. An attacker can
//! therefore slow an account down but never lock it out for longer than `max_delay`
//! ([`ThrottlePolicy`] computes the waits).
//!
//! [`SignInThrottle`] keeps the counters behind the
//! [`SignInAttempts`] port. [`ApiState::new`](crate::ApiState::new) starts with
//! [`InProcessAttempts`], counters in this process's memory, which suits a single
//! process with no database; behind several instances each would keep its own and the
//! limit would multiply by the instance count. An application with a database passes it
//! to [`ApiState::with_sign_in_attempts`](crate::ApiState::with_sign_in_attempts)
//! (`guildhall_store::Store` implements the port), and then every instance shares the
//! same counters.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use guildhall_domain::error::{StoreError, Unexpected};
use guildhall_domain::ports::{Clock, SignInAttempts};
use guildhall_domain::throttle::ThrottlePolicy;

use crate::problem::ApiError;

/// Throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Off: never refuse, count nothing (for benchmarks that measure the hash rate).
    pub enabled: bool,
    /// Free failures, delays and when a key is forgotten.
    pub policy: ThrottlePolicy,
}

impl Default for ThrottleSettings {
    /// On, with [`ThrottlePolicy::default`].
    fn default() -> Self {
        Self { enabled: true, policy: ThrottlePolicy::default() }
    }
}

/// An attempt that may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// A key must still wait.
    #[error("too many failed sign-in attempts; try again in {retry_after} seconds")]
    TooMany {
        /// Whole seconds (at least 1) until the longest-waiting key allows an attempt.
        retry_after: u64,
    },
    /// The counters could not be read or written.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AttemptError> for ApiError {
    fn from(error: AttemptError) -> Self {
        match error {
            AttemptError::TooMany { retry_after } => ApiError::too_many_attempts(retry_after),
            AttemptError::Unexpected(e) => e.into(),
        }
    }
}

/// Counts failed sign-ins through a [`SignInAttempts`] store.
#[allow(missing_debug_implementations)] // holds the clock and the store
pub struct SignInThrottle {
    settings: ThrottleSettings,
    clock: Arc<dyn Clock>,
    attempts: Arc<dyn SignInAttempts>,
    /// When this instance next deletes forgotten keys; `None` until the first attempt.
    next_sweep: Mutex<Option<DateTime<Utc>>>,
}

impl SignInThrottle {
    /// A throttle reading time from `clock` and keeping its counts in `attempts`.
    #[must_use]
    pub fn new(settings: ThrottleSettings, clock: Arc<dyn Clock>, attempts: Arc<dyn SignInAttempts>) -> Self {
        Self { settings, clock, attempts, next_sweep: Mutex::new(None) }
    }

    /// Whether an attempt under `keys` may go ahead now; if so, the attempt is counted
    /// as a failure at once, before the password is checked, so that a burst of
    /// concurrent guesses cannot all pass before the first one is counted. A success
    /// then clears the account ([`Self::succeeded`]); an attempt that ends before a
    /// password was judged is given back ([`Self::refund`]).
    ///
    /// At most once per `forget_after`, an attempt also deletes the keys that are
    /// forgotten, so that the counters do not grow without end.
    ///
    /// # Errors
    /// [`AttemptError::TooMany`] with the whole seconds (at least 1) until the
    /// longest-waiting key allows an attempt; [`AttemptError::Unexpected`] when the
    /// counters cannot be read or written (nothing is counted then).
    pub async fn attempt(&self, keys: &[&str]) -> Result<(), AttemptError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let decided = self
            .attempts
            .attempt(&keys, &self.settings.policy, now)
            .await
            .map_err(|error| Unexpected::new("the failed sign-in counters could not be updated", error))?;
        self.sweep(now).await;
        decided.map_err(|wait| AttemptError::TooMany { retry_after: whole_seconds(wait) })
    }

    /// Gives back an attempt counted by [`Self::attempt`] that turned out not to be a
    /// wrong guess (the password was right, or the check could not be made). A failure
    /// to write is logged, not returned: the attempt's outcome stands.
    pub async fn refund(&self, keys: &[&str]) {
        if !self.settings.enabled {
            return;
        }
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        if let Err(error) = self.attempts.refund(&keys).await {
            tracing::warn!(%error, "a sign-in attempt could not be given back; it stays counted as a failure");
        }
    }

    /// Clears `key` (a successful sign-in clears its account's count). A failure to write
    /// is logged, not returned: the sign-in stands.
    pub async fn succeeded(&self, key: &str) {
        if !self.settings.enabled {
            return;
        }
        if let Err(error) = self.attempts.clear(key).await {
            tracing::warn!(%error, "the failed sign-ins of an account could not be cleared after a success");
        }
    }

    /// Deletes forgotten keys if this instance has not done so for `forget_after`.
    async fn sweep(&self, now: DateTime<Utc>) {
        let forget_after = self.settings.policy.forget_after;
        {
            let mut next = self.next_sweep.lock().unwrap_or_else(PoisonError::into_inner);
            if next.is_some_and(|at| now < at) {
                return;
            }
            *next = now.checked_add_signed(forget_after);
        }
        let Some(older_than) = now.checked_sub_signed(forget_after) else { return };
        if let Err(error) = self.attempts.forget(older_than).await {
            tracing::warn!(%error, "forgotten failed sign-ins could not be deleted; the next sweep tries again");
        }
    }
}

/// A wait in whole seconds, rounded up, at least 1 (`Retry-After`).
fn whole_seconds(wait: Duration) -> u64 {
    let millis = u64::try_from(wait.num_milliseconds()).unwrap_or(u64::MAX);
    millis.div_ceil(1000).max(1)
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

/// Keys kept at most; past this, forgotten keys are swept, then the oldest dropped.
const MAX_KEYS: usize = 100_000;

/// Failed sign-in counters in this process's memory: the default of
/// [`ApiState::new`](crate::ApiState::new), for a single process with no database.
///
/// At most 100,000 keys are kept: past that, forgotten keys are dropped first, then the
/// older half, so that a flood of distinct keys cannot exhaust memory (it can only make
/// the flooder's own keys forget sooner).
#[derive(Debug, Default)]
pub struct InProcessAttempts {
    failures: Mutex<HashMap<String, Failures>>,
}

impl InProcessAttempts {
    /// No counts yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        // Every update leaves the map consistent, so one interrupted by a panic elsewhere
        // is still usable.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn distinct(keys: &[String]) -> BTreeSet<&str> {
    keys.iter().map(String::as_str).collect()
}

#[async_trait]
impl SignInAttempts for InProcessAttempts {
    async fn attempt(
        &self,
        keys: &[String],
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, StoreError> {
        let keys = distinct(keys);
        let mut failures = self.failures();
        let wait = keys
            .iter()
            .filter_map(|key| failures.get(*key))
            .map(|f| policy.wait(f.count, f.last, now))
            .max()
            .unwrap_or_else(Duration::zero);
        if wait > Duration::zero() {
            return Ok(Err(wait));
        }
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, f| !policy.is_forgotten(f.last, now));
            if failures.len() >= MAX_KEYS {
                // Flooded with distinct keys: keep the most recent half.
                let mut lasts: Vec<DateTime<Utc>> = failures.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                if let Some(cut) = lasts.get(lasts.len() / 2).copied() {
                    failures.retain(|_, f| f.last >= cut);
                }
            }
        }
        for key in keys {
            let entry = failures.entry(key.to_owned()).or_insert(Failures { count: 0, last: now });
            entry.count = policy.count_after_failure(entry.count, entry.last, now);
            entry.last = now;
        }
        Ok(Ok(()))
    }

    async fn refund(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut failures = self.failures();
        for key in distinct(keys) {
            if let Some(entry) = failures.get_mut(key) {
                entry.count = entry.count.saturating_sub(1);
                if entry.count == 0 {
                    failures.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.failures().remove(key);
        Ok(())
    }

    async fn forget(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut failures = self.failures();
        let before = failures.len();
        failures.retain(|_, f| f.last >= older_than);
        Ok(u64::try_from(before - failures.len()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use guildhall_domain::ports::MockSignInAttempts;
    use guildhall_domain::testing::ManualClock;
    use guildhall_domain::testing::contract::sign_in;
    use mockall::predicate::eq;
    use poem::http::StatusCode;

    fn throttle() -> (SignInThrottle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let throttle =
            SignInThrottle::new(ThrottleSettings::default(), clock.clone(), Arc::new(InProcessAttempts::new()));
        (throttle, clock)
    }

    fn retry_after(result: Result<(), AttemptError>) -> Option<u64> {
        match result {
            Ok(()) => None,
            Err(AttemptError::TooMany { retry_after }) => Some(retry_after),
            Err(AttemptError::Unexpected(e)) => panic!("unexpected: {e}"),
        }
    }

    #[tokio::test]
    async fn in_process_attempts_keep_the_contract() {
        sign_in::run_all(|| async { Arc::new(InProcessAttempts::new()) }).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_in_process_attempts_never_exceed_the_free_failures() {
        let attempts = Arc::new(InProcessAttempts::new());
        let policy = ThrottlePolicy::default();
        let now = ManualClock::default().now();
        let tasks: Vec<_> = (0..sign_in::CONCURRENT_ATTEMPTS)
            .map(|_| {
                let attempts = attempts.clone();
                tokio::spawn(async move { attempts.attempt(&["k".to_owned()], &policy, now).await.unwrap().is_ok() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn ten_attempts_are_free_and_the_eleventh_waits_a_second() {
        let (throttle, _) = throttle();
        for _ in 0..10 {
            assert_eq!(retry_after(throttle.attempt(&["a"]).await), None);
        }
        assert_eq!(retry_after(throttle.attempt(&["a"]).await), Some(1));
        assert_eq!(retry_after(throttle.attempt(&["b"]).await), None, "other keys are not affected");
    }

    #[tokio::test]
    async fn the_delay_doubles_and_is_capped() {
        let (throttle, clock) = throttle();
        for round in 0..40 {
            if let Some(wait) = retry_after(throttle.attempt(&["a"]).await) {
                assert!(wait <= 15 * 60, "never longer than max_delay (round {round})");
                clock.advance(Duration::seconds(i64::try_from(wait).unwrap()));
                assert_eq!(retry_after(throttle.attempt(&["a"]).await), None);
            }
        }
        assert_eq!(retry_after(throttle.attempt(&["a"]).await), Some(15 * 60), "capped at max_delay");
        clock.advance(Duration::minutes(15));
        assert_eq!(retry_after(throttle.attempt(&["a"]).await), None, "no permanent lockout");
    }

    #[tokio::test]
    async fn success_clears_refunds_give_back_and_old_failures_are_forgotten() {
        let (throttle, clock) = throttle();
        for _ in 0..12 {
            let _ = throttle.attempt(&["a", "ip"]).await;
        }
        throttle.succeeded("a").await;
        assert!(retry_after(throttle.attempt(&["a", "ip"]).await).is_some(), "the address still waits");
        clock.advance(Duration::hours(1));
        assert_eq!(retry_after(throttle.attempt(&["ip"]).await), None, "forgotten after a quiet hour");
        for _ in 0..10 {
            assert_eq!(retry_after(throttle.attempt(&["c"]).await), None);
        }
        throttle.refund(&["c"]).await;
        assert_eq!(retry_after(throttle.attempt(&["c"]).await), None);
        assert!(retry_after(throttle.attempt(&["c"]).await).is_some(), "the refund gave back exactly one attempt");
    }

    #[tokio::test]
    async fn a_disabled_throttle_never_refuses_and_counts_nothing() {
        let attempts = Arc::new(InProcessAttempts::new());
        let settings = ThrottleSettings { enabled: false, ..ThrottleSettings::default() };
        let throttle = SignInThrottle::new(settings, Arc::new(ManualClock::default()), attempts.clone());
        for _ in 0..20 {
            assert_eq!(retry_after(throttle.attempt(&["a"]).await), None);
        }
        assert_eq!(attempts.forget(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn forgotten_keys_are_swept_once_per_forget_after() {
        let clock = Arc::new(ManualClock::default());
        let start = clock.now();
        let mut store = MockSignInAttempts::new();
        store.expect_attempt().times(4).returning(|_, _, _| Ok(Ok(())));
        let mut sweeps = mockall::Sequence::new();
        for at in [start, start + Duration::hours(1)] {
            store
                .expect_forget()
                .with(eq(at - Duration::hours(1)))
                .times(1)
                .in_sequence(&mut sweeps)
                .returning(|_| Ok(3));
        }
        let throttle = SignInThrottle::new(ThrottleSettings::default(), clock.clone(), Arc::new(store));
        throttle.attempt(&["a"]).await.unwrap();
        clock.advance(Duration::minutes(59));
        throttle.attempt(&["a"]).await.unwrap();
        clock.advance(Duration::minutes(1));
        throttle.attempt(&["a"]).await.unwrap();
        throttle.attempt(&["a"]).await.unwrap();
    }

    #[tokio::test]
    async fn a_storage_failure_during_an_attempt_is_a_500_and_elsewhere_only_a_warning() {
        let mut store = MockSignInAttempts::new();
        store.expect_attempt().returning(|_, _, _| Err(StoreError::new("the database is gone")));
        store.expect_refund().times(1).returning(|_| Err(StoreError::new("the database is gone")));
        store.expect_clear().times(1).returning(|_| Err(StoreError::new("the database is gone")));
        let throttle =
            SignInThrottle::new(ThrottleSettings::default(), Arc::new(ManualClock::default()), Arc::new(store));
        let error = throttle.attempt(&["a"]).await.unwrap_err();
        assert!(matches!(error, AttemptError::Unexpected(_)), "{error:?}");
        assert_eq!(ApiError::from(error).status(), StatusCode::INTERNAL_SERVER_ERROR);
        // Neither panics nor returns an error: the request's outcome stands.
        throttle.refund(&["a"]).await;
        throttle.succeeded("a").await;
    }

    #[test]
    fn waits_are_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(whole_seconds(Duration::milliseconds(1001)), 2);
        assert_eq!(whole_seconds(Duration::seconds(900)), 900);
        assert_eq!(whole_seconds(Duration::zero()), 1);
    }
}
