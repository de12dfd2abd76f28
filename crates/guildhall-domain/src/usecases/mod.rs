//! Use cases: one method per thing a person does.
//!
//! Each use case reads through the repository ports, decides with the pure rules of this
//! crate, and commits one [`ChangeSet`] (state, audit entry and emails together) with the
//! preconditions its decision relied on. When a precondition fails because someone else
//! changed the same state first, the use case reads again and decides again (a few times
//! at most), so a concurrent change can never slip past an invariant check.
//!
//! Services group the use cases by subject: [`Accounts`], [`Organisations`],
//! [`Invitations`], [`JoinRequests`], [`Members`] and [`Roles`], plus the service
//! operator's own actions in [`Operators`]. Build them all from one [`Guildhall`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use crate::catalogue::Catalogue;
use crate::error::{AccessError, Unexpected};
use crate::ids::{AuditId, MessageId, OrgId, UserId};
use crate::membership::Membership;
use crate::notification::{Notification, OutboundEmail};
use crate::org::Organisation;
use crate::password::PasswordPolicy;
use crate::ports::{
    AuditLog, ChangeSet, Clock, CommitError, DeliveryLog, Duplicate, IdGenerator, InvitationRepository,
    JoinRequestRepository, MembershipRepository, OrganisationRepository, PasswordHasher, TokenGenerator,
    TokenRepository, UnitOfWork, UserRepository,
};
use crate::role::{Denial, RolePolicy, RoleSet, Scope};
use crate::token::{SessionPolicy, Token};
use crate::user::User;
use crate::values::{EmailAddress, OrgSlug, Permission, RoleKey, Topic};

mod accounts;
mod invitations;
mod join_requests;
mod members;
mod operators;
mod organisations;
mod roles;

pub use accounts::*;
pub use invitations::*;
pub use join_requests::*;
pub use members::*;
pub use operators::*;
pub use organisations::*;
pub use roles::*;

/// Every port the use cases need.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Ports {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Organisations, roles, facilities, runs.
    pub organisations: Arc<dyn OrganisationRepository>,
    /// Memberships.
    pub memberships: Arc<dyn MembershipRepository>,
    /// Invitations.
    pub invitations: Arc<dyn InvitationRepository>,
    /// Join requests.
    pub join_requests: Arc<dyn JoinRequestRepository>,
    /// One-time tokens and sessions.
    pub tokens: Arc<dyn TokenRepository>,
    /// The audit log.
    pub audit_log: Arc<dyn AuditLog>,
    /// Dead letters.
    pub deliveries: Arc<dyn DeliveryLog>,
    /// Atomic commits.
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Secure randomness.
    pub token_generator: Arc<dyn TokenGenerator>,
    /// Identifiers.
    pub ids: Arc<dyn IdGenerator>,
}

impl Ports {
    /// Every storage port from one store that implements them all, plus the other ports.
    pub fn from_store<S>(
        store: Arc<S>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        token_generator: Arc<dyn TokenGenerator>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self
    where
        S: UserRepository
            + OrganisationRepository
            + MembershipRepository
            + InvitationRepository
            + JoinRequestRepository
            + TokenRepository
            + AuditLog
            + DeliveryLog
            + UnitOfWork
            + 'static,
    {
        Self {
            users: store.clone(),
            organisations: store.clone(),
            memberships: store.clone(),
            invitations: store.clone(),
            join_requests: store.clone(),
            tokens: store.clone(),
            audit_log: store.clone(),
            deliveries: store.clone(),
            unit_of_work: store,
            hasher,
            clock,
            token_generator,
            ids,
        }
    }
}

/// Platform-wide settings of the use cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The password rules every account must meet, whatever its organisations say.
    pub platform_password_policy: PasswordPolicy,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// How long an administrator-created account's temporary password works (72 h).
    pub temporary_password_lifetime: Duration,
    /// How long a password-reset link works (1 h).
    pub password_reset_lifetime: Duration,
    /// How long an email-verification link works (48 h).
    pub email_verification_lifetime: Duration,
    /// A used session is recorded as seen at most this often (avoids a write per request).
    pub session_touch_interval: Duration,
    /// Who may create organisations ([`OrganisationCreation::Anyone`]).
    pub organisation_creation: OrganisationCreation,
}

