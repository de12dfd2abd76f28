//! [`TestKit`]: the use cases wired to in-memory, deterministic ports, plus fixtures.

use std::fmt;
use std::sync::Arc;

use crate::catalogue::Catalogue;
use crate::ids::{OrgId, UserId};
use crate::membership::{Membership, MembershipOrigin};
use crate::notification::{Notification, SetPasswordLink};
use crate::org::{OrgSettings, Organisation};
use crate::password::Password;
use crate::ports::{Change, ChangeSet, Clock, CommitError, IdGenerator, UnitOfWork};
use crate::role::builtin;
use crate::token::Token;
use crate::usecases::{Guildhall, Ports, Settings};
use crate::user::{PasswordState, User, UserStatus};
use crate::values::{EmailAddress, InvalidValue, OrgName, OrgSlug, PersonName, RoleKey};

use super::{FakeHasher, ManualClock, MemoryStore, SequentialIds, SequentialTokens};

/// A fixture could not set up what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// An input was not valid (an email address, a slug).
    #[error("invalid fixture input: {0:?}")]
    Invalid(Vec<InvalidValue>),
    /// The commit failed (for example, the address or slug is already taken).
    #[error("fixture commit failed: {0}")]
    Commit(#[from] CommitError),
}

impl From<InvalidValue> for FixtureError {
    fn from(value: InvalidValue) -> Self {
        Self::Invalid(vec![value])
    }
}

impl From<Vec<InvalidValue>> for FixtureError {
    fn from(values: Vec<InvalidValue>) -> Self {
        Self::Invalid(values)
    }
}

/// The use cases wired to a [`MemoryStore`], a [`ManualClock`], a [`FakeHasher`],
/// [`SequentialIds`] and [`SequentialTokens`], with [`Settings::default`].
///
/// The `seed_*` methods are **fixtures**: they commit rows straight to the store,
/// bypassing the use cases, with no precondition, no audit entry and no email, and they
/// leave every version and the hasher's counters as they were. They do count in
/// [`MemoryStore::commit_count`].
pub struct TestKit {
    /// The store behind every storage port.
    pub store: Arc<MemoryStore>,
    /// The clock every use case reads.
    pub clock: Arc<ManualClock>,
    /// The password hasher.
    pub hasher: Arc<FakeHasher>,
    /// The identifier generator.
    pub ids: Arc<SequentialIds>,
    /// The (insecure, deterministic) secret generator.
    pub tokens: Arc<SequentialTokens>,
    /// The use cases.
    pub guildhall: Guildhall,
}

impl fmt::Debug for TestKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKit")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

impl Default for TestKit {
    fn default() -> Self {
        Self::new()
    }
}

