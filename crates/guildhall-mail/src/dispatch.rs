//! The outbox dispatcher: claims due messages, composes and sends them, and records what
//! happened.
//!
//! * **Sent**: recorded with [`Outbox::mark_sent`], which also erases a secret the
//!   message carried.
//! * **Transient failure** (server unreachable, timeout, 4xx): retried after an
//!   exponential backoff with jitter (`first_retry · 2^attempts`, at most `max_retry`,
//!   then a random point in its second half), until `max_attempts` attempts were made.
//! * **Permanent failure** (5xx, a message that cannot be composed) or too many attempts:
//!   the message becomes a dead letter, listed to the organisation's administrators
//!   ([`DeliveryLog`](guildhall_domain::ports::DeliveryLog)), and a
//!   [`DeliveryFailed`](guildhall_domain::notification::Notification::DeliveryFailed)
//!   report to each of the organisation's failed-messaging addresses is queued in the
//!   same write ([`OutboundEmail::failure_reports`]).
//!
//! Several dispatchers (one per app instance) share one outbox safely: a claim leases the
//! messages it takes (PostgreSQL claims with `FOR UPDATE SKIP LOCKED`), so two dispatchers
//! never hold the same message. The lease must outlast a batch's sending (`lease` ≫
//! SMTP timeout × batch size ÷ concurrency): a message whose lease ran out while it was
//! still being sent can be claimed and sent again. Delivery is therefore at least once;
//! the stable `Message-ID` ([`Composer::message_id`]) lets a receiver spot the rare
//! duplicate.
//!
//! A worker starts a claimed message only while a tenth of the lease is left; the rest
//! of a batch that took that long is released. Each send is bounded by the transport's
//! timeout, so a stalled server cannot hold a claim past its lease.
//!
//! On shutdown ([`Dispatcher::run`]'s stop signal) a dispatcher claims nothing more,
//! lets the messages it is sending finish (each bounded by the transport's timeout) and
//! releases the claimed messages it has not started, so another instance can send them
//! at once instead of after the lease.

use std::collections::VecDeque;
use std::fmt;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use guildhall_domain::error::StoreError;
use guildhall_domain::ids::MessageId;
use guildhall_domain::notification::OutboundEmail;
use guildhall_domain::org::NotificationRouting;
use guildhall_domain::ports::{ClaimedEmail, Clock, DeliveryFailure, IdGenerator, OrganisationRepository, Outbox};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::compose::Composer;
use crate::transport::{SendError, Transport};

/// How the dispatcher claims, paces and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    /// Messages claimed at once.
    pub batch_size: u32,
    /// How long a claim holds its messages.
    pub lease: Duration,
    /// Messages of a batch sent at the same time.
    pub concurrency: usize,
    /// Attempts before a message that keeps failing transiently is given up.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with each attempt.
    pub first_retry: Duration,
    /// The longest delay between two attempts.
    pub max_retry: Duration,
    /// How long to wait before looking again when the outbox had nothing due (or could
    /// not be read).
    pub idle_poll: StdDuration,
}

impl Default for DispatchSettings {
    /// 32 messages a batch, 4 at a time, a 10-minute lease, 12 attempts spread over 6 to
    /// 12 hours (30 s, 1 min, 2 min, ... at most 4 h apart, each jittered), a 1 s poll.
    fn default() -> Self {
        Self {
            batch_size: 32,
            lease: Duration::minutes(10),
            concurrency: 4,
            max_attempts: 12,
            first_retry: Duration::seconds(30),
            max_retry: Duration::hours(4),
            idle_poll: StdDuration::from_secs(1),
        }
    }
}

/// Dispatch settings that cannot work, with the setting named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct InvalidDispatchSettings {
    /// The setting (`batch_size`, `lease`, ...).
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl DispatchSettings {
    /// The delay before the attempt after `attempts` failed ones, before jitter: the
    /// first retry's delay doubled per earlier failure, at most `max_retry`.
    #[must_use]
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled =
            2_i32.checked_pow(attempts.saturating_sub(1)).and_then(|factor| self.first_retry.checked_mul(factor));
        doubled.map_or(self.max_retry, |delay| delay.min(self.max_retry))
    }

    /// Checks that the settings can work: at least one message a batch and one at a time,
    /// at least one attempt, positive delays, and a lease of at least a minute.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), InvalidDispatchSettings> {
        let invalid = |setting, problem| Err(InvalidDispatchSettings { setting, problem });
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1");
        }
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.lease < Duration::minutes(1) {
            return invalid("lease", "must be at least one minute, far longer than sending a batch takes");
        }
        if self.first_retry <= Duration::zero() {
            return invalid("first_retry", "must be positive");
        }
        if self.max_retry < self.first_retry {
            return invalid("max_retry", "must be at least first_retry");
        }
        if self.idle_poll.is_zero() {
            return invalid("idle_poll", "must be positive");
        }
        Ok(())
    }
}

