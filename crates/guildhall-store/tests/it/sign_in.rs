//! The failed sign-in counters (`SignInAttempts`) on each backend: the port's contract
//! suite (`guildhall_domain::testing::contract::sign_in`), concurrent attempts, and what
//! the table keeps.

use std::sync::Arc;

use chrono::Duration;
use guildhall_domain::ports::SignInAttempts;
use guildhall_domain::testing::contract::sign_in::CONCURRENT_ATTEMPTS;
use guildhall_domain::throttle::ThrottlePolicy;
use guildhall_store::Store;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{Fresh, at, on_both};

on_both!(
    concurrent_attempts_on_one_key_never_exceed_the_free_failures,
    concurrent_attempts_sharing_one_key_of_two_neither_deadlock_nor_exceed_it,
    keys_are_stored_as_hashes_never_as_text,
);

/// One test per check of the suite and backend, each on a fresh database.
macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod contract {
            use guildhall_domain::testing::contract::sign_in;

            use crate::support::{on_postgres, on_sqlite};

            fn passes(result: Result<(), guildhall_domain::testing::contract::ContractFailure>) {
                if let Err(failure) = result {
                    panic!("{failure}");
                }
            }

            mod sqlite {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $check() {
                        on_sqlite(|fresh| async move { passes(sign_in::$check(&*fresh().await).await) }).await;
                    }
                )*
            }

            mod postgres {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $check() {
                        on_postgres(|fresh| async move { passes(sign_in::$check(&*fresh().await).await) }).await;
                    }
                )*
            }

            #[test]
            fn every_check_of_the_suite_runs_here() {
                let tested = [$(stringify!($check)),*];
                let missing: Vec<&str> = sign_in::CHECKS.iter().copied().filter(|c| !tested.contains(c)).collect();
                assert!(missing.is_empty(), "checks without a test: {missing:?}");
            }
        }
    };
}

contract_tests!(
    free_failures_then_a_wait_that_doubles_up_to_the_cap,
    a_refused_attempt_counts_nothing,
    the_longest_wait_across_keys_is_returned,
    keys_are_forgotten_after_forget_after,
    a_refund_gives_back_one_attempt_and_deletes_a_key_at_zero,
    clear_deletes_only_that_key,
    forget_deletes_keys_older_than_the_cutoff_and_counts_them,
    keys_are_distinct_exact_texts,
);

/// `attempts` concurrent attempts at one instant, each under `keys(i)`; how many were
/// allowed. Every call must succeed.
async fn concurrently(store: &Arc<Store>, keys: impl Fn(usize) -> Vec<String>) -> usize {
    let policy = ThrottlePolicy::default();
    let tasks: Vec<_> = (0..CONCURRENT_ATTEMPTS)
        .map(|i| {
            let (store, keys) = (store.clone(), keys(i));
            tokio::spawn(async move { store.attempt(&keys, &policy, at(0)).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Ok(())) => allowed += 1,
            Ok(Err(wait)) => assert_eq!(wait, Duration::seconds(1)),
            Err(error) => panic!("a concurrent attempt failed: {error}"),
        }
    }
    allowed
}

async fn concurrent_attempts_on_one_key_never_exceed_the_free_failures(fresh: Fresh) {
    let store = fresh().await;
    let allowed = concurrently(&store, |_| vec!["account:ada@example.org".to_owned()]).await;
    assert_eq!(allowed, 10, "of {CONCURRENT_ATTEMPTS} concurrent attempts exactly the 10 free ones are allowed");
}

/// Each attempt names the shared account and an address of its own, half of them in each
/// order: rows are locked in one order whatever the caller's, so none deadlocks.
async fn concurrent_attempts_sharing_one_key_of_two_neither_deadlock_nor_exceed_it(fresh: Fresh) {
    let store = fresh().await;
    let allowed = concurrently(&store, |i| {
        let (account, ip) = ("account:ada@example.org".to_owned(), format!("ip:192.0.2.{i}"));
        if i % 2 == 0 { vec![account, ip] } else { vec![ip, account] }
    })
    .await;
    assert_eq!(allowed, 10);
    // Refused attempts left no row behind for their addresses.
    assert_eq!(store.forget(at(1)).await.unwrap(), 11, "the account and the 10 allowed addresses");
}

async fn keys_are_stored_as_hashes_never_as_text(fresh: Fresh) {
    let store = fresh().await;
    let keys = ["account:ada@example.org".to_owned()];
    store.attempt(&keys, &ThrottlePolicy::default(), at(0)).await.unwrap().unwrap();
    let db = store.connection();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT key FROM sign_in_failures"))
        .await
        .unwrap();
    let stored: Vec<Vec<u8>> = rows.iter().map(|row| row.try_get("", "key").unwrap()).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32, "a SHA-256");
    assert!(!stored[0].windows(3).any(|w| w == b"ada"), "no part of the address is stored");
}