/// "ann" → "Ann".
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl TestKit {
    /// The password every seeded account has ([`super::PASSWORD`]).
    pub const PASSWORD: &'static str = super::PASSWORD;

    /// A kit with the built-in catalogue.
    #[must_use]
    pub fn new() -> Self {
        Self::with_catalogue(Catalogue::builtin())
    }

    /// A kit with an embedder's catalogue.
    #[must_use]
    pub fn with_catalogue(catalogue: Catalogue) -> Self {
        Self::with_catalogue_and_settings(catalogue, Settings::default())
    }

    /// A kit with the built-in catalogue and other settings (an organisation-creation
    /// rule, shorter lifetimes).
    #[must_use]
    pub fn with_settings(settings: Settings) -> Self {
        Self::with_catalogue_and_settings(Catalogue::builtin(), settings)
    }

    fn with_catalogue_and_settings(catalogue: Catalogue, settings: Settings) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::default());
        let hasher = Arc::new(FakeHasher::new());
        let ids = Arc::new(SequentialIds::new());
        let tokens = Arc::new(SequentialTokens::new());
        let ports = Ports::from_store(store.clone(), hasher.clone(), clock.clone(), tokens.clone(), ids.clone());
        let guildhall = Guildhall::new(ports, Arc::new(catalogue), settings);
        Self { store, clock, hasher, ids, tokens, guildhall }
    }

    /// [`TestKit::PASSWORD`] as a [`Password`].
    #[must_use]
    pub fn password() -> Password {
        Password::new(Self::PASSWORD)
    }

    /// Fixture: an active account for `email` with password [`TestKit::PASSWORD`],
    /// verified now when `verified`. Its name comes from the local part: `ann@…` is
    /// "Ann Example", `ann.lee@…` is "Ann Lee".
    ///
    /// # Errors
    /// [`FixtureError`] when `email` is not an address or already has an account.
    pub async fn seed_user(&self, email: &str, verified: bool) -> Result<User, FixtureError> {
        let email = EmailAddress::parse(email)?;
        let local = email.local_part().split('+').next().unwrap_or_default().to_owned();
        let (first, last) = local.split_once('.').unwrap_or((local.as_str(), "example"));
        let now = self.clock.now();
        let user = User {
            id: UserId::from_uuid(self.ids.generate()),
            email,
            name: PersonName::parse(&capitalised(first), &capitalised(last))?,
            phone: None,
            email_verified_at: verified.then_some(now),
            status: UserStatus::Active,
            password: PasswordState {
                hash: Some(self.hasher.hash_uncounted(&Self::password())),
                temporary: None,
                must_change: false,
                changed_at: Some(now),
            },
            created_at: now,
            version: 0,
        };
        self.store.commit(ChangeSet { changes: vec![Change::InsertUser(user.clone())], ..ChangeSet::new() }).await?;
        Ok(user)
    }

    /// Fixture: an organisation with default settings, named after its slug
    /// (`acme-physio` is "Acme Physio"), whose founder is an administrator.
    ///
    /// # Errors
    /// [`FixtureError`] when `slug` is not valid, is taken, or `founder` does not exist.
    pub async fn seed_org(&self, slug: &str, founder: UserId) -> Result<Organisation, FixtureError> {
        let slug = OrgSlug::parse(slug)?;
        let name = slug.as_str().split('-').map(capitalised).collect::<Vec<_>>().join(" ");
        let now = self.clock.now();
        let org = Organisation {
            id: OrgId::from_uuid(self.ids.generate()),
            slug,
            name: OrgName::parse(&name)?,
            settings: OrgSettings::default(),
            created_by: founder,
            created_at: now,
            version: 0,
        };
        let membership = Membership::new(org.id, founder, builtin::ADMINISTRATOR, MembershipOrigin::Founder, None, now);
        let changes = vec![Change::InsertOrganisation(org.clone()), Change::InsertMembership(membership)];
        self.store.commit(ChangeSet { changes, ..ChangeSet::new() }).await?;
        Ok(org)
    }

    /// Fixture: an active membership of `user` in `org` with `role`, as if an invitation
    /// (from nobody in particular) had been accepted now.
    ///
    /// # Errors
    /// [`FixtureError`] when the organisation or account does not exist, or the user is
    /// already a member.
    pub async fn seed_member(&self, org: OrgId, user: UserId, role: RoleKey) -> Result<Membership, FixtureError> {
        let membership = Membership::new(org, user, role, MembershipOrigin::Invitation, None, self.clock.now());
        let changes = vec![Change::InsertMembership(membership.clone())];
        self.store.commit(ChangeSet { changes, ..ChangeSet::new() }).await?;
        Ok(membership)
    }

    /// The token in the latest email to `to` that carries one (invitation, email
    /// verification, password reset, an operator's set-password link): what the
    /// recipient would click.
    #[must_use]
    pub fn last_token_sent_to(&self, to: &EmailAddress) -> Option<Token> {
        self.store.emails_to(to).into_iter().rev().find_map(|email| match email.notification {
            Notification::Invitation { token, .. }
            | Notification::VerifyEmail { token, .. }
            | Notification::PasswordReset { token, .. }
            | Notification::AdministratorAppointed { set_password: Some(SetPasswordLink { token, .. }), .. } => {
                Some(token)
            }
            _ => None,
        })
    }
}
