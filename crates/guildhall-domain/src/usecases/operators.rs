//! The service operator's actions: create an organisation with its first administrator,
//! look an account up, end its sessions, disable or enable it.
//!
//! These are reached from the server's command line (the app's `admin` commands), never
//! from the API: whoever can run them already controls the service and its database. So
//! they check no membership and no permission, they ignore
//! [`Settings::organisation_creation`](super::Settings::organisation_creation), and they
//! answer plainly about accounts: an unknown address is an error, because there is no
//! stranger to hide anything from. Their audit entries have no actor (the operator acts
//! as the system does).
//!
//! There is no default password anywhere: an administrator whose account is created here
//! receives, by email, a link to choose their password.

use super::{AccountStatusError, Accounts, Context, RevokeAllSessionsError, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::error::{Invalid, Unexpected, from_store_error};
use crate::ids::{OrgId, UserId};
use crate::membership::{Membership, MembershipOrigin};
use crate::notification::{Notification, SetPasswordLink};
use crate::org::{OrgSettings, Organisation};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition};
use crate::role::builtin;
use crate::token::{OneTimeToken, TokenPurpose};
use crate::user::{PasswordState, User, UserStatus};
use crate::values::{EmailAddress, OrgName, OrgSlug, PersonName};

/// The service operator's actions.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Operators {
    pub(crate) ctx: Context,
}

/// An organisation to create, with the person who will administer it, as the operator
/// typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCreateOrganisation {
    /// The URL name.
    pub slug: String,
    /// The display name.
    pub name: String,
    /// The address of its first administrator: an existing account's, or one for a new
    /// account.
    pub administrator_email: String,
    /// The administrator's first name. Checked always, used only for a new account (an
    /// existing account keeps its own names).
    pub first_name: String,
    /// The administrator's last name. Checked always, used only for a new account.
    pub last_name: String,
}

/// An organisation an operator created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOrganisation {
    /// The organisation.
    pub organisation: Organisation,
    /// Its first administrator.
    pub administrator: UserId,
    /// Whether the administrator's account was created with it (and was sent a link to
    /// choose its password).
    pub new_account: bool,
}