/// Who may create organisations.
///
/// Whatever the setting, the service's operators can always create one (with
/// [`Operators::create_organisation`]); the setting decides whether signed-in people can
/// too ([`Organisations::create`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OrganisationCreation {
    /// Any signed-in account with a verified address may create an organisation and
    /// becomes its first administrator.
    #[default]
    Anyone,
    /// Only the service's operators create organisations; people ask one to.
    OperatorsOnly,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            platform_password_policy: PasswordPolicy::seed_default(),
            sessions: SessionPolicy::default(),
            temporary_password_lifetime: Duration::hours(72),
            password_reset_lifetime: Duration::hours(1),
            email_verification_lifetime: Duration::hours(48),
            session_touch_interval: Duration::minutes(1),
            organisation_creation: OrganisationCreation::default(),
        }
    }
}

/// What every use case shares.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) ports: Ports,
    pub(crate) catalogue: Arc<Catalogue>,
    pub(crate) settings: Arc<Settings>,
}

/// The use cases, wired to their ports. Cheap to clone.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Guildhall {
    ctx: Context,
}

impl Guildhall {
    /// Wires the use cases.
    #[must_use]
    pub fn new(ports: Ports, catalogue: Arc<Catalogue>, settings: Settings) -> Self {
        Self { ctx: Context { ports, catalogue, settings: Arc::new(settings) } }
    }

    /// Sign-up, sign-in, passwords, sessions, profile.
    #[must_use]
    pub fn accounts(&self) -> Accounts {
        Accounts { ctx: self.ctx.clone() }
    }

    /// Organisations, settings, facilities, capabilities, runs, audit.
    #[must_use]
    pub fn organisations(&self) -> Organisations {
        Organisations { ctx: self.ctx.clone() }
    }

    /// Invitations.
    #[must_use]
    pub fn invitations(&self) -> Invitations {
        Invitations { ctx: self.ctx.clone() }
    }

    /// Join requests.
    #[must_use]
    pub fn join_requests(&self) -> JoinRequests {
        JoinRequests { ctx: self.ctx.clone() }
    }

    /// Members.
    #[must_use]
    pub fn members(&self) -> Members {
        Members { ctx: self.ctx.clone() }
    }

    /// Roles.
    #[must_use]
    pub fn roles(&self) -> Roles {
        Roles { ctx: self.ctx.clone() }
    }

    /// The service operator's actions, from the command line: create an organisation
    /// with its administrator, end an account's sessions, disable or enable an account.
    #[must_use]
    pub fn operators(&self) -> Operators {
        Operators { ctx: self.ctx.clone() }
    }

    /// The catalogue in use.
    #[must_use]
    pub fn catalogue(&self) -> &Catalogue {
        &self.ctx.catalogue
    }
}

/// How many times a use case decides again after a conflicting concurrent change.
const MAX_ATTEMPTS: usize = 5;

/// A reference to an organisation as a client gives it: its id or its slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRef {
    /// By id.
    Id(OrgId),
    /// By slug.
    Slug(OrgSlug),
}

impl OrgRef {
    /// Reads an id or, failing that, a slug. `None` when it is neither (callers answer
    /// "not found").
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        OrgId::parse(text).map(Self::Id).ok().or_else(|| OrgSlug::parse(text).ok().map(Self::Slug))
    }
}

/// The organisation, its roles, and the acting member: what an org-scoped use case needs
/// to decide.
#[derive(Debug, Clone)]
pub(crate) struct OrgAccess {
    pub(crate) org: Organisation,
    pub(crate) roles: RoleSet,
    pub(crate) actor: Membership,
}

impl OrgAccess {
    pub(crate) fn policy<'a>(&'a self, catalogue: &'a Catalogue) -> RolePolicy<'a> {
        RolePolicy::new(catalogue, &self.roles)
    }

