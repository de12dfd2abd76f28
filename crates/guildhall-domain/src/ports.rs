//! Ports: the traits through which the domain reaches the world.
//!
//! Reads go through one small repository trait per aggregate. Every write goes through
//! [`UnitOfWork::commit`]: a use case reads, decides, and hands the store one
//! [`ChangeSet`] (state changes, the audit entry and the outbound emails together) with
//! the [`Precondition`]s its decision relied on. The store applies all of it atomically or
//! none of it. See `docs/adr/0001-unit-of-work.md`.
//!
//! Time, randomness, identifiers and password hashing are ports too, so the domain is
//! deterministic under test. [`SignInAttempts`] holds the failed sign-in counters that
//! every instance of the service shares.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::error::StoreError;
use crate::ids::{FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, UserId};
use crate::invitation::Invitation;
use crate::join_request::JoinRequest;
use crate::membership::Membership;
use crate::notification::OutboundEmail;
use crate::org::{Facility, Organisation, RunRecord};
use crate::password::Password;
use crate::query::{MemberPage, MemberQuery, Page, PageRequest};
use crate::role::Role;
use crate::throttle::ThrottlePolicy;
use crate::token::{OneTimeToken, Secret, Session, TokenHash};
use crate::user::{PasswordHash, User};
use crate::values::{AlertKind, EmailAddress, OrgSlug, RoleKey};

/// Reads user accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// The account with this id.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails; a missing account is `Ok(None)`.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The accounts with these ids (missing ones are left out), in any order.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;

    /// The account with this address, ignoring letter case.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn user_by_email(&self, email: &EmailAddress) -> Result<Option<User>, StoreError>;
}

/// Reads organisations and what belongs to them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganisationRepository: Send + Sync {
    /// The organisation with this id.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn organisation(&self, id: OrgId) -> Result<Option<Organisation>, StoreError>;

    /// The organisation with this slug.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn organisation_by_slug(&self, slug: &OrgSlug) -> Result<Option<Organisation>, StoreError>;

    /// The organisation's custom roles (built-ins are not stored).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn custom_roles(&self, org: OrgId) -> Result<Vec<Role>, StoreError>;

    /// The organisation's facilities, by name.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn facilities(&self, org: OrgId) -> Result<Vec<Facility>, StoreError>;

    /// The organisation's run history, newest first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails or the cursor is not one this
    /// store issued.
    async fn runs(&self, org: OrgId, page: PageRequest) -> Result<Page<RunRecord>, StoreError>;
}

/// Reads memberships.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MembershipRepository: Send + Sync {
    /// The membership of `user` in `org`.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError>;

    /// Every membership of `org` whose role is one of `roles` (any status).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn memberships_with_roles(&self, org: OrgId, roles: &[RoleKey]) -> Result<Vec<Membership>, StoreError>;

    /// Every membership of `org` that opted into `alert` (any status; callers filter).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn memberships_with_alert(&self, org: OrgId, alert: &AlertKind) -> Result<Vec<Membership>, StoreError>;

    /// Every membership of `user`, in any organisation (the linked-accounts view).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn memberships_of_user(&self, user: UserId) -> Result<Vec<Membership>, StoreError>;

    /// One page of an organisation's members, ordered by
    /// [`PersonName::sort_key`](crate::values::PersonName::sort_key) then user id, after
    /// the query's cursor (keyset pagination).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn search_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError>;
}

/// Reads invitations.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InvitationRepository: Send + Sync {
    /// The invitation with this id in `org`.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError>;

    /// The invitation whose current token has this hash.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError>;

    /// The organisation's invitations stored as pending (including expired ones), newest
    /// first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn open_invitations(&self, org: OrgId) -> Result<Vec<Invitation>, StoreError>;

    /// Invitations stored as pending for this address, in every organisation.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn open_invitations_for(&self, email: &EmailAddress) -> Result<Vec<Invitation>, StoreError>;
}

