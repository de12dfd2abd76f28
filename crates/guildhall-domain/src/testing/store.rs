//! [`MemoryStore`]: every storage port in memory, behind one mutex.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::error::StoreError;
use crate::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, UserId};
use crate::invitation::Invitation;
use crate::join_request::JoinRequest;
use crate::membership::Membership;
use crate::notification::OutboundEmail;
use crate::org::{Facility, Organisation, RunRecord};
use crate::ports::{
    AuditLog, ChangeSet, CommitError, InvitationRepository, JoinRequestRepository, MembershipRepository,
    OrganisationRepository, TokenRepository, UnitOfWork, UserRepository,
};
use crate::query::{MemberCursor, MemberPage, MemberQuery, MemberSummary, Page, PageRequest};
use crate::role::Role;
use crate::token::{OneTimeToken, Session, TokenHash};
use crate::user::User;
use crate::values::{AlertKind, EmailAddress, OrgSlug, RoleKey, Topic};

/// One message in the outbox, with its delivery bookkeeping.
///
/// The payload is erased (`None`) once a message that carries a secret is sent or
/// becomes a dead letter; `to`, `template` and the rest stay for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The message id.
    pub id: MessageId,
    /// The organisation it concerns, if any.
    pub org: Option<OrgId>,
    /// The topic it was routed by, if any.
    pub topic: Option<Topic>,
    /// The recipient.
    pub to: EmailAddress,
    /// The template's name ([`Notification::template`](crate::notification::Notification::template)).
    pub template: &'static str,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// The message; `None` once its secret was erased.
    pub payload: Option<OutboundEmail>,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// When it is next due; `None` means due at once (a new message).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Until when a dispatcher holds it, if claimed.
    pub leased_until: Option<DateTime<Utc>>,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was sent, if it was.
    pub sent_at: Option<DateTime<Utc>>,
    /// Whether delivery was given up (a dead letter).
    pub dead: bool,
}

impl OutboxRecord {
    pub(super) fn queued(email: OutboundEmail) -> Self {
        Self {
            id: email.id,
            org: email.org,
            topic: email.topic.clone(),
            to: email.to.clone(),
            template: email.notification.template(),
            queued_at: email.queued_at,
            payload: Some(email),
            attempts: 0,
            next_attempt_at: None,
            leased_until: None,
            last_error: None,
            sent_at: None,
            dead: false,
        }
    }

    /// Whether it was sent or given up.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.sent_at.is_some() || self.dead
    }

    /// Drops the payload if it carries a secret.
    pub(super) fn erase_secret(&mut self) {
        if self.payload.as_ref().is_some_and(|email| email.notification.carries_secret()) {
            self.payload = None;
        }
    }
}

/// Everything a [`MemoryStore`] holds: what a SQL store's tables would hold.
///
/// Returned by [`MemoryStore::snapshot`] so that tests (property tests above all) can
/// compare whole states, and accepted by [`MemoryStore::from_snapshot`]. A snapshot built
/// by hand is not checked: keep it consistent (every membership's user and organisation
/// exist, keys match the values' ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreSnapshot {
    /// Accounts, by id.
    pub users: BTreeMap<UserId, User>,
    /// Organisations, by id.
    pub organisations: BTreeMap<OrgId, Organisation>,
    /// Custom roles, by organisation and key.
    pub roles: BTreeMap<(OrgId, RoleKey), Role>,
    /// Facilities, by id.
    pub facilities: BTreeMap<FacilityId, Facility>,
    /// Memberships, by organisation and user.
    pub memberships: BTreeMap<(OrgId, UserId), Membership>,
    /// Invitations, by id.
    pub invitations: BTreeMap<InvitationId, Invitation>,
    /// Join requests, by id.
    pub join_requests: BTreeMap<JoinRequestId, JoinRequest>,
    /// One-time tokens, by hash.
    pub tokens: BTreeMap<TokenHash, OneTimeToken>,
    /// Sessions, by token hash.
    pub sessions: BTreeMap<TokenHash, Session>,
    /// Audit entries, in commit order.
    pub audit: Vec<AuditEntry>,
    /// Run records, in commit order.
    pub runs: Vec<RunRecord>,
    /// The outbox, in commit order.
    pub outbox: Vec<OutboxRecord>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) state: StoreSnapshot,
    /// Every email ever committed, unredacted, in commit order (the test log).
    pub(super) email_log: Vec<OutboundEmail>,
    pub(super) commits: usize,
    pub(super) attempts: usize,
    pub(super) failures_to_inject: usize,
    pub(super) interleaved: Vec<ChangeSet>,
}

