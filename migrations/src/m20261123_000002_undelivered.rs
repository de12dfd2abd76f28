//! Dead letters by organisation: the organisation's administrators page through the
//! messages that could not be delivered (`DeliveryLog::undelivered`), newest first.
//! A partial index keeps that one seek however large the outbox grows, and costs nothing
//! for the messages that were delivered.

use sea_orm_migration::prelude::*;

/// Creates (up) or drops (down) the `outbox_dead_by_org` index.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX outbox_dead_by_org ON outbox (org_id, id) WHERE dead")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS outbox_dead_by_org").await?;
        Ok(())
    }
}
