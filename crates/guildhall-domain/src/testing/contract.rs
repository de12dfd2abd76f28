//! The contract suite of the storage ports: written once against the traits, run
//! against every store ([`MemoryStore`], SQLite, PostgreSQL).
//!
//! The contract is what `crate::ports` and `crate::query` document (every `# Errors`
//! MUST, the docs of [`Change`], [`Precondition`], [`ChangeSet`], [`CommitError`],
//! [`Duplicate`] and [`Outbox`]) plus the choices [`MemoryStore`]'s
//! rustdoc states for where those docs are silent (caller bugs are
//! [`CommitError::Store`], list orders, limit clamping). A check that pins such a choice
//! says so in its doc comment.
//!
//! Each check is its own `pub async fn` taking a **fresh, empty** store, so an adapter
//! can run them as separate, parallel tests; [`run_all`] runs every one, each on a store
//! of its own. Checks never panic: they return a [`ContractFailure`] naming the check and
//! what differed. They need no async runtime of their own (any executor will do) and use
//! fixed times and identifiers, all whole seconds, so that a store keeping microseconds
//! reads back what was written.
//!
//! ```
//! # async fn example() -> Result<(), guildhall_domain::testing::contract::ContractFailure> {
//! use std::sync::Arc;
//! use guildhall_domain::testing::{MemoryStore, contract};
//!
//! contract::commit_is_atomic(&MemoryStore::new()).await?;
//! contract::run_all(|| async { Arc::new(MemoryStore::new()) }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! An adapter implements [`OutboxInspection`] as well (one query), so that the suite can
//! see that the outbox erases the secrets it held.
//!
//! [`sign_in`] is the suite of the [`SignInAttempts`](crate::ports::SignInAttempts) port,
//! run the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use crate::catalogue::{Catalogue, topics};
use crate::error::StoreError;
use crate::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, MessageId, OrgId, RunId, SessionId, UserId};
use crate::invitation::{Invitation, InvitationState};
use crate::join_request::{JoinRequest, JoinRequestState};
use crate::membership::{AccessScope, AccessSettings, MemberState, Membership, MembershipOrigin, MembershipStatus};
use crate::notification::{Notification, OutboundEmail};
use crate::org::{
    Facility, InvitationLifetime, JoinPolicy, NotificationRouting, OrgSettings, Organisation, RunOutcome, RunRecord,
};
use crate::password::Password;
use crate::ports::{
    AuditLog, Change, ChangeSet, ClaimedEmail, CommitError, DeliveryFailure, DeliveryLog, Duplicate, IdGenerator,
    InvitationRepository, JoinRequestRepository, MembershipRepository, OrganisationRepository, Outbox, Precondition,
    TokenRepository, UndeliveredEmail, UnitOfWork, UserRepository,
};
use crate::query::{MemberCursor, MemberQuery, PageRequest};
use crate::role::{Role, RoleGrant, builtin};
use crate::token::{OneTimeToken, Secret, Session, Token, TokenHash, TokenPurpose};
use crate::user::{PasswordHash, PasswordState, TemporaryPassword, User, UserStatus};
use crate::values::{
    AlertKind, CapabilityKey, EmailAddress, EmailDomain, FacilityName, InvalidValue, Note, OrgName, OrgSlug,
    Permission, PersonName, PhoneNumber, Position, ResourceKind, RoleKey, RoleName, Topic,
};

use super::{MemoryStore, SequentialIds};

pub mod sign_in;

/// Every storage port in one bound: what a store under contract implements.
///
/// Implemented for every type that implements all of them.
pub trait ContractStore:
    UserRepository
    + OrganisationRepository
    + MembershipRepository
    + InvitationRepository
    + JoinRequestRepository
    + TokenRepository
    + AuditLog
    + Outbox
    + DeliveryLog
    + UnitOfWork
    + Send
    + Sync
    + 'static
{
}

impl<T> ContractStore for T where
    T: UserRepository
        + OrganisationRepository
        + MembershipRepository
        + InvitationRepository
        + JoinRequestRepository
        + TokenRepository
        + AuditLog
        + Outbox
        + DeliveryLog
        + UnitOfWork
        + Send
        + Sync
        + 'static
        + ?Sized
{
}

/// A look inside a store's outbox, for the checks that a message's secret is erased once
/// it is sent or given up ([`Outbox::mark_sent`]), which no port can observe.
///
/// A SQL store answers it with one query on its outbox table.
#[async_trait]
pub trait OutboxInspection: Send + Sync {
    /// Whether what the store keeps of message `id` still holds the secret its
    /// notification carried (a token or a temporary password): `false` when the message
    /// carried none, was erased, or is not stored.
    ///
    /// # Errors
    /// `StoreError` only when storage fails.
    async fn retains_secret(&self, id: MessageId) -> Result<bool, StoreError>;
}

#[async_trait]
impl OutboxInspection for MemoryStore {
    async fn retains_secret(&self, id: MessageId) -> Result<bool, StoreError> {
        Ok(self
            .outbox()
            .iter()
            .any(|m| m.id == id && m.payload.as_ref().is_some_and(|email| email.notification.carries_secret())))
    }
}

/// A store broke the contract: which check, and what differed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract check `{check}` failed: {detail}")]
pub struct ContractFailure {
    /// The check's name (its function's name).
    pub check: &'static str,
    /// What was expected and what the store did.
    pub detail: String,
}

/// What went wrong inside a check, before it is named.
#[derive(Debug)]
struct Broken(String);

impl From<StoreError> for Broken {
    fn from(error: StoreError) -> Self {
        Self(format!("a read or outbox call failed: {error}"))
    }
}

impl From<InvalidValue> for Broken {
    fn from(error: InvalidValue) -> Self {
        Self(format!("a fixture value is invalid (a bug in the suite): {error}"))
    }
}

impl From<Vec<InvalidValue>> for Broken {
    fn from(errors: Vec<InvalidValue>) -> Self {
        Self(format!("fixture values are invalid (a bug in the suite): {errors:?}"))
    }
}

type Check = Result<(), Broken>;

fn named(check: &'static str, result: Check) -> Result<(), ContractFailure> {
    result.map_err(|Broken(detail)| ContractFailure { check, detail })
}

fn ensure(holds: bool, what: impl FnOnce() -> String) -> Check {
    if holds { Ok(()) } else { Err(Broken(what())) }
}

fn same<T: PartialEq + fmt::Debug>(what: &str, actual: T, expected: T) -> Check {
    ensure(actual == expected, || format!("{what}: expected {expected:?}, got {actual:?}"))
}

// ---- the checks --------------------------------------------------------------------------