    /// The actor's effective permissions now.
    pub(crate) fn held(&self, catalogue: &Catalogue, now: DateTime<Utc>) -> BTreeSet<Permission> {
        self.policy(catalogue).effective_permissions(&self.actor, now)
    }

    pub(crate) fn require(
        &self,
        catalogue: &Catalogue,
        permission: &Permission,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        self.policy(catalogue)
            .authorize(Some(&self.actor), permission, &Scope::Organisation(self.org.id), now)
            .map_err(|denial| AccessError::from_denial(permission, denial))
    }
}

impl Context {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    pub(crate) fn new_id(&self) -> uuid::Uuid {
        self.ports.ids.generate()
    }

    pub(crate) fn new_token(&self) -> Token {
        Token::from_secret(&self.ports.token_generator.generate())
    }

    pub(crate) fn audit(
        &self,
        org: Option<OrgId>,
        actor: Option<UserId>,
        action: AuditAction,
        target: AuditTarget,
        changes: Vec<FieldChange>,
    ) -> AuditEntry {
        AuditEntry { id: AuditId::from_uuid(self.new_id()), org, actor, action, target, at: self.now(), changes }
    }

    pub(crate) fn email(&self, org: Option<OrgId>, to: &EmailAddress, notification: Notification) -> OutboundEmail {
        self.email_on_topic(org, None, to, notification)
    }

    pub(crate) fn email_on_topic(
        &self,
        org: Option<OrgId>,
        topic: Option<Topic>,
        to: &EmailAddress,
        notification: Notification,
    ) -> OutboundEmail {
        OutboundEmail {
            id: MessageId::from_uuid(self.new_id()),
            org,
            topic,
            to: to.clone(),
            notification,
            queued_at: self.now(),
        }
    }

    /// Loads the organisation, its roles and the actor's membership.
    ///
    /// A missing organisation and a caller who is not a member both give
    /// [`AccessError::NotFound`]: nobody learns which organisations exist.
    pub(crate) async fn org_access<E>(&self, org: OrgId, actor: UserId) -> Result<OrgAccess, E>
    where
        E: From<AccessError> + From<Unexpected>,
    {
        let Some(membership) = self.ports.memberships.membership(org, actor).await.map_err(Unexpected::from)? else {
            return Err(AccessError::NotFound.into());
        };
        // Adapters check sessions, but the rule lives here too: a disabled account can do
        // nothing anywhere, and one that must change its password can do nothing else.
        match self.ports.users.user(actor).await.map_err(Unexpected::from)? {
            Some(account) if account.is_active() && account.password.must_change => {
                return Err(AccessError::PasswordChangeRequired.into());
            }
            Some(account) if account.is_active() => {}
            _ => return Err(AccessError::NotFound.into()),
        }
        let Some((organisation, roles)) = self.org_and_roles(org).await? else {
            return Err(AccessError::NotFound.into());
        };
        Ok(OrgAccess { org: organisation, roles, actor: membership })
    }

    /// The organisation and its roles, with no access check (for the system's own
    /// decisions, such as disabling an account).
    pub(crate) async fn org_and_roles(&self, org: OrgId) -> Result<Option<(Organisation, RoleSet)>, Unexpected> {
        let Some(organisation) = self.ports.organisations.organisation(org).await? else { return Ok(None) };
        let roles = RoleSet::new(self.ports.organisations.custom_roles(org).await?);
        Ok(Some((organisation, roles)))
    }

    /// [`org_access`](Self::org_access) for a membership in force: a suspended or expired
    /// member can do nothing in the organisation, not even read it.
    pub(crate) async fn active_access<E>(&self, org: OrgId, actor: UserId) -> Result<OrgAccess, E>
    where
        E: From<AccessError> + From<Unexpected>,
    {
        let access: OrgAccess = self.org_access::<E>(org, actor).await?;
        if access.actor.is_suspended() {
            return Err(AccessError::Inactive(Denial::Suspended).into());
        }
        if let Some(expired) = access.actor.expires_at.filter(|at| *at <= self.now()) {
            return Err(AccessError::Inactive(Denial::Expired(expired)).into());
        }
        Ok(access)
    }