/// What became of the messages a dispatcher claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DispatchReport {
    /// Messages claimed.
    pub claimed: usize,
    /// Sent and recorded.
    pub sent: usize,
    /// Failed for now, due again later.
    pub retried: usize,
    /// Given up (dead letters).
    pub dead: usize,
    /// Given back unsent on shutdown.
    pub released: usize,
    /// Outcomes that could not be recorded (the store failed): those messages are claimed
    /// again once their lease ends.
    pub unrecorded: usize,
}

impl AddAssign for DispatchReport {
    fn add_assign(&mut self, other: Self) {
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.retried += other.retried;
        self.dead += other.dead;
        self.released += other.released;
        self.unrecorded += other.unrecorded;
    }
}

/// Sends what the outbox holds. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Arc<dyn Outbox>,
    organisations: Arc<dyn OrganisationRepository>,
    transport: Arc<dyn Transport>,
    composer: Composer,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: DispatchSettings,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("transport", &self.inner.transport)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The ports a dispatcher works with.
#[derive(Clone)]
pub struct DispatchPorts {
    /// The outbox to claim from.
    pub outbox: Arc<dyn Outbox>,
    /// Organisations, for the failed-messaging addresses of a dead letter's organisation.
    pub organisations: Arc<dyn OrganisationRepository>,
    /// Where messages go.
    pub transport: Arc<dyn Transport>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Ids for failure reports.
    pub ids: Arc<dyn IdGenerator>,
}

impl fmt::Debug for DispatchPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchPorts").field("transport", &self.transport).finish_non_exhaustive()
    }
}

enum Fate {
    Sent,
    Retried,
    Dead,
}

impl Dispatcher {
    /// A dispatcher over `ports`, composing with `composer`.
    ///
    /// # Errors
    /// [`InvalidDispatchSettings`] when the settings cannot work
    /// ([`DispatchSettings::validate`]).
    pub fn new(
        ports: DispatchPorts,
        composer: Composer,
        settings: DispatchSettings,
    ) -> Result<Self, InvalidDispatchSettings> {
        settings.validate()?;
        let DispatchPorts { outbox, organisations, transport, clock, ids } = ports;
        Ok(Self { inner: Arc::new(Inner { outbox, organisations, transport, composer, clock, ids, settings }) })
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &DispatchSettings {
        &self.inner.settings
    }

    /// Claims one batch and delivers all of it.
    ///
    /// # Errors
    /// [`StoreError`] when the claim fails (nothing was claimed).
    pub async fn dispatch_once(&self) -> Result<DispatchReport, StoreError> {
        let (_keep, stop) = watch::channel(false);
        self.dispatch_batch(&stop).await
    }

    /// Claims one batch and delivers it, `concurrency` messages at a time, until `stop`
    /// turns true: then the messages being sent finish and the others are released.
    ///
    /// # Errors
    /// [`StoreError`] when the claim fails (nothing was claimed).
    pub async fn dispatch_batch(&self, stop: &watch::Receiver<bool>) -> Result<DispatchReport, StoreError> {
        let inner = &self.inner;
        let claimed_at = inner.clock.now();
        let claimed = inner.outbox.claim(inner.settings.batch_size, claimed_at, inner.settings.lease).await?;
        // A message is started only while a tenth of the lease is left: one started later
        // could still be sending when the lease ends and another instance claims it.
        let start_before = claimed_at + inner.settings.lease - inner.settings.lease / 10;
        let mut report = DispatchReport { claimed: claimed.len(), ..DispatchReport::default() };
        if claimed.is_empty() {
            return Ok(report);
        }
        let queue = Arc::new(Mutex::new(VecDeque::from(claimed)));
        let mut workers = JoinSet::new();
        for _ in 0..inner.settings.concurrency.max(1) {
            let (inner, queue, stop) = (self.inner.clone(), queue.clone(), stop.clone());
            workers.spawn(async move {
                let mut report = DispatchReport::default();
                while !*stop.borrow() && inner.clock.now() < start_before {
                    let Some(next) = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front() else { break };
                    match inner.deliver(next).await {
                        Ok(Fate::Sent) => report.sent += 1,
                        Ok(Fate::Retried) => report.retried += 1,
                        Ok(Fate::Dead) => report.dead += 1,
                        Err(error) => {
                            tracing::error!(%error, "the outcome of a delivery could not be recorded");
                            report.unrecorded += 1;
                        }
                    }
                }
                report
            });
        }
        while let Some(done) = workers.join_next().await {
            match done {
                Ok(part) => report += part,
                Err(error) => tracing::error!(%error, "a delivery worker failed"),
            }
        }
        let left: Vec<MessageId> =
            queue.lock().unwrap_or_else(PoisonError::into_inner).drain(..).map(|claimed| claimed.email.id).collect();
        if !left.is_empty() {
            match inner.outbox.release(&left).await {
                Ok(()) => report.released += left.len(),
                Err(error) => {
                    tracing::error!(%error, count = left.len(), "claimed messages could not be released");
                    report.unrecorded += left.len();
                }
            }
        }
        Ok(report)
    }

    /// Delivers until `stop` turns true (or its sender is dropped), then finishes what it
    /// is sending, releases the rest of its claim and returns the totals.
    ///
    /// Signal `stop` rather than dropping this future: a dropped future releases nothing,
    /// and its claim is sent by another dispatcher only when the lease ends.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> DispatchReport {
        let mut total = DispatchReport::default();
        loop {
            if *stop.borrow() {
                break;
            }
            let full = match self.dispatch_batch(&stop).await {
                Ok(report) => {
                    total += report;
                    report.claimed > 0
                        && report.claimed == usize::try_from(self.inner.settings.batch_size).unwrap_or(usize::MAX)
                }
                Err(error) => {
                    tracing::error!(%error, "the outbox could not be read");
                    false
                }
            };
            if !full {
                tokio::select! {
                    () = tokio::time::sleep(self.inner.settings.idle_poll) => {}
                    changed = stop.changed() => if changed.is_err() { break },
                }
            }
        }
        tracing::info!(?total, "the outbox dispatcher stopped");
        total
    }
}