/// In-memory adapter of every storage port: [`UserRepository`],
/// [`OrganisationRepository`], [`MembershipRepository`], [`InvitationRepository`],
/// [`JoinRequestRepository`], [`TokenRepository`], [`AuditLog`],
/// [`Outbox`](crate::ports::Outbox) and [`UnitOfWork`].
///
/// It is the reference the SQL stores are tested against, so it enforces what their
/// schemas would: preconditions, uniqueness rules, and foreign keys (a change that refers
/// to a missing organisation or account, or updates or deletes a missing row, is a bug in
/// the caller and fails with [`CommitError::Store`]). Inserting a row whose id (or, for
/// tokens and sessions, hash) already exists is such a bug too: [`CommitError::Store`],
/// not a [`Duplicate`](crate::ports::Duplicate), because no user action can cause it.
///
/// A commit checks every precondition and applies every change to a copy of the state,
/// replacing the state only when all of it succeeded, so a failed commit writes nothing:
/// no state change, audit entry or email.
///
/// The lock is never held across an `.await`. The inspection helpers (`users()`,
/// `emails()`, ...) are for tests: they read through a poisoned lock rather than fail,
/// which is sound because a commit replaces the state in one assignment.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

pub(super) fn store_error(message: impl Into<String>) -> StoreError {
    StoreError::new(message.into())
}

/// The clamp both paginated reads use.
fn clamp_limit(limit: u32) -> usize {
    usize::try_from(limit.clamp(1, MemberQuery::MAX_LIMIT)).unwrap_or(1)
}

