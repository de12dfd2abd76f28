//! The contract suite of [`SignInAttempts`]: written once against the port, run against
//! every implementation (`guildhall-http`'s `InProcessAttempts`, the SQL store on SQLite
//! and on PostgreSQL).
//!
//! The contract is what [`SignInAttempts`] documents, with the waits
//! [`ThrottlePolicy`] computes. As in the storage suite, each check is its own
//! `pub async fn` taking a **fresh, empty** implementation; [`run_all`] runs every one,
//! each on an implementation of its own. Checks never panic, need no async runtime of
//! their own and use fixed times in whole seconds.
//!
//! What a check on one task cannot show, that concurrent attempts never together exceed
//! the allowance, each implementation tests under real concurrency: of
//! [`CONCURRENT_ATTEMPTS`] attempts at once under one fresh key with the default policy,
//! exactly [`ThrottlePolicy::free_failures`] may be allowed.
//!
//! ```
//! # async fn example<A: guildhall_domain::ports::SignInAttempts>(
//! #     fresh: impl Fn() -> std::sync::Arc<A>,
//! # ) -> Result<(), guildhall_domain::testing::contract::ContractFailure> {
//! use guildhall_domain::testing::contract::sign_in;
//!
//! sign_in::a_refused_attempt_counts_nothing(&*fresh()).await?;
//! sign_in::run_all(|| async { fresh() }).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{BASE_SECONDS, Broken, Check, ContractFailure, ensure, named, same};
use crate::ports::SignInAttempts;
use crate::throttle::ThrottlePolicy;

/// How many concurrent attempts the concurrency tests make under one key.
pub const CONCURRENT_ATTEMPTS: usize = 40;