impl Inner {
    async fn deliver(&self, claimed: ClaimedEmail) -> Result<Fate, StoreError> {
        let ClaimedEmail { email, attempts } = claimed;
        let template = email.notification.template();
        let now = self.clock.now();
        let outcome = match self.composer.compose(&email, now) {
            Ok(message) => self.transport.send(&message).await,
            Err(error) => Err(SendError::Permanent(error.to_string())),
        };
        let attempt = attempts.saturating_add(1);
        match outcome {
            Ok(()) => {
                self.outbox.mark_sent(email.id, self.clock.now()).await?;
                tracing::info!(message = %email.id, template, attempt, "sent");
                Ok(Fate::Sent)
            }
            Err(SendError::Transient(error)) if attempt < self.settings.max_attempts => {
                let at = self.clock.now() + jitter(self.settings.backoff(attempt));
                tracing::warn!(message = %email.id, template, attempt, %error, retry_at = %at, "not delivered; will retry");
                self.outbox.mark_failed(email.id, DeliveryFailure::Retry { error, at }).await?;
                Ok(Fate::Retried)
            }
            Err(error) => {
                let error = match error {
                    SendError::Transient(error) => format!("{error} (gave up after {attempt} attempts)"),
                    SendError::Permanent(error) => error,
                };
                tracing::error!(message = %email.id, template, attempt, %error, "not delivered; given up");
                let reports = self.failure_reports(&email, &error, self.clock.now()).await?;
                self.outbox.mark_failed(email.id, DeliveryFailure::Dead { error, reports }).await?;
                Ok(Fate::Dead)
            }
        }
    }

    async fn failure_reports(
        &self,
        email: &OutboundEmail,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboundEmail>, StoreError> {
        let routing = match email.org {
            Some(org) => self.organisations.organisation(org).await?.map(|org| org.settings.routing),
            None => None,
        };
        let routing = routing.unwrap_or_else(NotificationRouting::default);
        Ok(email.failure_reports(&routing, error, now, || MessageId::from_uuid(self.ids.generate())))
    }
}

/// A random delay in the second half of `delay`, so that messages that failed together
/// (a server outage) do not all come back at the same instant.
fn jitter(delay: Duration) -> Duration {
    let millis = delay.num_milliseconds().max(0);
    let half = millis / 2;
    Duration::milliseconds(half + fastrand::i64(0..=millis - half))
}