/// Keyset pagination over a newest-first list: items strictly older than the cursor's
/// id, `limit` of them, and the last one's id as the next cursor when more remain.
pub(super) fn newest_first_page<T: Clone, I: Ord + Copy + ToString>(
    mut items: Vec<(I, DateTime<Utc>, T)>,
    page: &PageRequest,
    parse: impl Fn(&str) -> Option<I>,
) -> Result<Page<T>, StoreError> {
    let after = match page.after.as_deref() {
        None => None,
        Some(text) => Some(parse(text).ok_or_else(|| store_error("the page cursor is not one this store issued"))?),
    };
    items.sort_by_key(|item| std::cmp::Reverse((item.0, item.1)));
    let limit = clamp_limit(page.limit);
    let mut rest = items.into_iter().filter(|(id, _, _)| after.is_none_or(|after| *id < after));
    let chosen: Vec<(I, DateTime<Utc>, T)> = rest.by_ref().take(limit).collect();
    let next = match (rest.next(), chosen.last()) {
        (Some(_), Some((id, _, _))) => Some(id.to_string()),
        _ => None,
    };
    Ok(Page { items: chosen.into_iter().map(|(_, _, item)| item).collect(), next })
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `snapshot` (not checked for consistency).
    #[must_use]
    pub fn from_snapshot(snapshot: StoreSnapshot) -> Self {
        Self { inner: Mutex::new(Inner { state: snapshot, ..Inner::default() }) }
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| store_error("the in-memory store's lock is poisoned (a thread panicked)"))
    }

    fn inspect<T>(&self, read: impl FnOnce(&Inner) -> T) -> T {
        read(&self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn read<T>(&self, read: impl FnOnce(&StoreSnapshot) -> T) -> Result<T, StoreError> {
        Ok(read(&self.lock()?.state))
    }

    // ---- fault injection -------------------------------------------------------------

    /// Makes the next commit fail with [`CommitError::Store`], writing nothing. Each call
    /// fails one more upcoming commit.
    pub fn fail_next_commit(&self) {
        self.inspect_mut(|inner| inner.failures_to_inject += 1);
    }

    /// Commits `changes` just before the next commit checks its preconditions, as if a
    /// concurrent request had written between that commit's reads and its write. Use it
    /// to test how a use case handles [`CommitError::Conflict`]. If `changes` itself
    /// fails, the next commit fails with [`CommitError::Store`].
    pub fn land_before_next_commit(&self, changes: ChangeSet) {
        self.inspect_mut(|inner| inner.interleaved.push(changes));
    }

    fn inspect_mut(&self, write: impl FnOnce(&mut Inner)) {
        write(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner));
    }

    // ---- inspection --------------------------------------------------------------------

    /// A copy of the whole state.
    #[must_use]
    pub fn snapshot(&self) -> StoreSnapshot {
        self.inspect(|inner| inner.state.clone())
    }

    /// Successful commits so far (fixtures' commits included: compare before and after).
    #[must_use]
    pub fn commit_count(&self) -> usize {
        self.inspect(|inner| inner.commits)
    }

    /// Calls to [`UnitOfWork::commit`] so far, failed ones included (a use case that
    /// decides again after a conflict commits more than once).
    #[must_use]
    pub fn commit_attempts(&self) -> usize {
        self.inspect(|inner| inner.attempts)
    }

    /// Every email committed, in commit order, **with its payload**, including those
    /// since sent (whose stored payload is erased). This is a test log kept beside the
    /// outbox so tests can follow the links in emails; the outbox itself erases secrets.
    #[must_use]
    pub fn emails(&self) -> Vec<OutboundEmail> {
        self.inspect(|inner| inner.email_log.clone())
    }

    /// The emails of [`emails`](Self::emails) addressed to `to` (ignoring letter case).
    #[must_use]
    pub fn emails_to(&self, to: &EmailAddress) -> Vec<OutboundEmail> {
        self.inspect(|inner| inner.email_log.iter().filter(|email| &email.to == to).cloned().collect())
    }

    /// Every audit entry, in commit order (organisation-scoped or not).
    #[must_use]
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.inspect(|inner| inner.state.audit.clone())
    }

    /// Every account, by id.
    #[must_use]
    pub fn users(&self) -> Vec<User> {
        self.inspect(|inner| inner.state.users.values().cloned().collect())
    }

    /// Every organisation, by id.
    #[must_use]
    pub fn organisations(&self) -> Vec<Organisation> {
        self.inspect(|inner| inner.state.organisations.values().cloned().collect())
    }

    /// The memberships of `org` (any status), by user id.
    #[must_use]
    pub fn memberships(&self, org: OrgId) -> Vec<Membership> {
        self.inspect(|inner| inner.state.memberships.values().filter(|m| m.org == org).cloned().collect())
    }

    /// Every invitation in any state, by id.
    #[must_use]
    pub fn invitations(&self) -> Vec<Invitation> {
        self.inspect(|inner| inner.state.invitations.values().cloned().collect())
    }

    /// Every join request in any state, by id.
    #[must_use]
    pub fn join_requests(&self) -> Vec<JoinRequest> {
        self.inspect(|inner| inner.state.join_requests.values().cloned().collect())
    }

    /// Every one-time token, used or not, by hash.
    #[must_use]
    pub fn one_time_tokens(&self) -> Vec<OneTimeToken> {
        self.inspect(|inner| inner.state.tokens.values().cloned().collect())
    }

    /// Every session, revoked ones included, by token hash.
    #[must_use]
    pub fn sessions(&self) -> Vec<Session> {
        self.inspect(|inner| inner.state.sessions.values().cloned().collect())
    }

    /// The whole outbox, in commit order.
    #[must_use]
    pub fn outbox(&self) -> Vec<OutboxRecord> {
        self.inspect(|inner| inner.state.outbox.clone())
    }

    /// Messages marked sent (secret-carrying payloads erased), in commit order.
    #[must_use]
    pub fn sent(&self) -> Vec<OutboxRecord> {
        self.inspect(|inner| inner.state.outbox.iter().filter(|m| m.sent_at.is_some()).cloned().collect())
    }

    /// Dead letters (secret-carrying payloads erased), in commit order.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<OutboxRecord> {
        self.inspect(|inner| inner.state.outbox.iter().filter(|m| m.dead).cloned().collect())
    }

    // ---- the unit of work ------------------------------------------------------------

    fn commit_now(&self, changes: ChangeSet) -> Result<(), CommitError> {
        let mut inner = self.lock()?;
        inner.attempts += 1;
        if inner.failures_to_inject > 0 {
            inner.failures_to_inject -= 1;
            return Err(store_error("injected failure (MemoryStore::fail_next_commit)").into());
        }
        for interleaved in std::mem::take(&mut inner.interleaved) {
            let next = super::commit::apply(&inner.state, &interleaved).map_err(|error| {
                store_error(format!("the change set given to land_before_next_commit failed: {error}"))
            })?;
            inner.state = next;
            inner.email_log.extend(interleaved.emails);
            inner.commits += 1;
        }
        let next = super::commit::apply(&inner.state, &changes)?;
        inner.state = next;
        inner.email_log.extend(changes.emails);
        inner.commits += 1;
        Ok(())
    }

    // ---- reads ---------------------------------------------------------------------------

    fn search(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        self.read(|state| {
            let mut rows: Vec<(MemberCursor, MemberSummary)> = state
                .memberships
                .values()
                .filter(|m| m.org == query.org)
                .filter(|m| query.role.as_ref().is_none_or(|role| &m.role == role))
                .filter(|m| query.facility.is_none_or(|facility| m.facilities.contains(&facility)))
                .filter(|m| query.state.is_none_or(|wanted| m.state(query.as_of) == wanted))
                .filter_map(|m| state.users.get(&m.user).map(|user| (m, user)))
                .filter(|(_, user)| query.matches_text(&user.name, &user.email))
                .map(|(m, user)| {
                    let cursor = MemberCursor { sort_key: user.name.sort_key(), user: user.id };
                    let summary =
                        MemberSummary { membership: m.clone(), name: user.name.clone(), email: user.email.clone() };
                    (cursor, summary)
                })
                .filter(|(cursor, _)| query.after.as_ref().is_none_or(|after| cursor > after))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let limit = clamp_limit(query.limit);
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = if more { rows.last().map(|(cursor, _)| cursor.clone()) } else { None };
            MemberPage { items: rows.into_iter().map(|(_, summary)| summary).collect(), next }
        })
    }
}