    /// [`org_access`](Self::org_access), then requires `permission`.
    pub(crate) async fn authorized<E>(&self, org: OrgId, actor: UserId, permission: &Permission) -> Result<OrgAccess, E>
    where
        E: From<AccessError> + From<Unexpected>,
    {
        let access: OrgAccess = self.active_access::<E>(org, actor).await?;
        access.require(&self.catalogue, permission, self.now())?;
        Ok(access)
    }

    /// The members an administrators check needs: every member holding an administering
    /// role or one of `roles`, plus `extra` (deduplicated), leaving out members whose
    /// account is disabled: they cannot act, so they never count as administrators.
    pub(crate) async fn administrators_and(
        &self,
        org: OrgId,
        org_roles: &RoleSet,
        roles: &[RoleKey],
        extra: &[&Membership],
    ) -> Result<Vec<Membership>, Unexpected> {
        let mut keys = org_roles.administering_roles(&self.catalogue);
        keys.extend(roles.iter().cloned());
        keys.sort();
        keys.dedup();
        let mut members = self.ports.memberships.memberships_with_roles(org, &keys).await?;
        for member in extra {
            if !members.iter().any(|m| m.user == member.user) {
                members.push((*member).clone());
            }
        }
        let ids: Vec<UserId> = members.iter().map(|m| m.user).collect();
        let active: BTreeSet<UserId> =
            self.ports.users.users(&ids).await?.into_iter().filter(User::is_active).map(|u| u.id).collect();
        members.retain(|m| active.contains(&m.user));
        Ok(members)
    }

    /// The password rules for an account: the strictest of the platform's and those of
    /// every organisation it is an active member of.
    pub(crate) async fn effective_password_policy(&self, user: UserId) -> Result<PasswordPolicy, Unexpected> {
        let now = self.now();
        let mut policies = vec![self.settings.platform_password_policy.clone()];
        for membership in self.ports.memberships.memberships_of_user(user).await? {
            if membership.is_active(now)
                && let Some(org) = self.ports.organisations.organisation(membership.org).await?
            {
                policies.push(org.settings.password_policy);
            }
        }
        Ok(PasswordPolicy::strictest(&policies).unwrap_or_else(|| self.settings.platform_password_policy.clone()))
    }

    /// Runs `decide` and commits the change set it returns, deciding again when a
    /// concurrent change made a precondition fail. `on_duplicate` maps a uniqueness
    /// violation to the use case's error.
    pub(crate) async fn decide_and_commit<T, E, F, Fut>(
        &self,
        decide: F,
        on_duplicate: impl Fn(Duplicate) -> E,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(T, ChangeSet), E>>,
        E: From<Unexpected>,
    {
        self.decide_and_commit_or_redecide(decide, |duplicate| Some(on_duplicate(duplicate))).await
    }

    /// Like [`decide_and_commit`](Self::decide_and_commit), but `on_duplicate` may answer
    /// `None` to decide again: for uniqueness races whose loser takes another path
    /// (an address registered meanwhile gets an invitation instead of a new account).
    pub(crate) async fn decide_and_commit_or_redecide<T, E, F, Fut>(
        &self,
        mut decide: F,
        on_duplicate: impl Fn(Duplicate) -> Option<E>,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(T, ChangeSet), E>>,
        E: From<Unexpected>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (outcome, changes) = decide().await?;
            match self.ports.unit_of_work.commit(changes).await {
                Ok(()) => return Ok(outcome),
                Err(CommitError::Conflict) => {}
                Err(CommitError::Duplicate(duplicate)) => {
                    if let Some(error) = on_duplicate(duplicate) {
                        return Err(error);
                    }
                }
                Err(CommitError::Store(error)) => return Err(Unexpected::from(error).into()),
            }
        }
        Err(Unexpected::message("the data kept changing while the request was decided; try again").into())
    }
}

/// Maps a duplicate that the use case's own checks should have ruled out.
pub(crate) fn unexpected_duplicate<E: From<Unexpected>>(duplicate: Duplicate) -> E {
    Unexpected::message(format!("unexpected uniqueness conflict: {duplicate:?}")).into()
}
