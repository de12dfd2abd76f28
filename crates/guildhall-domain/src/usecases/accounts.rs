//! Sign-up, email verification, sign-in, sessions, passwords and the profile: what a
//! person does with their own account.
//!
//! Nothing here lets a stranger learn whether an address has an account: signing up with
//! a registered address, signing in with an unknown one and asking to reset the password
//! of an unknown one all answer exactly as the normal path does, and spend the same
//! hashing work. Passwords and tokens never appear in an audit entry or an error message.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{Context, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::error::{Unexpected, from_store_error};
use crate::ids::{OrgId, SessionId, UserId};
use crate::invitation::InvitationStatus;
use crate::membership::MemberState;
use crate::notification::Notification;
use crate::password::{Password, PasswordPolicy, PasswordRejected};
use crate::ports::{Change, ChangeSet, Duplicate, HashError, Precondition};
use crate::role::RoleSet;
use crate::token::{OneTimeToken, Session, Token, TokenHash, TokenPurpose};
use crate::user::{PasswordHash, PasswordState, User, UserStatus};
use crate::values::{EmailAddress, InvalidValue, OrgName, OrgSlug, PersonName, PhoneNumber, RoleKey, parse_optional};

/// Sign-up, sign-in, passwords, sessions and the profile of one's own account.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Accounts {
    pub(crate) ctx: Context,
}

// ---------------------------------------------------------------------------------------
// Requests and outcomes
// ---------------------------------------------------------------------------------------

/// A sign-up form, as typed.
#[derive(Clone)]
pub struct SignUp {
    /// The address; it becomes the username.
    pub email: String,
    /// The chosen password.
    pub password: String,
    /// First (given) name.
    pub first_name: String,
    /// Last (family) name.
    pub last_name: String,
    /// Phone number in international form; blank or `None` for none.
    pub phone: Option<String>,
    /// The token of the invitation link the person followed, if any.
    pub invitation_token: Option<String>,
}

impl fmt::Debug for SignUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignUp")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("phone", &self.phone)
            .field("invitation_token", &self.invitation_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a sign-up did, as the person may be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUpOutcome {
    /// "Check your inbox." Said both for a new account (a verification link was sent)
    /// and for an address that already has an account (its owner was told instead), so
    /// nobody learns which addresses have accounts.
    VerificationSent,
    /// The account was created with its address already verified, because the person
    /// followed an invitation sent to that address. They can sign in and accept it.
    Verified {
        /// The new account.
        user: UserId,
    },
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account.
    pub user: UserId,
    /// The session token: hand it to the client once (a cookie); only its hash is kept.
    pub token: Token,
    /// The session.
    pub session: Session,
    /// The session may only change the password until it is changed (a temporary
    /// password, or one that no longer meets the account's password rules).
    pub password_change_required: bool,
}

/// A request made with a valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The account, as read now.
    pub user: User,
    /// The session.
    pub session: Session,
}

impl Authenticated {
    /// Whether this session may only change the password.
    #[must_use]
    pub fn password_change_required(&self) -> bool {
        self.session.password_change_required || self.user.password.must_change
    }

    /// The account, for anything other than changing the password.
    ///
    /// # Errors
    /// [`AuthenticateError::PasswordChangeRequired`] while the password must be changed.
    pub fn require_full_access(&self) -> Result<UserId, AuthenticateError> {
        if self.password_change_required() {
            return Err(AuthenticateError::PasswordChangeRequired);
        }
        Ok(self.user.id)
    }
}

/// A password change.
#[derive(Clone)]
pub struct ChangePassword {
    /// The account.
    pub user: UserId,
    /// The token of the session making the change: it stays signed in, every other
    /// session ends.
    pub session_token: String,
    /// The current password; not needed when the session was restricted to changing it.
    pub current_password: Option<String>,
    /// The new password.
    pub new_password: String,
}

impl fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePassword")
            .field("user", &self.user)
            .field("session_token", &"<redacted>")
            .field("current_password", &self.current_password.as_ref().map(|_| "<redacted>"))
            .field("new_password", &"<redacted>")
            .finish()
    }
}

/// Changes to the profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// A new first name.
    pub first_name: Option<String>,
    /// A new last name.
    pub last_name: Option<String>,
    /// `Some(None)` (or a blank number) removes the phone number; `Some(Some(n))` sets it.
    pub phone: Option<Option<String>>,
}

/// One's own account and every organisation it belongs to (the "linked accounts" view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOverview {
    /// The account.
    pub user: User,
    /// Its memberships, by organisation name.
    pub memberships: Vec<LinkedMembership>,
}