macro_rules! contract_checks {
    (
        ports { $( $(#[$pdoc:meta])* $pname:ident; )* }
        inspection { $( $(#[$idoc:meta])* $iname:ident; )* }
    ) => {
        $(
            $(#[$pdoc])*
            ///
            /// # Errors
            /// [`ContractFailure`] when the store breaks the contract.
            pub async fn $pname<S: ContractStore + ?Sized>(store: &S) -> Result<(), ContractFailure> {
                named(stringify!($pname), checks::$pname(store).await)
            }
        )*
        $(
            $(#[$idoc])*
            ///
            /// # Errors
            /// [`ContractFailure`] when the store breaks the contract.
            pub async fn $iname<S: ContractStore + OutboxInspection + ?Sized>(
                store: &S,
            ) -> Result<(), ContractFailure> {
                named(stringify!($iname), checks::$iname(store).await)
            }
        )*

        /// The names of every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($pname),)* $(stringify!($iname),)*];

        /// Runs every check, each on a fresh empty store from `fresh` (a SQL adapter makes
        /// a new database or schema per call), stopping at the first failure.
        ///
        /// # Errors
        /// The first [`ContractFailure`].
        pub async fn run_all<S, F, Fut>(fresh: F) -> Result<(), ContractFailure>
        where
            S: ContractStore + OutboxInspection,
            F: Fn() -> Fut,
            Fut: Future<Output = Arc<S>>,
        {
            $( $pname(&*fresh().await).await?; )*
            $( $iname(&*fresh().await).await?; )*
            Ok(())
        }
    };
}

contract_checks! {
    ports {
        /// Every kind of row reads back exactly as written, every field included (an
        /// address keeps the spelling it was typed in; enums, sets, maps and optional
        /// fields survive).
        rows_read_back_as_written;
        /// A commit whose precondition fails, that would break a uniqueness rule, or that
        /// contains a caller bug writes nothing: no state change, no version increment,
        /// no audit entry, no email. The same change set without the fault lands whole.
        commit_is_atomic;
        /// [`Precondition::OrgVersion`] holds only while the version is unchanged (a
        /// missing organisation fails it: `MemoryStore`'s choice), and a successful
        /// commit increments the version exactly once however many changes and
        /// preconditions touch the organisation. Preconditions are checked against the
        /// state before the commit; the version in an `UpdateOrganisation` value is
        /// ignored; a commit without the precondition leaves the version alone.
        org_version_is_checked_and_incremented_once;
        /// [`Precondition::OrgUnchanged`] holds only while the version is unchanged and
        /// never increments it.
        org_unchanged_is_checked_without_incrementing;
        /// [`Precondition::UserVersion`] holds only while the account's version is
        /// unchanged and increments it; the version in an `UpdateUser` value is ignored
        /// (an update without the precondition keeps the stored version:
        /// `MemoryStore`'s choice, following the `UpdateUser` doc).
        user_version_is_checked_and_incremented;
        /// [`Precondition::UserUnchanged`] holds only while the account's version is
        /// unchanged and never increments it.
        user_unchanged_is_checked_without_incrementing;
        /// [`Precondition::InvitationPending`] holds only for an invitation of that
        /// organisation stored as pending (expired or not: the store has no clock) with
        /// that token hash.
        invitation_pending_checks_org_state_and_token_hash;
        /// [`Precondition::NoPendingInvitation`] fails while the organisation has an
        /// invitation of that address (ignoring letter case) stored as pending that expires
        /// after the decision's instant; expired, accepted, other addresses and other
        /// organisations do not count.
        no_pending_invitation_checks_org_address_state_and_expiry;
        /// [`Precondition::JoinRequestPending`] holds only for a pending request of that
        /// organisation.
        join_request_pending_checks_org_and_state;
        /// [`Precondition::TokenUnused`] holds only for a stored, unused token.
        token_unused_checks_the_token_exists_and_is_unused;
        /// [`Precondition::RoleUnheld`] fails while any membership of that organisation,
        /// in any status, has the role; holders elsewhere do not count.
        role_unheld_counts_only_the_organisations_members;
        /// [`Duplicate::Email`]: addresses are unique ignoring letter case, on insert and
        /// on update (the update case is `MemoryStore`'s choice; a unique index enforces it).
        email_uniqueness_ignores_case;
        /// [`Duplicate::Slug`] on inserting or renaming to a taken slug; keeping one's own
        /// slug is no clash.
        slugs_are_unique;
        /// [`Duplicate::Membership`]: one membership per (organisation, user).
        memberships_are_unique_per_org_and_user;
        /// [`Duplicate::PendingJoinRequest`]: one pending request per (organisation,
        /// user), also when an update makes a request pending again (`MemoryStore`'s
        /// partial unique index); once the first is decided a new one is allowed, and
        /// other organisations do not count.
        one_pending_join_request_per_org_and_user;
        /// [`Duplicate::FacilityName`]: names are unique per organisation ignoring case,
        /// on insert and rename; renaming a facility to its own name in another case is
        /// allowed, and other organisations do not count.
        facility_names_are_unique_per_org_ignoring_case;
        /// [`Duplicate::RoleKey`] when a custom role would take a built-in key;
        /// `PutRole` with an existing custom key replaces that role ("create or
        /// replace").
        role_keys_cannot_shadow_built_ins;
        /// A change the caller should never have made fails with [`CommitError::Store`]
        /// and writes nothing (`MemoryStore`'s documented choice: it is a bug, not a
        /// `Duplicate`): updating or deleting a missing row, referring to a missing
        /// organisation or account, reusing an id (or a token's or session's hash),
        /// deleting a role that members still hold.
        caller_bugs_are_store_errors;
        /// `ReassignRole` moves exactly that organisation's holders of `from` to `to`; with
        /// `DeleteRole` after it in the same commit, the role is gone.
        reassign_role_moves_only_that_roles_holders;
        /// `DeleteFacility` deletes the facility and removes it from every membership of
        /// the organisation.
        delete_facility_removes_it_from_memberships;
        /// `DeleteRole` deletes only that organisation's role.
        delete_role_removes_only_that_role;
        /// `RevokeSessionsOf` revokes every unrevoked session of the user but `except`,
        /// and no one else's; a session revoked earlier keeps its first revocation time,
        /// as does one revoked twice with `RevokeSession` (`MemoryStore`'s choice).
        revoke_sessions_of_keeps_the_exception;
        /// `ExpireTokens` marks used, at `at`, exactly the user's unused tokens of that
        /// purpose kind; tokens already used keep their time.
        expire_tokens_marks_only_that_purpose;
        /// `ConsumeToken` marks the token used at `at`.
        consume_token_marks_it_used;
        /// `TouchSession` sets `last_seen_at`; `UnrestrictSession` lifts the
        /// password-change restriction; nothing else changes.
        touch_and_unrestrict_change_only_their_field;
        /// `user_by_email` ignores letter case; `users` leaves missing ids out (any order).
        users_are_found_by_email_ignoring_case_and_by_ids;
        /// `organisation_by_slug` finds the current slug only.
        organisations_are_found_by_current_slug;
        /// `custom_roles` lists the organisation's roles by key (`MemoryStore`'s order);
        /// `facilities` lists them by name ignoring case, then id (`MemoryStore`'s
        /// reading of "by name").
        roles_and_facilities_are_listed_in_order;
        /// `memberships_with_roles` (any status, by user id: `MemoryStore`'s order),
        /// `memberships_with_alert` (any status, any order) and `memberships_of_user`
        /// (every organisation, by organisation id: `MemoryStore`'s order).
        membership_lists_select_and_order;
        /// `open_invitations`: stored as pending (expired included), newest first;
        /// `open_invitations_for`: pending ones for the address ignoring case, in every
        /// organisation, newest first (`MemoryStore`'s order); `invitation_by_token`
        /// finds the current hash only, in any state; `invitation` is scoped to its
        /// organisation.
        invitation_lists_and_lookups;
        /// `pending_join_requests` oldest first, `join_requests_of_user` newest first (every
        /// state and organisation), both by creation time (ties by id); `join_request` is
        /// scoped to its organisation.
        join_request_lists_are_ordered_by_time;
        /// `sessions_of_user`: not revoked (expired ones included: `MemoryStore`'s
        /// choice), newest first; `session` and `one_time_token` find by hash.
        sessions_and_tokens_are_found_by_hash;
        /// `search_members` filters by text (case-insensitive substring of first name,
        /// last name, "first last" or email), role, facility and state at `as_of`, scoped
        /// to the organisation, in `(sort_key, user id)` order.
        member_search_filters;
        /// `search_members` pages 261 members, 100 at a time: every member exactly once,
        /// in byte-wise `(sort_key, user id)` order (ties, letter case and non-ASCII
        /// names included), `next` is the last item's cursor and `None` on the last page.
        member_search_pages_every_member_once_in_order;
        /// `search_members` clamps the limit to `1..=MemberQuery::MAX_LIMIT`
        /// (`MemoryStore`'s choice).
        member_search_clamps_the_limit;
        /// `audit_entries`: the organisation's entries only, newest first, in pages
        /// followed by opaque cursors; `next` is `None` when nothing remains (also when
        /// the last page is exactly full: `MemoryStore`'s choice); the limit is clamped
        /// to at least 1.
        audit_entries_are_paged_newest_first;
        /// `runs`: as `audit_entries`, by start time.
        runs_are_paged_newest_first;
        /// A cursor no store could have issued is a `StoreError` for `audit_entries` and
        /// `runs`.
        unknown_page_cursors_are_store_errors;
        /// `claim` takes due messages oldest first (queued time, then id), at most
        /// `limit`, each exactly as committed with 0 attempts; a claim within the lease
        /// gets none of them; from the instant the lease ends (inclusive:
        /// `MemoryStore`'s choice) they can be claimed again.
        outbox_claims_oldest_first_under_a_lease;
        /// `mark_failed(Retry { at })` makes the message due again at `at`, not before,
        /// with one more attempt.
        outbox_retry_is_due_at_its_time_with_one_more_attempt;
        /// `release` makes claimed messages claimable again at once; others stay leased.
        outbox_release_frees_claimed_messages;
        /// `mark_failed(Dead { reports })` queues the reports in the same write (due at
        /// once); for a message not in the outbox, or with a report that cannot be
        /// inserted, it fails and writes nothing.
        outbox_giving_up_queues_its_reports_with_it;
        /// Once a message is sent or given up that outcome stands: a later `mark_sent`,
        /// `mark_failed` (of either kind) or `release` changes nothing and queues no
        /// report.
        outbox_the_first_outcome_stands;
        /// `undelivered` pages one organisation's dead letters, newest first by id, with
        /// their recipient, template, attempts and last error; nothing of other
        /// organisations, nothing still being retried.
        undelivered_lists_an_organisations_dead_letters_newest_first;
    }
    inspection {
        /// `mark_sent` stops delivery for good and erases the secret the message carried;
        /// messages without secrets are unaffected.
        outbox_mark_sent_stops_delivery_and_erases_secrets;
        /// `mark_failed(Dead)` stops delivery for good and erases the secret
        /// (`OutboxRecord`'s documented choice).
        outbox_dead_letters_are_never_claimed_and_lose_their_secret;
    }
}

// ---- fixtures ----------------------------------------------------------------------------

/// 2026-01-05T09:00:00Z, in seconds since the Unix epoch.
const BASE_SECONDS: i64 = 1_767_603_600;

/// The fixed instant `minutes` after 2026-01-05T09:00:00Z.
fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(BASE_SECONDS + minutes * 60)
}

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
}

fn key(text: &str) -> Result<RoleKey, Broken> {
    Ok(RoleKey::parse(text)?)
}

fn email(text: &str) -> Result<EmailAddress, Broken> {
    Ok(EmailAddress::parse(text)?)
}

fn set(changes: Vec<Change>) -> ChangeSet {
    ChangeSet { changes, ..ChangeSet::new() }
}

fn guarded(preconditions: Vec<Precondition>, changes: Vec<Change>) -> ChangeSet {
    ChangeSet { preconditions, changes, ..ChangeSet::new() }
}

fn member(org: OrgId, user: UserId, role: RoleKey) -> Membership {
    Membership::new(org, user, role, MembershipOrigin::Invitation, None, at(0))
}

/// Builds rows with ids from [`SequentialIds`] (time-ordered, deterministic).
struct Fixture {
    ids: SequentialIds,
}

impl Fixture {
    fn new() -> Self {
        Self { ids: SequentialIds::new() }
    }

    fn uuid(&self) -> Uuid {
        self.ids.generate()
    }

    fn user(&self, address: &str, first: &str, last: &str) -> Result<User, Broken> {
        Ok(User {
            id: UserId::from_uuid(self.uuid()),
            email: email(address)?,
            name: PersonName::parse(first, last)?,
            phone: None,
            email_verified_at: Some(at(0)),
            status: UserStatus::Active,
            password: PasswordState {
                hash: Some(PasswordHash::new("fake$0123$salt")),
                temporary: None,
                must_change: false,
                changed_at: Some(at(0)),
            },
            created_at: at(0),
            version: 0,
        })
    }

    fn org(&self, slug: &str, created_by: UserId) -> Result<Organisation, Broken> {
        Ok(Organisation {
            id: OrgId::from_uuid(self.uuid()),
            slug: OrgSlug::parse(slug)?,
            name: OrgName::parse(slug)?,
            settings: OrgSettings::default(),
            created_by,
            created_at: at(0),
            version: 0,
        })
    }

    fn facility(&self, org: OrgId, name: &str) -> Result<Facility, Broken> {
        Ok(Facility {
            id: FacilityId::from_uuid(self.uuid()),
            org,
            name: FacilityName::parse(name)?,
            created_at: at(0),
        })
    }

    fn role(&self, text: &str, name: &str) -> Result<Role, Broken> {
        let grant = RoleGrant::Only([Permission::parse("reports.view")?].into_iter().collect());
        Ok(Role { key: key(text)?, name: RoleName::parse(name)?, grant, built_in: false })
    }

    fn invitation(
        &self,
        org: OrgId,
        to: &str,
        invited_by: UserId,
        created: i64,
        token: u8,
    ) -> Result<Invitation, Broken> {
        Ok(Invitation {
            id: InvitationId::from_uuid(self.uuid()),
            org,
            email: email(to)?,
            role: builtin::USER,
            token_hash: hash(token),
            invited_by,
            created_at: at(created),
            expires_at: at(created + 7 * 24 * 60),
            resent: 0,
            state: InvitationState::Pending,
        })
    }

    fn join_request(&self, org: OrgId, user: UserId, created: i64) -> JoinRequest {
        JoinRequest {
            id: JoinRequestId::from_uuid(self.uuid()),
            org,
            user,
            message: None,
            created_at: at(created),
            state: JoinRequestState::Pending,
        }
    }

    fn session(&self, user: UserId, token: u8, created: i64) -> Session {
        Session {
            id: SessionId::from_uuid(self.uuid()),
            user,
            token_hash: hash(token),
            created_at: at(created),
            last_seen_at: at(created),
            expires_at: at(created + 14 * 24 * 60),
            password_change_required: false,
            revoked_at: None,
        }
    }

    fn audit(&self, org: Option<OrgId>, actor: UserId, minute: i64) -> AuditEntry {
        AuditEntry {
            id: AuditId::from_uuid(self.uuid()),
            org,
            actor: Some(actor),
            action: AuditAction::MemberUpdated,
            target: AuditTarget::User(actor),
            at: at(minute),
            changes: Vec::new(),
        }
    }

    fn run(&self, org: OrgId, recorded_by: UserId, minute: i64) -> Result<RunRecord, Broken> {
        Ok(RunRecord {
            id: RunId::from_uuid(self.uuid()),
            org,
            capability: CapabilityKey::parse("automated_recall")?,
            started_at: at(minute),
            finished_at: at(minute + 1),
            outcome: RunOutcome::Succeeded,
            counts: BTreeMap::new(),
            recorded_by,
        })
    }

    /// An email queued at `minute`; with a secret (a password-reset token) when `secret`.
    fn email(&self, to: &EmailAddress, minute: i64, secret: bool) -> OutboundEmail {
        let notification = if secret {
            Notification::PasswordReset {
                token: Token::from_secret(&Secret::from_bytes([u8::try_from(minute & 0x7f).unwrap_or(0); 32])),
                expires_at: at(minute + 60),
            }
        } else {
            Notification::PasswordChanged { at: at(minute) }
        };
        OutboundEmail {
            id: MessageId::from_uuid(self.uuid()),
            org: None,
            topic: None,
            to: to.clone(),
            notification,
            queued_at: at(minute),
        }
    }
}

async fn commit<S: ContractStore + ?Sized>(store: &S, what: &str, changes: ChangeSet) -> Check {
    store.commit(changes).await.map_err(|error| Broken(format!("{what}: the commit failed: {error:?}")))
}

/// How a commit is expected to be refused.
#[derive(Debug)]
enum Refusal {
    Conflict,
    Duplicate(Duplicate),
    Store,
}

async fn refused<S: ContractStore + ?Sized>(store: &S, what: &str, changes: ChangeSet, expected: Refusal) -> Check {
    let outcome = store.commit(changes).await;
    let matches = match (&outcome, &expected) {
        (Err(CommitError::Conflict), Refusal::Conflict) | (Err(CommitError::Store(_)), Refusal::Store) => true,
        (Err(CommitError::Duplicate(actual)), Refusal::Duplicate(wanted)) => actual == wanted,
        _ => false,
    };
    ensure(matches, || format!("{what}: expected {expected:?}, got {outcome:?}"))
}

/// An account and an organisation it founded (as administrator).
async fn founded<S: ContractStore + ?Sized>(
    store: &S,
    fx: &Fixture,
    address: &str,
    slug: &str,
) -> Result<(User, Organisation), Broken> {
    let founder = fx.user(address, "Ann", "Founder")?;
    let org = fx.org(slug, founder.id)?;
    let membership =
        Membership::new(org.id, founder.id, builtin::ADMINISTRATOR, MembershipOrigin::Founder, None, at(0));
    let changes = vec![
        Change::InsertUser(founder.clone()),
        Change::InsertOrganisation(org.clone()),
        Change::InsertMembership(membership),
    ];
    commit(store, "founding an organisation", set(changes)).await?;
    Ok((founder, org))
}

async fn org_version<S: ContractStore + ?Sized>(store: &S, org: OrgId) -> Result<Option<u64>, Broken> {
    Ok(store.organisation(org).await?.map(|o| o.version))
}

async fn user_version<S: ContractStore + ?Sized>(store: &S, user: UserId) -> Result<Option<u64>, Broken> {
    Ok(store.user(user).await?.map(|u| u.version))
}

/// Every message claimable at a far-future instant, by id.
async fn claim_everything<S: ContractStore + ?Sized>(store: &S) -> Result<Vec<MessageId>, Broken> {
    Ok(store.claim(1_000, at(1_000_000), Duration::minutes(1)).await?.into_iter().map(|c| c.email.id).collect())
}

fn undelivered_ids(items: &[UndeliveredEmail]) -> Vec<MessageId> {
    items.iter().map(|item| item.id).collect()
}

fn claimed_ids(claimed: &[ClaimedEmail]) -> Vec<MessageId> {
    claimed.iter().map(|c| c.email.id).collect()
}

fn user_ids(memberships: &[Membership]) -> Vec<UserId> {
    memberships.iter().map(|m| m.user).collect()
}

fn query(org: OrgId) -> MemberQuery {
    MemberQuery {
        org,
        text: None,
        role: None,
        facility: None,
        state: None,
        as_of: at(120),
        limit: MemberQuery::MAX_LIMIT,
        after: None,
    }
}

async fn search_ids<S: ContractStore + ?Sized>(store: &S, query: &MemberQuery) -> Result<Vec<UserId>, Broken> {
    Ok(store.search_members(query).await?.items.iter().map(|s| s.membership.user).collect())
}

/// Last names that exercise byte-wise ordering: ties, letter case, punctuation and
/// non-ASCII letters.
const LAST_NAMES: [&str; 9] = ["Lee", "lee", "O'Brien", "Østergaard", "Zhang", "Åberg", "Adams", "adams", "Émile"];
const FIRST_NAMES: [&str; 5] = ["Ann", "bob", "Chloé", "ann", "Zed"];

/// `count` members with scrambled names (ids ascend, names do not), plus the founder.
async fn many_members<S: ContractStore + ?Sized>(
    store: &S,
    fx: &Fixture,
    count: usize,
) -> Result<(Organisation, Vec<(String, UserId)>), Broken> {
    let (founder, org) = founded(store, fx, "founder@example.com", "big-practice").await?;
    let mut expected = vec![(founder.name.sort_key(), founder.id)];
    let mut changes = Vec::new();
    for i in 0..count {
        let last = LAST_NAMES[(i * 7) % LAST_NAMES.len()];
        let first = FIRST_NAMES[(i * 3) % FIRST_NAMES.len()];
        let user = fx.user(&format!("member{i}@example.com"), first, last)?;
        expected.push((user.name.sort_key(), user.id));
        changes.push(Change::InsertMembership(member(org.id, user.id, builtin::USER)));
        changes.insert(0, Change::InsertUser(user));
    }
    commit(store, "adding many members", set(changes)).await?;
    expected.sort();
    Ok((org, expected))
}

mod checks {
    use super::*;

    pub(super) async fn rows_read_back_as_written<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let mut ann = fx.user("Ann.Lee@Example.COM", "Ann", "Lee")?;
        ann.phone = Some(PhoneNumber::parse("+44 113 496 0000")?);
        ann.status = UserStatus::Disabled { since: at(5) };
        ann.password = PasswordState {
            hash: None,
            temporary: Some(TemporaryPassword { hash: PasswordHash::new("fake$temp$salt"), expires_at: at(90) }),
            must_change: true,
            changed_at: None,
        };
        ann.email_verified_at = None;
        ann.version = 3;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let mut org = fx.org("acme-physio", bob.id)?;
        let domains: BTreeSet<EmailDomain> = [EmailDomain::parse("acme-physio.example")?].into_iter().collect();
        let routing = NotificationRouting::new(
            &Catalogue::builtin(),
            [(Topic::parse("join_requests")?, [email("desk@acme-physio.example")?].into_iter().collect())],
        )?;
        org.settings = OrgSettings {
            join_policy: JoinPolicy::VerifiedDomains { domains, auto_approve: true },
            default_role: key("front_desk")?,
            invitation_lifetime: InvitationLifetime::from_seconds(3_600)?,
            routing,
            capabilities: [(CapabilityKey::parse("automated_recall")?, true)].into_iter().collect(),
            ..OrgSettings::default()
        };
        org.version = 2;
        let role = fx.role("front_desk", "Front desk")?;
        let facility = fx.facility(org.id, "North Clinic")?;
        let mut membership = member(org.id, ann.id, key("front_desk")?);
        membership.position = Some(Position::parse("Practice manager")?);
        membership.facilities = [facility.id].into_iter().collect();
        membership.aide = true;
        membership.access = AccessSettings::new([(ResourceKind::parse("patients")?, AccessScope::Facility)]);
        membership.alerts = [AlertKind::parse("new_leads")?].into_iter().collect();
        membership.status = MembershipStatus::Suspended { since: at(7), by: bob.id };
        membership.expires_at = Some(at(500));
        membership.added_by = Some(bob.id);
        membership.origin = MembershipOrigin::Linked;
        let mut invitation = fx.invitation(org.id, "Zoe@Example.com", bob.id, 3, 1)?;
        invitation.resent = 2;
        let mut accepted = fx.invitation(org.id, "yan@example.com", bob.id, 4, 2)?;
        accepted.state = InvitationState::Accepted { by: ann.id, at: at(6) };
        let mut request = fx.join_request(org.id, ann.id, 8);
        request.message = Some(Note::parse("Hello, I work at the north site.")?);
        request.state = JoinRequestState::Rejected { by: bob.id, at: at(9), reason: Some(Note::parse("Not staff")?) };
        let token = OneTimeToken {
            hash: hash(3),
            user: ann.id,
            purpose: TokenPurpose::VerifyEmail { email: email("Ann.New@Example.com")? },
            created_at: at(10),
            expires_at: at(70),
            used_at: Some(at(11)),
        };
        let mut session = fx.session(ann.id, 4, 12);
        session.password_change_required = true;
        session.revoked_at = Some(at(13));
        let mut entry = fx.audit(Some(org.id), bob.id, 14);
        entry.target = AuditTarget::Role(key("front_desk")?);
        entry.changes = vec![
            FieldChange::new("role", Some("user"), Some("front_desk")),
            FieldChange { field: "position".into(), before: None, after: Some("Practice manager".into()) },
        ];
        let mut run = fx.run(org.id, bob.id, 15)?;
        run.outcome = RunOutcome::PartiallySucceeded { detail: "3 addresses bounced".into() };
        run.counts = [("patients_contacted".to_owned(), 120_u64)].into_iter().collect();
        let mail = OutboundEmail {
            id: MessageId::from_uuid(fx.uuid()),
            org: Some(org.id),
            topic: Some(Topic::parse("join_requests")?),
            to: email("Zoe@Example.com")?,
            notification: Notification::AccountCreated {
                org_name: "Acme Physio".into(),
                created_by: "Bob Stone".into(),
                temporary_password: Password::new("Temp-Pass-9-Words"),
                expires_at: at(90),
            },
            queued_at: at(16),
        };
        let changes = vec![
            Change::InsertUser(ann.clone()),
            Change::InsertUser(bob.clone()),
            Change::InsertOrganisation(org.clone()),
            Change::PutRole { org: org.id, role: role.clone() },
            Change::InsertFacility(facility.clone()),
            Change::InsertMembership(membership.clone()),
            Change::InsertInvitation(invitation.clone()),
            Change::InsertInvitation(accepted.clone()),
            Change::InsertJoinRequest(request.clone()),
            Change::InsertToken(token.clone()),
            Change::InsertSession(session.clone()),
            Change::InsertRun(run.clone()),
        ];
        commit(
            store,
            "writing one row of each kind",
            ChangeSet { changes, audit: vec![entry.clone()], emails: vec![mail.clone()], ..ChangeSet::new() },
        )
        .await?;

        let stored = store.user(ann.id).await?;
        same("user", stored.clone(), Some(ann.clone()))?;
        same(
            "the address's spelling",
            stored.map(|u| u.email.as_str().to_owned()),
            Some("Ann.Lee@Example.COM".into()),
        )?;
        same("organisation", store.organisation(org.id).await?, Some(org.clone()))?;
        same("custom roles", store.custom_roles(org.id).await?, vec![role])?;
        same("facilities", store.facilities(org.id).await?, vec![facility])?;
        same("membership", store.membership(org.id, ann.id).await?, Some(membership))?;
        same("invitation", store.invitation(org.id, invitation.id).await?, Some(invitation.clone()))?;
        same("accepted invitation", store.invitation(org.id, accepted.id).await?, Some(accepted))?;
        same("join request", store.join_request(org.id, request.id).await?, Some(request))?;
        same("one-time token", store.one_time_token(&token.hash).await?, Some(token))?;
        same("session", store.session(&session.token_hash).await?, Some(session))?;
        same("audit entries", store.audit_entries(org.id, PageRequest::first(10)).await?.items, vec![entry])?;
        same("runs", store.runs(org.id, PageRequest::first(10)).await?.items, vec![run])?;
        let claimed = store.claim(10, at(20), Duration::minutes(5)).await?;
        same("claimed email", claimed, vec![ClaimedEmail { email: mail, attempts: 0 }])
    }

    pub(super) async fn commit_is_atomic<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let before = store.organisation(org.id).await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let facility = fx.facility(org.id, "North Clinic")?;
        let role = fx.role("front_desk", "Front desk")?;
        let renamed = Organisation { name: OrgName::parse("Acme Physio, Leeds")?, ..org.clone() };
        let entry = fx.audit(Some(org.id), ann.id, 1);
        let mail = fx.email(&bob.email, 1, true);
        let build = |version: u64, fault: Option<Change>| {
            let mut changes = vec![
                Change::InsertUser(bob.clone()),
                Change::InsertMembership(member(org.id, bob.id, builtin::MANAGER)),
                Change::UpdateOrganisation(renamed.clone()),
                Change::InsertFacility(facility.clone()),
                Change::PutRole { org: org.id, role: role.clone() },
            ];
            changes.extend(fault);
            ChangeSet {
                preconditions: vec![Precondition::OrgVersion { org: org.id, version }],
                changes,
                audit: vec![entry.clone()],
                emails: vec![mail.clone()],
            }
        };
        let faults = [
            ("a stale precondition", build(7, None), Refusal::Conflict),
            (
                "a duplicate at the end",
                build(0, Some(Change::InsertUser(fx.user("ANN@example.com", "Other", "Ann")?))),
                Refusal::Duplicate(Duplicate::Email),
            ),
            (
                "a caller bug at the end",
                build(0, Some(Change::UpdateMembership(member(org.id, UserId::from_uuid(fx.uuid()), builtin::USER)))),
                Refusal::Store,
            ),
        ];
        for (what, changes, expected) in faults {
            refused(store, what, changes, expected).await?;
            let after = |thing: &str| format!("after a commit with {what}: {thing}");
            same(&after("the new account"), store.user(bob.id).await?, None)?;
            same(&after("the new account by address"), store.user_by_email(&bob.email).await?, None)?;
            same(&after("the new membership"), store.membership(org.id, bob.id).await?, None)?;
            same(&after("the organisation (name and version)"), store.organisation(org.id).await?, before.clone())?;
            same(&after("facilities"), store.facilities(org.id).await?, Vec::new())?;
            same(&after("custom roles"), store.custom_roles(org.id).await?, Vec::new())?;
            same(&after("audit entries"), store.audit_entries(org.id, PageRequest::first(10)).await?.items, vec![])?;
            same(&after("claimable emails"), claim_everything(store).await?, Vec::new())?;
        }
        commit(store, "the same change set without a fault", build(0, None)).await?;
        same("the new account", store.user(bob.id).await?.map(|u| u.id), Some(bob.id))?;
        same(
            "the new membership's role",
            store.membership(org.id, bob.id).await?.map(|m| m.role),
            Some(builtin::MANAGER),
        )?;
        same("the organisation's name", store.organisation(org.id).await?.map(|o| o.name), Some(renamed.name))?;
        same("the version", org_version(store, org.id).await?, Some(1))?;
        same("facilities", store.facilities(org.id).await?.len(), 1)?;
        same("custom roles", store.custom_roles(org.id).await?.len(), 1)?;
        same("audit entries", store.audit_entries(org.id, PageRequest::first(10)).await?.items, vec![entry])?;
        same("claimable emails", claim_everything(store).await?, vec![mail.id])
    }

    pub(super) async fn org_version_is_checked_and_incremented_once<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let bumped = |version| Precondition::OrgVersion { org: org.id, version };
        let renamed = Organisation { name: OrgName::parse("Acme Physio, Leeds")?, ..org.clone() };
        let changes = vec![
            Change::UpdateOrganisation(renamed.clone()),
            Change::PutRole { org: org.id, role: fx.role("front_desk", "Front desk")? },
            Change::InsertFacility(fx.facility(org.id, "North Clinic")?),
        ];
        commit(store, "OrgVersion 0 with three changes to the organisation", guarded(vec![bumped(0)], changes)).await?;
        same(
            "the version after one commit touching the organisation three times",
            org_version(store, org.id).await?,
            Some(1),
        )?;
        let preconditions = vec![bumped(1), bumped(1), Precondition::OrgUnchanged { org: org.id, version: 1 }];
        let facility = Change::InsertFacility(fx.facility(org.id, "South Clinic")?);
        commit(
            store,
            "OrgVersion 1 twice and OrgUnchanged 1 in one commit (all read the state before it)",
            guarded(preconditions, vec![facility]),
        )
        .await?;
        same("the version after a commit with OrgVersion twice", org_version(store, org.id).await?, Some(2))?;
        let facility = Change::InsertFacility(fx.facility(org.id, "East Clinic")?);
        refused(store, "a stale OrgVersion", guarded(vec![bumped(0)], vec![facility]), Refusal::Conflict).await?;
        same("the version after a conflict", org_version(store, org.id).await?, Some(2))?;
        same("facilities after a conflict", store.facilities(org.id).await?.len(), 2)?;
        let claims_99 = Organisation { version: 99, ..renamed };
        commit(
            store,
            "OrgVersion 2 with an UpdateOrganisation carrying version 99",
            guarded(vec![bumped(2)], vec![Change::UpdateOrganisation(claims_99)]),
        )
        .await?;
        same("the version (the value's version is ignored)", org_version(store, org.id).await?, Some(3))?;
        commit(
            store,
            "a change without a precondition",
            set(vec![Change::InsertFacility(fx.facility(org.id, "West Clinic")?)]),
        )
        .await?;
        same("the version after a commit without a precondition", org_version(store, org.id).await?, Some(3))?;
        let missing = Precondition::OrgVersion { org: OrgId::from_uuid(fx.uuid()), version: 0 };
        refused(store, "OrgVersion of a missing organisation", guarded(vec![missing], vec![]), Refusal::Conflict).await
    }

    pub(super) async fn org_unchanged_is_checked_without_incrementing<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        commit(store, "adding an account", set(vec![Change::InsertUser(bob.clone())])).await?;
        let unchanged = |version| Precondition::OrgUnchanged { org: org.id, version };
        let join = Change::InsertMembership(member(org.id, bob.id, builtin::USER));
        commit(store, "OrgUnchanged 0", guarded(vec![unchanged(0)], vec![join])).await?;
        same("the version after OrgUnchanged", org_version(store, org.id).await?, Some(0))?;
        commit(store, "OrgVersion 0", guarded(vec![Precondition::OrgVersion { org: org.id, version: 0 }], vec![]))
            .await?;
        let leave = Change::DeleteMembership { org: org.id, user: bob.id };
        refused(store, "a stale OrgUnchanged", guarded(vec![unchanged(0)], vec![leave.clone()]), Refusal::Conflict)
            .await?;
        same("the membership after a conflict", store.membership(org.id, bob.id).await?.map(|m| m.user), Some(bob.id))?;
        commit(store, "OrgUnchanged 1", guarded(vec![unchanged(1)], vec![leave])).await?;
        same("the version after OrgUnchanged 1", org_version(store, org.id).await?, Some(1))?;
        same("the membership after leaving", store.membership(org.id, bob.id).await?, None)
    }

    pub(super) async fn user_version_is_checked_and_incremented<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        commit(store, "adding an account", set(vec![Change::InsertUser(ann.clone())])).await?;
        let version = |version| Precondition::UserVersion { user: ann.id, version };
        let renamed = User { name: PersonName::parse("Ann", "Lee-Smith")?, version: 42, ..ann.clone() };
        commit(
            store,
            "UserVersion 0 with UpdateUser carrying version 42",
            guarded(vec![version(0)], vec![Change::UpdateUser(renamed.clone())]),
        )
        .await?;
        let stored = store.user(ann.id).await?;
        same("the stored account", stored, Some(User { version: 1, ..renamed.clone() }))?;
        let again = User { name: PersonName::parse("Ann", "Stale")?, ..renamed.clone() };
        refused(
            store,
            "a stale UserVersion",
            guarded(vec![version(0)], vec![Change::UpdateUser(again.clone())]),
            Refusal::Conflict,
        )
        .await?;
        same("the name after a conflict", store.user(ann.id).await?.map(|u| u.name), Some(renamed.name))?;
        commit(store, "UpdateUser without a precondition", set(vec![Change::UpdateUser(User { version: 0, ..again })]))
            .await?;
        same("the version after an update without UserVersion", user_version(store, ann.id).await?, Some(1))?;
        let missing = Precondition::UserVersion { user: UserId::from_uuid(fx.uuid()), version: 0 };
        refused(store, "UserVersion of a missing account", guarded(vec![missing], vec![]), Refusal::Conflict).await
    }

    pub(super) async fn user_unchanged_is_checked_without_incrementing<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        commit(store, "adding an account", set(vec![Change::InsertUser(ann.clone())])).await?;
        let unchanged = |version| Precondition::UserUnchanged { user: ann.id, version };
        let first = fx.session(ann.id, 1, 1);
        commit(store, "UserUnchanged 0", guarded(vec![unchanged(0)], vec![Change::InsertSession(first)])).await?;
        same("the version after UserUnchanged", user_version(store, ann.id).await?, Some(0))?;
        commit(store, "UserVersion 0", guarded(vec![Precondition::UserVersion { user: ann.id, version: 0 }], vec![]))
            .await?;
        let second = fx.session(ann.id, 2, 2);
        refused(
            store,
            "a stale UserUnchanged",
            guarded(vec![unchanged(0)], vec![Change::InsertSession(second.clone())]),
            Refusal::Conflict,
        )
        .await?;
        same("the session after a conflict", store.session(&second.token_hash).await?, None)?;
        commit(store, "UserUnchanged 1", guarded(vec![unchanged(1)], vec![Change::InsertSession(second)])).await?;
        same("the version after UserUnchanged 1", user_version(store, ann.id).await?, Some(1))
    }

    pub(super) async fn invitation_pending_checks_org_state_and_token_hash<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let mut invitation = fx.invitation(org.id, "bob@example.com", ann.id, -20_000, 1)?;
        invitation.expires_at = at(-10_000);
        commit(
            store,
            "inviting",
            set(vec![Change::InsertUser(bob.clone()), Change::InsertInvitation(invitation.clone())]),
        )
        .await?;
        let pending = |org: OrgId, id: InvitationId, token: u8| Precondition::InvitationPending {
            org,
            id,
            token_hash: hash(token),
        };
        for (what, precondition) in [
            ("InvitationPending with another token hash", pending(org.id, invitation.id, 2)),
            ("InvitationPending in another organisation", pending(other.id, invitation.id, 1)),
            ("InvitationPending of a missing invitation", pending(org.id, InvitationId::from_uuid(fx.uuid()), 1)),
        ] {
            refused(store, what, guarded(vec![precondition], vec![]), Refusal::Conflict).await?;
        }
        let accepted = Invitation { state: InvitationState::Accepted { by: bob.id, at: at(1) }, ..invitation.clone() };
        let accept = vec![
            Change::UpdateInvitation(accepted.clone()),
            Change::InsertMembership(member(org.id, bob.id, builtin::USER)),
        ];
        commit(
            store,
            "accepting with InvitationPending (expired but stored as pending)",
            guarded(vec![pending(org.id, invitation.id, 1)], accept),
        )
        .await?;
        same("the invitation", store.invitation(org.id, invitation.id).await?, Some(accepted))?;
        refused(
            store,
            "InvitationPending after acceptance",
            guarded(vec![pending(org.id, invitation.id, 1)], vec![]),
            Refusal::Conflict,
        )
        .await
    }

    pub(super) async fn no_pending_invitation_checks_org_address_state_and_expiry<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let none = |org: OrgId, address: &str, minutes: i64| -> Result<Precondition, Broken> {
            Ok(Precondition::NoPendingInvitation { org, email: email(address)?, at: at(minutes) })
        };
        // Pending until minute 10,000 - 20,000 + 7 days = 80 (from minute -10,000).
        let invitation = fx.invitation(org.id, "bob@example.com", ann.id, -10_000, 1)?;
        let expired = fx.invitation(org.id, "cy@example.com", ann.id, -20_000, 2)?;
        commit(
            store,
            "inviting",
            set(vec![Change::InsertInvitation(invitation.clone()), Change::InsertInvitation(expired)]),
        )
        .await?;
        for (what, precondition) in [
            ("NoPendingInvitation of a pending address", none(org.id, "bob@example.com", 0)?),
            ("NoPendingInvitation in another letter case", none(org.id, "Bob@Example.com", 0)?),
        ] {
            refused(store, what, guarded(vec![precondition], vec![]), Refusal::Conflict).await?;
        }
        for (what, precondition) in [
            ("NoPendingInvitation after the invitation expires", none(org.id, "bob@example.com", 100)?),
            ("NoPendingInvitation of an expired invitation", none(org.id, "cy@example.com", 0)?),
            ("NoPendingInvitation of another address", none(org.id, "dee@example.com", 0)?),
            ("NoPendingInvitation in another organisation", none(other.id, "bob@example.com", 0)?),
        ] {
            commit(store, what, guarded(vec![precondition], vec![])).await?;
        }
        let revoked = Invitation { state: InvitationState::Revoked { by: ann.id, at: at(1) }, ..invitation };
        commit(store, "revoking", set(vec![Change::UpdateInvitation(revoked)])).await?;
        commit(store, "NoPendingInvitation once revoked", guarded(vec![none(org.id, "bob@example.com", 0)?], vec![]))
            .await
    }

    pub(super) async fn join_request_pending_checks_org_and_state<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let request = fx.join_request(org.id, bob.id, 1);
        commit(
            store,
            "asking to join",
            set(vec![Change::InsertUser(bob.clone()), Change::InsertJoinRequest(request.clone())]),
        )
        .await?;
        let pending = |org: OrgId, id: JoinRequestId| Precondition::JoinRequestPending { org, id };
        refused(
            store,
            "JoinRequestPending in another organisation",
            guarded(vec![pending(other.id, request.id)], vec![]),
            Refusal::Conflict,
        )
        .await?;
        refused(
            store,
            "JoinRequestPending of a missing request",
            guarded(vec![pending(org.id, JoinRequestId::from_uuid(fx.uuid()))], vec![]),
            Refusal::Conflict,
        )
        .await?;
        let approved = JoinRequest {
            state: JoinRequestState::Approved { by: Some(ann.id), at: at(2), role: builtin::USER },
            ..request.clone()
        };
        let approve =
            vec![Change::UpdateJoinRequest(approved), Change::InsertMembership(member(org.id, bob.id, builtin::USER))];
        commit(store, "approving with JoinRequestPending", guarded(vec![pending(org.id, request.id)], approve)).await?;
        refused(
            store,
            "JoinRequestPending after approval",
            guarded(vec![pending(org.id, request.id)], vec![]),
            Refusal::Conflict,
        )
        .await
    }

    pub(super) async fn token_unused_checks_the_token_exists_and_is_unused<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let token = reset_token(ann.id, 1, 1, None);
        commit(store, "issuing a token", set(vec![Change::InsertUser(ann), Change::InsertToken(token)])).await?;
        let unused = |n| Precondition::TokenUnused { hash: hash(n) };
        refused(store, "TokenUnused of a missing token", guarded(vec![unused(2)], vec![]), Refusal::Conflict).await?;
        commit(
            store,
            "consuming with TokenUnused",
            guarded(vec![unused(1)], vec![Change::ConsumeToken { hash: hash(1), at: at(2) }]),
        )
        .await?;
        refused(store, "TokenUnused of a used token", guarded(vec![unused(1)], vec![]), Refusal::Conflict).await
    }

    pub(super) async fn role_unheld_counts_only_the_organisations_members<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let desk = key("front_desk")?;
        let changes = vec![
            Change::InsertUser(bob.clone()),
            Change::PutRole { org: org.id, role: fx.role("front_desk", "Front desk")? },
            Change::PutRole { org: other.id, role: fx.role("front_desk", "Front desk")? },
            Change::InsertMembership(member(other.id, bob.id, desk.clone())),
        ];
        commit(store, "a role held only in another organisation", set(changes)).await?;
        let unheld = |org: OrgId, role: RoleKey| Precondition::RoleUnheld { org, role };
        commit(store, "RoleUnheld of a role held only elsewhere", guarded(vec![unheld(org.id, desk.clone())], vec![]))
            .await?;
        refused(
            store,
            "RoleUnheld of the founder's built-in role",
            guarded(vec![unheld(org.id, builtin::ADMINISTRATOR)], vec![]),
            Refusal::Conflict,
        )
        .await?;
        let mut suspended = member(org.id, bob.id, desk.clone());
        suspended.status = MembershipStatus::Suspended { since: at(1), by: bob.id };
        commit(store, "a suspended holder", set(vec![Change::InsertMembership(suspended)])).await?;
        refused(
            store,
            "RoleUnheld of a role a suspended member holds",
            guarded(vec![unheld(org.id, desk)], vec![]),
            Refusal::Conflict,
        )
        .await
    }

    pub(super) async fn email_uniqueness_ignores_case<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("Ann@Example.com", "Ann", "Lee")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        commit(store, "two accounts", set(vec![Change::InsertUser(ann.clone()), Change::InsertUser(bob.clone())]))
            .await?;
        let clash = fx.user("ann@EXAMPLE.com", "Other", "Ann")?;
        refused(
            store,
            "an account with the same address in other letter case",
            set(vec![Change::InsertUser(clash.clone())]),
            Refusal::Duplicate(Duplicate::Email),
        )
        .await?;
        same("the refused account", store.user(clash.id).await?, None)?;
        let moved = User { email: email("ANN@example.COM")?, ..bob.clone() };
        refused(
            store,
            "moving an account to a taken address",
            set(vec![Change::UpdateUser(moved)]),
            Refusal::Duplicate(Duplicate::Email),
        )
        .await?;
        same(
            "the moved account's address",
            store.user(bob.id).await?.map(|u| u.email.as_str().to_owned()),
            Some("bob@example.com".into()),
        )?;
        let respelled = User { email: email("ANN@example.com")?, ..ann.clone() };
        commit(store, "respelling one's own address", set(vec![Change::UpdateUser(respelled)])).await?;
        commit(store, "another address", set(vec![Change::InsertUser(fx.user("ann.2@example.com", "Ann", "Two")?)]))
            .await
    }

    pub(super) async fn slugs_are_unique<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let copy = fx.org("acme-physio", ann.id)?;
        refused(
            store,
            "an organisation with a taken slug",
            set(vec![Change::InsertOrganisation(copy.clone())]),
            Refusal::Duplicate(Duplicate::Slug),
        )
        .await?;
        same("the refused organisation", store.organisation(copy.id).await?, None)?;
        let other = fx.org("other-practice", ann.id)?;
        commit(store, "another slug", set(vec![Change::InsertOrganisation(other.clone())])).await?;
        let renamed = Organisation { slug: OrgSlug::parse("acme-physio")?, ..other.clone() };
        refused(
            store,
            "renaming to a taken slug",
            set(vec![Change::UpdateOrganisation(renamed)]),
            Refusal::Duplicate(Duplicate::Slug),
        )
        .await?;
        let kept = Organisation { name: OrgName::parse("Acme Physio, Leeds")?, ..org };
        commit(store, "an update keeping its own slug", set(vec![Change::UpdateOrganisation(kept)])).await
    }

    pub(super) async fn memberships_are_unique_per_org_and_user<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        refused(
            store,
            "a second membership with another role",
            set(vec![Change::InsertMembership(member(org.id, ann.id, builtin::USER))]),
            Refusal::Duplicate(Duplicate::Membership),
        )
        .await?;
        same("the role", store.membership(org.id, ann.id).await?.map(|m| m.role), Some(builtin::ADMINISTRATOR))?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        commit(
            store,
            "a membership in another organisation",
            set(vec![Change::InsertMembership(member(other.id, ann.id, builtin::USER))]),
        )
        .await
    }

    pub(super) async fn one_pending_join_request_per_org_and_user<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let first = fx.join_request(org.id, bob.id, 1);
        commit(
            store,
            "a request",
            set(vec![Change::InsertUser(bob.clone()), Change::InsertJoinRequest(first.clone())]),
        )
        .await?;
        let second = fx.join_request(org.id, bob.id, 2);
        refused(
            store,
            "a second pending request",
            set(vec![Change::InsertJoinRequest(second.clone())]),
            Refusal::Duplicate(Duplicate::PendingJoinRequest),
        )
        .await?;
        same("the refused request", store.join_request(org.id, second.id).await?, None)?;
        commit(
            store,
            "a pending request to another organisation",
            set(vec![Change::InsertJoinRequest(fx.join_request(other.id, bob.id, 2))]),
        )
        .await?;
        let rejected =
            JoinRequest { state: JoinRequestState::Rejected { by: ann.id, at: at(3), reason: None }, ..first.clone() };
        commit(store, "rejecting the first", set(vec![Change::UpdateJoinRequest(rejected)])).await?;
        commit(store, "a new request after the first was decided", set(vec![Change::InsertJoinRequest(second)]))
            .await?;
        refused(
            store,
            "making the first pending again",
            set(vec![Change::UpdateJoinRequest(first)]),
            Refusal::Duplicate(Duplicate::PendingJoinRequest),
        )
        .await
    }

    pub(super) async fn facility_names_are_unique_per_org_ignoring_case<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let north = fx.facility(org.id, "North Clinic")?;
        let south = fx.facility(org.id, "South Clinic")?;
        commit(
            store,
            "two facilities",
            set(vec![Change::InsertFacility(north.clone()), Change::InsertFacility(south.clone())]),
        )
        .await?;
        let clash = fx.facility(org.id, "north CLINIC")?;
        refused(
            store,
            "a facility named like another in other letter case",
            set(vec![Change::InsertFacility(clash)]),
            Refusal::Duplicate(Duplicate::FacilityName),
        )
        .await?;
        let renamed = Facility { name: FacilityName::parse("NORTH clinic")?, ..south };
        refused(
            store,
            "renaming onto another facility's name",
            set(vec![Change::UpdateFacility(renamed)]),
            Refusal::Duplicate(Duplicate::FacilityName),
        )
        .await?;
        same("facilities", store.facilities(org.id).await?.len(), 2)?;
        commit(
            store,
            "the same name in another organisation",
            set(vec![Change::InsertFacility(fx.facility(other.id, "North Clinic")?)]),
        )
        .await?;
        let respelled = Facility { name: FacilityName::parse("North clinic")?, ..north };
        commit(store, "respelling a facility's own name", set(vec![Change::UpdateFacility(respelled)])).await
    }

    pub(super) async fn role_keys_cannot_shadow_built_ins<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        for built_in in Role::builtins() {
            let role = fx.role(built_in.key.as_str(), "Shadow")?;
            let what = format!("a custom role with the built-in key {}", built_in.key);
            refused(
                store,
                &what,
                set(vec![Change::PutRole { org: org.id, role }]),
                Refusal::Duplicate(Duplicate::RoleKey),
            )
            .await?;
        }
        same("custom roles", store.custom_roles(org.id).await?, Vec::new())?;
        commit(
            store,
            "a custom role",
            set(vec![Change::PutRole { org: org.id, role: fx.role("front_desk", "Front desk")? }]),
        )
        .await?;
        let replacement = fx.role("front_desk", "Reception")?;
        commit(
            store,
            "putting the same key again",
            set(vec![Change::PutRole { org: org.id, role: replacement.clone() }]),
        )
        .await?;
        same("custom roles after a replacement", store.custom_roles(org.id).await?, vec![replacement])
    }

    pub(super) async fn caller_bugs_are_store_errors<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let facility = fx.facility(org.id, "North Clinic")?;
        let invitation = fx.invitation(org.id, "zoe@example.com", ann.id, 1, 1)?;
        let mut request = fx.join_request(org.id, ann.id, 1);
        request.state = JoinRequestState::Withdrawn { at: at(2) };
        let token = reset_token(ann.id, 2, 1, None);
        let session = fx.session(ann.id, 3, 1);
        let run = fx.run(org.id, ann.id, 1)?;
        let entry = fx.audit(Some(org.id), ann.id, 1);
        let mail = fx.email(&ann.email, 1, false);
        let desk = fx.role("front_desk", "Front desk")?;
        commit(
            store,
            "one row of each kind",
            ChangeSet {
                changes: vec![
                    Change::InsertUser(bob.clone()),
                    Change::InsertFacility(facility.clone()),
                    Change::InsertInvitation(invitation.clone()),
                    Change::InsertJoinRequest(request.clone()),
                    Change::InsertToken(token.clone()),
                    Change::InsertSession(session.clone()),
                    Change::InsertRun(run.clone()),
                    Change::PutRole { org: org.id, role: desk.clone() },
                    Change::InsertMembership(member(org.id, bob.id, desk.key.clone())),
                ],
                audit: vec![entry.clone()],
                emails: vec![mail.clone()],
                ..ChangeSet::new()
            },
        )
        .await?;
        let nobody = UserId::from_uuid(fx.uuid());
        let nowhere = OrgId::from_uuid(fx.uuid());
        let ghost = fx.user("ghost@example.com", "Ghost", "User")?;
        let elsewhere = fx.org("nowhere-practice", ann.id)?;
        let bugs: Vec<(&str, Change)> = vec![
            ("updating a missing account", Change::UpdateUser(ghost.clone())),
            ("updating a missing organisation", Change::UpdateOrganisation(elsewhere.clone())),
            ("updating a missing membership", Change::UpdateMembership(member(org.id, nobody, builtin::USER))),
            ("deleting a missing membership", Change::DeleteMembership { org: org.id, user: nobody }),
            (
                "updating a missing invitation",
                Change::UpdateInvitation(fx.invitation(org.id, "x@example.com", ann.id, 1, 9)?),
            ),
            ("updating a missing join request", Change::UpdateJoinRequest(fx.join_request(org.id, ann.id, 1))),
            ("updating a missing facility", Change::UpdateFacility(fx.facility(org.id, "Ghost Clinic")?)),
            (
                "deleting a missing facility",
                Change::DeleteFacility { org: org.id, id: FacilityId::from_uuid(fx.uuid()) },
            ),
            ("deleting a missing custom role", Change::DeleteRole { org: org.id, key: key("ghost_role")? }),
            ("deleting a role members still hold", Change::DeleteRole { org: org.id, key: desk.key.clone() }),
            ("consuming a missing token", Change::ConsumeToken { hash: hash(99), at: at(5) }),
            ("touching a missing session", Change::TouchSession { hash: hash(99), at: at(5) }),
            ("unrestricting a missing session", Change::UnrestrictSession { hash: hash(99) }),
            ("revoking a missing session", Change::RevokeSession { hash: hash(99), at: at(5) }),
            (
                "a membership of a missing organisation",
                Change::InsertMembership(member(nowhere, ann.id, builtin::USER)),
            ),
            ("a membership of a missing account", Change::InsertMembership(member(org.id, nobody, builtin::USER))),
            (
                "an organisation created by a missing account",
                Change::InsertOrganisation(fx.org("ghost-practice", nobody)?),
            ),
            (
                "an invitation to a missing organisation",
                Change::InsertInvitation(fx.invitation(nowhere, "x@example.com", ann.id, 1, 10)?),
            ),
            ("a join request by a missing account", Change::InsertJoinRequest(fx.join_request(org.id, nobody, 1))),
            ("a token of a missing account", Change::InsertToken(reset_token(nobody, 11, 1, None))),
            ("a session of a missing account", Change::InsertSession(fx.session(nobody, 12, 1))),
            ("a facility of a missing organisation", Change::InsertFacility(fx.facility(nowhere, "Ghost Clinic")?)),
            (
                "a role of a missing organisation",
                Change::PutRole { org: nowhere, role: fx.role("ghost_role", "Ghost")? },
            ),
            ("a run of a missing organisation", Change::InsertRun(fx.run(nowhere, ann.id, 1)?)),
            ("reusing an account id", Change::InsertUser(User { email: email("new@example.com")?, ..bob.clone() })),
            (
                "reusing an organisation id",
                Change::InsertOrganisation(Organisation { slug: OrgSlug::parse("fresh-slug")?, ..org.clone() }),
            ),
            (
                "reusing a facility id",
                Change::InsertFacility(Facility { name: FacilityName::parse("Fresh Clinic")?, ..facility }),
            ),
            ("reusing an invitation id", Change::InsertInvitation(Invitation { token_hash: hash(13), ..invitation })),
            ("reusing a join request id", Change::InsertJoinRequest(request)),
            ("reusing a token hash", Change::InsertToken(token)),
            (
                "reusing a session token hash",
                Change::InsertSession(Session { id: SessionId::from_uuid(fx.uuid()), ..session.clone() }),
            ),
            ("reusing a session id", Change::InsertSession(Session { token_hash: hash(14), ..session })),
            ("reusing a run id", Change::InsertRun(run)),
            (
                "a membership naming a facility that does not exist",
                Change::UpdateMembership(Membership {
                    facilities: [FacilityId::from_uuid(fx.uuid())].into_iter().collect(),
                    ..member(org.id, bob.id, desk.key.clone())
                }),
            ),
        ];
        for (what, bug) in bugs {
            let marker = fx.audit(Some(org.id), ann.id, 9);
            let changes = ChangeSet {
                preconditions: vec![Precondition::OrgVersion { org: org.id, version: 0 }],
                changes: vec![Change::InsertFacility(fx.facility(org.id, "Marker Clinic")?), bug],
                audit: vec![marker],
                emails: vec![fx.email(&ann.email, 9, false)],
            };
            refused(store, what, changes, Refusal::Store).await?;
        }
        let reused_audit = ChangeSet { audit: vec![entry.clone()], ..ChangeSet::new() };
        refused(store, "reusing an audit entry id", reused_audit, Refusal::Store).await?;
        let homeless = ChangeSet { audit: vec![fx.audit(Some(nowhere), ann.id, 8)], ..ChangeSet::new() };
        refused(store, "an audit entry of a missing organisation", homeless, Refusal::Store).await?;
        let reused_mail = ChangeSet { emails: vec![mail.clone()], ..ChangeSet::new() };
        refused(store, "reusing a message id", reused_mail, Refusal::Store).await?;
        same("the version after refused commits", org_version(store, org.id).await?, Some(0))?;
        same("facilities after refused commits", store.facilities(org.id).await?.len(), 1)?;
        same(
            "audit entries after refused commits",
            store.audit_entries(org.id, PageRequest::first(100)).await?.items,
            vec![entry],
        )?;
        same("claimable emails after refused commits", claim_everything(store).await?, vec![mail.id])?;
        same("custom roles after refused commits", store.custom_roles(org.id).await?, vec![desk])
    }

    pub(super) async fn reassign_role_moves_only_that_roles_holders<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let desk = key("front_desk")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let cat = fx.user("cat@example.com", "Cat", "Lee")?;
        let dan = fx.user("dan@example.com", "Dan", "Brown")?;
        let changes = vec![
            Change::InsertUser(bob.clone()),
            Change::InsertUser(cat.clone()),
            Change::InsertUser(dan.clone()),
            Change::PutRole { org: org.id, role: fx.role("front_desk", "Front desk")? },
            Change::PutRole { org: other.id, role: fx.role("front_desk", "Front desk")? },
            Change::InsertMembership(member(org.id, bob.id, desk.clone())),
            Change::InsertMembership(member(org.id, cat.id, desk.clone())),
            Change::InsertMembership(member(org.id, dan.id, builtin::USER)),
            Change::InsertMembership(member(other.id, bob.id, desk.clone())),
        ];
        commit(store, "members with a custom role in two organisations", set(changes)).await?;
        let delete = vec![
            Change::ReassignRole { org: org.id, from: desk.clone(), to: builtin::MANAGER },
            Change::DeleteRole { org: org.id, key: desk.clone() },
        ];
        commit(store, "ReassignRole then DeleteRole", set(delete)).await?;
        for (who, org_id, role) in [
            (&ann, org.id, builtin::ADMINISTRATOR),
            (&bob, org.id, builtin::MANAGER),
            (&cat, org.id, builtin::MANAGER),
            (&dan, org.id, builtin::USER),
            (&bob, other.id, desk.clone()),
        ] {
            let what = format!(
                "{}'s role in {}",
                who.email,
                if org_id == org.id { "the organisation" } else { "the other one" }
            );
            same(&what, store.membership(org_id, who.id).await?.map(|m| m.role), Some(role))?;
        }
        same("the organisation's custom roles", store.custom_roles(org.id).await?, Vec::new())?;
        same("the other organisation's custom roles", store.custom_roles(other.id).await?.len(), 1)
    }

    pub(super) async fn delete_facility_removes_it_from_memberships<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let north = fx.facility(org.id, "North Clinic")?;
        let south = fx.facility(org.id, "South Clinic")?;
        let mut bobs = member(org.id, bob.id, builtin::USER);
        bobs.facilities = [north.id, south.id].into_iter().collect();
        let mut anns = member(org.id, ann.id, builtin::ADMINISTRATOR);
        anns.origin = MembershipOrigin::Founder;
        anns.facilities = [north.id].into_iter().collect();
        let changes = vec![
            Change::InsertUser(bob.clone()),
            Change::InsertFacility(north.clone()),
            Change::InsertFacility(south.clone()),
            Change::InsertMembership(bobs),
            Change::UpdateMembership(anns),
        ];
        commit(store, "members at two facilities", set(changes)).await?;
        commit(store, "DeleteFacility", set(vec![Change::DeleteFacility { org: org.id, id: north.id }])).await?;
        same("facilities", store.facilities(org.id).await?, vec![south.clone()])?;
        let facilities = |m: Option<Membership>| m.map(|m| m.facilities.into_iter().collect::<Vec<_>>());
        same("bob's facilities", facilities(store.membership(org.id, bob.id).await?), Some(vec![south.id]))?;
        same("ann's facilities", facilities(store.membership(org.id, ann.id).await?), Some(vec![]))?;
        let at_north = MemberQuery { facility: Some(north.id), ..query(org.id) };
        same("members found at the deleted facility", search_ids(store, &at_north).await?, Vec::new())
    }

    pub(super) async fn delete_role_removes_only_that_role<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let desk = fx.role("front_desk", "Front desk")?;
        let nurse = fx.role("nurse", "Nurse")?;
        let changes = vec![
            Change::PutRole { org: org.id, role: desk.clone() },
            Change::PutRole { org: org.id, role: nurse.clone() },
            Change::PutRole { org: other.id, role: desk.clone() },
        ];
        commit(store, "three roles", set(changes)).await?;
        commit(store, "DeleteRole", set(vec![Change::DeleteRole { org: org.id, key: desk.key.clone() }])).await?;
        same("the organisation's roles", store.custom_roles(org.id).await?, vec![nurse])?;
        same("the other organisation's roles", store.custom_roles(other.id).await?, vec![desk])
    }

    pub(super) async fn revoke_sessions_of_keeps_the_exception<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let (s1, s2, s3, s4) =
            (fx.session(ann.id, 1, 1), fx.session(ann.id, 2, 2), fx.session(ann.id, 3, 3), fx.session(bob.id, 4, 4));
        let changes = vec![
            Change::InsertUser(ann.clone()),
            Change::InsertUser(bob.clone()),
            Change::InsertSession(s1.clone()),
            Change::InsertSession(s2.clone()),
            Change::InsertSession(s3.clone()),
            Change::InsertSession(s4.clone()),
            Change::RevokeSession { hash: s3.token_hash, at: at(5) },
        ];
        commit(store, "four sessions, one revoked", set(changes)).await?;
        commit(store, "revoking it again", set(vec![Change::RevokeSession { hash: s3.token_hash, at: at(7) }])).await?;
        let except = Some(s2.token_hash);
        commit(
            store,
            "RevokeSessionsOf with an exception",
            set(vec![Change::RevokeSessionsOf { user: ann.id, except, at: at(10) }]),
        )
        .await?;
        let revoked = async |s: &Session| -> Result<Option<Option<DateTime<Utc>>>, Broken> {
            Ok(store.session(&s.token_hash).await?.map(|s| s.revoked_at))
        };
        same("the revoked session", revoked(&s1).await?, Some(Some(at(10))))?;
        same("the kept session", revoked(&s2).await?, Some(None))?;
        same("the session revoked earlier (first time kept)", revoked(&s3).await?, Some(Some(at(5))))?;
        same("another user's session", revoked(&s4).await?, Some(None))?;
        same("ann's sessions", store.sessions_of_user(ann.id).await?, vec![s2.clone()])?;
        commit(
            store,
            "RevokeSessionsOf without an exception",
            set(vec![Change::RevokeSessionsOf { user: ann.id, except: None, at: at(11) }]),
        )
        .await?;
        same("the last session", revoked(&s2).await?, Some(Some(at(11))))?;
        same("ann's sessions", store.sessions_of_user(ann.id).await?, Vec::new())?;
        same("bob's sessions", store.sessions_of_user(bob.id).await?, vec![s4])
    }

    pub(super) async fn expire_tokens_marks_only_that_purpose<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let reset = reset_token(ann.id, 1, 1, None);
        let used = reset_token(ann.id, 2, 1, Some(at(3)));
        let verify = OneTimeToken {
            purpose: TokenPurpose::VerifyEmail { email: ann.email.clone() },
            ..reset_token(ann.id, 3, 1, None)
        };
        let bobs = reset_token(bob.id, 4, 1, None);
        let changes = vec![
            Change::InsertUser(ann.clone()),
            Change::InsertUser(bob),
            Change::InsertToken(reset.clone()),
            Change::InsertToken(used.clone()),
            Change::InsertToken(verify.clone()),
            Change::InsertToken(bobs.clone()),
        ];
        commit(store, "four tokens", set(changes)).await?;
        commit(
            store,
            "ExpireTokens for resets",
            set(vec![Change::ExpireTokens { user: ann.id, reset: true, at: at(10) }]),
        )
        .await?;
        let used_at = async |t: &OneTimeToken| -> Result<Option<Option<DateTime<Utc>>>, Broken> {
            Ok(store.one_time_token(&t.hash).await?.map(|t| t.used_at))
        };
        same("the unused reset token", used_at(&reset).await?, Some(Some(at(10))))?;
        same("the reset token used earlier", used_at(&used).await?, Some(Some(at(3))))?;
        same("the verification token", used_at(&verify).await?, Some(None))?;
        same("another user's reset token", used_at(&bobs).await?, Some(None))?;
        commit(
            store,
            "ExpireTokens for verifications",
            set(vec![Change::ExpireTokens { user: ann.id, reset: false, at: at(11) }]),
        )
        .await?;
        same("the verification token", used_at(&verify).await?, Some(Some(at(11))))?;
        same("another user's reset token", used_at(&bobs).await?, Some(None))
    }

    pub(super) async fn consume_token_marks_it_used<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let token = reset_token(ann.id, 1, 1, None);
        let other = reset_token(ann.id, 2, 1, None);
        commit(
            store,
            "two tokens",
            set(vec![Change::InsertUser(ann), Change::InsertToken(token.clone()), Change::InsertToken(other.clone())]),
        )
        .await?;
        commit(store, "ConsumeToken", set(vec![Change::ConsumeToken { hash: token.hash, at: at(4) }])).await?;
        same(
            "the consumed token",
            store.one_time_token(&token.hash).await?,
            Some(OneTimeToken { used_at: Some(at(4)), ..token }),
        )?;
        same("the other token", store.one_time_token(&other.hash).await?, Some(other))
    }

    pub(super) async fn touch_and_unrestrict_change_only_their_field<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let session = Session { password_change_required: true, ..fx.session(ann.id, 1, 1) };
        commit(
            store,
            "a restricted session",
            set(vec![Change::InsertUser(ann), Change::InsertSession(session.clone())]),
        )
        .await?;
        commit(store, "TouchSession", set(vec![Change::TouchSession { hash: session.token_hash, at: at(30) }])).await?;
        let touched = Session { last_seen_at: at(30), ..session.clone() };
        same("the touched session", store.session(&session.token_hash).await?, Some(touched.clone()))?;
        commit(store, "UnrestrictSession", set(vec![Change::UnrestrictSession { hash: session.token_hash }])).await?;
        let free = Session { password_change_required: false, ..touched };
        same("the unrestricted session", store.session(&session.token_hash).await?, Some(free))
    }

    pub(super) async fn users_are_found_by_email_ignoring_case_and_by_ids<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("Ann.Lee@Example.com", "Ann", "Lee")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        commit(store, "two accounts", set(vec![Change::InsertUser(ann.clone()), Change::InsertUser(bob.clone())]))
            .await?;
        let found = store.user_by_email(&email("ANN.lee@example.COM")?).await?;
        same("the account found in other letter case", found.as_ref().map(|u| u.id), Some(ann.id))?;
        same("its spelling", found.map(|u| u.email.as_str().to_owned()), Some("Ann.Lee@Example.com".into()))?;
        same("an unknown address", store.user_by_email(&email("nobody@example.com")?).await?, None)?;
        let nobody = UserId::from_uuid(fx.uuid());
        same("an unknown id", store.user(nobody).await?, None)?;
        let mut listed: Vec<UserId> = store.users(&[bob.id, nobody, ann.id]).await?.iter().map(|u| u.id).collect();
        listed.sort();
        let mut expected = vec![ann.id, bob.id];
        expected.sort();
        same("users(ids) without the missing one", listed, expected)?;
        same("users(no ids)", store.users(&[]).await?, Vec::new())
    }

    pub(super) async fn organisations_are_found_by_current_slug<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let slug = |text: &str| OrgSlug::parse(text);
        same("by slug", store.organisation_by_slug(&slug("acme-physio")?).await?.map(|o| o.id), Some(org.id))?;
        same(
            "the other by slug",
            store.organisation_by_slug(&slug("other-practice")?).await?.map(|o| o.id),
            Some(other.id),
        )?;
        let renamed = Organisation { slug: slug("acme-leeds")?, ..org.clone() };
        commit(store, "a new slug", set(vec![Change::UpdateOrganisation(renamed)])).await?;
        same("the old slug", store.organisation_by_slug(&slug("acme-physio")?).await?, None)?;
        same("the new slug", store.organisation_by_slug(&slug("acme-leeds")?).await?.map(|o| o.id), Some(org.id))?;
        same("an unknown id", store.organisation(OrgId::from_uuid(fx.uuid())).await?, None)
    }

    pub(super) async fn roles_and_facilities_are_listed_in_order<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (_, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let mut changes = Vec::new();
        for role in ["zeta_role", "alpha_role", "mid_role"] {
            changes.push(Change::PutRole { org: org.id, role: fx.role(role, "Some role")? });
        }
        changes.push(Change::PutRole { org: other.id, role: fx.role("beta_role", "Other")? });
        for name in ["beta", "Alpha", "gamma", "Zeta", "alpine"] {
            changes.push(Change::InsertFacility(fx.facility(org.id, name)?));
        }
        changes.push(Change::InsertFacility(fx.facility(other.id, "aardvark")?));
        commit(store, "roles and facilities", set(changes)).await?;
        let roles: Vec<String> = store.custom_roles(org.id).await?.iter().map(|r| r.key.as_str().to_owned()).collect();
        same("custom roles by key", roles, vec!["alpha_role".into(), "mid_role".into(), "zeta_role".into()])?;
        let listed: Vec<String> = store.facilities(org.id).await?.iter().map(|f| f.name.as_str().to_owned()).collect();
        same(
            "facilities by name ignoring case",
            listed,
            vec!["Alpha".into(), "alpine".into(), "beta".into(), "gamma".into(), "Zeta".into()],
        )
    }

    pub(super) async fn membership_lists_select_and_order<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (bea, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let leads = AlertKind::parse("new_leads")?;
        let low = AlertKind::parse("nps_low")?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let cat = fx.user("cat@example.com", "Cat", "Lee")?;
        let dan = fx.user("dan@example.com", "Dan", "Brown")?;
        let mut bobs = member(org.id, bob.id, builtin::MANAGER);
        bobs.alerts = [leads.clone()].into_iter().collect();
        let mut cats = member(org.id, cat.id, builtin::USER);
        cats.alerts = [leads.clone(), low.clone()].into_iter().collect();
        cats.status = MembershipStatus::Suspended { since: at(1), by: ann.id };
        let mut dans = member(org.id, dan.id, builtin::MANAGER);
        dans.expires_at = Some(at(-5));
        let mut bobs_other = member(other.id, bob.id, builtin::USER);
        bobs_other.alerts = [leads.clone()].into_iter().collect();
        let changes = vec![
            Change::InsertUser(dan.clone()),
            Change::InsertUser(cat.clone()),
            Change::InsertUser(bob.clone()),
            Change::InsertMembership(dans),
            Change::InsertMembership(bobs_other),
            Change::InsertMembership(cats),
            Change::InsertMembership(bobs),
        ];
        commit(store, "members", set(changes)).await?;
        let mut by_id = vec![ann.id, bob.id, dan.id];
        by_id.sort();
        let roles = store.memberships_with_roles(org.id, &[builtin::MANAGER, builtin::ADMINISTRATOR]).await?;
        same("memberships with manager or administrator, by user id", user_ids(&roles), by_id)?;
        same("memberships with no roles", store.memberships_with_roles(org.id, &[]).await?, Vec::new())?;
        let mut alerted = user_ids(&store.memberships_with_alert(org.id, &leads).await?);
        alerted.sort();
        let mut expected = vec![bob.id, cat.id];
        expected.sort();
        same("memberships with the new-leads alert", alerted, expected)?;
        same(
            "memberships with the low-NPS alert",
            user_ids(&store.memberships_with_alert(org.id, &low).await?),
            vec![cat.id],
        )?;
        let orgs: Vec<OrgId> = store.memberships_of_user(bob.id).await?.iter().map(|m| m.org).collect();
        let mut expected = vec![org.id, other.id];
        expected.sort();
        same("bob's memberships, by organisation id", orgs, expected)?;
        same("bea's memberships", store.memberships_of_user(bea.id).await?.len(), 1)
    }

    pub(super) async fn invitation_lists_and_lookups<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (bea, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let i1 = fx.invitation(org.id, "one@example.com", ann.id, 1, 1)?;
        let mut i2 = fx.invitation(org.id, "two@example.com", ann.id, 3, 2)?;
        i2.expires_at = at(4);
        let i3 = fx.invitation(org.id, "three@example.com", ann.id, 2, 3)?;
        let i4 = Invitation {
            state: InvitationState::Accepted { by: bea.id, at: at(6) },
            ..fx.invitation(org.id, "zoe@example.com", ann.id, 6, 4)?
        };
        let i5 = Invitation {
            state: InvitationState::Revoked { by: ann.id, at: at(7) },
            ..fx.invitation(org.id, "zoe@example.com", ann.id, 7, 5)?
        };
        let i6 = Invitation {
            state: InvitationState::Declined { at: at(8) },
            ..fx.invitation(org.id, "zoe@example.com", ann.id, 8, 6)?
        };
        let i7 = fx.invitation(org.id, "Zoe@Example.com", ann.id, 5, 7)?;
        let i8 = fx.invitation(other.id, "zoe@example.com", bea.id, 9, 8)?;
        let all = [&i1, &i2, &i3, &i4, &i5, &i6, &i7, &i8];
        commit(store, "invitations", set(all.iter().map(|i| Change::InsertInvitation((*i).clone())).collect())).await?;
        let ids = |list: Vec<Invitation>| list.into_iter().map(|i| i.id).collect::<Vec<_>>();
        same(
            "open invitations, newest first (expired included)",
            ids(store.open_invitations(org.id).await?),
            vec![i7.id, i2.id, i3.id, i1.id],
        )?;
        same(
            "open invitations for zoe in any letter case",
            ids(store.open_invitations_for(&email("ZOE@example.COM")?).await?),
            vec![i8.id, i7.id],
        )?;
        same(
            "the accepted invitation by its token",
            store.invitation_by_token(&hash(4)).await?.map(|i| i.id),
            Some(i4.id),
        )?;
        let rotated = Invitation { token_hash: hash(9), resent: 1, expires_at: at(2_000), ..i1.clone() };
        commit(store, "rotating a token", set(vec![Change::UpdateInvitation(rotated.clone())])).await?;
        same("the old token", store.invitation_by_token(&hash(1)).await?, None)?;
        same("the new token", store.invitation_by_token(&hash(9)).await?, Some(rotated))?;
        same("an invitation asked for in another organisation", store.invitation(other.id, i1.id).await?, None)
    }

    pub(super) async fn join_request_lists_are_ordered_by_time<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let bob = fx.user("bob@example.com", "Bob", "Stone")?;
        let cat = fx.user("cat@example.com", "Cat", "Lee")?;
        let dan = fx.user("dan@example.com", "Dan", "Brown")?;
        let r1 = fx.join_request(org.id, bob.id, 1);
        let r2 = fx.join_request(org.id, cat.id, 3);
        let r3 = fx.join_request(org.id, dan.id, 2);
        let r4 = JoinRequest { state: JoinRequestState::Withdrawn { at: at(1) }, ..fx.join_request(org.id, bob.id, 0) };
        let r5 = fx.join_request(other.id, bob.id, 5);
        let r6 = JoinRequest {
            state: JoinRequestState::Rejected { by: ann.id, at: at(4), reason: None },
            ..fx.join_request(org.id, ann.id, -1)
        };
        let mut changes = vec![Change::InsertUser(bob.clone()), Change::InsertUser(cat), Change::InsertUser(dan)];
        changes.extend([&r5, &r2, &r1, &r4, &r3, &r6].iter().map(|r| Change::InsertJoinRequest((*r).clone())));
        commit(store, "join requests", set(changes)).await?;
        let ids = |list: Vec<JoinRequest>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
        same(
            "pending requests, oldest first",
            ids(store.pending_join_requests(org.id).await?),
            vec![r1.id, r3.id, r2.id],
        )?;
        same(
            "bob's requests, newest first",
            ids(store.join_requests_of_user(bob.id).await?),
            vec![r5.id, r1.id, r4.id],
        )?;
        same("a request asked for in another organisation", store.join_request(other.id, r1.id).await?, None)?;
        same("a request by id", store.join_request(org.id, r1.id).await?, Some(r1))
    }

    pub(super) async fn sessions_and_tokens_are_found_by_hash<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let ann = fx.user("ann@example.com", "Ann", "Lee")?;
        let s1 = fx.session(ann.id, 1, 1);
        let s2 = fx.session(ann.id, 2, 3);
        let s3 = Session { revoked_at: Some(at(5)), ..fx.session(ann.id, 3, 2) };
        let s4 = Session { expires_at: at(5), ..fx.session(ann.id, 4, 4) };
        let token = reset_token(ann.id, 5, 1, None);
        let changes = vec![
            Change::InsertUser(ann.clone()),
            Change::InsertSession(s4.clone()),
            Change::InsertSession(s3.clone()),
            Change::InsertSession(s2.clone()),
            Change::InsertSession(s1.clone()),
            Change::InsertToken(token.clone()),
        ];
        commit(store, "sessions and a token", set(changes)).await?;
        same("unrevoked sessions, newest first", store.sessions_of_user(ann.id).await?, vec![s4, s2, s1])?;
        same("a revoked session by hash", store.session(&s3.token_hash).await?, Some(s3))?;
        same("an unknown session", store.session(&hash(9)).await?, None)?;
        same("a token by hash", store.one_time_token(&token.hash).await?, Some(token))?;
        same("an unknown token", store.one_time_token(&hash(9)).await?, None)
    }

    pub(super) async fn member_search_filters<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann.founder@acme.example", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let north = fx.facility(org.id, "North Clinic")?;
        let bob = fx.user("bob.s@north.example", "Bob", "Stone")?;
        let cat = fx.user("cat@example.com", "Cat", "Lee-Smith")?;
        let dan = fx.user("dan@example.com", "Dan", "Brown")?;
        let eve = fx.user("eve@example.com", "Eve", "Lee")?;
        let mut bobs = member(org.id, bob.id, builtin::MANAGER);
        bobs.facilities = [north.id].into_iter().collect();
        let mut cats = member(org.id, cat.id, builtin::USER);
        cats.status = MembershipStatus::Suspended { since: at(1), by: ann.id };
        let mut dans = member(org.id, dan.id, builtin::MANAGER);
        dans.expires_at = Some(at(60));
        let changes = vec![
            Change::InsertFacility(north.clone()),
            Change::InsertUser(bob.clone()),
            Change::InsertUser(cat.clone()),
            Change::InsertUser(dan.clone()),
            Change::InsertUser(eve.clone()),
            Change::InsertMembership(bobs),
            Change::InsertMembership(cats),
            Change::InsertMembership(dans),
            Change::InsertMembership(member(other.id, eve.id, builtin::USER)),
        ];
        commit(store, "members", set(changes)).await?;
        let q = || query(org.id);
        let text = |t: &str| MemberQuery { text: Some(t.to_owned()), ..q() };
        // Sort keys: brown, founder, lee-smith, stone.
        same("everyone", search_ids(store, &q()).await?, vec![dan.id, ann.id, cat.id, bob.id])?;
        same("text in a last name, any case", search_ids(store, &text("LEE")).await?, vec![cat.id])?;
        same("text across first and last name", search_ids(store, &text("bob sto")).await?, vec![bob.id])?;
        same("text in an address", search_ids(store, &text("NORTH.example")).await?, vec![bob.id])?;
        same("text in a first name", search_ids(store, &text("an")).await?, vec![dan.id, ann.id])?;
        same("text matching nobody", search_ids(store, &text("zzz")).await?, Vec::new())?;
        same(
            "role",
            search_ids(store, &MemberQuery { role: Some(builtin::MANAGER), ..q() }).await?,
            vec![dan.id, bob.id],
        )?;
        same("facility", search_ids(store, &MemberQuery { facility: Some(north.id), ..q() }).await?, vec![bob.id])?;
        let state = |state, as_of| MemberQuery { state: Some(state), as_of: at(as_of), ..q() };
        same("suspended", search_ids(store, &state(MemberState::Suspended, 120)).await?, vec![cat.id])?;
        same("expired at its expiry", search_ids(store, &state(MemberState::Expired, 60)).await?, vec![dan.id])?;
        same(
            "active after an expiry",
            search_ids(store, &state(MemberState::Active, 120)).await?,
            vec![ann.id, bob.id],
        )?;
        same(
            "active before an expiry",
            search_ids(store, &state(MemberState::Active, 30)).await?,
            vec![dan.id, ann.id, bob.id],
        )?;
        let combined = MemberQuery { role: Some(builtin::MANAGER), state: Some(MemberState::Active), ..q() };
        same("role and state together", search_ids(store, &combined).await?, vec![bob.id])?;
        let items = store.search_members(&text("stone")).await?.items;
        same(
            "a summary's name and address",
            items.iter().map(|s| (s.name.clone(), s.email.as_str().to_owned())).collect::<Vec<_>>(),
            vec![(bob.name, "bob.s@north.example".to_owned())],
        )
    }

    pub(super) async fn member_search_pages_every_member_once_in_order<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (org, expected) = many_members(store, &fx, 260).await?;
        let mut seen = Vec::new();
        let mut after = None;
        let mut sizes = Vec::new();
        for page_number in 1..=10 {
            let page = store.search_members(&MemberQuery { limit: 100, after: after.clone(), ..query(org.id) }).await?;
            sizes.push(page.items.len());
            let keys: Vec<(String, UserId)> =
                page.items.iter().map(|s| (s.name.sort_key(), s.membership.user)).collect();
            let last = keys.last().map(|(sort_key, user)| MemberCursor { sort_key: sort_key.clone(), user: *user });
            seen.extend(keys);
            match page.next {
                None => break,
                Some(next) => {
                    same(&format!("page {page_number}'s next cursor (its last member)"), Some(next.clone()), last)?;
                    after = Some(next);
                }
            }
        }
        same("page sizes", sizes, vec![100, 100, 61])?;
        same("every member once, by (sort key, user id)", seen, expected)
    }

    pub(super) async fn member_search_clamps_the_limit<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (org, expected) = many_members(store, &fx, 210).await?;
        let zero = store.search_members(&MemberQuery { limit: 0, ..query(org.id) }).await?;
        same("members on a page of limit 0", zero.items.len(), 1)?;
        ensure(zero.next.is_some(), || "a page of limit 0 had no next cursor".into())?;
        let huge = store.search_members(&MemberQuery { limit: 10_000, ..query(org.id) }).await?;
        same("members on a page of limit 10000", huge.items.len(), 200)?;
        let rest = store.search_members(&MemberQuery { limit: 10_000, after: huge.next, ..query(org.id) }).await?;
        same("members on the second page", rest.items.len(), expected.len() - 200)?;
        same("the second page's next", rest.next, None)
    }

    pub(super) async fn audit_entries_are_paged_newest_first<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let entries: Vec<AuditEntry> = (1..=5).map(|minute| fx.audit(Some(org.id), ann.id, minute)).collect();
        let elsewhere = [fx.audit(Some(other.id), ann.id, 6), fx.audit(None, ann.id, 7)];
        for index in [2, 0, 4, 1, 3] {
            let entry = entries.get(index).cloned().into_iter().collect();
            commit(store, "an audit entry", ChangeSet { audit: entry, ..ChangeSet::new() }).await?;
        }
        commit(store, "entries elsewhere", ChangeSet { audit: elsewhere.to_vec(), ..ChangeSet::new() }).await?;
        let mut newest_first = entries.clone();
        newest_first.reverse();
        let mut seen = Vec::new();
        let mut after = None;
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let page = store.audit_entries(org.id, PageRequest { limit: 2, after: after.take() }).await?;
            sizes.push(page.items.len());
            seen.extend(page.items);
            match page.next {
                None => break,
                next => after = next,
            }
        }
        same("page sizes", sizes, vec![2, 2, 1])?;
        same("entries, newest first", seen, newest_first.clone())?;
        let full = store.audit_entries(org.id, PageRequest::first(5)).await?;
        same("an exactly full page", (full.items, full.next), (newest_first.clone(), None))?;
        let one = store.audit_entries(org.id, PageRequest::first(0)).await?;
        same("a page of limit 0", one.items, newest_first.into_iter().take(1).collect())
    }

    pub(super) async fn runs_are_paged_newest_first<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        let (_, other) = founded(store, &fx, "bea@example.com", "other-practice").await?;
        let mut runs = Vec::new();
        for minute in 1..=5 {
            runs.push(fx.run(org.id, ann.id, minute)?);
        }
        for index in [3, 0, 4, 2, 1] {
            let run = runs.get(index).cloned().into_iter().map(Change::InsertRun).collect();
            commit(store, "a run", set(run)).await?;
        }
        commit(store, "a run elsewhere", set(vec![Change::InsertRun(fx.run(other.id, ann.id, 6)?)])).await?;
        runs.reverse();
        let mut seen = Vec::new();
        let mut after = None;
        let mut sizes = Vec::new();
        for _ in 0..10 {
            let page = store.runs(org.id, PageRequest { limit: 2, after: after.take() }).await?;
            sizes.push(page.items.len());
            seen.extend(page.items);
            match page.next {
                None => break,
                next => after = next,
            }
        }
        same("page sizes", sizes, vec![2, 2, 1])?;
        same("runs, newest first", seen, runs)
    }

    pub(super) async fn unknown_page_cursors_are_store_errors<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let (ann, org) = founded(store, &fx, "ann@example.com", "acme-physio").await?;
        commit(
            store,
            "an entry and a run",
            ChangeSet {
                changes: vec![Change::InsertRun(fx.run(org.id, ann.id, 1)?)],
                audit: vec![fx.audit(Some(org.id), ann.id, 1)],
                ..ChangeSet::new()
            },
        )
        .await?;
        let bad = PageRequest { limit: 10, after: Some("not a cursor \u{1f}!".into()) };
        let audit = store.audit_entries(org.id, bad.clone()).await;
        ensure(audit.is_err(), || {
            format!("audit_entries with an unknown cursor: expected a StoreError, got {audit:?}")
        })?;
        let runs = store.runs(org.id, bad).await;
        ensure(runs.is_err(), || format!("runs with an unknown cursor: expected a StoreError, got {runs:?}"))
    }

    pub(super) async fn outbox_claims_oldest_first_under_a_lease<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let to = email("ann@example.com")?;
        let m1 = fx.email(&to, 3, true);
        let m2 = fx.email(&to, 1, false);
        let m3 = fx.email(&to, 2, true);
        let m4 = fx.email(&to, 1, false);
        let emails = vec![m1.clone(), m2.clone(), m3.clone(), m4.clone()];
        commit(store, "four emails", ChangeSet { emails, ..ChangeSet::new() }).await?;
        let lease = Duration::minutes(5);
        let first = store.claim(2, at(10), lease).await?;
        same(
            "the first claim (oldest first, ties by id)",
            first.clone(),
            vec![ClaimedEmail { email: m2.clone(), attempts: 0 }, ClaimedEmail { email: m4.clone(), attempts: 0 }],
        )?;
        same("a claim within the lease", claimed_ids(&store.claim(10, at(11), lease).await?), vec![m3.id, m1.id])?;
        same("a claim when everything is leased", claimed_ids(&store.claim(10, at(12), lease).await?), Vec::new())?;
        same(
            "a claim as the first lease ends",
            claimed_ids(&store.claim(10, at(15), lease).await?),
            vec![m2.id, m4.id],
        )?;
        same("a claim of no messages", store.claim(0, at(100), lease).await?, Vec::new())
    }

    pub(super) async fn outbox_retry_is_due_at_its_time_with_one_more_attempt<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let to = email("ann@example.com")?;
        let mail = fx.email(&to, 1, true);
        commit(store, "an email", ChangeSet { emails: vec![mail.clone()], ..ChangeSet::new() }).await?;
        let lease = Duration::minutes(5);
        same("the first claim", claimed_ids(&store.claim(10, at(10), lease).await?), vec![mail.id])?;
        store.mark_failed(mail.id, DeliveryFailure::Retry { error: "421 try later".into(), at: at(30) }).await?;
        same("a claim before the retry time", claimed_ids(&store.claim(10, at(29), lease).await?), Vec::new())?;
        same(
            "a claim at the retry time",
            store.claim(10, at(30), lease).await?,
            vec![ClaimedEmail { email: mail.clone(), attempts: 1 }],
        )?;
        store.mark_failed(mail.id, DeliveryFailure::Retry { error: "421 try later".into(), at: at(40) }).await?;
        same(
            "a claim after a second failure",
            store.claim(10, at(41), lease).await?,
            vec![ClaimedEmail { email: mail, attempts: 2 }],
        )
    }

    pub(super) async fn outbox_release_frees_claimed_messages<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let to = email("ann@example.com")?;
        let a = fx.email(&to, 1, false);
        let b = fx.email(&to, 2, false);
        commit(store, "two emails", ChangeSet { emails: vec![a.clone(), b.clone()], ..ChangeSet::new() }).await?;
        let lease = Duration::minutes(5);
        same("the claim", claimed_ids(&store.claim(10, at(10), lease).await?), vec![a.id, b.id])?;
        store.release(&[a.id]).await?;
        store.release(&[]).await?;
        same(
            "a claim after releasing one",
            store.claim(10, at(11), lease).await?,
            vec![ClaimedEmail { email: a, attempts: 0 }],
        )?;
        same("a claim as b's lease ends", claimed_ids(&store.claim(10, at(15), lease).await?), vec![b.id])
    }

    pub(super) async fn outbox_giving_up_queues_its_reports_with_it<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let org = Some(OrgId::from_uuid(fx.uuid()));
        let failed = OutboundEmail { org, ..fx.email(&email("ann@example.com")?, 1, false) };
        commit(store, "an email", ChangeSet { emails: vec![failed.clone()], ..ChangeSet::new() }).await?;
        same("the claim", claimed_ids(&store.claim(10, at(10), Duration::minutes(5)).await?), vec![failed.id])?;
        let routing = NotificationRouting::new(
            &Catalogue::builtin(),
            [(topics::FAILED_MESSAGING, std::iter::once(email("ops@example.com")?).collect())],
        )
        .map_err(|problems| Broken(format!("routing: {problems:?}")))?;
        let report = |minute| {
            Ok::<_, Broken>(
                failed.failure_reports(&routing, "550 no such user", at(minute), || MessageId::from_uuid(fx.uuid())),
            )
        };
        let stray = report(11)?;
        let nowhere = MessageId::from_uuid(fx.uuid());
        let refused =
            store.mark_failed(nowhere, DeliveryFailure::Dead { error: "550".into(), reports: stray.clone() }).await;
        same("giving up a message not in the outbox fails", refused.is_err(), true)?;
        // A report that cannot be inserted (its id is taken) fails the whole write: the
        // message is not given up either.
        let clash = vec![OutboundEmail { id: failed.id, ..stray[0].clone() }];
        let refused = store.mark_failed(failed.id, DeliveryFailure::Dead { error: "550".into(), reports: clash }).await;
        same("giving up with a report whose id is taken fails", refused.is_err(), true)?;
        same(
            "the message after the failed write: not dead, no attempt counted, claimable after its lease",
            store.claim(10, at(10) + Duration::minutes(5), Duration::minutes(5)).await?,
            vec![ClaimedEmail { email: failed.clone(), attempts: 0 }],
        )?;
        let reports = report(12)?;
        same("one report", reports.len(), 1)?;
        store
            .mark_failed(
                failed.id,
                DeliveryFailure::Dead { error: "550 no such user".into(), reports: reports.clone() },
            )
            .await?;
        same(
            "a claim after giving up: the report only, nothing of the refused calls",
            store.claim(10, at(12) + Duration::minutes(5), Duration::minutes(5)).await?,
            vec![ClaimedEmail { email: reports[0].clone(), attempts: 0 }],
        )
    }

    pub(super) async fn outbox_the_first_outcome_stands<S: ContractStore + ?Sized>(store: &S) -> Check {
        let fx = Fixture::new();
        let org = OrgId::from_uuid(fx.uuid());
        let to = email("ann@example.com")?;
        let sent = OutboundEmail { org: Some(org), ..fx.email(&to, 1, false) };
        let dead = OutboundEmail { org: Some(org), ..fx.email(&to, 2, false) };
        commit(store, "two emails", ChangeSet { emails: vec![sent.clone(), dead.clone()], ..ChangeSet::new() }).await?;
        same("the claim", claimed_ids(&store.claim(10, at(10), Duration::minutes(5)).await?), vec![sent.id, dead.id])?;
        store.mark_sent(sent.id, at(11)).await?;
        store.mark_failed(dead.id, DeliveryFailure::Dead { error: "550 first".into(), reports: Vec::new() }).await?;

        // Late outcomes from a dispatcher whose lease ran out change nothing.
        let late_report = OutboundEmail { org: Some(org), ..fx.email(&email("ops@example.com")?, 3, false) };
        store
            .mark_failed(sent.id, DeliveryFailure::Dead { error: "550 late".into(), reports: vec![late_report] })
            .await?;
        store.mark_failed(sent.id, DeliveryFailure::Retry { error: "451 late".into(), at: at(12) }).await?;
        store.mark_sent(dead.id, at(13)).await?;
        store.mark_failed(dead.id, DeliveryFailure::Retry { error: "451 late".into(), at: at(12) }).await?;
        store.release(&[sent.id, dead.id]).await?;

        same("nothing to claim: no report queued, nothing revived", claim_everything(store).await?, Vec::new())?;
        let undelivered = store.undelivered(org, PageRequest::first(10)).await?;
        same(
            "the dead letters: only the one given up, with its first error and one attempt",
            undelivered.items.iter().map(|item| (item.id, item.last_error.clone(), item.attempts)).collect::<Vec<_>>(),
            vec![(dead.id, Some("550 first".to_owned()), 1)],
        )
    }

    pub(super) async fn undelivered_lists_an_organisations_dead_letters_newest_first<S: ContractStore + ?Sized>(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let (org, other) = (OrgId::from_uuid(fx.uuid()), OrgId::from_uuid(fx.uuid()));
        let to = email("ann@example.com")?;
        let mut ours = Vec::new();
        for minute in 1..=3 {
            ours.push(OutboundEmail { org: Some(org), ..fx.email(&to, minute, minute == 2) });
        }
        let retried = OutboundEmail { org: Some(org), ..fx.email(&to, 4, false) };
        let theirs = OutboundEmail { org: Some(other), ..fx.email(&to, 5, false) };
        let orgless = fx.email(&to, 6, false);
        let mut all = ours.clone();
        all.extend([retried.clone(), theirs.clone(), orgless.clone()]);
        commit(store, "six emails", ChangeSet { emails: all.clone(), ..ChangeSet::new() }).await?;
        same("the claim", claimed_ids(&store.claim(10, at(10), Duration::minutes(5)).await?).len(), 6)?;
        for (n, message) in all.iter().enumerate() {
            let error = format!("550 number {n}");
            let failure = if message.id == retried.id {
                DeliveryFailure::Retry { error, at: at(60) }
            } else {
                DeliveryFailure::Dead { error, reports: Vec::new() }
            };
            store.mark_failed(message.id, failure).await?;
        }
        let expected = |n: usize| UndeliveredEmail {
            id: ours[n].id,
            to: to.clone(),
            template: ours[n].notification.template().to_owned(),
            queued_at: ours[n].queued_at,
            attempts: 1,
            last_error: Some(format!("550 number {n}")),
        };
        let first = store.undelivered(org, PageRequest::first(2)).await?;
        same("the first page", first.items, vec![expected(2), expected(1)])?;
        let rest = store.undelivered(org, PageRequest { limit: 2, after: first.next }).await?;
        same("the second page", (rest.items, rest.next), (vec![expected(0)], None))?;
        let elsewhere = store.undelivered(other, PageRequest::first(10)).await?;
        same("the other organisation's", undelivered_ids(&elsewhere.items), vec![theirs.id])
    }

    pub(super) async fn outbox_mark_sent_stops_delivery_and_erases_secrets<
        S: ContractStore + OutboxInspection + ?Sized,
    >(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let to = email("ann@example.com")?;
        let secret = fx.email(&to, 1, true);
        let plain = fx.email(&to, 2, false);
        commit(store, "two emails", ChangeSet { emails: vec![secret.clone(), plain.clone()], ..ChangeSet::new() })
            .await?;
        same("the secret is held before sending", store.retains_secret(secret.id).await?, true)?;
        same(
            "the claim",
            claimed_ids(&store.claim(10, at(10), Duration::minutes(5)).await?),
            vec![secret.id, plain.id],
        )?;
        store.mark_sent(secret.id, at(11)).await?;
        same("the secret after sending", store.retains_secret(secret.id).await?, false)?;
        same(
            "a claim after the lease ends",
            claimed_ids(&store.claim(10, at(20), Duration::minutes(5)).await?),
            vec![plain.id],
        )?;
        store.mark_sent(plain.id, at(21)).await?;
        same("a claim once everything is sent", claim_everything(store).await?, Vec::new())
    }

    pub(super) async fn outbox_dead_letters_are_never_claimed_and_lose_their_secret<
        S: ContractStore + OutboxInspection + ?Sized,
    >(
        store: &S,
    ) -> Check {
        let fx = Fixture::new();
        let to = email("ann@example.com")?;
        let secret = fx.email(&to, 1, true);
        commit(store, "an email", ChangeSet { emails: vec![secret.clone()], ..ChangeSet::new() }).await?;
        same("the claim", claimed_ids(&store.claim(10, at(10), Duration::minutes(5)).await?), vec![secret.id])?;
        store
            .mark_failed(secret.id, DeliveryFailure::Dead { error: "550 no such user".into(), reports: Vec::new() })
            .await?;
        same("a claim after giving up", claim_everything(store).await?, Vec::new())?;
        same("the secret of a dead letter", store.retains_secret(secret.id).await?, false)
    }
}

/// A password-reset token issued at `created`, used at `used_at`.
fn reset_token(user: UserId, n: u8, created: i64, used_at: Option<DateTime<Utc>>) -> OneTimeToken {
    OneTimeToken {
        hash: hash(n),
        user,
        purpose: TokenPurpose::ResetPassword,
        created_at: at(created),
        expires_at: at(created + 60),
        used_at,
    }
}
