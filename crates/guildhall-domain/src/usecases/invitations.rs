//! Invite, resend, revoke, accept, decline.

use chrono::{DateTime, Utc};

use super::{Context, OrgAccess, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::catalogue::permissions;
use crate::error::{AccessError, Unexpected, from_store_error};
use crate::ids::{InvitationId, OrgId, UserId};
use crate::invitation::{Invitation, InvitationState, InvitationStatus};
use crate::membership::{Membership, MembershipOrigin};
use crate::notification::{Notification, OutboundEmail};
use crate::policy::{InvariantViolation, check_no_escalation, check_not_outranked};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition};
use crate::role::{Role, RoleSet};
use crate::token::Token;
use crate::values::{EmailAddress, InvalidValue, RoleKey};

/// Invitations to join an organisation.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Invitations {
    pub(crate) ctx: Context,
}

/// An administrator's invitation, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationSummary {
    /// The invitation.
    pub invitation: Invitation,
    /// Its status now.
    pub status: InvitationStatus,
}

/// What the holder of an invitation link sees before accepting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationDetails {
    /// The invitation's id.
    pub id: InvitationId,
    /// The organisation.
    pub org: OrgId,
    /// The organisation's name.
    pub org_name: String,
    /// The address invited.
    pub email: EmailAddress,
    /// The role offered, by name.
    pub role_name: String,
    /// Its status now.
    pub status: InvitationStatus,
    /// When it expires (or expired).
    pub expires_at: DateTime<Utc>,
    /// Whether an account exists for the invited address (so the page offers "sign in"
    /// rather than "create an account"). Only the holder of the token sees this.
    pub account_exists: bool,
}