#[async_trait]
impl UnitOfWork for MemoryStore {
    async fn commit(&self, changes: ChangeSet) -> Result<(), CommitError> {
        self.commit_now(changes)
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.read(|state| state.users.get(&id).cloned())
    }

    async fn user_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError> {
        self.read(|state| state.users.values().find(|user| &user.email == email).cloned())
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.read(|state| ids.iter().filter_map(|id| state.users.get(id)).cloned().collect())
    }
}

#[async_trait]
impl OrganisationRepository for MemoryStore {
    async fn organisation(&self, id: OrgId) -> Result<Option<Organisation>, StoreError> {
        self.read(|state| state.organisations.get(&id).cloned())
    }

    async fn organisation_by_slug(&self, slug: &OrgSlug) -> Result<Option<Organisation>, StoreError> {
        self.read(|state| state.organisations.values().find(|org| &org.slug == slug).cloned())
    }

    /// By key.
    async fn custom_roles(&self, org: OrgId) -> Result<Vec<Role>, StoreError> {
        self.read(|state| state.roles.iter().filter(|((o, _), _)| *o == org).map(|(_, role)| role.clone()).collect())
    }

    /// By lower-cased name, then id.
    async fn facilities(&self, org: OrgId) -> Result<Vec<Facility>, StoreError> {
        self.read(|state| {
            let mut facilities: Vec<Facility> = state.facilities.values().filter(|f| f.org == org).cloned().collect();
            facilities.sort_by_cached_key(|f| (f.name.as_str().to_lowercase(), f.id));
            facilities
        })
    }

    /// Newest first by id (then start time); the cursor is the last item's id.
    async fn runs(&self, org: OrgId, page: PageRequest) -> Result<Page<RunRecord>, StoreError> {
        let runs = self.read(|state| {
            state.runs.iter().filter(|run| run.org == org).map(|run| (run.id, run.started_at, run.clone())).collect()
        })?;
        newest_first_page(runs, &page, |text| RunId::parse(text).ok())
    }
}

