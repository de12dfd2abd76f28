//! Guildhall's storage adapter: every storage port of `guildhall-domain` on sea-orm, for
//! SQLite (embedded, one file) and PostgreSQL (several app instances sharing a database).
//!
//! [`Store`] implements `UserRepository`, `OrganisationRepository`,
//! `MembershipRepository`, `InvitationRepository`, `JoinRequestRepository`,
//! `TokenRepository`, `AuditLog`, `Outbox`, `UnitOfWork` and `SignInAttempts` (the failed
//! sign-in counters every instance shares). The schema lives in the
//! `migrations` crate; [`Store::migrate`] applies it.
//!
//! ```no_run
//! # async fn example() -> Result<(), guildhall_domain::error::StoreError> {
//! let store = guildhall_store::Store::connect("sqlite:///var/lib/guildhall/guildhall.db").await?;
//! store.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Concurrency
//!
//! [`UnitOfWork::commit`](guildhall_domain::ports::UnitOfWork::commit) runs one
//! transaction per change set (ADR 0001):
//!
//! * **SQLite** starts it with `BEGIN IMMEDIATE`, taking the database's single write lock
//!   before the first read, so the preconditions are checked and the changes applied with
//!   no other writer in between (`busy_timeout` makes the others wait, not fail).
//! * **PostgreSQL** (`READ COMMITTED`) locks, before any write and in this order: the
//!   organisation rows named by organisation preconditions, then the account rows named
//!   by account preconditions, each in ascending id order (no deadlocks between commits),
//!   then the invitation, join request and token rows named by state preconditions. A
//!   row whose version the commit bumps (`OrgVersion`, `UserVersion`), or whose role
//!   holders it counts (`RoleUnheld`), is locked `FOR NO KEY UPDATE`; a row it only checks
//!   (`OrgUnchanged`, `UserUnchanged`) `FOR SHARE`, so self-service commits run side by
//!   side but never beside an administrator's change; state rows `FOR NO KEY UPDATE`, so
//!   of two acceptances of one invitation the second waits, then reads the first's result.
//!   Every precondition is checked against locked rows: two administrators demoting each
//!   other serialise on the organisation row and the second sees the first's version
//!   bump, [`CommitError::Conflict`](guildhall_domain::ports::CommitError::Conflict). A
//!   deadlock or serialisation failure reported by PostgreSQL is a `Conflict` too (the use
//!   case decides again).
//!
//! [`SignInAttempts::attempt`](guildhall_domain::ports::SignInAttempts::attempt) checks
//! and counts in one such write transaction too: on PostgreSQL it first inserts a
//! placeholder row for every new key, then locks every key's row `FOR UPDATE`, both in
//! key order, so that concurrent attempts on any number of instances queue on the same
//! rows and never exceed the allowance together.
//!
//! Unique violations become the matching [`Duplicate`](guildhall_domain::ports::Duplicate),
//! recognised by constraint name (PostgreSQL) or constrained columns (SQLite); every
//! other failure, including a change that refers to a missing row, is
//! [`CommitError::Store`](guildhall_domain::ports::CommitError::Store), as in the
//! reference `MemoryStore`.

#![warn(missing_docs)]

mod commit;
mod convert;
mod entities;
mod error;
mod outbox;

pub use outbox::OutboxDepth;
mod reads;
mod sign_in;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::BTreeSet;
use std::time::Duration;

use guildhall_domain::error::StoreError;
use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, one writer at a time.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Every storage port of the domain, on SQLite or PostgreSQL. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
}

/// A migration this build knows, and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Its name (`m20261123_000001_schema`).
    pub name: String,
    /// Whether it is applied.
    pub applied: bool,
}

