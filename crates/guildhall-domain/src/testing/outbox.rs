//! The dispatcher's side of the [`MemoryStore`]'s outbox.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::error::StoreError;
use crate::ids::MessageId;
use crate::ids::OrgId;
use crate::ports::{ClaimedEmail, DeliveryFailure, DeliveryLog, Outbox, UndeliveredEmail};
use crate::query::{Page, PageRequest};

use super::store::{MemoryStore, OutboxRecord, StoreSnapshot, newest_first_page, store_error};

fn message_mut(state: &mut StoreSnapshot, id: MessageId) -> Result<&mut OutboxRecord, StoreError> {
    state
        .outbox
        .iter_mut()
        .find(|m| m.id == id)
        .ok_or_else(|| store_error(format!("message {id} is not in the outbox")))
}

/// The outbox follows the contract of [`Outbox`]: a message is claimable while it is not
/// sent, not dead, due (`next_attempt_at <= now`; new messages are due at once) and not
/// under a lease that ends after `now`. Messages are claimed oldest first (queued time,
/// then id). Sending or giving up erases the payload of a message that carries a secret.
/// Once a message is sent or given up, that outcome stands: a later `mark_sent`,
/// `mark_failed` or `release` of it changes nothing (and queues no report).
#[async_trait]
impl Outbox for MemoryStore {
    async fn claim(&self, limit: u32, now: DateTime<Utc>, lease: Duration) -> Result<Vec<ClaimedEmail>, StoreError> {
        let mut inner = self.lock()?;
        let until = now.checked_add_signed(lease).ok_or_else(|| store_error("the lease is out of range"))?;
        let mut due: Vec<&mut OutboxRecord> = inner
            .state
            .outbox
            .iter_mut()
            .filter(|m| m.sent_at.is_none() && !m.dead && m.payload.is_some())
            .filter(|m| m.next_attempt_at.is_none_or(|at| at <= now))
            .filter(|m| m.leased_until.is_none_or(|until| until <= now))
            .collect();
        due.sort_by_key(|m| (m.queued_at, m.id));
        let mut claimed = Vec::new();
        for message in due.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
            if let Some(email) = message.payload.clone() {
                message.leased_until = Some(until);
                claimed.push(ClaimedEmail { email, attempts: message.attempts });
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, id: MessageId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let message = message_mut(&mut inner.state, id)?;
        if message.is_finished() {
            // Sent or given up before (by a dispatcher whose claim came later): the first
            // outcome stands.
            return Ok(());
        }
        message.sent_at = Some(at);
        message.leased_until = None;
        message.erase_secret();
        Ok(())
    }

    async fn mark_failed(&self, id: MessageId, failure: DeliveryFailure) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let state = &mut inner.state;
        // All or nothing, as a SQL store's transaction: check before changing anything.
        if message_mut(state, id)?.is_finished() {
            // The first outcome stands, and nothing is reported.
            return Ok(());
        }
        let (error, retry_at, reports) = match failure {
            DeliveryFailure::Retry { error, at } => (error, Some(at), Vec::new()),
            DeliveryFailure::Dead { error, reports } => (error, None, reports),
        };
        if let Some(taken) = reports.iter().find(|report| state.outbox.iter().any(|m| m.id == report.id)) {
            return Err(store_error(format!("message {} is already in the outbox", taken.id)));
        }
        let message = message_mut(state, id)?;
        message.attempts = message.attempts.saturating_add(1);
        message.leased_until = None;
        message.last_error = Some(error);
        match retry_at {
            Some(at) => message.next_attempt_at = Some(at),
            None => {
                message.dead = true;
                // It will never be sent: keeping its secret would only be a risk.
                message.erase_secret();
            }
        }
        state.outbox.extend(reports.into_iter().map(OutboxRecord::queued));
        Ok(())
    }

    async fn release(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for message in inner.state.outbox.iter_mut().filter(|m| ids.contains(&m.id) && !m.is_finished()) {
            message.leased_until = None;
        }
        Ok(())
    }
}

#[async_trait]
impl DeliveryLog for MemoryStore {
    /// Newest first by message id; the cursor is the last item's id.
    async fn undelivered(&self, org: OrgId, page: PageRequest) -> Result<Page<UndeliveredEmail>, StoreError> {
        let dead = self.read(|state| {
            state
                .outbox
                .iter()
                .filter(|m| m.dead && m.org == Some(org))
                .map(|m| {
                    let item = UndeliveredEmail {
                        id: m.id,
                        to: m.to.clone(),
                        template: m.template.to_owned(),
                        queued_at: m.queued_at,
                        attempts: m.attempts,
                        last_error: m.last_error.clone(),
                    };
                    (m.id, m.queued_at, item)
                })
                .collect()
        })?;
        newest_first_page(dead, &page, |text| MessageId::parse(text).ok())
    }
}