/// Reads join requests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait JoinRequestRepository: Send + Sync {
    /// The request with this id in `org`.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn join_request(&self, org: OrgId, id: JoinRequestId) -> Result<Option<JoinRequest>, StoreError>;

    /// The organisation's pending requests, oldest first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn pending_join_requests(&self, org: OrgId) -> Result<Vec<JoinRequest>, StoreError>;

    /// Every request `user` made, newest first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn join_requests_of_user(&self, user: UserId) -> Result<Vec<JoinRequest>, StoreError>;
}

/// Reads one-time tokens and sessions by hash.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// The one-time token with this hash.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn one_time_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError>;

    /// The session with this token hash.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn session(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError>;

    /// The user's sessions that are not revoked, newest first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn sessions_of_user(&self, user: UserId) -> Result<Vec<Session>, StoreError>;
}

/// Reads the audit log. (Entries are written through [`ChangeSet::audit`].)
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// One page of the organisation's audit entries, newest first.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails or the cursor is not one this
    /// store issued.
    async fn audit_entries(&self, org: OrgId, page: PageRequest) -> Result<Page<AuditEntry>, StoreError>;
}

/// An outbox message claimed by a dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEmail {
    /// The message.
    pub email: OutboundEmail,
    /// Delivery attempts before this one.
    pub attempts: u32,
}

/// What happened to a delivery attempt that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// Try again at this time.
    Retry {
        /// The error, for operators.
        error: String,
        /// When to retry.
        at: DateTime<Utc>,
    },
    /// Give up: the message becomes a dead letter.
    Dead {
        /// The error, for operators and the failure report.
        error: String,
        /// Messages to queue in the same write, so that giving up and reporting it happen
        /// together or not at all: the reports to the organisation's failed-messaging
        /// addresses ([`OutboundEmail::failure_reports`]).
        reports: Vec<OutboundEmail>,
    },
}

/// A message that could not be delivered, as its organisation's administrators see it.
/// It holds no payload: a dead letter's secret is erased.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct UndeliveredEmail {
    /// The message.
    pub id: MessageId,
    /// To whom it was addressed.
    pub to: EmailAddress,
    /// What it was ([`Notification::template`](crate::notification::Notification::template)).
    pub template: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The error that made the dispatcher give up.
    pub last_error: Option<String>,
}

/// Reads what could not be delivered. (Messages become dead letters through
/// [`Outbox::mark_failed`].)
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// One page of the organisation's dead letters, newest first (by message id).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails or the cursor is not one this
    /// store issued.
    async fn undelivered(&self, org: OrgId, page: PageRequest) -> Result<Page<UndeliveredEmail>, StoreError>;
}