impl Store {
    /// Connects to `url`: `sqlite://PATH` (created if missing; WAL journal,
    /// `foreign_keys=ON`, a 10 s `busy_timeout`, `synchronous=NORMAL`) or
    /// `postgres://...`.
    ///
    /// # Errors
    /// [`StoreError`] when the URL names another database or the connection fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).acquire_timeout(Duration::from_secs(30));
        let backend = if url.starts_with("sqlite:") {
            options.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            options.max_connections(16);
            Backend::Postgres
        } else {
            return Err(StoreError::new("the database URL must start with sqlite: or postgres:"));
        };
        let db = Database::connect(options).await.map_err(error::store)?;
        Ok(Self { db, backend })
    }

    /// The underlying sea-orm connection pool, for operators' tooling and tests that
    /// inspect tables directly. Writes through it bypass the unit of work's rules.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this store talks to.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every pending migration.
    ///
    /// # Errors
    /// [`StoreError`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(error::store)
    }

    /// Reverts every applied migration, leaving only sea-orm's bookkeeping table (for
    /// tests and operators starting over).
    ///
    /// # Errors
    /// [`StoreError`] when a migration fails.
    pub async fn migrate_down(&self) -> Result<(), StoreError> {
        Migrator::down(&self.db, None).await.map_err(error::store)
    }

    /// Reverts the `steps` most recently applied migrations.
    ///
    /// # Errors
    /// [`StoreError`] when a migration fails.
    pub async fn migrate_down_by(&self, steps: u32) -> Result<(), StoreError> {
        Migrator::down(&self.db, Some(steps)).await.map_err(error::store)
    }

    /// Every migration this build knows, oldest first, and whether it is applied. Reads
    /// only (creates no bookkeeping table), so it can run before the first migration.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read, or records a migration this build
    /// does not know (the database is ahead of it).
    pub async fn migrations(&self) -> Result<Vec<MigrationState>, StoreError> {
        let migrations = Migrator::get_migration_with_status_read_only(&self.db).await.map_err(error::store)?;
        Ok(migrations
            .iter()
            .map(|m| MigrationState {
                name: m.name().to_owned(),
                applied: m.status() == migrations::sea_orm_migration::MigrationStatus::Applied,
            })
            .collect())
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(error::store)
    }

    /// The names of the tables in the database, sea-orm's bookkeeping table included.
    ///
    /// # Errors
    /// [`StoreError`] when the catalogue cannot be read.
    pub async fn table_names(&self) -> Result<BTreeSet<String>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            Backend::Postgres => {
                "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
            }
        };
        let rows = self.db.query_all_raw(Statement::from_string(self.db_backend(), sql)).await.map_err(error::store)?;
        rows.iter().map(|row| row.try_get::<String>("", "name").map_err(error::store)).collect()
    }

    /// Checks that the database has exactly the tables and columns this store's entities
    /// use (migrations and entities agree). Run it at start-up to catch a database that
    /// is behind or ahead of this build.
    ///
    /// # Errors
    /// [`StoreError`] listing every difference, or when the catalogue cannot be read.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        for (table, columns) in entities::tables() {
            let expected: BTreeSet<String> = columns.into_iter().collect();
            let actual = self.column_names(&table).await?;
            for missing in expected.difference(&actual) {
                problems.push(format!("{table}.{missing} is used by the store but missing from the database"));
            }
            for extra in actual.difference(&expected) {
                problems.push(format!("{table}.{extra} is in the database but not in the store's entity"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(StoreError::new(problems.join("; "))) }
    }

    async fn column_names(&self, table: &str) -> Result<BTreeSet<String>, StoreError> {
        let statement = match self.backend {
            Backend::Sqlite => Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT name FROM pragma_table_info(?)",
                [table.into()],
            ),
            Backend::Postgres => Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT column_name::text AS name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                [table.into()],
            ),
        };
        let rows = self.db.query_all_raw(statement).await.map_err(error::store)?;
        rows.iter().map(|row| row.try_get::<String>("", "name").map_err(error::store)).collect()
    }

    /// Closes every pooled connection.
    ///
    /// # Errors
    /// [`StoreError`] when closing fails.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await.map_err(error::store)
    }

    pub(crate) fn db_backend(&self) -> DatabaseBackend {
        match self.backend {
            Backend::Sqlite => DatabaseBackend::Sqlite,
            Backend::Postgres => DatabaseBackend::Postgres,
        }
    }

    /// A transaction for writing: `BEGIN IMMEDIATE` on SQLite (take the write lock now,
    /// not at the first write), a plain `BEGIN` (`READ COMMITTED`) on PostgreSQL, whose
    /// callers lock rows explicitly.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = match self.backend {
            Backend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            Backend::Postgres => TransactionOptions::default(),
        };
        self.db.begin_with_options(options).await.map_err(error::store)
    }
}
