//! Failed sign-in counters ([`SignInAttempts`]), shared by every instance of the service
//! through the `sign_in_failures` table.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use guildhall_domain::error::StoreError;
use guildhall_domain::ports::SignInAttempts;
use guildhall_domain::throttle::ThrottlePolicy;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::convert::{corrupt, instant, nanos};
use crate::entities::sign_in_failures;
use crate::error::store;

/// The stored form of each distinct key, in the order rows are locked: the SHA-256 of its
/// text, so that no address is stored.
fn hashed(keys: &[String]) -> BTreeSet<Vec<u8>> {
    keys.iter().map(|key| Sha256::digest(key.as_bytes()).to_vec()).collect()
}

/// Checks and counts in one write transaction, so that concurrent attempts on any number
/// of instances never exceed the allowance:
///
/// * **PostgreSQL**: first a placeholder row (no failures) for every key not stored yet
///   (`INSERT ... ON CONFLICT DO NOTHING`), then `SELECT ... FOR UPDATE` of every key's
///   row, both in hash order, so that attempts sharing keys queue behind each other
///   instead of deadlocking. The decision is made on locked rows; a refused attempt rolls
///   back, placeholders included.
/// * **SQLite**: the same statements under `BEGIN IMMEDIATE`, which holds the database's
///   only write lock from the start.
///
/// `refund` and `clear` write one key per statement (no lock is held while waiting for
/// another); `forget` skips rows an attempt holds (`FOR UPDATE SKIP LOCKED` on
/// PostgreSQL): they are being counted again and are not forgotten.
#[async_trait]
impl SignInAttempts for Store {
    async fn attempt(
        &self,
        keys: &[String],
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, StoreError> {
        let keys = hashed(keys);
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        let at = nanos(now)?;
        let tx = self.begin_write().await?;
        let placeholders = keys.iter().map(|key| sign_in_failures::ActiveModel {
            key: ActiveValue::Set(key.clone()),
            failures: ActiveValue::Set(0),
            last_failure: ActiveValue::Set(at),
        });
        sign_in_failures::Entity::insert_many(placeholders)
            .on_conflict(OnConflict::column(sign_in_failures::Column::Key).do_nothing().to_owned())
            .exec_without_returning(&tx)
            .await
            .map_err(store)?;
        let rows = sign_in_failures::Entity::find()
            .filter(sign_in_failures::Column::Key.is_in(keys.iter().cloned()))
            .order_by_asc(sign_in_failures::Column::Key)
            .lock(LockType::Update)
            .all(&tx)
            .await
            .map_err(store)?;
        let mut wait = Duration::zero();
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let count = u32::try_from(row.failures).map_err(|error| corrupt("a failed sign-in count", error))?;
            let last = instant(row.last_failure);
            // A placeholder (no failures yet) makes nobody wait.
            if count > 0 {
                wait = wait.max(policy.wait(count, last, now));
            }
            counts.push((row.key, policy.count_after_failure(count, last, now)));
        }
        if wait > Duration::zero() {
            tx.rollback().await.map_err(store)?;
            return Ok(Err(wait));
        }
        for (key, count) in counts {
            sign_in_failures::Entity::update_many()
                .col_expr(sign_in_failures::Column::Failures, Expr::val(i64::from(count)))
                .col_expr(sign_in_failures::Column::LastFailure, Expr::val(at))
                .filter(sign_in_failures::Column::Key.eq(key))
                .exec(&tx)
                .await
                .map_err(store)?;
        }
        tx.commit().await.map_err(store)?;
        Ok(Ok(()))
    }

    async fn refund(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in hashed(keys) {
            sign_in_failures::Entity::update_many()
                .col_expr(sign_in_failures::Column::Failures, Expr::col(sign_in_failures::Column::Failures).sub(1))
                .filter(sign_in_failures::Column::Key.eq(key.clone()))
                .filter(sign_in_failures::Column::Failures.gt(0))
                .exec(&self.db)
                .await
                .map_err(store)?;
            sign_in_failures::Entity::delete_many()
                .filter(sign_in_failures::Column::Key.eq(key))
                .filter(sign_in_failures::Column::Failures.lte(0))
                .exec(&self.db)
                .await
                .map_err(store)?;
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let key = Sha256::digest(key.as_bytes()).to_vec();
        sign_in_failures::Entity::delete_many()
            .filter(sign_in_failures::Column::Key.eq(key))
            .exec(&self.db)
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn forget(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = nanos(older_than)?;
        let forgotten = Query::select()
            .column(sign_in_failures::Column::Key)
            .from(sign_in_failures::Entity)
            .and_where(sign_in_failures::Column::LastFailure.lt(cutoff))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let result = sign_in_failures::Entity::delete_many()
            .filter(sign_in_failures::Column::Key.in_subquery(forgotten))
            .filter(sign_in_failures::Column::LastFailure.lt(cutoff))
            .exec(&self.db)
            .await
            .map_err(store)?;
        Ok(result.rows_affected)
    }
}