/// [`Operators::create_organisation`] failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum OperatorCreateOrganisationError {
    /// Some fields are not valid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Another organisation has this slug.
    #[error("the slug \"{0}\" is already used by another organisation; choose another")]
    SlugTaken(OrgSlug),
    /// The administrator's address belongs to a disabled account.
    #[error("the account of {0} is disabled; enable it first, or name another administrator")]
    AccountDisabled(EmailAddress),
    /// The administrator's address belongs to an account that never proved it controls
    /// the address: whoever signed up with it might not be its owner.
    #[error(
        "the account of {0} has not verified its address, so it may not belong to the address's owner; ask the owner to verify it (or to reset the password, which verifies it too), then try again"
    )]
    AccountUnverified(EmailAddress),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Operators::find_account`], [`Operators::end_sessions`], [`Operators::disable_account`]
/// or [`Operators::enable_account`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorAccountError {
    /// The address is not an email address.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No account has this address ([`Operators::find_account`] answers `None` instead).
    #[error("there is no account with the address {0}; check the spelling")]
    UnknownAccount(EmailAddress),
    /// Disabling or enabling was refused: the account is already in that state, or it is
    /// the last administrator of an organisation. Never
    /// [`AccountStatusError::NotFound`] (that is [`Self::UnknownAccount`]) nor
    /// [`AccountStatusError::Unexpected`] (that is [`Self::Unexpected`]).
    #[error(transparent)]
    Refused(AccountStatusError),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(OperatorCreateOrganisationError, OperatorAccountError);

impl Operators {
    /// Creates an organisation with default settings and makes the account with
    /// `administrator_email` its first member, an administrator (as its founder).
    ///
    /// When no account has that address, one is created with the names given, no
    /// password and the address unverified, and it is emailed a link to choose its
    /// password: a one-time password-reset token that works for
    /// [`Settings::temporary_password_lifetime`](super::Settings::temporary_password_lifetime).
    /// Following it ([`Accounts::confirm_password_reset`]) sets the password and proves the
    /// address. Until then nobody can sign in to the account. An existing account is told
    /// by email that it administers the organisation, and signs in as usual.
    ///
    /// Everything (account, token, organisation, membership, audit entries and email) is
    /// written in one commit, or nothing is.
    ///
    /// # Errors
    /// See [`OperatorCreateOrganisationError`]: every invalid field at once (`slug`,
    /// `name`, `administrator_email`, `first_name`, `last_name`); then an existing account
    /// must be active with a verified address; and the slug must be free.
    pub async fn create_organisation(
        &self,
        request: OperatorCreateOrganisation,
    ) -> Result<CreatedOrganisation, OperatorCreateOrganisationError> {
        let mut problems = Vec::new();
        let slug = OrgSlug::parse(&request.slug).map_err(|e| problems.push(e)).ok();
        let name = OrgName::parse(&request.name).map_err(|e| problems.push(e)).ok();
        let email = EmailAddress::parse(&request.administrator_email)
            .map_err(|e| problems.push(e.for_field("administrator_email")))
            .ok();
        let person = PersonName::parse(&request.first_name, &request.last_name).map_err(|e| problems.extend(e)).ok();
        let (Some(slug), Some(name), Some(email), Some(person)) = (slug, name, email, person) else {
            return Err(Invalid(problems).into());
        };
        self.ctx
            .decide_and_commit_or_redecide(
                || self.decide_organisation(&slug, &name, &email, &person),
                |duplicate| match duplicate {
                    Duplicate::Slug => Some(OperatorCreateOrganisationError::SlugTaken(slug.clone())),
                    // Registered meanwhile: decide again, which takes the existing-account path.
                    Duplicate::Email => None,
                    other => Some(unexpected_duplicate(other)),
                },
            )
            .await
    }

    async fn decide_organisation(
        &self,
        slug: &OrgSlug,
        name: &OrgName,
        email: &EmailAddress,
        person: &PersonName,
    ) -> Result<(CreatedOrganisation, ChangeSet), OperatorCreateOrganisationError> {
        let ctx = &self.ctx;
        let now = ctx.now();
        let org = OrgId::from_uuid(ctx.new_id());
        let mut changes = ChangeSet::new();
        let (administrator, set_password) = match ctx.ports.users.user_by_email(email).await? {
            Some(existing) => {
                if !existing.is_active() {
                    return Err(OperatorCreateOrganisationError::AccountDisabled(existing.email));
                }
                if !existing.is_verified() {
                    return Err(OperatorCreateOrganisationError::AccountUnverified(existing.email));
                }
                // Disabled, or moved to another address, meanwhile: decide again.
                changes.require(Precondition::UserUnchanged { user: existing.id, version: existing.version });
                (existing, None)
            }
            None => {
                let user = User {
                    id: UserId::from_uuid(ctx.new_id()),
                    email: email.clone(),
                    name: person.clone(),
                    phone: None,
                    email_verified_at: None,
                    status: UserStatus::Active,
                    password: PasswordState::default(),
                    created_at: now,
                    version: 0,
                };
                let token = ctx.new_token();
                let expires_at = now + ctx.settings.temporary_password_lifetime;
                changes.push(Change::InsertUser(user.clone())).push(Change::InsertToken(OneTimeToken {
                    hash: token.hash(),
                    user: user.id,
                    purpose: TokenPurpose::ResetPassword,
                    created_at: now,
                    expires_at,
                    used_at: None,
                }));
                (user, Some(SetPasswordLink { token, expires_at }))
            }
        };
        let new_account = set_password.is_some();
        let organisation = Organisation {
            id: org,
            slug: slug.clone(),
            name: name.clone(),
            settings: OrgSettings::default(),
            created_by: administrator.id,
            created_at: now,
            version: 0,
        };
        let founder =
            Membership::new(org, administrator.id, builtin::ADMINISTRATOR, MembershipOrigin::Founder, None, now);
        changes.push(Change::InsertOrganisation(organisation.clone())).push(Change::InsertMembership(founder)).audit(
            ctx.audit(
                Some(org),
                None,
                AuditAction::OrgCreated,
                AuditTarget::Organisation(org),
                vec![
                    FieldChange::new("slug", None::<String>, Some(slug)),
                    FieldChange::new("name", None::<String>, Some(name)),
                    FieldChange::new("administrator", None::<String>, Some(&administrator.email)),
                ],
            ),
        );
        if new_account {
            changes.audit(ctx.audit(
                Some(org),
                None,
                AuditAction::MemberCreated,
                AuditTarget::User(administrator.id),
                vec![
                    FieldChange::new("email", None::<String>, Some(&administrator.email)),
                    FieldChange::new("role", None::<String>, Some(&builtin::ADMINISTRATOR)),
                ],
            ));
        }
        changes.send(ctx.email(
            Some(org),
            &administrator.email,
            Notification::AdministratorAppointed { org_name: name.to_string(), set_password },
        ));
        Ok((CreatedOrganisation { organisation, administrator: administrator.id, new_account }, changes))
    }

    /// The account with this address, if there is one.
    ///
    /// # Errors
    /// [`OperatorAccountError::Invalid`] for a malformed address;
    /// [`OperatorAccountError::Unexpected`].
    pub async fn find_account(&self, email: &str) -> Result<Option<User>, OperatorAccountError> {
        let email = EmailAddress::parse(email).map_err(Invalid::from)?;
        Ok(self.ctx.ports.users.user_by_email(&email).await?)
    }

    /// Ends every session of the account at once (it stays usable: its owner signs in
    /// again).
    ///
    /// # Errors
    /// [`OperatorAccountError::Invalid`], [`OperatorAccountError::UnknownAccount`],
    /// [`OperatorAccountError::Unexpected`].
    pub async fn end_sessions(&self, email: &str) -> Result<(), OperatorAccountError> {
        let account = self.account(email).await?;
        self.accounts().revoke_all_sessions(account.id, None).await.map_err(|error| match error {
            RevokeAllSessionsError::Unexpected(e) => OperatorAccountError::Unexpected(e),
        })
    }

    /// Disables the account, as [`Accounts::disable`] does: it can no longer sign in and
    /// every session ends. Refused while it is the last administrator of an organisation.
    ///
    /// # Errors
    /// [`OperatorAccountError::Invalid`], [`OperatorAccountError::UnknownAccount`],
    /// [`OperatorAccountError::Refused`] (already disabled, or a last administrator),
    /// [`OperatorAccountError::Unexpected`].
    pub async fn disable_account(&self, email: &str) -> Result<User, OperatorAccountError> {
        let account = self.account(email).await?;
        self.accounts().disable(account.id).await.map_err(|error| refused(&account.email, error))
    }

    /// Enables a disabled account again, as [`Accounts::enable`] does.
    ///
    /// # Errors
    /// [`OperatorAccountError::Invalid`], [`OperatorAccountError::UnknownAccount`],
    /// [`OperatorAccountError::Refused`] (already active), [`OperatorAccountError::Unexpected`].
    pub async fn enable_account(&self, email: &str) -> Result<User, OperatorAccountError> {
        let account = self.account(email).await?;
        self.accounts().enable(account.id).await.map_err(|error| refused(&account.email, error))
    }

    fn accounts(&self) -> Accounts {
        Accounts { ctx: self.ctx.clone() }
    }

    /// The account with this address, which must exist.
    async fn account(&self, email: &str) -> Result<User, OperatorAccountError> {
        let email = EmailAddress::parse(email).map_err(Invalid::from)?;
        let found = self.ctx.ports.users.user_by_email(&email).await?;
        found.ok_or(OperatorAccountError::UnknownAccount(email))
    }
}

/// An [`AccountStatusError`] as the operator hears it.
fn refused(email: &EmailAddress, error: AccountStatusError) -> OperatorAccountError {
    match error {
        AccountStatusError::NotFound => OperatorAccountError::UnknownAccount(email.clone()),
        AccountStatusError::Unexpected(e) => OperatorAccountError::Unexpected(e),
        refusal @ (AccountStatusError::AlreadyInState(_) | AccountStatusError::LastAdministrator(_)) => {
            OperatorAccountError::Refused(refusal)
        }
    }
}