/// The dispatcher's side of the transactional outbox. (Messages are queued through
/// [`ChangeSet::send`].)
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` messages due at `now`, oldest first, for `lease`: no other
    /// dispatcher can claim them until the lease ends.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn claim(&self, limit: u32, now: DateTime<Utc>, lease: Duration) -> Result<Vec<ClaimedEmail>, StoreError>;

    /// Marks a claimed message sent and erases any secret it carried. A message already
    /// sent or given up keeps its first outcome (this returns `Ok` and changes nothing).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn mark_sent(&self, id: MessageId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records a failed attempt: retry later, or give up (dead letter) and queue the
    /// reports of [`DeliveryFailure::Dead`] in the same write. A message already sent or
    /// given up keeps its first outcome (this returns `Ok`, changes nothing and queues
    /// no report).
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn mark_failed(&self, id: MessageId, failure: DeliveryFailure) -> Result<(), StoreError>;

    /// Gives claimed messages back unsent (graceful shutdown); sent and given-up messages
    /// are left as they are.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn release(&self, ids: &[MessageId]) -> Result<(), StoreError>;
}

/// Counts failed sign-ins per key (an account, a client address), for throttling
/// ([`crate::throttle`]). Every instance of the service MUST see the same counts: behind a
/// load balancer, an attacker spreading guesses over the instances must get no more than
/// one allowance. The SQL store implements it in its database; `guildhall-http`'s
/// `InProcessAttempts` keeps the counts in one process's memory, for embedders with no
/// database and a single process.
///
/// Only what a key is counted under matters to an implementation: it may store a hash of
/// the key rather than the text (which holds an address or an IP address). Times are
/// parameters; an implementation reads no clock.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SignInAttempts: Send + Sync {
    /// Charges one attempt under every key at `now`, if the policy allows it.
    ///
    /// If any key must still wait ([`ThrottlePolicy::wait`] of its count and last failure
    /// is above zero), returns `Ok(Err(wait))` with the longest wait and counts nothing
    /// under any key. Otherwise counts one failure under each distinct key (a key named
    /// twice counts once), as [`ThrottlePolicy::count_after_failure`] says (a forgotten
    /// key starts again from zero), sets its last failure to `now`, and returns
    /// `Ok(Ok(()))`. No keys: `Ok(Ok(()))`, nothing counted.
    ///
    /// The attempt is counted before the password is checked, so that a burst of
    /// concurrent guesses cannot all pass before the first is counted; a caller gives it
    /// back with [`Self::refund`] when it turns out not to be a wrong guess.
    ///
    /// Implementations MUST check and count atomically, across every process that shares
    /// the counts: concurrent callers can never together exceed the allowance (of 40
    /// concurrent attempts under one fresh key with 10 free failures, exactly 10 are
    /// allowed), and a refused attempt MUST leave every key as it was.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails; nothing is counted then.
    async fn attempt(
        &self,
        keys: &[String],
        policy: &ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, StoreError>;

    /// Gives back one attempt under each distinct key (one that turned out not to be a
    /// wrong guess): decrements its count, deleting a key that reaches zero. Unknown keys
    /// are left alone. The last failure's time is kept.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn refund(&self, keys: &[String]) -> Result<(), StoreError>;

    /// Deletes `key` (a successful sign-in clears its account's count). An unknown key is
    /// no error.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn clear(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes every key whose last failure is before `older_than` (callers pass
    /// `now - forget_after`: such keys no longer count) and returns how many it deleted.
    /// Implementations MUST NOT delete a key whose last failure is at or after
    /// `older_than`, and MAY leave out keys another caller is counting at that moment.
    ///
    /// # Errors
    /// MUST return `StoreError` only when storage fails.
    async fn forget(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// A condition a commit relies on; if any no longer holds, nothing is written and
/// [`CommitError::Conflict`] is returned.
///
/// Stores MUST check preconditions under locks that make them hold until the commit ends,
/// including the check-only ones (`OrgUnchanged`, `UserUnchanged`, `RoleUnheld`): lock the
/// organisation and account rows they name (`FOR UPDATE` on PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` serialises writers). `docs/adr/0001-unit-of-work.md` gives the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The organisation's version is still `version`; the commit increments it. Every
    /// change made under an administrator's authority carries this, so two changes
    /// decided on the same state cannot both land (two administrators demoting each
    /// other leave one).
    OrgVersion {
        /// The organisation.
        org: OrgId,
        /// The version the decision read.
        version: u64,
    },
    /// The organisation's version is still `version`; the commit leaves it as it is.
    /// Self-service changes that cannot weaken an invariant (accepting an invitation)
    /// carry this: they conflict with administrators' changes but not with each other.
    OrgUnchanged {
        /// The organisation.
        org: OrgId,
        /// The version the decision read.
        version: u64,
    },
    /// The account's version is still `version`; the commit increments it.
    UserVersion {
        /// The account.
        user: UserId,
        /// The version the decision read.
        version: u64,
    },
    /// The account's version is still `version`; the commit leaves it as it is. A
    /// sign-in carries this so that a session opened with a password cannot outlive a
    /// password change or reset that committed while it was being checked.
    UserUnchanged {
        /// The account.
        user: UserId,
        /// The version the decision read.
        version: u64,
    },
    /// No membership of the organisation has this role (deleting a role that had no
    /// holders when the decision was made, while an invitation could be accepted).
    RoleUnheld {
        /// The organisation.
        org: OrgId,
        /// The role.
        role: RoleKey,
    },
    /// The invitation is still stored as pending with this token hash.
    InvitationPending {
        /// The organisation.
        org: OrgId,
        /// The invitation.
        id: InvitationId,
        /// The token hash the decision read.
        token_hash: TokenHash,
    },
    /// The organisation has no invitation of this address stored as pending that expires
    /// after `at`. Inviting carries this instead of bumping the organisation's version, so
    /// that invitations of different addresses do not conflict with each other while two
    /// invitations of one address still cannot both land. A store MUST check it so that
    /// two concurrent commits carrying it for the same organisation and address cannot
    /// both succeed (SQLite: its write lock; PostgreSQL: a transaction-scoped lock on the
    /// pair).
    NoPendingInvitation {
        /// The organisation.
        org: OrgId,
        /// The invited address.
        email: EmailAddress,
        /// When the decision was made: invitations expiring by then do not count.
        at: DateTime<Utc>,
    },
    /// The join request is still pending.
    JoinRequestPending {
        /// The organisation.
        org: OrgId,
        /// The request.
        id: JoinRequestId,
    },
    /// The one-time token has not been used.
    TokenUnused {
        /// Its hash.
        hash: TokenHash,
    },
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per request; boxing would only add noise
pub enum Change {
    /// Create an account. MUST fail with [`Duplicate::Email`] if the address is taken.
    InsertUser(User),
    /// Replace an account (its `version` is set by [`Precondition::UserVersion`]).
    UpdateUser(User),
    /// Create an organisation. MUST fail with [`Duplicate::Slug`] if the slug is taken.
    InsertOrganisation(Organisation),
    /// Replace an organisation's slug, name and settings. MUST fail with
    /// [`Duplicate::Slug`] if the new slug is taken.
    UpdateOrganisation(Organisation),
    /// Create or replace a custom role.
    PutRole {
        /// The organisation.
        org: OrgId,
        /// The role.
        role: Role,
    },
    /// Delete a custom role (no membership may still have it).
    DeleteRole {
        /// The organisation.
        org: OrgId,
        /// The role.
        key: RoleKey,
    },
    /// Create a facility. MUST fail with [`Duplicate::FacilityName`] on a name clash.
    InsertFacility(Facility),
    /// Rename a facility. MUST fail with [`Duplicate::FacilityName`] on a name clash.
    UpdateFacility(Facility),
    /// Delete a facility and remove it from every membership.
    DeleteFacility {
        /// The organisation.
        org: OrgId,
        /// The facility.
        id: FacilityId,
    },
    /// Create a membership. MUST fail with [`Duplicate::Membership`] if one exists.
    InsertMembership(Membership),
    /// Replace a membership.
    UpdateMembership(Membership),
    /// Move every member of role `from` to role `to` (deleting a role in use).
    ReassignRole {
        /// The organisation.
        org: OrgId,
        /// The old role.
        from: RoleKey,
        /// The replacement.
        to: RoleKey,
    },
    /// Delete a membership.
    DeleteMembership {
        /// The organisation.
        org: OrgId,
        /// The member.
        user: UserId,
    },
    /// Create an invitation.
    InsertInvitation(Invitation),
    /// Replace an invitation.
    UpdateInvitation(Invitation),
    /// Create a join request. MUST fail with [`Duplicate::PendingJoinRequest`] if a
    /// pending one exists for the same (org, user).
    InsertJoinRequest(JoinRequest),
    /// Replace a join request.
    UpdateJoinRequest(JoinRequest),
    /// Store a one-time token.
    InsertToken(OneTimeToken),
    /// Mark a one-time token used.
    ConsumeToken {
        /// Its hash.
        hash: TokenHash,
        /// When.
        at: DateTime<Utc>,
    },
    /// Mark every unused token of this user with the same purpose kind used (a new reset
    /// link invalidates older ones).
    ExpireTokens {
        /// The account.
        user: UserId,
        /// `true` for password-reset tokens, `false` for email-verification tokens.
        reset: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Store a session.
    InsertSession(Session),
    /// Record that a session was used (sliding idle expiry).
    TouchSession {
        /// Its token hash.
        hash: TokenHash,
        /// When.
        at: DateTime<Utc>,
    },
    /// Lift the password-change restriction from a session.
    UnrestrictSession {
        /// Its token hash.
        hash: TokenHash,
    },
    /// Revoke one session.
    RevokeSession {
        /// Its token hash.
        hash: TokenHash,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revoke every session of a user, optionally keeping one.
    RevokeSessionsOf {
        /// The account.
        user: UserId,
        /// A session to keep (the one that changed the password).
        except: Option<TokenHash>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Append a run record.
    InsertRun(RunRecord),
}

/// Everything one use case writes, applied atomically by [`UnitOfWork::commit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Conditions checked, under lock, before anything is written.
    pub preconditions: Vec<Precondition>,
    /// State changes, in order.
    pub changes: Vec<Change>,
    /// Audit entries.
    pub audit: Vec<AuditEntry>,
    /// Emails to queue.
    pub emails: Vec<OutboundEmail>,
}

impl ChangeSet {
    /// An empty change set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a precondition.
    pub fn require(&mut self, precondition: Precondition) -> &mut Self {
        self.preconditions.push(precondition);
        self
    }

    /// Adds a change.
    pub fn push(&mut self, change: Change) -> &mut Self {
        self.changes.push(change);
        self
    }

    /// Adds an audit entry.
    pub fn audit(&mut self, entry: AuditEntry) -> &mut Self {
        self.audit.push(entry);
        self
    }

    /// Queues an email.
    pub fn send(&mut self, email: OutboundEmail) -> &mut Self {
        self.emails.push(email);
        self
    }

    /// Emails queued for `to`.
    pub fn emails_to<'a>(&'a self, to: &'a EmailAddress) -> impl Iterator<Item = &'a OutboundEmail> + 'a {
        self.emails.iter().filter(move |email| &email.to == to)
    }
}

/// A uniqueness rule the commit would have broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicate {
    /// An account with this address exists.
    Email,
    /// An organisation with this slug exists.
    Slug,
    /// The user is already a member of the organisation.
    Membership,
    /// The user already has a pending request to join the organisation.
    PendingJoinRequest,
    /// The organisation has a facility with this name.
    FacilityName,
    /// The organisation has a role with this key.
    RoleKey,
}

