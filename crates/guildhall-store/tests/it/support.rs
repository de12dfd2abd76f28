//! Fresh databases for every test, and fixtures.
//!
//! * SQLite: a new file in the temp directory per store (removed when the test ends).
//! * PostgreSQL: a new database `guildhall_test_<uuid>` per store, created through the
//!   server's `postgres` database named by `GUILDHALL_TEST_POSTGRES_URL`, dropped
//!   (`WITH (FORCE)`) when the test ends; a failing test leaves its database behind for
//!   inspection. Without the variable the PostgreSQL tests are skipped with a message,
//!   except under `CI=true`, where they fail: CI must never skip them silently.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::org::{OrgSettings, Organisation};
use guildhall_domain::ports::{Change, ChangeSet, CommitError, Duplicate, UnitOfWork};
use guildhall_domain::role::builtin;
use guildhall_domain::testing::MemoryStore;
use guildhall_domain::user::{PasswordHash, PasswordState, User, UserStatus};
use guildhall_domain::values::{EmailAddress, OrgName, OrgSlug, PersonName, RoleKey};
use guildhall_store::Store;
use guildhall_store::testing::{TestDatabase, postgres_url};
use uuid::Uuid;

/// A future that yields a fresh, migrated store.
pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<Store>> + Send>>;
/// Makes a fresh, migrated store each time it is called (the contract suite's factory).
pub type Fresh = Arc<dyn Fn() -> StoreFuture + Send + Sync>;

/// Runs `body` with a factory of fresh SQLite stores, then removes their files.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Fresh) -> Fut,
    Fut: Future<Output = ()>,
{
    let created: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let registry = created.clone();
    let fresh: Fresh = Arc::new(move || {
        let registry = registry.clone();
        Box::pin(async move {
            let path = std::env::temp_dir().join(format!("guildhall-test-{}.db", Uuid::new_v4().simple()));
            registry.lock().unwrap().push(path.clone());
            let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            store.migrate().await.unwrap();
            Arc::new(store)
        })
    });
    body(fresh).await;
    let files = std::mem::take(&mut *created.lock().unwrap());
    for file in files {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}

/// Runs `body` with a factory of fresh PostgreSQL databases, then drops them. Skips (or,
/// under CI, fails) when no server is configured.
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Fresh) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = postgres_url() else { return };
    let created: Arc<Mutex<Vec<TestDatabase>>> = Arc::default();
    let registry = created.clone();
    let fresh: Fresh = Arc::new(move || {
        let (registry, url) = (registry.clone(), url.clone());
        Box::pin(async move {
            let database = TestDatabase::create(&url).await.unwrap();
            let store = Store::connect(&database.url).await.unwrap();
            registry.lock().unwrap().push(database);
            store.migrate().await.unwrap();
            Arc::new(store)
        })
    });
    body(fresh).await;
    let databases = std::mem::take(&mut *created.lock().unwrap());
    for database in databases {
        database.drop().await.unwrap();
    }
}

/// Declares, for each named async function taking a [`Fresh`], one test on SQLite and
/// one on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::on_postgres(super::$name).await;
                }
            )*
        }
    };
}
pub(crate) use on_both;

// ---- fixtures ------------------------------------------------------------------------------

/// 2026-01-05T09:00:00.123456789Z: nanoseconds included, to prove exact round trips.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_603_600, 123_456_789).unwrap()
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// A UUID v7-shaped id whose order follows `n`.
pub fn uuid(n: u64) -> Uuid {
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80;
    bytes[15] = 1;
    Uuid::from_bytes(bytes)
}

pub fn email(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

pub fn user(n: u64, address: &str, first: &str, last: &str) -> User {
    User {
        id: UserId::from_uuid(uuid(n)),
        email: email(address),
        name: PersonName::parse(first, last).unwrap(),
        phone: None,
        email_verified_at: Some(at(1)),
        status: UserStatus::Active,
        password: PasswordState {
            hash: Some(PasswordHash::new("$fake$hash")),
            temporary: None,
            must_change: false,
            changed_at: Some(at(1)),
        },
        created_at: at(0),
        version: 0,
    }
}

pub fn org(n: u64, slug: &str, founder: UserId) -> Organisation {
    Organisation {
        id: OrgId::from_uuid(uuid(n)),
        slug: OrgSlug::parse(slug).unwrap(),
        name: OrgName::parse(&format!("Org {slug}")).unwrap(),
        settings: OrgSettings::default(),
        created_by: founder,
        created_at: at(0),
        version: 0,
    }
}

pub fn member(org: OrgId, user: UserId, role: RoleKey) -> Membership {
    Membership::new(org, user, role, MembershipOrigin::Invitation, None, at(2))
}

pub fn changes(changes: Vec<Change>) -> ChangeSet {
    ChangeSet { changes, ..ChangeSet::new() }
}

/// A founder and an organisation whose founder is its administrator, committed.
pub async fn seed_org<S: UnitOfWork + ?Sized>(store: &S, n: u64) -> (User, Organisation) {
    let founder = user(n, &format!("founder{n}@example.com"), "Fay", &format!("Founder{n}"));
    let organisation = org(n + 1, &format!("org-{n}"), founder.id);
    let admin =
        Membership::new(organisation.id, founder.id, builtin::ADMINISTRATOR, MembershipOrigin::Founder, None, at(0));
    store
        .commit(changes(vec![
            Change::InsertUser(founder.clone()),
            Change::InsertOrganisation(organisation.clone()),
            Change::InsertMembership(admin),
        ]))
        .await
        .unwrap();
    (founder, organisation)
}

/// A commit's result, comparable across stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Conflict,
    Duplicate(Duplicate),
    Store,
}

pub fn outcome(result: Result<(), CommitError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Committed,
        Err(CommitError::Conflict) => Outcome::Conflict,
        Err(CommitError::Duplicate(duplicate)) => Outcome::Duplicate(duplicate),
        Err(CommitError::Store(_)) => Outcome::Store,
    }
}

/// The reference `MemoryStore` and a SQL store side by side: every commit goes to both,
/// and must end the same way on both.
pub struct Pair {
    pub memory: MemoryStore,
    pub sql: Arc<Store>,
}

impl Pair {
    pub async fn new(fresh: &Fresh) -> Self {
        Self { memory: MemoryStore::new(), sql: fresh().await }
    }

    /// Commits `changes` to both stores and returns the common outcome.
    pub async fn commit(&self, changes: ChangeSet) -> Outcome {
        let expected = outcome(self.memory.commit(changes.clone()).await);
        let result = self.sql.commit(changes.clone()).await;
        let detail = format!("{result:?}");
        let actual = outcome(result);
        assert_eq!(actual, expected, "the SQL store disagrees with the reference store ({detail}) on {changes:#?}");
        actual
    }
}