#[async_trait]
impl MembershipRepository for MemoryStore {
    async fn membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
        self.read(|state| state.memberships.get(&(org, user)).cloned())
    }

    /// By user id.
    async fn memberships_with_roles(&self, org: OrgId, roles: &[RoleKey]) -> Result<Vec<Membership>, StoreError> {
        self.read(|state| {
            state.memberships.values().filter(|m| m.org == org && roles.contains(&m.role)).cloned().collect()
        })
    }

    async fn memberships_with_alert(&self, org: OrgId, alert: &AlertKind) -> Result<Vec<Membership>, StoreError> {
        self.read(|state| {
            state.memberships.values().filter(|m| m.org == org && m.alerts.contains(alert)).cloned().collect()
        })
    }

    /// By organisation id.
    async fn memberships_of_user(&self, user: UserId) -> Result<Vec<Membership>, StoreError> {
        self.read(|state| state.memberships.values().filter(|m| m.user == user).cloned().collect())
    }

    async fn search_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        self.search(query)
    }
}

/// Newest first: by creation time, then id, descending.
fn newest_first<T>(items: &mut [T], key: impl Fn(&T) -> (DateTime<Utc>, uuid::Uuid)) {
    items.sort_by_key(|item| std::cmp::Reverse(key(item)));
}

#[async_trait]
impl InvitationRepository for MemoryStore {
    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        self.read(|state| state.invitations.get(&id).filter(|invitation| invitation.org == org).cloned())
    }

    /// In any state.
    async fn invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        self.read(|state| state.invitations.values().find(|invitation| &invitation.token_hash == hash).cloned())
    }

    async fn open_invitations(&self, org: OrgId) -> Result<Vec<Invitation>, StoreError> {
        self.read(|state| {
            let mut open: Vec<Invitation> =
                state.invitations.values().filter(|i| i.org == org && i.is_open()).cloned().collect();
            newest_first(&mut open, |i| (i.created_at, i.id.as_uuid()));
            open
        })
    }

    /// Newest first.
    async fn open_invitations_for(&self, email: &EmailAddress) -> Result<Vec<Invitation>, StoreError> {
        self.read(|state| {
            let mut open: Vec<Invitation> =
                state.invitations.values().filter(|i| &i.email == email && i.is_open()).cloned().collect();
            newest_first(&mut open, |i| (i.created_at, i.id.as_uuid()));
            open
        })
    }
}

#[async_trait]
impl JoinRequestRepository for MemoryStore {
    async fn join_request(&self, org: OrgId, id: JoinRequestId) -> Result<Option<JoinRequest>, StoreError> {
        self.read(|state| state.join_requests.get(&id).filter(|request| request.org == org).cloned())
    }

    async fn pending_join_requests(&self, org: OrgId) -> Result<Vec<JoinRequest>, StoreError> {
        self.read(|state| {
            let mut pending: Vec<JoinRequest> =
                state.join_requests.values().filter(|r| r.org == org && r.is_pending()).cloned().collect();
            pending.sort_by_key(|r| (r.created_at, r.id));
            pending
        })
    }

    async fn join_requests_of_user(&self, user: UserId) -> Result<Vec<JoinRequest>, StoreError> {
        self.read(|state| {
            let mut requests: Vec<JoinRequest> =
                state.join_requests.values().filter(|r| r.user == user).cloned().collect();
            newest_first(&mut requests, |r| (r.created_at, r.id.as_uuid()));
            requests
        })
    }
}

#[async_trait]
impl TokenRepository for MemoryStore {
    async fn one_time_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError> {
        self.read(|state| state.tokens.get(hash).cloned())
    }

    async fn session(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        self.read(|state| state.sessions.get(hash).cloned())
    }

    /// Expired but unrevoked sessions included.
    async fn sessions_of_user(&self, user: UserId) -> Result<Vec<Session>, StoreError> {
        self.read(|state| {
            let mut sessions: Vec<Session> =
                state.sessions.values().filter(|s| s.user == user && s.revoked_at.is_none()).cloned().collect();
            newest_first(&mut sessions, |s| (s.created_at, s.id.as_uuid()));
            sessions
        })
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    /// Newest first by id (then time); the cursor is the last item's id.
    async fn audit_entries(&self, org: OrgId, page: PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let entries = self.read(|state| {
            state
                .audit
                .iter()
                .filter(|entry| entry.org == Some(org))
                .map(|entry| (entry.id, entry.at, entry.clone()))
                .collect()
        })?;
        newest_first_page(entries, &page, |text| AuditId::parse(text).ok())
    }
}