/// A commit did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A precondition no longer held: someone changed the same state first. The use case
    /// re-reads and decides again.
    #[error("the data changed while the request was being decided")]
    Conflict,
    /// A uniqueness rule would have been broken.
    #[error("duplicate: {0:?}")]
    Duplicate(Duplicate),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies change sets atomically.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Checks every precondition and applies every change, audit entry and email in one
    /// transaction.
    ///
    /// # Errors
    /// MUST return [`CommitError::Conflict`] when a precondition fails and
    /// [`CommitError::Duplicate`] when a uniqueness rule would break, having written
    /// nothing in either case.
    async fn commit(&self, changes: ChangeSet) -> Result<(), CommitError>;
}

/// Hashing failed (the adapter's worker pool is gone, parameters are invalid).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Hashes and verifies passwords (Argon2id in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password with a fresh salt.
    ///
    /// # Errors
    /// MUST return `HashError` when hashing cannot be done.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` matches `hash`. Takes as long as hashing.
    ///
    /// # Errors
    /// MUST return `HashError` when the hash cannot be read or hashing cannot be done.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError>;

    /// Spends the time a verification would, for an account that does not exist, so
    /// that response times do not reveal which addresses have accounts.
    ///
    /// # Errors
    /// MUST return `HashError` only when hashing cannot be done.
    async fn verify_dummy(&self, password: &Password) -> Result<(), HashError>;
}

/// Tells the time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// Draws secrets from a cryptographically secure generator (the operating system's).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenGenerator: Send + Sync {
    /// 256 fresh random bits.
    fn generate(&self) -> Secret;
}

/// Creates identifiers (UUID v7 in production, for index locality).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A new unique identifier.
    fn generate(&self) -> Uuid;
}