/// [`Invitations::invite`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The address is not valid.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// No such role.
    #[error("there is no role \"{0}\" in this organisation")]
    UnknownRole(RoleKey),
    /// The role grants more than the inviter holds.
    #[error(transparent)]
    Escalation(InvariantViolation),
    /// The person is a member already.
    #[error("{0} is already a member of this organisation")]
    AlreadyMember(EmailAddress),
    /// An open invitation for the address exists; resend it instead.
    #[error("{email} already has an open invitation; resend that one instead")]
    AlreadyInvited {
        /// The address.
        email: EmailAddress,
        /// The open invitation.
        invitation: InvitationId,
    },
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Invitations::resend`] or [`Invitations::revoke`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageInvitationError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No such invitation in this organisation.
    #[error("invitation not found")]
    NotFound,
    /// The invitation was already accepted, revoked or declined.
    #[error("this invitation is {0} and can no longer be changed")]
    Closed(InvitationStatus),
    /// The invited role grants more than the actor holds: they may neither offer it again
    /// nor withdraw it.
    #[error(transparent)]
    Escalation(InvariantViolation),
    /// The invited role is gone (resend only); invite again with another role.
    #[error("the role \"{0}\" no longer exists; revoke this invitation and invite again with another role")]
    RoleGone(RoleKey),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Invitations::accept`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptInvitationError {
    /// No invitation has this token (a mistyped link, or one replaced by a resend).
    #[error("this invitation link is not valid; it may have been replaced by a newer one")]
    InvalidToken,
    /// The invitation expired.
    #[error("this invitation expired on {expires_at}; ask an administrator of {org_name} to send a new one")]
    Expired {
        /// The organisation's name.
        org_name: String,
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// The invitation was revoked.
    #[error("this invitation was withdrawn; ask an administrator of {org_name} for a new one")]
    Revoked {
        /// The organisation's name.
        org_name: String,
    },
    /// The invitation was used already (single use).
    #[error("this invitation has already been used")]
    AlreadyUsed,
    /// The invitation was declined.
    #[error("this invitation was declined; ask an administrator of {org_name} for a new one")]
    Declined {
        /// The organisation's name.
        org_name: String,
    },
    /// The signed-in account's address is not the invited one.
    #[error("this invitation was sent to {invited}; sign in with that address to accept it")]
    WrongAccount {
        /// The invited address.
        invited: EmailAddress,
    },
    /// The account's address is not verified yet.
    #[error("verify your email address first, then accept the invitation")]
    EmailNotVerified,
    /// The account must change its password first (a temporary password, or one that no
    /// longer meets the rules): until then it can do nothing else.
    #[error("change your password first; until then your account can do nothing else")]
    PasswordChangeRequired,

    /// The account is a member already.
    #[error("you are already a member of this organisation")]
    AlreadyMember,
    /// The invited role was deleted since.
    #[error(
        "the role this invitation offered no longer exists; ask an administrator of {org_name} for a new invitation"
    )]
    RoleGone {
        /// The organisation's name.
        org_name: String,
    },
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Invitations::decline`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DeclineInvitationError {
    /// No invitation has this token.
    #[error("this invitation link is not valid")]
    InvalidToken,
    /// The invitation is not pending any more.
    #[error("this invitation is {0} and can no longer be declined")]
    Closed(InvitationStatus),
    /// The account must change its password first (a temporary password, or one that no
    /// longer meets the rules): until then it can do nothing else.
    #[error("change your password first; until then your account can do nothing else")]
    PasswordChangeRequired,
    /// The signed-in account's address is not the invited one.
    #[error("this invitation was sent to {invited}; only that address can decline it")]
    WrongAccount {
        /// The invited address.
        invited: EmailAddress,
    },
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Invitations::list`], [`Invitations::details`] or [`Invitations::mine`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ListInvitationsError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No invitation has this token.
    #[error("this invitation link is not valid")]
    InvalidToken,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(
    InviteError,
    ManageInvitationError,
    AcceptInvitationError,
    DeclineInvitationError,
    ListInvitationsError
);

impl Invitations {
    /// Invites `email` to join `org` with `role`, and emails the invitee exactly once.
    ///
    /// # Errors
    /// See [`InviteError`]: the actor needs `members.manage` and may offer only a role
    /// within their own permissions.
    pub async fn invite(
        &self,
        actor: UserId,
        org: OrgId,
        email: &str,
        role: &RoleKey,
    ) -> Result<Invitation, InviteError> {
        let email = EmailAddress::parse(email)?;
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<InviteError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let offered = access.roles.get(role).ok_or_else(|| InviteError::UnknownRole(role.clone()))?;
                check_no_escalation(&access.held(&ctx.catalogue, now), &offered.permissions(&ctx.catalogue))
                    .map_err(InviteError::Escalation)?;
                if let Some(user) = ctx.ports.users.user_by_email(&email).await?
                    && ctx.ports.memberships.membership(org, user.id).await?.is_some()
                {
                    return Err(InviteError::AlreadyMember(email.clone()));
                }
                if let Some(existing) = ctx.pending_invitation(org, &email).await? {
                    return Err(InviteError::AlreadyInvited { email: email.clone(), invitation: existing });
                }
                let (invitation, message) = ctx.new_invitation(&access, actor, &email, offered).await?;
                let mut changes = ChangeSet::new();
                // Checked, not bumped: a change of the organisation, its roles or the
                // inviter's role since the decision conflicts, other invitations do not;
                // a concurrent invitation of the same address does.
                changes
                    .require(Precondition::OrgUnchanged { org, version: access.org.version })
                    .require(Precondition::NoPendingInvitation { org, email: email.clone(), at: now })
                    .push(Change::InsertInvitation(invitation.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::InvitationSent,
                        AuditTarget::Invitation(invitation.id),
                        vec![
                            FieldChange::new("email", None::<String>, Some(&email)),
                            FieldChange::new("role", None::<String>, Some(role)),
                        ],
                    ))
                    .send(message);
                Ok((invitation, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Sends the invitation again with a new token (the old link stops working) and a
    /// new expiry. Works on expired invitations too.
    ///
    /// # Errors
    /// See [`ManageInvitationError`].
    pub async fn resend(
        &self,
        actor: UserId,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Invitation, ManageInvitationError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<ManageInvitationError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let current =
                    ctx.ports.invitations.invitation(org, id).await?.ok_or(ManageInvitationError::NotFound)?;
                if !current.is_open() {
                    return Err(ManageInvitationError::Closed(current.status(now)));
                }
                let role = access
                    .roles
                    .get(&current.role)
                    .ok_or_else(|| ManageInvitationError::RoleGone(current.role.clone()))?;
                // A fresh link is a fresh grant: the resender must hold the role too.
                check_no_escalation(&access.held(&ctx.catalogue, now), &role.permissions(&ctx.catalogue))
                    .map_err(ManageInvitationError::Escalation)?;
                let token = ctx.new_token();
                let invitation = Invitation {
                    token_hash: token.hash(),
                    expires_at: now + access.org.settings.invitation_lifetime.duration(),
                    resent: current.resent.saturating_add(1),
                    ..current.clone()
                };
                let inviter = ctx.ports.users.user(actor).await?.map(|u| u.name.full()).unwrap_or_default();
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .require(Precondition::InvitationPending { org, id, token_hash: current.token_hash })
                    .push(Change::UpdateInvitation(invitation.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::InvitationResent,
                        AuditTarget::Invitation(id),
                        vec![FieldChange::new("expires_at", Some(current.expires_at), Some(invitation.expires_at))],
                    ))
                    .send(ctx.email(
                        Some(org),
                        &invitation.email,
                        invitation_email(&invitation, access.org.name.as_str(), &inviter, role.name.as_str(), token),
                    ));
                Ok((invitation, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Withdraws an open invitation; its link stops working.
    ///
    /// # Errors
    /// See [`ManageInvitationError`].
    pub async fn revoke(
        &self,
        actor: UserId,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Invitation, ManageInvitationError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<ManageInvitationError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let current =
                    ctx.ports.invitations.invitation(org, id).await?.ok_or(ManageInvitationError::NotFound)?;
                if !current.is_open() {
                    return Err(ManageInvitationError::Closed(current.status(now)));
                }
                // Withdrawing an offer is managing it: not of a role above one's own.
                if let Some(role) = access.roles.get(&current.role) {
                    check_not_outranked(&access.held(&ctx.catalogue, now), &role.permissions(&ctx.catalogue), None)
                        .map_err(ManageInvitationError::Escalation)?;
                }
                let invitation =
                    Invitation { state: InvitationState::Revoked { by: actor, at: now }, ..current.clone() };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .require(Precondition::InvitationPending { org, id, token_hash: current.token_hash })
                    .push(Change::UpdateInvitation(invitation.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::InvitationRevoked,
                        AuditTarget::Invitation(id),
                        vec![FieldChange::new("state", Some("pending"), Some("revoked"))],
                    ));
                Ok((invitation, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Accepts the invitation whose link carried `token`, as the signed-in `user`.
    ///
    /// Requires the pending state, no expiry, the account's verified address equal to the
    /// invited one, no existing membership and the role still existing. Single use: two
    /// concurrent acceptances cannot both succeed.
    ///
    /// # Errors
    /// See [`AcceptInvitationError`].
    pub async fn accept(&self, user: UserId, token: &str) -> Result<Membership, AcceptInvitationError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(AcceptInvitationError::InvalidToken)?.hash();
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let invitation = ctx
                    .ports
                    .invitations
                    .invitation_by_token(&hash)
                    .await?
                    .ok_or(AcceptInvitationError::InvalidToken)?;
                let org = ctx
                    .ports
                    .organisations
                    .organisation(invitation.org)
                    .await?
                    .ok_or_else(|| Unexpected::message("an invitation refers to a missing organisation"))?;
                let org_name = org.name.to_string();
                match invitation.status(now) {
                    InvitationStatus::Pending => {}
                    InvitationStatus::Expired => {
                        return Err(AcceptInvitationError::Expired { org_name, expires_at: invitation.expires_at });
                    }
                    InvitationStatus::Revoked => return Err(AcceptInvitationError::Revoked { org_name }),
                    InvitationStatus::Declined => return Err(AcceptInvitationError::Declined { org_name }),
                    InvitationStatus::Accepted => return Err(AcceptInvitationError::AlreadyUsed),
                }
                let account = ctx
                    .ports
                    .users
                    .user(user)
                    .await?
                    .filter(|a| a.is_active())
                    .ok_or(AcceptInvitationError::InvalidToken)?;
                if account.password.must_change {
                    return Err(AcceptInvitationError::PasswordChangeRequired);
                }
                if account.email != invitation.email {
                    return Err(AcceptInvitationError::WrongAccount { invited: invitation.email.clone() });
                }
                if !account.is_verified() {
                    return Err(AcceptInvitationError::EmailNotVerified);
                }
                if ctx.ports.memberships.membership(org.id, user).await?.is_some() {
                    return Err(AcceptInvitationError::AlreadyMember);
                }
                let roles = RoleSet::new(ctx.ports.organisations.custom_roles(org.id).await?);
                if roles.get(&invitation.role).is_none() {
                    return Err(AcceptInvitationError::RoleGone { org_name });
                }
                let membership = Membership::new(
                    org.id,
                    user,
                    invitation.role.clone(),
                    MembershipOrigin::Invitation,
                    Some(invitation.invited_by),
                    now,
                );
                let accepted =
                    Invitation { state: InvitationState::Accepted { by: user, at: now }, ..invitation.clone() };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::InvitationPending { org: org.id, id: invitation.id, token_hash: hash })
                    .require(Precondition::OrgUnchanged { org: org.id, version: org.version })
                    .push(Change::UpdateInvitation(accepted))
                    .push(Change::InsertMembership(membership.clone()))
                    .audit(ctx.audit(
                        Some(org.id),
                        Some(user),
                        AuditAction::InvitationAccepted,
                        AuditTarget::Invitation(invitation.id),
                        vec![FieldChange::new("role", None::<String>, Some(&invitation.role))],
                    ));
                Ok((membership, changes))
            },
            |duplicate| match duplicate {
                Duplicate::Membership => AcceptInvitationError::AlreadyMember,
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// Declines the invitation whose link carried `token`, as the signed-in `user`.
    ///
    /// # Errors
    /// See [`DeclineInvitationError`].
    pub async fn decline(&self, user: UserId, token: &str) -> Result<Invitation, DeclineInvitationError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(DeclineInvitationError::InvalidToken)?.hash();
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let invitation = ctx
                    .ports
                    .invitations
                    .invitation_by_token(&hash)
                    .await?
                    .ok_or(DeclineInvitationError::InvalidToken)?;
                let status = invitation.status(now);
                if status != InvitationStatus::Pending {
                    return Err(DeclineInvitationError::Closed(status));
                }
                let account = ctx
                    .ports
                    .users
                    .user(user)
                    .await?
                    .filter(|a| a.is_active())
                    .ok_or(DeclineInvitationError::InvalidToken)?;
                if account.password.must_change {
                    return Err(DeclineInvitationError::PasswordChangeRequired);
                }
                if account.email != invitation.email {
                    return Err(DeclineInvitationError::WrongAccount { invited: invitation.email.clone() });
                }
                let declined = Invitation { state: InvitationState::Declined { at: now }, ..invitation.clone() };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::InvitationPending {
                        org: invitation.org,
                        id: invitation.id,
                        token_hash: hash,
                    })
                    .push(Change::UpdateInvitation(declined.clone()))
                    .audit(ctx.audit(
                        Some(invitation.org),
                        Some(user),
                        AuditAction::InvitationDeclined,
                        AuditTarget::Invitation(invitation.id),
                        vec![FieldChange::new("state", Some("pending"), Some("declined"))],
                    ));
                Ok((declined, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// What the holder of an invitation link may know about it (for the landing page).
    ///
    /// # Errors
    /// [`ListInvitationsError::InvalidToken`] for an unknown token.
    pub async fn details(&self, token: &str) -> Result<InvitationDetails, ListInvitationsError> {
        let ctx = &self.ctx;
        let hash = Token::parse(token).ok_or(ListInvitationsError::InvalidToken)?.hash();
        let invitation =
            ctx.ports.invitations.invitation_by_token(&hash).await?.ok_or(ListInvitationsError::InvalidToken)?;
        let org = ctx
            .ports
            .organisations
            .organisation(invitation.org)
            .await?
            .ok_or_else(|| Unexpected::message("an invitation refers to a missing organisation"))?;
        let roles = RoleSet::new(ctx.ports.organisations.custom_roles(org.id).await?);
        let role_name = roles.get(&invitation.role).map_or_else(|| invitation.role.to_string(), |r| r.name.to_string());
        let account_exists = ctx.ports.users.user_by_email(&invitation.email).await?.is_some();
        Ok(InvitationDetails {
            id: invitation.id,
            org: org.id,
            org_name: org.name.to_string(),
            email: invitation.email.clone(),
            role_name,
            status: invitation.status(ctx.now()),
            expires_at: invitation.expires_at,
            account_exists,
        })
    }

    /// The organisation's open invitations (pending and expired), newest first.
    ///
    /// # Errors
    /// See [`ListInvitationsError`]; the actor needs `members.manage`.
    pub async fn list(&self, actor: UserId, org: OrgId) -> Result<Vec<InvitationSummary>, ListInvitationsError> {
        let ctx = &self.ctx;
        ctx.authorized::<ListInvitationsError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
        let now = ctx.now();
        let invitations = ctx.ports.invitations.open_invitations(org).await?;
        Ok(invitations
            .into_iter()
            .map(|invitation| InvitationSummary { status: invitation.status(now), invitation })
            .collect())
    }

    /// Pending invitations to the signed-in user's verified address, in every
    /// organisation.
    ///
    /// # Errors
    /// Only [`ListInvitationsError::Unexpected`].
    pub async fn mine(&self, user: UserId) -> Result<Vec<InvitationSummary>, ListInvitationsError> {
        let ctx = &self.ctx;
        let Some(account) = ctx.ports.users.user(user).await? else { return Ok(Vec::new()) };
        if !account.is_verified() {
            return Ok(Vec::new());
        }
        let now = ctx.now();
        let invitations = ctx.ports.invitations.open_invitations_for(&account.email).await?;
        Ok(invitations
            .into_iter()
            .map(|invitation| InvitationSummary { status: invitation.status(now), invitation })
            .filter(|summary| summary.status == InvitationStatus::Pending)
            .collect())
    }
}

impl Context {
    /// A new pending invitation of `email` to `access`'s organisation with `role`, and
    /// the email that carries its link.
    pub(crate) async fn new_invitation(
        &self,
        access: &OrgAccess,
        actor: UserId,
        email: &EmailAddress,
        role: &Role,
    ) -> Result<(Invitation, OutboundEmail), Unexpected> {
        let now = self.now();
        let token = self.new_token();
        let invitation = Invitation {
            id: InvitationId::from_uuid(self.new_id()),
            org: access.org.id,
            email: email.clone(),
            role: role.key.clone(),
            token_hash: token.hash(),
            invited_by: actor,
            created_at: now,
            expires_at: now + access.org.settings.invitation_lifetime.duration(),
            resent: 0,
            state: InvitationState::Pending,
        };
        let inviter = self.ports.users.user(actor).await?.map(|u| u.name.full()).unwrap_or_default();
        let notification = invitation_email(&invitation, access.org.name.as_str(), &inviter, role.name.as_str(), token);
        let email = self.email(Some(access.org.id), email, notification);
        Ok((invitation, email))
    }

    /// The pending, unexpired invitation of `email` to `org`, if any.
    pub(crate) async fn pending_invitation(
        &self,
        org: OrgId,
        email: &EmailAddress,
    ) -> Result<Option<InvitationId>, Unexpected> {
        let now = self.now();
        let open = self.ports.invitations.open_invitations_for(email).await?;
        Ok(open.iter().find(|i| i.org == org && i.status(now) == InvitationStatus::Pending).map(|i| i.id))
    }
}

fn invitation_email(
    invitation: &Invitation,
    org_name: &str,
    inviter: &str,
    role_name: &str,
    token: Token,
) -> Notification {
    Notification::Invitation {
        invitation: invitation.id,
        org_name: org_name.to_owned(),
        invited_by: inviter.to_owned(),
        role_name: role_name.to_owned(),
        token,
        expires_at: invitation.expires_at,
    }
}
