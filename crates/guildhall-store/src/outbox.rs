//! The dispatcher's side of the outbox.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use guildhall_domain::error::StoreError;
use guildhall_domain::ids::MessageId;
use guildhall_domain::ports::{ClaimedEmail, DeliveryFailure, Outbox};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::convert::{self, bytes, nanos};
use crate::entities::outbox;
use crate::error::store;

/// The same contract as the reference store: a message is claimable while it is not sent,
/// not dead, still has its payload, is due (`next_attempt_at <= now`; new messages at
/// once) and is not under a lease ending after `now`; oldest first (queued time, then
/// id). On PostgreSQL the due rows are selected `FOR UPDATE SKIP LOCKED`, so concurrent
/// dispatchers claim disjoint messages without waiting for each other; on SQLite the
/// claim runs under `BEGIN IMMEDIATE`.
#[async_trait]
impl Outbox for Store {
    async fn claim(&self, limit: u32, now: DateTime<Utc>, lease: Duration) -> Result<Vec<ClaimedEmail>, StoreError> {
        let until = now.checked_add_signed(lease).ok_or_else(|| StoreError::new("the lease is out of range"))?;
        let (now, until) = (nanos(now)?, nanos(until)?);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.begin_write().await?;
        let rows = outbox::Entity::find()
            .filter(outbox::Column::SentAt.is_null())
            .filter(outbox::Column::Dead.eq(false))
            .filter(outbox::Column::Payload.is_not_null())
            .filter(outbox::Column::NextAttemptAt.is_null().or(outbox::Column::NextAttemptAt.lte(now)))
            .filter(outbox::Column::LeasedUntil.is_null().or(outbox::Column::LeasedUntil.lte(now)))
            .order_by_asc(outbox::Column::QueuedAt)
            .order_by_asc(outbox::Column::Id)
            .limit(u64::from(limit))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&tx)
            .await
            .map_err(store)?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut leased = Vec::with_capacity(rows.len());
        for row in rows {
            let readable = convert::outbound_email(&row).and_then(|email| {
                let attempts = u32::try_from(row.attempts).map_err(|error| convert::corrupt("attempts", error))?;
                Ok(email.map(|email| ClaimedEmail { email, attempts }))
            });
            match readable {
                Ok(Some(email)) => {
                    claimed.push(email);
                    leased.push(row.id);
                }
                Ok(None) => {}
                // A row this version cannot read would otherwise come first in every
                // claim and stop all delivery: it becomes a dead letter, with the reason.
                Err(error) => give_up_unreadable(&tx, row.id, &error).await?,
            }
        }
        if !leased.is_empty() {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::LeasedUntil, Expr::val(until))
                .filter(outbox::Column::Id.is_in(leased))
                .exec(&tx)
                .await
                .map_err(store)?;
        }
        tx.commit().await.map_err(store)?;
        Ok(claimed)
    }

    async fn mark_sent(&self, id: MessageId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let at = nanos(at)?;
        let tx = self.begin_write().await?;
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::SentAt, Expr::val(at))
            .col_expr(outbox::Column::LeasedUntil, Expr::val(Option::<i64>::None))
            .filter(outbox::Column::Id.eq(bytes(id.as_uuid())))
            .filter(unfinished())
            .exec(&tx)
            .await
            .map_err(store)?;
        if result.rows_affected == 0 {
            // Already sent or given up (by another dispatcher whose claim came later):
            // the first outcome stands.
            return require_existing(&tx, id).await;
        }
        erase_secret(&tx, id).await?;
        tx.commit().await.map_err(store)
    }

    async fn mark_failed(&self, id: MessageId, failure: DeliveryFailure) -> Result<(), StoreError> {
        let tx = self.begin_write().await?;
        let update = outbox::Entity::update_many()
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .col_expr(outbox::Column::LeasedUntil, Expr::val(Option::<i64>::None))
            .filter(outbox::Column::Id.eq(bytes(id.as_uuid())))
            .filter(unfinished());
        let (update, reports) = match failure {
            DeliveryFailure::Retry { error, at } => (
                update
                    .col_expr(outbox::Column::LastError, Expr::val(error))
                    .col_expr(outbox::Column::NextAttemptAt, Expr::val(nanos(at)?)),
                None,
            ),
            DeliveryFailure::Dead { error, reports } => (
                update
                    .col_expr(outbox::Column::LastError, Expr::val(error))
                    .col_expr(outbox::Column::Dead, Expr::val(true)),
                Some(reports),
            ),
        };
        let result = update.exec(&tx).await.map_err(store)?;
        if result.rows_affected == 0 {
            // Already sent or given up: the first outcome stands, and nothing is reported.
            return require_existing(&tx, id).await;
        }
        if let Some(reports) = reports {
            // It will never be sent: keeping its secret would only be a risk.
            erase_secret(&tx, id).await?;
            for report in &reports {
                let row = outbox::Model::try_from(report)?;
                outbox::Entity::insert(row.into_active_model()).exec_without_returning(&tx).await.map_err(store)?;
            }
        }
        // Dropping the transaction unfinished (an error above) rolls all of it back.
        tx.commit().await.map_err(store)
    }

    async fn release(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::LeasedUntil, Expr::val(Option::<i64>::None))
                .filter(outbox::Column::Id.is_in(chunk.iter().map(|id| bytes(id.as_uuid()))))
                .filter(unfinished())
                .exec(&self.db)
                .await
                .map_err(store)?;
        }
        Ok(())
    }
}

