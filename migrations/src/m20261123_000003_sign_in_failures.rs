//! Failed sign-in counters (`SignInAttempts`), shared by every instance of the service
//! through the database.
//!
//! A key is an account's address or a client's IP address; the table stores only the
//! SHA-256 of its text (32 raw bytes), never the address itself. `failures` is the count,
//! `last_failure` the instant (nanoseconds) of the last one. The index on `last_failure`
//! serves the sweep that deletes forgotten keys (`SignInAttempts::forget`). Nothing refers
//! to the table and it refers to nothing: it outlives the accounts it counts for.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The table this migration creates.
pub const TABLE: &str = "sign_in_failures";

/// Creates (up) or drops (down) the `sign_in_failures` table.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bytes = match manager.get_database_backend() {
            DatabaseBackend::Postgres => "BYTEA",
            _ => "BLOB",
        };
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE sign_in_failures (
                    key {bytes} NOT NULL,
                    failures BIGINT NOT NULL,
                    last_failure BIGINT NOT NULL,
                    CONSTRAINT sign_in_failures_pkey PRIMARY KEY (key)
                )"
            ))
            .await?;
        connection.execute_unprepared("CREATE INDEX sign_in_failures_last ON sign_in_failures (last_failure)").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP TABLE IF EXISTS sign_in_failures").await?;
        Ok(())
    }
}
