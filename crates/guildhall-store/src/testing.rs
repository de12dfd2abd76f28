//! Fresh PostgreSQL databases for tests (feature `testing`), for this crate's tests and
//! every crate whose tests run against the store.
//!
//! Tests read the server from `GUILDHALL_TEST_POSTGRES_URL` ([`postgres_url`]); each makes
//! its own database `guildhall_test_<uuid>` through the server's `postgres` database
//! ([`TestDatabase::create`]) and drops it when done, so tests run in parallel.

use guildhall_domain::error::StoreError;
use sea_orm::{ConnectionTrait, Database};

use crate::error::store;

/// The server's URL, or `None` (with the reason printed) when the tests should skip.
///
/// # Panics
/// Under `CI=true` when `GUILDHALL_TEST_POSTGRES_URL` is not set: CI must never skip the
/// PostgreSQL tests silently.
#[allow(clippy::panic)]
#[must_use]
pub fn postgres_url() -> Option<String> {
    match std::env::var("GUILDHALL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("GUILDHALL_TEST_POSTGRES_URL is not set: under CI=true the PostgreSQL tests must run, not skip")
        }
        _ => {
            eprintln!(
                "skipping a PostgreSQL test: set GUILDHALL_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            );
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
#[must_use]
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..].find('/').map_or(base.len(), |i| authority_end + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A new, empty database on a PostgreSQL server, dropped by [`TestDatabase::drop`] (a
/// failing test leaves it behind for inspection).
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `guildhall_test_<uuid>` on the server `server_url` names.
    ///
    /// # Errors
    /// [`StoreError`] when the server cannot be reached or refuses.
    pub async fn create(server_url: &str) -> Result<Self, StoreError> {
        let admin_url = with_database(server_url, "postgres");
        let name = format!("guildhall_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url.as_str()).await.map_err(store)?;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.map_err(store)?;
        admin.close().await.map_err(store)?;
        Ok(Self { url: with_database(&admin_url, &name), admin_url, name })
    }

    /// Drops it, closing whatever connections remain.
    ///
    /// # Errors
    /// [`StoreError`] when the server cannot be reached or refuses.
    pub async fn drop(self) -> Result<(), StoreError> {
        let admin = Database::connect(self.admin_url.as_str()).await.map_err(store)?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .map_err(store)?;
        admin.close().await.map_err(store)
    }
}