/// How many messages the outbox holds, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxDepth {
    /// Messages not yet sent and not given up (due now or waiting for a retry).
    pub pending: u64,
    /// Of those, the ones a dispatcher holds a lease on at `now`.
    pub leased: u64,
    /// Dead letters: messages given up.
    pub dead: u64,
}

impl Store {
    /// Counts the outbox's messages at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the outbox cannot be read.
    pub async fn outbox_depth(&self, now: DateTime<Utc>) -> Result<OutboxDepth, StoreError> {
        use sea_orm::PaginatorTrait;
        let now = nanos(now)?;
        let db = self.connection();
        let pending = outbox::Entity::find().filter(unfinished()).count(db).await.map_err(store)?;
        let leased = outbox::Entity::find()
            .filter(unfinished())
            .filter(outbox::Column::LeasedUntil.gt(now))
            .count(db)
            .await
            .map_err(store)?;
        let dead = outbox::Entity::find().filter(outbox::Column::Dead.eq(true)).count(db).await.map_err(store)?;
        Ok(OutboxDepth { pending, leased, dead })
    }
}

/// Neither sent nor given up.
fn unfinished() -> sea_orm::Condition {
    sea_orm::Condition::all().add(outbox::Column::SentAt.is_null()).add(outbox::Column::Dead.eq(false))
}

/// `Ok` when the message exists (its outcome was recorded before), an error otherwise.
async fn require_existing<C: ConnectionTrait>(db: &C, id: MessageId) -> Result<(), StoreError> {
    let found = outbox::Entity::find_by_id(bytes(id.as_uuid())).one(db).await.map_err(store)?;
    if found.is_some() { Ok(()) } else { Err(StoreError::new(format!("message {id} is not in the outbox"))) }
}

async fn give_up_unreadable<C: ConnectionTrait>(db: &C, id: Vec<u8>, error: &StoreError) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Dead, Expr::val(true))
        .col_expr(outbox::Column::LastError, Expr::val(format!("the stored message cannot be read: {error}")))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(store)?;
    Ok(())
}

async fn erase_secret<C: ConnectionTrait>(db: &C, id: MessageId) -> Result<(), StoreError> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Payload, Expr::val(Option::<String>::None))
        .filter(outbox::Column::Id.eq(bytes(id.as_uuid())))
        .filter(outbox::Column::Secret.eq(true))
        .exec(db)
        .await
        .map_err(store)?;
    Ok(())
}

/// The outbox's payload column is the only place a secret is kept: it is erased
/// (`NULL`) once a secret-carrying message is sent or given up.
#[cfg(feature = "testing")]
#[async_trait]
impl guildhall_domain::testing::contract::OutboxInspection for Store {
    async fn retains_secret(&self, id: MessageId) -> Result<bool, StoreError> {
        let row = outbox::Entity::find_by_id(bytes(id.as_uuid())).one(&self.db).await.map_err(store)?;
        Ok(row.is_some_and(|row| row.secret && row.payload.is_some()))
    }
}
