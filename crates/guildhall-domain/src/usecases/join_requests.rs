//! Request to join, approve, reject, withdraw.

use super::{Context, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::catalogue::{permissions, topics};
use crate::error::{AccessError, Invalid, Unexpected, from_store_error};
use crate::ids::{JoinRequestId, OrgId, UserId};
use crate::join_request::{JoinRequest, JoinRequestState};
use crate::membership::{Membership, MembershipOrigin};
use crate::notification::{Notification, OutboundEmail};
use crate::org::{JoinPolicy, Organisation};
use crate::policy::{InvariantViolation, check_no_escalation};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition};
use crate::role::{RolePolicy, RoleSet};
use crate::user::User;
use crate::values::{EmailAddress, Note, RoleKey, parse_optional};

/// Requests to join organisations.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct JoinRequests {
    pub(crate) ctx: Context,
}

/// What [`JoinRequests::request_to_join`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The request waits for an administrator, who was notified.
    Pending(JoinRequest),
    /// The organisation trusts the person's verified address domain: they are a member.
    Joined(Membership),
}

/// [`JoinRequests::request_to_join`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestToJoinError {
    /// No such organisation, or one that does not take requests from this person
    /// (invitation only, or only from other address domains). The two read the same so
    /// that nobody learns which organisations exist.
    #[error(
        "organisation not found, or it does not accept requests to join from you; ask one of its administrators for an invitation"
    )]
    OrgNotFound,
    /// The message is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The account must change its password first (a temporary password, or one that no
    /// longer meets the rules): until then it can do nothing else.
    #[error("change your password first; until then your account can do nothing else")]
    PasswordChangeRequired,
    /// The account's address must be verified first.
    #[error("verify your email address first, then ask to join")]
    EmailNotVerified,
    /// The person is a member already.
    #[error("you are already a member of this organisation")]
    AlreadyMember,
    /// A pending request exists.
    #[error("you have already asked to join; an administrator will decide")]
    AlreadyPending,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`JoinRequests::approve`], [`JoinRequests::reject`] or [`JoinRequests::withdraw`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DecideJoinRequestError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No such request in this organisation (or, for withdrawing, not the caller's).
    #[error("join request not found")]
    NotFound,
    /// The request was already decided or withdrawn.
    #[error("this request was already {0}")]
    NotPending(&'static str),
    /// No such role.
    #[error("there is no role \"{0}\" in this organisation")]
    UnknownRole(RoleKey),
    /// The role grants more than the approver holds.
    #[error(transparent)]
    Escalation(InvariantViolation),
    /// The reason is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The requester became a member meanwhile (for example through an invitation).
    #[error("they are already a member of this organisation")]
    AlreadyMember,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`JoinRequests::pending`] or [`JoinRequests::mine`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ListJoinRequestsError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(RequestToJoinError, DecideJoinRequestError, ListJoinRequestsError);

/// A pending request with the requester's details, for administrators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequestView {
    /// The request.
    pub request: JoinRequest,
    /// The requester's name.
    pub name: String,
    /// The requester's address.
    pub email: EmailAddress,
}

fn state_name(state: &JoinRequestState) -> &'static str {
    match state {
        JoinRequestState::Pending => "pending",
        JoinRequestState::Approved { .. } => "approved",
        JoinRequestState::Rejected { .. } => "rejected",
        JoinRequestState::Withdrawn { .. } => "withdrawn",
    }
}

impl JoinRequests {
    /// Asks to join `org` as the signed-in `user`. Administrators who manage members and
    /// the organisation's shared join-request addresses are emailed. Under a verified
    /// domain policy with automatic approval, the person joins at once.
    ///
    /// # Errors
    /// See [`RequestToJoinError`].
    pub async fn request_to_join(
        &self,
        user: UserId,
        org: OrgId,
        message: Option<&str>,
    ) -> Result<JoinOutcome, RequestToJoinError> {
        let ctx = &self.ctx;
        let message = parse_optional(message, Note::parse).map_err(|e| Invalid::from(e.for_field("message")))?;
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let organisation =
                    ctx.ports.organisations.organisation(org).await?.ok_or(RequestToJoinError::OrgNotFound)?;
                let account = ctx
                    .ports
                    .users
                    .user(user)
                    .await?
                    .filter(|a| a.is_active())
                    .ok_or(RequestToJoinError::OrgNotFound)?;
                if account.password.must_change {
                    return Err(RequestToJoinError::PasswordChangeRequired);
                }
                if ctx.ports.memberships.membership(org, user).await?.is_some() {
                    return Err(RequestToJoinError::AlreadyMember);
                }
                let auto_approve = match &organisation.settings.join_policy {
                    JoinPolicy::InvitationOnly => return Err(RequestToJoinError::OrgNotFound),
                    JoinPolicy::RequestsAllowed => false,
                    JoinPolicy::VerifiedDomains { domains, auto_approve } => {
                        if !domains.iter().any(|d| d.matches(&account.email)) {
                            return Err(RequestToJoinError::OrgNotFound);
                        }
                        *auto_approve
                    }
                };
                // Only now, so that an unverified account learns nothing more about an
                // organisation that would not take its request than a missing one.
                if !account.is_verified() {
                    return Err(RequestToJoinError::EmailNotVerified);
                }
                let id = JoinRequestId::from_uuid(ctx.new_id());
                let mut changes = ChangeSet::new();
                let audit = |action, diff| ctx.audit(Some(org), Some(user), action, AuditTarget::JoinRequest(id), diff);
                if auto_approve {
                    let roles = RoleSet::new(ctx.ports.organisations.custom_roles(org).await?);
                    let role = organisation.settings.default_role.clone();
                    if roles.get(&role).is_none() {
                        return Err(Unexpected::message("the organisation's default role does not exist").into());
                    }
                    let request = JoinRequest {
                        id,
                        org,
                        user,
                        message: message.clone(),
                        created_at: now,
                        state: JoinRequestState::Approved { by: None, at: now, role: role.clone() },
                    };
                    let membership = Membership::new(org, user, role.clone(), MembershipOrigin::JoinRequest, None, now);
                    changes
                        .require(Precondition::OrgUnchanged { org, version: organisation.version })
                        .push(Change::InsertJoinRequest(request))
                        .push(Change::InsertMembership(membership.clone()))
                        .audit(audit(
                            AuditAction::JoinRequestApproved,
                            vec![FieldChange::new("role", None::<String>, Some(&role))],
                        ));
                    return Ok((JoinOutcome::Joined(membership), changes));
                }
                let request = JoinRequest {
                    id,
                    org,
                    user,
                    message: message.clone(),
                    created_at: now,
                    state: JoinRequestState::Pending,
                };
                changes
                    .require(Precondition::OrgUnchanged { org, version: organisation.version })
                    .push(Change::InsertJoinRequest(request.clone()))
                    .audit(audit(AuditAction::JoinRequested, Vec::new()));
                for email in self.request_alerts(&organisation, &account, &request).await? {
                    changes.send(email);
                }
                Ok((JoinOutcome::Pending(request), changes))
            },
            |duplicate| match duplicate {
                Duplicate::PendingJoinRequest => RequestToJoinError::AlreadyPending,
                Duplicate::Membership => RequestToJoinError::AlreadyMember,
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// The emails announcing a new request: one to each active member who can manage
    /// members, and one to each shared address routed for join requests.
    async fn request_alerts(
        &self,
        org: &Organisation,
        requester: &User,
        request: &JoinRequest,
    ) -> Result<Vec<OutboundEmail>, Unexpected> {
        let ctx = &self.ctx;
        let now = ctx.now();
        let roles = RoleSet::new(ctx.ports.organisations.custom_roles(org.id).await?);
        let policy = RolePolicy::new(&ctx.catalogue, &roles);
        let managing: Vec<RoleKey> = roles
            .iter()
            .filter(|role| role.permissions(&ctx.catalogue).contains(&permissions::MEMBERS_MANAGE))
            .map(|role| role.key.clone())
            .collect();
        let notification = Notification::JoinRequestReceived {
            request: request.id,
            org_name: org.name.to_string(),
            requester_name: requester.name.full(),
            requester_email: requester.email.clone(),
            message: request.message.clone(),
        };
        let mut emails = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for member in ctx.ports.memberships.memberships_with_roles(org.id, &managing).await? {
            if !policy.effective_permissions(&member, now).contains(&permissions::MEMBERS_MANAGE) {
                continue;
            }
            if let Some(admin) = ctx.ports.users.user(member.user).await?
                && admin.is_active()
                && seen.insert(admin.email.clone())
            {
                emails.push(ctx.email(Some(org.id), &admin.email, notification.clone()));
            }
        }
        for address in org.settings.routing.addresses(&topics::JOIN_REQUESTS) {
            if seen.insert(address.clone()) {
                emails.push(ctx.email_on_topic(
                    Some(org.id),
                    Some(topics::JOIN_REQUESTS),
                    address,
                    notification.clone(),
                ));
            }
        }
        Ok(emails)
    }

    /// Approves a pending request, creating the membership with `role` (the
    /// organisation's default role when `None`) in the same commit, and tells the
    /// requester.
    ///
    /// # Errors
    /// See [`DecideJoinRequestError`]: the approver needs `members.manage` and may give
    /// only a role within their own permissions.
    pub async fn approve(
        &self,
        actor: UserId,
        org: OrgId,
        id: JoinRequestId,
        role: Option<&RoleKey>,
    ) -> Result<Membership, DecideJoinRequestError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<DecideJoinRequestError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let request = self.pending_request(org, id).await?;
                let role = role.cloned().unwrap_or_else(|| access.org.settings.default_role.clone());
                let granted =
                    access.roles.get(&role).ok_or_else(|| DecideJoinRequestError::UnknownRole(role.clone()))?;
                check_no_escalation(&access.held(&ctx.catalogue, now), &granted.permissions(&ctx.catalogue))
                    .map_err(DecideJoinRequestError::Escalation)?;
                if ctx.ports.memberships.membership(org, request.user).await?.is_some() {
                    return Err(DecideJoinRequestError::AlreadyMember);
                }
                let requester = ctx.ports.users.user(request.user).await?.ok_or(DecideJoinRequestError::NotFound)?;
                let membership =
                    Membership::new(org, request.user, role.clone(), MembershipOrigin::JoinRequest, Some(actor), now);
                let approved = JoinRequest {
                    state: JoinRequestState::Approved { by: Some(actor), at: now, role: role.clone() },
                    ..request.clone()
                };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .require(Precondition::JoinRequestPending { org, id })
                    .push(Change::UpdateJoinRequest(approved))
                    .push(Change::InsertMembership(membership.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::JoinRequestApproved,
                        AuditTarget::JoinRequest(id),
                        vec![FieldChange::new("role", None::<String>, Some(&role))],
                    ))
                    .send(ctx.email(
                        Some(org),
                        &requester.email,
                        Notification::JoinRequestApproved {
                            org_name: access.org.name.to_string(),
                            role_name: granted.name.to_string(),
                        },
                    ));
                Ok((membership, changes))
            },
            |duplicate| match duplicate {
                Duplicate::Membership => DecideJoinRequestError::AlreadyMember,
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// Rejects a pending request, telling the requester the reason when one is given.
    ///
    /// # Errors
    /// See [`DecideJoinRequestError`].
    pub async fn reject(
        &self,
        actor: UserId,
        org: OrgId,
        id: JoinRequestId,
        reason: Option<&str>,
    ) -> Result<JoinRequest, DecideJoinRequestError> {
        let ctx = &self.ctx;
        let reason = parse_optional(reason, Note::parse).map_err(|e| Invalid::from(e.for_field("reason")))?;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<DecideJoinRequestError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let request = self.pending_request(org, id).await?;
                let requester = ctx.ports.users.user(request.user).await?.ok_or(DecideJoinRequestError::NotFound)?;
                let rejected = JoinRequest {
                    state: JoinRequestState::Rejected { by: actor, at: now, reason: reason.clone() },
                    ..request
                };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .require(Precondition::JoinRequestPending { org, id })
                    .push(Change::UpdateJoinRequest(rejected.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::JoinRequestRejected,
                        AuditTarget::JoinRequest(id),
                        vec![FieldChange::new("reason", None::<String>, reason.as_ref())],
                    ))
                    .send(ctx.email(
                        Some(org),
                        &requester.email,
                        Notification::JoinRequestRejected {
                            org_name: access.org.name.to_string(),
                            reason: reason.clone(),
                        },
                    ));
                Ok((rejected, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Withdraws the caller's own pending request.
    ///
    /// # Errors
    /// See [`DecideJoinRequestError`]; someone else's request reads as not found.
    pub async fn withdraw(
        &self,
        user: UserId,
        org: OrgId,
        id: JoinRequestId,
    ) -> Result<JoinRequest, DecideJoinRequestError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let now = ctx.now();
                let request = ctx.ports.join_requests.join_request(org, id).await?.filter(|r| r.user == user);
                let request = request.ok_or(DecideJoinRequestError::NotFound)?;
                if !request.is_pending() {
                    return Err(DecideJoinRequestError::NotPending(state_name(&request.state)));
                }
                let withdrawn = JoinRequest { state: JoinRequestState::Withdrawn { at: now }, ..request };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::JoinRequestPending { org, id })
                    .push(Change::UpdateJoinRequest(withdrawn.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(user),
                        AuditAction::JoinRequestWithdrawn,
                        AuditTarget::JoinRequest(id),
                        Vec::new(),
                    ));
                Ok((withdrawn, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// The organisation's pending requests with the requesters' details, oldest first.
    ///
    /// # Errors
    /// See [`ListJoinRequestsError`]; needs `members.manage`.
    pub async fn pending(&self, actor: UserId, org: OrgId) -> Result<Vec<JoinRequestView>, ListJoinRequestsError> {
        let ctx = &self.ctx;
        ctx.authorized::<ListJoinRequestsError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
        let mut views = Vec::new();
        for request in ctx.ports.join_requests.pending_join_requests(org).await? {
            if let Some(user) = ctx.ports.users.user(request.user).await? {
                views.push(JoinRequestView { request, name: user.name.full(), email: user.email });
            }
        }
        Ok(views)
    }

    /// Every request the caller made, newest first.
    ///
    /// # Errors
    /// Only [`ListJoinRequestsError::Unexpected`].
    pub async fn mine(&self, user: UserId) -> Result<Vec<JoinRequest>, ListJoinRequestsError> {
        Ok(self.ctx.ports.join_requests.join_requests_of_user(user).await?)
    }

    async fn pending_request(&self, org: OrgId, id: JoinRequestId) -> Result<JoinRequest, DecideJoinRequestError> {
        let request =
            self.ctx.ports.join_requests.join_request(org, id).await?.ok_or(DecideJoinRequestError::NotFound)?;
        if request.is_pending() {
            Ok(request)
        } else {
            Err(DecideJoinRequestError::NotPending(state_name(&request.state)))
        }
    }
}