macro_rules! sign_in_checks {
    ($( $(#[$doc:meta])* $name:ident; )*) => {
        $(
            $(#[$doc])*
            ///
            /// # Errors
            /// [`ContractFailure`] when the implementation breaks the contract.
            pub async fn $name<A: SignInAttempts + ?Sized>(attempts: &A) -> Result<(), ContractFailure> {
                named(stringify!($name), checks::$name(attempts).await)
            }
        )*

        /// The names of every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($name),)*];

        /// Runs every check, each on a fresh, empty implementation from `fresh`, stopping
        /// at the first failure.
        ///
        /// # Errors
        /// The first [`ContractFailure`].
        pub async fn run_all<A, F, Fut>(fresh: F) -> Result<(), ContractFailure>
        where
            A: SignInAttempts + ?Sized,
            F: Fn() -> Fut,
            Fut: Future<Output = Arc<A>>,
        {
            $( $name(&*fresh().await).await?; )*
            Ok(())
        }
    };
}

sign_in_checks! {
    /// `free_failures` attempts under a key are allowed at once; the next must wait
    /// `base_delay` from the last failure, and each attempt allowed after waiting doubles
    /// the next wait, up to `max_delay`. The policy passed in is the one applied.
    free_failures_then_a_wait_that_doubles_up_to_the_cap;
    /// A refused attempt counts nothing under any of its keys, neither the one that must
    /// wait nor the others.
    a_refused_attempt_counts_nothing;
    /// Of several keys that must wait, the longest wait is returned, whatever their
    /// order; once it has passed, the attempt counts under every key.
    the_longest_wait_across_keys_is_returned;
    /// A key whose last failure is `forget_after` old no longer makes anyone wait, and its
    /// next failure counts from zero; a second earlier it still counts.
    keys_are_forgotten_after_forget_after;
    /// `refund` gives back one attempt under each distinct key named, deletes a key that
    /// reaches zero and ignores unknown keys.
    a_refund_gives_back_one_attempt_and_deletes_a_key_at_zero;
    /// `clear` deletes that key only; clearing an unknown key is no error.
    clear_deletes_only_that_key;
    /// `forget` deletes exactly the keys whose last failure is before the cutoff (not at
    /// it) and says how many.
    forget_deletes_keys_older_than_the_cutoff_and_counts_them;
    /// A key named twice in one attempt counts once; keys are exact text (letter case
    /// included); an attempt under no keys is allowed and counts nothing.
    keys_are_distinct_exact_texts;
}

mod checks {
    use super::*;

    /// `seconds` after 2026-01-05T09:00:00Z.
    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(BASE_SECONDS + seconds)
    }

    fn seconds(n: i64) -> Duration {
        Duration::seconds(n)
    }

    fn keys(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| (*text).to_owned()).collect()
    }

    async fn attempt<A: SignInAttempts + ?Sized>(
        attempts: &A,
        texts: &[&str],
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, Broken> {
        attempts
            .attempt(&keys(texts), policy, now)
            .await
            .map_err(|error| Broken(format!("attempt {texts:?} failed: {error}")))
    }

    /// `n` attempts under `texts` at `now`, each of which must be allowed.
    async fn allowed<A: SignInAttempts + ?Sized>(
        attempts: &A,
        texts: &[&str],
        n: u32,
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Check {
        for i in 1..=n {
            same(&format!("attempt {i} of {n} under {texts:?}"), attempt(attempts, texts, policy, now).await?, Ok(()))?;
        }
        Ok(())
    }

    async fn forget<A: SignInAttempts + ?Sized>(attempts: &A, older_than: DateTime<Utc>) -> Result<u64, Broken> {
        attempts.forget(older_than).await.map_err(|error| Broken(format!("forget failed: {error}")))
    }

    pub(super) async fn free_failures_then_a_wait_that_doubles_up_to_the_cap<A: SignInAttempts + ?Sized>(
        attempts: &A,
    ) -> Check {
        let policy = ThrottlePolicy::default();
        let key = ["account:ada@example.org"];
        allowed(attempts, &key, 10, &policy, at(0)).await?;
        same("the 11th attempt at once", attempt(attempts, &key, &policy, at(0)).await?, Err(seconds(1)))?;
        let mut now = at(1);
        let mut expected = seconds(1);
        for round in 1..=12 {
            same(
                &format!("round {round}: once the wait has passed"),
                attempt(attempts, &key, &policy, now).await?,
                Ok(()),
            )?;
            expected = (expected * 2).min(policy.max_delay);
            same(
                &format!("round {round}: the next wait"),
                attempt(attempts, &key, &policy, now).await?,
                Err(expected),
            )?;
            now += expected;
        }
        same("the wait is capped", expected, policy.max_delay)?;

        let custom = ThrottlePolicy {
            free_failures: 2,
            base_delay: seconds(10),
            max_delay: seconds(25),
            forget_after: Duration::minutes(5),
        };
        let key = ["ip:192.0.2.7"];
        allowed(attempts, &key, 2, &custom, at(0)).await?;
        same("custom: the 3rd attempt", attempt(attempts, &key, &custom, at(0)).await?, Err(seconds(10)))?;
        same("custom: 4 s later", attempt(attempts, &key, &custom, at(4)).await?, Err(seconds(6)))?;
        allowed(attempts, &key, 1, &custom, at(10)).await?;
        same("custom: doubled", attempt(attempts, &key, &custom, at(10)).await?, Err(seconds(20)))?;
        allowed(attempts, &key, 1, &custom, at(30)).await?;
        same("custom: capped", attempt(attempts, &key, &custom, at(30)).await?, Err(seconds(25)))
    }

    pub(super) async fn a_refused_attempt_counts_nothing<A: SignInAttempts + ?Sized>(attempts: &A) -> Check {
        let policy = ThrottlePolicy::default();
        let (account, ip) = ("account:ada@example.org", "ip:192.0.2.1");
        allowed(attempts, &[account], 10, &policy, at(0)).await?;
        for _ in 0..3 {
            same("the account must wait", attempt(attempts, &[account, ip], &policy, at(0)).await?, Err(seconds(1)))?;
        }
        // Had the refusals counted under the address, fewer than ten would be free.
        allowed(attempts, &[ip], 10, &policy, at(0)).await?;
        same("the address's 11th attempt", attempt(attempts, &[ip], &policy, at(0)).await?, Err(seconds(1)))?;
        // Had they counted under the account, it would wait longer than 1 s.
        allowed(attempts, &[account], 1, &policy, at(1)).await?;
        same("the account's next wait", attempt(attempts, &[account], &policy, at(1)).await?, Err(seconds(2)))
    }

    pub(super) async fn the_longest_wait_across_keys_is_returned<A: SignInAttempts + ?Sized>(attempts: &A) -> Check {
        let policy = ThrottlePolicy::default();
        let (a, b) = ("account:ada@example.org", "ip:192.0.2.1");
        allowed(attempts, &[a], 10, &policy, at(0)).await?;
        allowed(attempts, &[a], 1, &policy, at(1)).await?;
        allowed(attempts, &[a], 1, &policy, at(3)).await?;
        allowed(attempts, &[b], 10, &policy, at(3)).await?;
        // a: 12 failures, the last at 3 s (waits 4 s); b: 10, the last at 3 s (waits 1 s).
        same("a then b", attempt(attempts, &[a, b], &policy, at(3)).await?, Err(seconds(4)))?;
        same("b then a", attempt(attempts, &[b, a], &policy, at(3)).await?, Err(seconds(4)))?;
        same("b has waited enough, a has not", attempt(attempts, &[b, a], &policy, at(5)).await?, Err(seconds(2)))?;
        allowed(attempts, &[a, b], 1, &policy, at(7)).await?;
        same("counted under a", attempt(attempts, &[a], &policy, at(7)).await?, Err(seconds(8)))?;
        same("counted under b", attempt(attempts, &[b], &policy, at(7)).await?, Err(seconds(2)))
    }

    pub(super) async fn keys_are_forgotten_after_forget_after<A: SignInAttempts + ?Sized>(attempts: &A) -> Check {
        let policy = ThrottlePolicy::default();
        let hour = policy.forget_after.num_seconds();
        for key in ["forgotten", "remembered"] {
            allowed(attempts, &[key], 10, &policy, at(0)).await?;
            allowed(attempts, &[key], 1, &policy, at(1)).await?;
        }
        // 11 failures, the last at 1 s. A second before the hour ends they still count.
        allowed(attempts, &["remembered"], 1, &policy, at(hour)).await?;
        same("not yet forgotten", attempt(attempts, &["remembered"], &policy, at(hour)).await?, Err(seconds(4)))?;
        // From the hour on, counting starts again from zero.
        allowed(attempts, &["forgotten"], 10, &policy, at(1 + hour)).await?;
        same("counted from zero", attempt(attempts, &["forgotten"], &policy, at(1 + hour)).await?, Err(seconds(1)))?;

        let slow = ThrottlePolicy {
            free_failures: 1,
            base_delay: Duration::hours(2),
            max_delay: Duration::hours(2),
            ..policy
        };
        allowed(attempts, &["slow"], 1, &slow, at(0)).await?;
        same(
            "a long delay",
            attempt(attempts, &["slow"], &slow, at(hour - 1)).await?,
            Err(Duration::hours(2) - seconds(hour - 1)),
        )?;
        same("ends when the key is forgotten", attempt(attempts, &["slow"], &slow, at(hour)).await?, Ok(()))
    }

    pub(super) async fn a_refund_gives_back_one_attempt_and_deletes_a_key_at_zero<A: SignInAttempts + ?Sized>(
        attempts: &A,
    ) -> Check {
        let policy = ThrottlePolicy::default();
        allowed(attempts, &["a"], 10, &policy, at(0)).await?;
        attempts.refund(&keys(&["a"])).await.map_err(|e| Broken(format!("refund failed: {e}")))?;
        allowed(attempts, &["a"], 1, &policy, at(0)).await?;
        same("exactly one attempt was given back", attempt(attempts, &["a"], &policy, at(0)).await?, Err(seconds(1)))?;

        allowed(attempts, &["b"], 1, &policy, at(0)).await?;
        allowed(attempts, &["c"], 2, &policy, at(0)).await?;
        attempts
            .refund(&keys(&["b", "c", "c", "unknown"]))
            .await
            .map_err(|e| Broken(format!("refund of b, c, c and an unknown key failed: {e}")))?;
        // Left: a (10) and c (1); b reached zero and was deleted, c was refunded once.
        same("keys left after the refunds", forget(attempts, at(1)).await?, 2)?;
        same("nothing is left", forget(attempts, at(1)).await?, 0)
    }

    pub(super) async fn clear_deletes_only_that_key<A: SignInAttempts + ?Sized>(attempts: &A) -> Check {
        let policy = ThrottlePolicy::default();
        allowed(attempts, &["a", "b"], 10, &policy, at(0)).await?;
        attempts.clear("a").await.map_err(|e| Broken(format!("clear failed: {e}")))?;
        attempts.clear("unknown").await.map_err(|e| Broken(format!("clear of an unknown key failed: {e}")))?;
        allowed(attempts, &["a"], 10, &policy, at(0)).await?;
        same("a counts again from zero", attempt(attempts, &["a"], &policy, at(0)).await?, Err(seconds(1)))?;
        same("b is untouched", attempt(attempts, &["b"], &policy, at(0)).await?, Err(seconds(1)))
    }

    pub(super) async fn forget_deletes_keys_older_than_the_cutoff_and_counts_them<A: SignInAttempts + ?Sized>(
        attempts: &A,
    ) -> Check {
        let policy = ThrottlePolicy::default();
        allowed(attempts, &["a"], 10, &policy, at(0)).await?;
        allowed(attempts, &["b"], 10, &policy, at(10)).await?;
        allowed(attempts, &["c"], 10, &policy, at(20)).await?;
        same("keys whose last failure is before 10 s", forget(attempts, at(10)).await?, 1)?;
        same("a second time", forget(attempts, at(10)).await?, 0)?;
        // Had a been kept, its 11th failure would make the next attempt wait.
        allowed(attempts, &["a"], 10, &policy, at(10)).await?;
        same(
            "b is kept (its last failure is at the cutoff)",
            attempt(attempts, &["b"], &policy, at(10)).await?,
            Err(seconds(1)),
        )?;
        same("c is kept", attempt(attempts, &["c"], &policy, at(20)).await?, Err(seconds(1)))?;
        same("all of them, later", forget(attempts, at(21)).await?, 3)
    }

    pub(super) async fn keys_are_distinct_exact_texts<A: SignInAttempts + ?Sized>(attempts: &A) -> Check {
        let policy = ThrottlePolicy::default();
        allowed(attempts, &["k", "k"], 10, &policy, at(0)).await?;
        same("the 11th attempt", attempt(attempts, &["k", "k"], &policy, at(0)).await?, Err(seconds(1)))?;
        allowed(attempts, &["K"], 10, &policy, at(0)).await?;
        allowed(attempts, &["account:zoë@example.org"], 10, &policy, at(0)).await?;
        allowed(attempts, &["account:zoe@example.org"], 10, &policy, at(0)).await?;
        allowed(attempts, &[], 20, &policy, at(0)).await?;
        let kept = forget(attempts, at(1)).await?;
        ensure(kept == 4, || format!("expected the keys k, K and two addresses, forgot {kept}"))
    }
}
