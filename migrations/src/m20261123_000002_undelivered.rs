//! Dead letters by organisation: the organisation's administrators page through the
//! messages that could not be delivered (`DeliveryLog::undelivered`), newest first.
//! The index `(org_id, dead, id)` keeps that one seek however large the outbox grows.
//! (A partial index `WHERE dead` would be smaller, but SQLite's planner, without
//! statistics, prefers scanning the primary key for `ORDER BY id DESC LIMIT n` over it.)

use sea_orm_migration::prelude::*;

/// Creates (up) or drops (down) the `outbox_dead_by_org` index.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX outbox_dead_by_org ON outbox (org_id, dead, id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS outbox_dead_by_org").await?;
        Ok(())
    }
}
