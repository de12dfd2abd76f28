//! Guildhall's database schema, as sea-orm migrations that run on SQLite and PostgreSQL.
//!
//! [`Migrator`] lists every migration in order; `guildhall-store` runs it from
//! `Store::migrate`. The schema itself is written as SQL, one statement list per backend
//! (see [`m20261123_000001_schema`]), because what matters here is exactly what sea-query's
//! builder makes awkward: partial unique indexes, `COLLATE "C"` columns and the names of
//! constraints, which the store maps back to domain errors.
//!
//! Conventions shared by every table:
//!
//! * Identifiers are the domain's UUIDs as 16 raw bytes (`BLOB` / `BYTEA`); byte order is
//!   UUID order, so v7 ids are time-ordered in every index. Token hashes (and the
//!   SHA-256 keys of failed sign-in counters) are 32 raw bytes.
//! * Instants are `BIGINT` nanoseconds since the Unix epoch (UTC): exact round trips of
//!   `chrono::DateTime<Utc>` on both backends, compared as integers.
//! * Values with internal structure that are never filtered on (organisation settings,
//!   role grants, access scopes, audit details, outbox payloads) are JSON text.
//! * Every organisation-scoped table has `org_id` leading its primary key and each of its
//!   unique indexes (the "Scale-out" design note: shard by organisation later).

#![warn(missing_docs)]

pub use sea_orm_migration;
use sea_orm_migration::prelude::*;

pub mod m20261123_000001_schema;
pub mod m20261123_000002_undelivered;
pub mod m20261123_000003_sign_in_failures;

/// Runs Guildhall's migrations, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_schema::Migration),
            Box::new(m20261123_000002_undelivered::Migration),
            Box::new(m20261123_000003_sign_in_failures::Migration),
        ]
    }
}