/// A membership as listed in [`AccountOverview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedMembership {
    /// The organisation.
    pub org: OrgId,
    /// Its URL name.
    pub slug: OrgSlug,
    /// Its display name.
    pub name: OrgName,
    /// The member's role.
    pub role: RoleKey,
    /// The role's display name.
    pub role_name: String,
    /// Active, suspended or expired, now.
    pub state: MemberState,
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// [`Accounts::sign_up`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    /// Some fields are invalid; every problem is listed.
    #[error("{}", describe_invalid(.fields, .password.as_ref()))]
    Invalid {
        /// Every invalid field but the password.
        fields: Vec<InvalidValue>,
        /// Every rule the password breaks, if it breaks any.
        password: Option<PasswordRejected>,
    },
    /// The person followed an invitation to an address that already has an account.
    #[error("an account with this address exists already; sign in to accept the invitation")]
    AccountExists,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::verify_email`] failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// No verification link has this token.
    #[error("this verification link is not valid; check that you copied all of it, or ask for a new one")]
    InvalidToken,
    /// The link expired.
    #[error("this verification link expired at {expired_at}; ask for a new one")]
    Expired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The link was used, or replaced by a newer one.
    #[error("this verification link was already used or replaced by a newer one; use the latest link you received")]
    AlreadyUsed,
    /// Another account took the new address after the change was requested.
    #[error("this address now belongs to another account; change your address again to a different one")]
    AddressTaken,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::resend_verification`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ResendVerificationError {
    /// Nothing to verify.
    #[error("your email address is already verified")]
    AlreadyVerified,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::request_email_change`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestEmailChangeError {
    /// The new address is not valid.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The current password is not correct.
    #[error("your current password is not correct")]
    WrongPassword,
    /// The new address is the current one.
    #[error("{0} is already your address")]
    Unchanged(EmailAddress),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::sign_in`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown address or wrong password (deliberately not told apart).
    #[error("the email address or password is not correct")]
    InvalidCredentials,
    /// The account is disabled (said only to someone who knows its password).
    #[error("this account has been disabled; contact your administrator")]
    AccountDisabled,
    /// The temporary password was right but is no longer valid.
    #[error("your temporary password expired at {expired_at}; ask your administrator to send a new one")]
    TemporaryPasswordExpired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::authenticate`] or [`Authenticated::require_full_access`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// The session is unknown, ended, or its account can no longer sign in.
    #[error("your session has ended; sign in again")]
    InvalidSession,
    /// The session may only change the password.
    #[error("you must change your password before you can do anything else")]
    PasswordChangeRequired,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::sign_out`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignOutError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::sessions`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ListSessionsError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::revoke_session`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// The account has no open session with this id.
    #[error("session not found; it may have ended already")]
    NotFound,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::revoke_all_sessions`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeAllSessionsError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::change_password`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The session is not a valid session of this account.
    #[error("your session has ended; sign in again")]
    InvalidSession,
    /// The current password is needed and was not given.
    #[error("enter your current password to change it")]
    CurrentPasswordRequired,
    /// The current password is not correct.
    #[error("your current password is not correct")]
    WrongPassword,
    /// The new password breaks the rules; every broken rule is listed.
    #[error(transparent)]
    PasswordRejected(PasswordRejected),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::request_password_reset`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestPasswordResetError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::confirm_password_reset`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmPasswordResetError {
    /// No reset link has this token.
    #[error("this password-reset link is not valid; check that you copied all of it, or ask for a new one")]
    InvalidToken,
    /// The link expired.
    #[error("this password-reset link expired at {expired_at}; ask for a new one")]
    Expired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The link was used, or replaced by a newer one.
    #[error("this password-reset link was already used or replaced by a newer one; use the latest link or ask again")]
    AlreadyUsed,
    /// The account was disabled since the link was sent.
    #[error("this account has been disabled; contact your administrator")]
    AccountDisabled,
    /// The new password breaks the rules; every broken rule is listed.
    #[error(transparent)]
    PasswordRejected(PasswordRejected),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::update_profile`] failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateProfileError {
    /// Some fields are invalid; every problem is listed.
    #[error("{}", describe_invalid(.fields, None))]
    Invalid {
        /// Every invalid field.
        fields: Vec<InvalidValue>,
    },
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Accounts::overview`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OverviewError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(
    SignUpError,
    VerifyEmailError,
    ResendVerificationError,
    RequestEmailChangeError,
    SignInError,
    AuthenticateError,
    SignOutError,
    ListSessionsError,
    RevokeSessionError,
    RevokeAllSessionsError,
    ChangePasswordError,
    RequestPasswordResetError,
    ConfirmPasswordResetError,
    UpdateProfileError,
    OverviewError,
);

fn describe_invalid(fields: &[InvalidValue], password: Option<&PasswordRejected>) -> String {
    let mut problems: Vec<String> = fields.iter().map(ToString::to_string).collect();
    if let Some(rejected) = password {
        problems.push(format!("password: {rejected}"));
    }
    format!("please correct the following: {}", problems.join("; "))
}

fn hash_failed(error: HashError) -> Unexpected {
    Unexpected::new("password hashing failed", error)
}

/// A sign-up whose every field is valid.
struct ValidSignUp {
    email: EmailAddress,
    name: PersonName,
    phone: Option<PhoneNumber>,
    password: Password,
    /// A pending invitation to exactly this address was presented.
    invited: bool,
}

/// How a presented password matched the account.
enum PasswordMatch {
    Chosen,
    Temporary { expires_at: DateTime<Utc> },
    NoMatch,
}

/// The usable one-time token with this hash, or why not.
enum TokenState {
    Usable(OneTimeToken),
    Unknown,
    Used,
    Expired(DateTime<Utc>),
}

fn token_state(token: Option<OneTimeToken>, now: DateTime<Utc>) -> TokenState {
    match token {
        None => TokenState::Unknown,
        Some(token) if token.used_at.is_some() => TokenState::Used,
        Some(token) if !token.is_usable(now) => TokenState::Expired(token.expires_at),
        Some(token) => TokenState::Usable(token),
    }
}

impl Accounts {
    // -----------------------------------------------------------------------------------
    // Sign-up and email verification
    // -----------------------------------------------------------------------------------

    /// Creates an account and sends a link to verify its address.
    ///
    /// Every field is validated and every problem reported at once; the password must
    /// meet the platform's rules (and, when the person followed an invitation, the
    /// inviting organisation's too, so that it will not have to be changed at the first
    /// sign-in after joining). If the address already has an account, nothing is created:
    /// the owner is told by email that someone tried to sign up, and the answer is the
    /// same [`SignUpOutcome::VerificationSent`], after the same hashing work.
    ///
    /// With the token of a pending invitation to exactly this address, the account is
    /// created verified (the link proves control of the mailbox) and no verification
    /// email is sent. A token that is unknown, no longer pending, or for another address
    /// is ignored.
    ///
    /// # Errors
    /// [`SignUpError::Invalid`] lists every invalid field and every broken password rule;
    /// [`SignUpError::AccountExists`] when an invitation to an address that already has an
    /// account was presented; [`SignUpError::Unexpected`] when hashing or storage fails
    /// (nothing is stored then).
    pub async fn sign_up(&self, request: SignUp) -> Result<SignUpOutcome, SignUpError> {
        let ctx = &self.ctx;
        let form = self.validate_sign_up(&request).await?;
        // Hash before looking at the address, so both answers cost the same.
        let hash = ctx.ports.hasher.hash(&form.password).await.map_err(hash_failed)?;
        ctx.decide_and_commit_or_redecide(
            || self.decide_sign_up(&form, &hash),
            // Registered meanwhile: decide again, which takes the existing-account path.
            |duplicate| match duplicate {
                Duplicate::Email => None,
                other => Some(unexpected_duplicate(other)),
            },
        )
        .await
    }

    async fn validate_sign_up(&self, request: &SignUp) -> Result<ValidSignUp, SignUpError> {
        let ctx = &self.ctx;
        let mut fields = Vec::new();
        let email = EmailAddress::parse(&request.email).map_err(|e| fields.push(e)).ok();
        let name = PersonName::parse(&request.first_name, &request.last_name).map_err(|e| fields.extend(e)).ok();
        let phone = parse_optional(request.phone.as_deref(), PhoneNumber::parse).map_err(|e| fields.push(e)).ok();

        let now = ctx.now();
        let mut invited = false;
        let mut policies = vec![ctx.settings.platform_password_policy.clone()];
        if let (Some(email), Some(hash)) =
            (&email, request.invitation_token.as_deref().and_then(Token::parse).map(|t| t.hash()))
            && let Some(invitation) = ctx.ports.invitations.invitation_by_token(&hash).await?
            && invitation.status(now) == InvitationStatus::Pending
            && invitation.email == *email
        {
            invited = true;
            if let Some(org) = ctx.ports.organisations.organisation(invitation.org).await? {
                policies.push(org.settings.password_policy);
            }
        }
        let policy =
            PasswordPolicy::strictest(&policies).unwrap_or_else(|| ctx.settings.platform_password_policy.clone());
        let password = Password::new(request.password.clone());
        // A malformed address still names its local part, for the "must not contain" rule.
        let local_part =
            email.as_ref().map_or_else(|| request.email.trim().to_lowercase(), |e| e.local_part().to_owned());
        let rejected = policy.validate(&password, Some(&local_part)).err();

        match (email, name, phone) {
            (Some(email), Some(name), Some(phone)) if rejected.is_none() => {
                Ok(ValidSignUp { email, name, phone, password, invited })
            }
            _ => Err(SignUpError::Invalid { fields, password: rejected }),
        }
    }

    async fn decide_sign_up(
        &self,
        form: &ValidSignUp,
        hash: &PasswordHash,
    ) -> Result<(SignUpOutcome, ChangeSet), SignUpError> {
        let ctx = &self.ctx;
        let now = ctx.now();
        let mut changes = ChangeSet::new();
        if let Some(existing) = ctx.ports.users.user_by_email(&form.email).await? {
            if form.invited {
                return Err(SignUpError::AccountExists);
            }
            changes.send(ctx.email(None, &existing.email, Notification::SignUpAttemptWithExistingAccount));
            return Ok((SignUpOutcome::VerificationSent, changes));
        }
        let user = User {
            id: UserId::from_uuid(ctx.new_id()),
            email: form.email.clone(),
            name: form.name.clone(),
            phone: form.phone.clone(),
            email_verified_at: form.invited.then_some(now),
            status: UserStatus::Active,
            password: PasswordState {
                hash: Some(hash.clone()),
                temporary: None,
                must_change: false,
                changed_at: Some(now),
            },
            created_at: now,
            version: 0,
        };
        let mut audited = vec![FieldChange::new("email", None::<String>, Some(&user.email))];
        if form.invited {
            audited.push(FieldChange::new("email_verified", None::<String>, Some("by invitation link")));
        }
        changes.push(Change::InsertUser(user.clone())).audit(ctx.audit(
            None,
            Some(user.id),
            AuditAction::UserSignedUp,
            AuditTarget::User(user.id),
            audited,
        ));
        if form.invited {
            return Ok((SignUpOutcome::Verified { user: user.id }, changes));
        }
        self.send_verification(&mut changes, &user, &user.email, now);
        Ok((SignUpOutcome::VerificationSent, changes))
    }

    /// Adds a verification token for `email` and its email to `changes`.
    fn send_verification(&self, changes: &mut ChangeSet, user: &User, email: &EmailAddress, now: DateTime<Utc>) {
        let ctx = &self.ctx;
        let token = ctx.new_token();
        let expires_at = now + ctx.settings.email_verification_lifetime;
        changes
            .push(Change::InsertToken(OneTimeToken {
                hash: token.hash(),
                user: user.id,
                purpose: TokenPurpose::VerifyEmail { email: email.clone() },
                created_at: now,
                expires_at,
                used_at: None,
            }))
            .send(ctx.email(None, email, Notification::VerifyEmail { token, expires_at }));
    }

    /// Verifies the address a verification link was sent to, and returns the account.
    ///
    /// When the link was sent to a new address ([`request_email_change`](Self::request_email_change)),
    /// this is when the account's address changes; older verification and password-reset
    /// links stop working then, because they went to the old address.
    ///
    /// # Errors
    /// [`VerifyEmailError::InvalidToken`], [`VerifyEmailError::Expired`] and
    /// [`VerifyEmailError::AlreadyUsed`] for links that cannot be used;
    /// [`VerifyEmailError::AddressTaken`] when another account took the new address
    /// meanwhile.
    pub async fn verify_email(&self, token: &str) -> Result<UserId, VerifyEmailError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(VerifyEmailError::InvalidToken)?.hash();
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let token = match token_state(ctx.ports.tokens.one_time_token(&hash).await?, now) {
                    TokenState::Usable(token) => token,
                    TokenState::Unknown => return Err(VerifyEmailError::InvalidToken),
                    TokenState::Used => return Err(VerifyEmailError::AlreadyUsed),
                    TokenState::Expired(expired_at) => return Err(VerifyEmailError::Expired { expired_at }),
                };
                let TokenPurpose::VerifyEmail { email } = &token.purpose else {
                    return Err(VerifyEmailError::InvalidToken);
                };
                let current = ctx.ports.users.user(token.user).await?.ok_or(VerifyEmailError::InvalidToken)?;
                let mut changes = ChangeSet::new();
                changes.require(Precondition::TokenUnused { hash }).push(Change::ConsumeToken { hash, at: now });
                let changing_address = *email != current.email;
                if !changing_address && current.is_verified() {
                    return Ok((current.id, changes));
                }
                if changing_address
                    && let Some(other) = ctx.ports.users.user_by_email(email).await?
                    && other.id != current.id
                {
                    return Err(VerifyEmailError::AddressTaken);
                }
                let mut audited = Vec::new();
                if changing_address {
                    audited.push(FieldChange::new("email", Some(&current.email), Some(email)));
                    changes
                        .push(Change::ExpireTokens { user: current.id, reset: false, at: now })
                        .push(Change::ExpireTokens { user: current.id, reset: true, at: now })
                        .send(ctx.email(None, &current.email, Notification::EmailChanged { new_email: email.clone() }));
                } else {
                    audited.push(FieldChange::new("email_verified", None::<String>, Some(&current.email)));
                }
                let updated = User {
                    email: email.clone(),
                    email_verified_at: if changing_address {
                        Some(now)
                    } else {
                        current.email_verified_at.or(Some(now))
                    },
                    ..current.clone()
                };
                changes
                    .require(Precondition::UserVersion { user: current.id, version: current.version })
                    .push(Change::UpdateUser(updated))
                    .audit(ctx.audit(
                        None,
                        Some(current.id),
                        AuditAction::EmailVerified,
                        AuditTarget::User(current.id),
                        audited,
                    ));
                Ok((current.id, changes))
            },
            |duplicate| match duplicate {
                Duplicate::Email => VerifyEmailError::AddressTaken,
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// Sends a new verification link to the account's address; earlier links stop
    /// working (a pending address change is cancelled too).
    ///
    /// # Errors
    /// [`ResendVerificationError::AlreadyVerified`] when there is nothing to verify.
    pub async fn resend_verification(&self, user: UserId) -> Result<(), ResendVerificationError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let account = self.account(user).await?;
                if account.is_verified() {
                    return Err(ResendVerificationError::AlreadyVerified);
                }
                let mut changes = ChangeSet::new();
                changes.push(Change::ExpireTokens { user, reset: false, at: now });
                self.send_verification(&mut changes, &account, &account.email, now);
                Ok(((), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Starts changing the account's address: after checking the current password, sends
    /// a verification link to the new address. Nothing changes until that link is
    /// followed ([`verify_email`](Self::verify_email)).
    ///
    /// # Errors
    /// [`RequestEmailChangeError::Invalid`] for a malformed address,
    /// [`RequestEmailChangeError::WrongPassword`] and [`RequestEmailChangeError::Unchanged`].
    /// An address that belongs to another account answers `Ok` like a free one (nobody
    /// learns who has an account); its owner is told someone tried to use it, and no
    /// link is sent.
    pub async fn request_email_change(
        &self,
        user: UserId,
        new_email: &str,
        current_password: &str,
    ) -> Result<(), RequestEmailChangeError> {
        let ctx = &self.ctx;
        let new_email = EmailAddress::parse(new_email)?;
        let password = Password::new(current_password);
        let account = self.account(user).await?;
        if !self.verify_chosen_password(&account, &password).await? {
            return Err(RequestEmailChangeError::WrongPassword);
        }
        if new_email == account.email {
            return Err(RequestEmailChangeError::Unchanged(new_email));
        }
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let mut changes = ChangeSet::new();
                // Both paths write the same: earlier links die, the current address hears
                // of the request (a stranger with the password cannot move the account
                // silently).
                changes.push(Change::ExpireTokens { user, reset: false, at: now }).send(ctx.email(
                    None,
                    &account.email,
                    Notification::EmailChangeRequested { new_email: new_email.clone() },
                ));
                if ctx.ports.users.user_by_email(&new_email).await?.is_some() {
                    // Answer as for a free address, so nobody learns who has an account;
                    // the address's owner hears that someone tried to use it.
                    changes.send(ctx.email(None, &new_email, Notification::SignUpAttemptWithExistingAccount));
                    return Ok(((), changes));
                }
                self.send_verification(&mut changes, &account, &new_email, now);
                Ok(((), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    // -----------------------------------------------------------------------------------
    // Sign-in and sessions
    // -----------------------------------------------------------------------------------

    /// Signs in with an address and a password, and opens a session.
    ///
    /// A temporary password (administrator-created accounts) works once: it is cleared,
    /// the address counts as verified (the password came by email), and the session may
    /// only change the password. A chosen password that no longer meets the account's
    /// rules (the strictest of the platform's and those of every organisation it is an
    /// active member of) still signs in, but the password must then be changed first.
    ///
    /// # Errors
    /// [`SignInError::InvalidCredentials`] for an unknown or malformed address or a wrong
    /// password, indistinguishably and at the same cost; [`SignInError::AccountDisabled`]
    /// and [`SignInError::TemporaryPasswordExpired`] only once the password matched.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<SignedIn, SignInError> {
        let ctx = &self.ctx;
        let password = Password::new(password);
        let oversized = password.char_count() > PasswordPolicy::HIGHEST_MAX_LENGTH;
        let (Ok(email), false) = (EmailAddress::parse(email), oversized) else {
            // No account's password is that long, and hashing cost must stay bounded:
            // spend what a verification costs on a bounded prefix and refuse.
            let bounded: String = password.expose().chars().take(PasswordPolicy::HIGHEST_MAX_LENGTH).collect();
            ctx.ports.hasher.verify_dummy(&Password::new(bounded)).await.map_err(hash_failed)?;
            return Err(SignInError::InvalidCredentials);
        };
        ctx.decide_and_commit(
            || async {
                let Some(user) = ctx.ports.users.user_by_email(&email).await? else {
                    ctx.ports.hasher.verify_dummy(&password).await.map_err(hash_failed)?;
                    return Err(SignInError::InvalidCredentials);
                };
                let matched = self.match_password(&user, &password).await?;
                let now = ctx.now();
                let mut changes = ChangeSet::new();
                let restricted = match matched {
                    PasswordMatch::NoMatch => return Err(SignInError::InvalidCredentials),
                    _ if !user.is_active() => return Err(SignInError::AccountDisabled),
                    PasswordMatch::Temporary { expires_at } if now >= expires_at => {
                        return Err(SignInError::TemporaryPasswordExpired { expired_at: expires_at });
                    }
                    PasswordMatch::Temporary { .. } => {
                        let updated = User {
                            email_verified_at: user.email_verified_at.or(Some(now)),
                            password: PasswordState { temporary: None, must_change: true, ..user.password.clone() },
                            ..user.clone()
                        };
                        changes
                            .require(Precondition::UserVersion { user: user.id, version: user.version })
                            .push(Change::UpdateUser(updated));
                        true
                    }
                    PasswordMatch::Chosen => {
                        let policy = ctx.effective_password_policy(user.id).await?;
                        let weak = policy.validate(&password, Some(user.email.local_part())).is_err();
                        if weak && !user.password.must_change {
                            let updated = User {
                                password: PasswordState { must_change: true, ..user.password.clone() },
                                ..user.clone()
                            };
                            changes
                                .require(Precondition::UserVersion { user: user.id, version: user.version })
                                .push(Change::UpdateUser(updated));
                        }
                        weak || user.password.must_change
                    }
                };
                let token = ctx.new_token();
                let session = Session {
                    id: SessionId::from_uuid(ctx.new_id()),
                    user: user.id,
                    token_hash: token.hash(),
                    created_at: now,
                    last_seen_at: now,
                    expires_at: now + ctx.settings.sessions.absolute_timeout,
                    password_change_required: restricted,
                    revoked_at: None,
                };
                if changes.preconditions.is_empty() {
                    // A password change or reset committing meanwhile revokes every
                    // session; this one, opened with the old password, must not land after.
                    changes.require(Precondition::UserUnchanged { user: user.id, version: user.version });
                }
                changes.push(Change::InsertSession(session.clone()));
                Ok((SignedIn { user: user.id, token, session, password_change_required: restricted }, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Which of the account's passwords `password` is, spending one verification at
    /// least.
    async fn match_password(&self, user: &User, password: &Password) -> Result<PasswordMatch, Unexpected> {
        let hasher = &self.ctx.ports.hasher;
        if let Some(hash) = &user.password.hash
            && hasher.verify(password, hash).await.map_err(hash_failed)?
        {
            return Ok(PasswordMatch::Chosen);
        }
        if let Some(temporary) = &user.password.temporary {
            if hasher.verify(password, &temporary.hash).await.map_err(hash_failed)? {
                return Ok(PasswordMatch::Temporary { expires_at: temporary.expires_at });
            }
        } else if user.password.hash.is_none() {
            hasher.verify_dummy(password).await.map_err(hash_failed)?;
        }
        Ok(PasswordMatch::NoMatch)
    }

    /// Whether `password` is the account's chosen password (a temporary one does not
    /// count: it only signs in).
    async fn verify_chosen_password(&self, user: &User, password: &Password) -> Result<bool, Unexpected> {
        let hasher = &self.ctx.ports.hasher;
        if password.char_count() > PasswordPolicy::HIGHEST_MAX_LENGTH {
            // No password is that long; keep the hashing cost bounded.
            let bounded: String = password.expose().chars().take(PasswordPolicy::HIGHEST_MAX_LENGTH).collect();
            return hasher.verify_dummy(&Password::new(bounded)).await.map(|()| false).map_err(hash_failed);
        }
        match &user.password.hash {
            Some(hash) => hasher.verify(password, hash).await.map_err(hash_failed),
            None => hasher.verify_dummy(password).await.map(|()| false).map_err(hash_failed),
        }
    }

    /// The session a request presents, and its account.
    ///
    /// The session's last use is recorded at most once per
    /// [`Settings::session_touch_interval`](super::Settings::session_touch_interval), not on
    /// every request.
    ///
    /// # Errors
    /// [`AuthenticateError::InvalidSession`] when the token is unknown, the session was
    /// revoked or has expired (idle or absolute), or its account is disabled or gone.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, AuthenticateError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(AuthenticateError::InvalidSession)?.hash();
        let mut session = ctx.ports.tokens.session(&hash).await?.ok_or(AuthenticateError::InvalidSession)?;
        let now = ctx.now();
        if !session.is_valid(&ctx.settings.sessions, now) {
            return Err(AuthenticateError::InvalidSession);
        }
        let user = ctx.ports.users.user(session.user).await?.ok_or(AuthenticateError::InvalidSession)?;
        if !user.is_active() {
            return Err(AuthenticateError::InvalidSession);
        }
        if now - session.last_seen_at >= ctx.settings.session_touch_interval {
            let mut changes = ChangeSet::new();
            changes.push(Change::TouchSession { hash, at: now });
            ctx.decide_and_commit(|| async { Ok(((), changes.clone())) }, unexpected_duplicate::<AuthenticateError>)
                .await?;
            session.last_seen_at = now;
        }
        Ok(Authenticated { user, session })
    }

    /// Ends the session. Signing out of a session that has ended already, or with a
    /// token that is not one, does nothing.
    ///
    /// # Errors
    /// Only [`SignOutError::Unexpected`].
    pub async fn sign_out(&self, token: &str) -> Result<(), SignOutError> {
        let ctx = &self.ctx;
        let Some(hash) = Token::parse(token).map(|t| t.hash()) else { return Ok(()) };
        let Some(session) = ctx.ports.tokens.session(&hash).await? else { return Ok(()) };
        if session.revoked_at.is_some() {
            return Ok(());
        }
        let mut changes = ChangeSet::new();
        changes.push(Change::RevokeSession { hash, at: ctx.now() });
        ctx.decide_and_commit(|| async { Ok(((), changes.clone())) }, unexpected_duplicate).await
    }

    /// The account's sessions that are still valid, newest first ("where you are signed
    /// in").
    ///
    /// # Errors
    /// Only [`ListSessionsError::Unexpected`].
    pub async fn sessions(&self, user: UserId) -> Result<Vec<Session>, ListSessionsError> {
        let ctx = &self.ctx;
        let now = ctx.now();
        let sessions = ctx.ports.tokens.sessions_of_user(user).await?;
        Ok(sessions.into_iter().filter(|s| s.is_valid(&ctx.settings.sessions, now)).collect())
    }

    /// Ends one of the account's own sessions (sign out elsewhere).
    ///
    /// # Errors
    /// [`RevokeSessionError::NotFound`] when the account has no open session with this id
    /// (including another account's session).
    pub async fn revoke_session(&self, user: UserId, session: SessionId) -> Result<(), RevokeSessionError> {
        let ctx = &self.ctx;
        let sessions = ctx.ports.tokens.sessions_of_user(user).await?;
        let found = sessions
            .iter()
            .find(|s| s.id == session && s.user == user && s.revoked_at.is_none())
            .ok_or(RevokeSessionError::NotFound)?;
        let mut changes = ChangeSet::new();
        changes.push(Change::RevokeSession { hash: found.token_hash, at: ctx.now() });
        ctx.decide_and_commit(|| async { Ok(((), changes.clone())) }, unexpected_duplicate).await
    }

    /// Ends every session of the account, except `except` (the caller's own, usually).
    ///
    /// # Errors
    /// Only [`RevokeAllSessionsError::Unexpected`].
    pub async fn revoke_all_sessions(
        &self,
        user: UserId,
        except: Option<TokenHash>,
    ) -> Result<(), RevokeAllSessionsError> {
        let ctx = &self.ctx;
        let mut changes = ChangeSet::new();
        changes.push(Change::RevokeSessionsOf { user, except, at: ctx.now() });
        ctx.decide_and_commit(|| async { Ok(((), changes.clone())) }, unexpected_duplicate).await
    }

    // -----------------------------------------------------------------------------------
    // Passwords
    // -----------------------------------------------------------------------------------

    /// Changes the password from a signed-in session; every other session ends, this one
    /// stays (and may do everything again), and the owner is told by email.
    ///
    /// The current password is required unless the session was restricted to changing
    /// the password (a temporary password, or one that no longer met the rules: it was
    /// just checked at sign-in). The new password must meet the account's rules: the
    /// strictest of the platform's and those of every organisation it is an active
    /// member of.
    ///
    /// # Errors
    /// [`ChangePasswordError::InvalidSession`] unless `session_token` is a valid session of
    /// `user`; [`ChangePasswordError::CurrentPasswordRequired`],
    /// [`ChangePasswordError::WrongPassword`], and
    /// [`ChangePasswordError::PasswordRejected`] listing every broken rule.
    pub async fn change_password(&self, request: ChangePassword) -> Result<(), ChangePasswordError> {
        let ctx = &self.ctx;
        let hash = Token::parse(&request.session_token).ok_or(ChangePasswordError::InvalidSession)?.hash();
        let current_password = request.current_password.map(Password::new);
        let new_password = Password::new(request.new_password);
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let session = ctx.ports.tokens.session(&hash).await?.ok_or(ChangePasswordError::InvalidSession)?;
                if session.user != request.user || !session.is_valid(&ctx.settings.sessions, now) {
                    return Err(ChangePasswordError::InvalidSession);
                }
                let user = ctx.ports.users.user(request.user).await?.ok_or(ChangePasswordError::InvalidSession)?;
                if !user.is_active() {
                    return Err(ChangePasswordError::InvalidSession);
                }
                if !session.password_change_required {
                    let current = current_password.as_ref().ok_or(ChangePasswordError::CurrentPasswordRequired)?;
                    if !self.verify_chosen_password(&user, current).await? {
                        return Err(ChangePasswordError::WrongPassword);
                    }
                }
                let policy = ctx.effective_password_policy(user.id).await?;
                policy
                    .validate(&new_password, Some(user.email.local_part()))
                    .map_err(ChangePasswordError::PasswordRejected)?;
                let new_hash = ctx.ports.hasher.hash(&new_password).await.map_err(hash_failed)?;
                let updated = User {
                    password: PasswordState {
                        hash: Some(new_hash),
                        temporary: None,
                        must_change: false,
                        changed_at: Some(now),
                    },
                    ..user.clone()
                };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::UserVersion { user: user.id, version: user.version })
                    .push(Change::UpdateUser(updated))
                    .push(Change::RevokeSessionsOf { user: user.id, except: Some(hash), at: now })
                    // Links sent before the change (an email change someone else asked
                    // for with the old password, a reset) die with the old password.
                    .push(Change::ExpireTokens { user: user.id, reset: false, at: now })
                    .push(Change::ExpireTokens { user: user.id, reset: true, at: now })
                    .push(Change::UnrestrictSession { hash })
                    .send(ctx.email(None, &user.email, Notification::PasswordChanged { at: now }))
                    .audit(ctx.audit(
                        None,
                        Some(user.id),
                        AuditAction::PasswordChanged,
                        AuditTarget::User(user.id),
                        forced_change(&user),
                    ));
                Ok(((), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Sends a password-reset link to the address, if it belongs to an active account;
    /// older reset links stop working.
    ///
    /// Answers `Ok(())` whatever the address (unknown, malformed, or a disabled account's,
    /// to which nothing is sent), so nobody learns which addresses have accounts.
    ///
    /// # Errors
    /// Only [`RequestPasswordResetError::Unexpected`].
    pub async fn request_password_reset(&self, email: &str) -> Result<(), RequestPasswordResetError> {
        let ctx = &self.ctx;
        let Ok(email) = EmailAddress::parse(email) else { return Ok(()) };
        let Some(user) = ctx.ports.users.user_by_email(&email).await? else { return Ok(()) };
        if !user.is_active() {
            return Ok(());
        }
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let token = ctx.new_token();
                let expires_at = now + ctx.settings.password_reset_lifetime;
                let mut changes = ChangeSet::new();
                changes
                    .push(Change::ExpireTokens { user: user.id, reset: true, at: now })
                    .push(Change::InsertToken(OneTimeToken {
                        hash: token.hash(),
                        user: user.id,
                        purpose: TokenPurpose::ResetPassword,
                        created_at: now,
                        expires_at,
                        used_at: None,
                    }))
                    .send(ctx.email(None, &user.email, Notification::PasswordReset { token, expires_at }));
                Ok(((), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Sets a new password with a reset link. Every session of the account ends, any
    /// temporary password and forced change are cleared, other reset links stop working,
    /// the address counts as verified (the link proved control of it), and the owner is
    /// told by email.
    ///
    /// # Errors
    /// [`ConfirmPasswordResetError::InvalidToken`], [`ConfirmPasswordResetError::Expired`]
    /// and [`ConfirmPasswordResetError::AlreadyUsed`] for links that cannot be used;
    /// [`ConfirmPasswordResetError::AccountDisabled`];
    /// [`ConfirmPasswordResetError::PasswordRejected`] listing every broken rule.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
    ) -> Result<(), ConfirmPasswordResetError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(ConfirmPasswordResetError::InvalidToken)?.hash();
        let new_password = Password::new(new_password);
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let token = match token_state(ctx.ports.tokens.one_time_token(&hash).await?, now) {
                    TokenState::Usable(token) => token,
                    TokenState::Unknown => return Err(ConfirmPasswordResetError::InvalidToken),
                    TokenState::Used => return Err(ConfirmPasswordResetError::AlreadyUsed),
                    TokenState::Expired(expired_at) => return Err(ConfirmPasswordResetError::Expired { expired_at }),
                };
                if token.purpose != TokenPurpose::ResetPassword {
                    return Err(ConfirmPasswordResetError::InvalidToken);
                }
                let user = ctx.ports.users.user(token.user).await?.ok_or(ConfirmPasswordResetError::InvalidToken)?;
                if !user.is_active() {
                    return Err(ConfirmPasswordResetError::AccountDisabled);
                }
                let policy = ctx.effective_password_policy(user.id).await?;
                policy
                    .validate(&new_password, Some(user.email.local_part()))
                    .map_err(ConfirmPasswordResetError::PasswordRejected)?;
                let new_hash = ctx.ports.hasher.hash(&new_password).await.map_err(hash_failed)?;
                let updated = User {
                    email_verified_at: user.email_verified_at.or(Some(now)),
                    password: PasswordState {
                        hash: Some(new_hash),
                        temporary: None,
                        must_change: false,
                        changed_at: Some(now),
                    },
                    ..user.clone()
                };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::TokenUnused { hash })
                    .require(Precondition::UserVersion { user: user.id, version: user.version })
                    .push(Change::ConsumeToken { hash, at: now })
                    .push(Change::ExpireTokens { user: user.id, reset: true, at: now })
                    .push(Change::ExpireTokens { user: user.id, reset: false, at: now })
                    .push(Change::UpdateUser(updated))
                    .push(Change::RevokeSessionsOf { user: user.id, except: None, at: now })
                    .send(ctx.email(None, &user.email, Notification::PasswordChanged { at: now }))
                    .audit(ctx.audit(
                        None,
                        Some(user.id),
                        AuditAction::PasswordReset,
                        AuditTarget::User(user.id),
                        forced_change(&user),
                    ));
                Ok(((), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    // -----------------------------------------------------------------------------------
    // Profile
    // -----------------------------------------------------------------------------------

    /// Changes the names and phone number, and returns the account as it now is.
    /// Submitting the current values changes nothing and records nothing.
    ///
    /// # Errors
    /// [`UpdateProfileError::Invalid`] lists every invalid field at once.
    pub async fn update_profile(&self, user: UserId, update: ProfileUpdate) -> Result<User, UpdateProfileError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let current = self.account(user).await?;
                let mut fields = Vec::new();
                let name = PersonName::parse(
                    update.first_name.as_deref().unwrap_or(current.name.first()),
                    update.last_name.as_deref().unwrap_or(current.name.last()),
                )
                .map_err(|e| fields.extend(e))
                .ok();
                let phone = match &update.phone {
                    None => Some(current.phone.clone()),
                    Some(raw) => parse_optional(raw.as_deref(), PhoneNumber::parse).map_err(|e| fields.push(e)).ok(),
                };
                let (Some(name), Some(phone)) = (name, phone) else {
                    return Err(UpdateProfileError::Invalid { fields });
                };
                let mut audited = Vec::new();
                if name.first() != current.name.first() {
                    audited.push(FieldChange::new("first_name", Some(current.name.first()), Some(name.first())));
                }
                if name.last() != current.name.last() {
                    audited.push(FieldChange::new("last_name", Some(current.name.last()), Some(name.last())));
                }
                if phone != current.phone {
                    audited.push(FieldChange::new("phone", current.phone.as_ref(), phone.as_ref()));
                }
                let mut changes = ChangeSet::new();
                if audited.is_empty() {
                    return Ok((current, changes));
                }
                let updated = User { name, phone, ..current.clone() };
                changes
                    .require(Precondition::UserVersion { user, version: current.version })
                    .push(Change::UpdateUser(updated.clone()))
                    .audit(ctx.audit(None, Some(user), AuditAction::ProfileUpdated, AuditTarget::User(user), audited));
                // The commit increments the version.
                Ok((User { version: current.version + 1, ..updated }, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// The account and every organisation it belongs to, with the role and the
    /// membership's state now: what `/me` shows, and what an organisation switcher
    /// offers.
    ///
    /// # Errors
    /// Only [`OverviewError::Unexpected`].
    pub async fn overview(&self, user: UserId) -> Result<AccountOverview, OverviewError> {
        let ctx = &self.ctx;
        let account = self.account(user).await?;
        let now = ctx.now();
        let mut memberships = Vec::new();
        for membership in ctx.ports.memberships.memberships_of_user(user).await? {
            let org = ctx
                .ports
                .organisations
                .organisation(membership.org)
                .await?
                .ok_or_else(|| Unexpected::message("a membership refers to a missing organisation"))?;
            let roles = RoleSet::new(ctx.ports.organisations.custom_roles(org.id).await?);
            let role_name =
                roles.get(&membership.role).map_or_else(|| membership.role.to_string(), |r| r.name.to_string());
            memberships.push(LinkedMembership {
                org: org.id,
                slug: org.slug,
                name: org.name,
                role: membership.role.clone(),
                role_name,
                state: membership.state(now),
            });
        }
        memberships.sort_by_cached_key(|m| (m.name.as_str().to_lowercase(), m.org));
        Ok(AccountOverview { user: account, memberships })
    }

    /// The signed-in account; its absence means it vanished mid-request.
    async fn account(&self, user: UserId) -> Result<User, Unexpected> {
        self.ctx.ports.users.user(user).await?.ok_or_else(|| Unexpected::message("the account no longer exists"))
    }
}

/// What an audit entry of a password change says about it (never the password).
fn forced_change(user: &User) -> Vec<FieldChange> {
    if user.password.must_change || user.password.temporary.is_some() {
        vec![FieldChange::new("must_change_password", Some(true), Some(false))]
    } else {
        Vec::new()
    }
}

/// [`Accounts::disable`] or [`Accounts::enable`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountStatusError {
    /// No such account.
    #[error("account not found")]
    NotFound,
    /// The account is already in that state.
    #[error("the account is already {0}")]
    AlreadyInState(&'static str),
    /// The account is the last administrator of these organisations.
    #[error("the account is the last administrator of {}; make someone else an administrator there first", .0.join(", "))]
    LastAdministrator(Vec<String>),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(AccountStatusError);

impl Accounts {
    /// Disables an account (an operator's action, not an organisation's): it can no
    /// longer sign in and every session ends at once. Refused while the account is the
    /// last administrator of an organisation.
    ///
    /// # Errors
    /// See [`AccountStatusError`].
    pub async fn disable(&self, user: UserId) -> Result<User, AccountStatusError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let account = ctx.ports.users.user(user).await?.ok_or(AccountStatusError::NotFound)?;
                if !account.is_active() {
                    return Err(AccountStatusError::AlreadyInState("disabled"));
                }
                let mut changes = ChangeSet::new();
                let mut orphaned = Vec::new();
                for membership in ctx.ports.memberships.memberships_of_user(user).await? {
                    let Some((org, roles)) = ctx.org_and_roles(membership.org).await? else {
                        return Err(Unexpected::message("a membership refers to a missing organisation").into());
                    };
                    let before = ctx.administrators_and(org.id, &roles, &[], &[]).await?;
                    let admins_left = crate::policy::check_administrators_remain(
                        &ctx.catalogue,
                        &roles,
                        &before,
                        |m| (m.user != user).then(|| m.clone()),
                        now,
                    );
                    if admins_left.is_err() && before.iter().any(|m| m.user == user) {
                        orphaned.push(org.name.to_string());
                    }
                    // Administrators' decisions in these organisations counted this account.
                    changes.require(Precondition::OrgVersion { org: org.id, version: org.version });
                }
                if !orphaned.is_empty() {
                    return Err(AccountStatusError::LastAdministrator(orphaned));
                }
                let disabled = User { status: UserStatus::Disabled { since: now }, ..account.clone() };
                changes
                    .require(Precondition::UserVersion { user, version: account.version })
                    .push(Change::UpdateUser(disabled.clone()))
                    .push(Change::RevokeSessionsOf { user, except: None, at: now })
                    .audit(ctx.audit(
                        None,
                        None,
                        AuditAction::AccountDisabled,
                        AuditTarget::User(user),
                        vec![FieldChange::new("status", Some("active"), Some("disabled"))],
                    ));
                Ok((disabled, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Enables a disabled account again (an operator's action).
    ///
    /// # Errors
    /// See [`AccountStatusError`].
    pub async fn enable(&self, user: UserId) -> Result<User, AccountStatusError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let account = ctx.ports.users.user(user).await?.ok_or(AccountStatusError::NotFound)?;
                if account.is_active() {
                    return Err(AccountStatusError::AlreadyInState("active"));
                }
                let enabled = User { status: UserStatus::Active, ..account.clone() };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::UserVersion { user, version: account.version })
                    .push(Change::UpdateUser(enabled.clone()))
                    .audit(ctx.audit(
                        None,
                        None,
                        AuditAction::AccountEnabled,
                        AuditTarget::User(user),
                        vec![FieldChange::new("status", Some("disabled"), Some("active"))],
                    ));
                Ok((enabled, changes))
            },
            unexpected_duplicate,
        )
        .await
    }
}
