//! Invitations (`/orgs/{org}/invitations`, `/invitations/*`, `/me/invitations`) and join
//! requests (`/orgs/{org}/join-requests`, `/me/join-requests`).
//!
//! Invitation links carry a token; the token travels in request bodies only (never in
//! a URL), so that it does not end up in access logs.

use chrono::{DateTime, Utc};
use guildhall_domain::ids::{InvitationId, JoinRequestId};
use guildhall_domain::invitation::{Invitation, InvitationState, InvitationStatus};
use guildhall_domain::join_request::{JoinRequest, JoinRequestState};
use guildhall_domain::membership::{Membership, MembershipOrigin, MembershipStatus};
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::usecases::{
    AcceptInvitationError, DecideJoinRequestError, DeclineInvitationError, InvitationDetails, InvitationSummary,
    InviteError, JoinOutcome, JoinRequestView, ListInvitationsError, ListJoinRequestsError, ManageInvitationError,
    RequestToJoinError,
};
use guildhall_domain::values::{EmailAddress, RoleKey};
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{Done, Tag};
use crate::problem::{ApiError, ApiResult, field_errors};
use crate::session::Credentials;
use crate::state::ApiState;

/// Invitation and join-request endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct InvitationsApi(pub ApiState);

// ---------------------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------------------

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum InvitationStatusBody {
    /// Waiting for the invitee; can be accepted.
    Pending,
    /// Accepted (an invitation works once).
    Accepted,
    /// Withdrawn by an administrator.
    Revoked,
    /// Turned down by the invitee.
    Declined,
    /// Was pending past its expiry; an administrator may resend it.
    Expired,
}

impl From<InvitationStatus> for InvitationStatusBody {
    fn from(status: InvitationStatus) -> Self {
        match status {
            InvitationStatus::Pending => Self::Pending,
            InvitationStatus::Accepted => Self::Accepted,
            InvitationStatus::Revoked => Self::Revoked,
            InvitationStatus::Declined => Self::Declined,
            InvitationStatus::Expired => Self::Expired,
        }
    }
}

/// The status of an invitation a use case has just written: its stored state (a
/// pending one was just (re)issued, so it has not expired).
fn written_status(invitation: &Invitation) -> InvitationStatusBody {
    match invitation.state {
        InvitationState::Pending => InvitationStatusBody::Pending,
        InvitationState::Accepted { .. } => InvitationStatusBody::Accepted,
        InvitationState::Revoked { .. } => InvitationStatusBody::Revoked,
        InvitationState::Declined { .. } => InvitationStatusBody::Declined,
    }
}

/// An invitation, as administrators see it (the token is never shown).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationBody {
    /// Its id.
    pub id: String,
    /// The organisation's id.
    pub org_id: String,
    /// The address invited; only an account with this verified address may accept.
    pub email: String,
    /// The key of the role offered.
    pub role: String,
    /// Where it stands now.
    pub status: InvitationStatusBody,
    /// The id of the member who invited.
    pub invited_by: String,
    /// When it was first sent.
    pub created_at: DateTime<Utc>,
    /// When the current link stops working.
    pub expires_at: DateTime<Utc>,
    /// How many times it was sent again (each time with a new link).
    pub resent: u32,
}

impl InvitationBody {
    fn new(invitation: &Invitation, status: InvitationStatusBody) -> Self {
        Self {
            id: invitation.id.to_string(),
            org_id: invitation.org.to_string(),
            email: invitation.email.to_string(),
            role: invitation.role.to_string(),
            status,
            invited_by: invitation.invited_by.to_string(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
            resent: invitation.resent,
        }
    }

    fn of_summary(summary: &InvitationSummary) -> Self {
        Self::new(&summary.invitation, summary.status.into())
    }

    fn written(invitation: &Invitation) -> Self {
        Self::new(invitation, written_status(invitation))
    }
}

/// A new invitation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewInvitation {
    /// The address to invite; a link to accept is emailed there.
    pub email: String,
    /// The key of the role to offer (`user`, `manager`, …); no more than the inviter holds.
    pub role: String,
}

/// The token from an invitation link.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationToken {
    /// The token from the link.
    #[oai(write_only)]
    pub token: String,
}

/// What an invitation's landing page shows to the holder of its link.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationDetailsBody {
    /// The invitation's id.
    pub id: String,
    /// The organisation's id.
    pub org_id: String,
    /// The organisation's name.
    pub org_name: String,
    /// The address invited.
    pub email: String,
    /// The role offered, by name.
    pub role_name: String,
    /// Where it stands now: only `pending` can be accepted.
    pub status: InvitationStatusBody,
    /// When it expires (or expired).
    pub expires_at: DateTime<Utc>,
    /// Whether an account exists for the invited address: offer "sign in" rather than
    /// "create an account" (sign up with `invitation_token` to skip email verification).
    pub account_exists: bool,
}

impl From<InvitationDetails> for InvitationDetailsBody {
    fn from(details: InvitationDetails) -> Self {
        Self {
            id: details.id.to_string(),
            org_id: details.org.to_string(),
            org_name: details.org_name,
            email: details.email.to_string(),
            role_name: details.role_name,
            status: details.status.into(),
            expires_at: details.expires_at,
            account_exists: details.account_exists,
        }
    }
}

/// Whether a membership is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MembershipStatusBody {
    /// In force.
    Active,
    /// Paused by an administrator.
    Suspended,
}

/// How a person became a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MembershipOriginBody {
    /// Created the organisation.
    Founder,
    /// Accepted an invitation.
    Invitation,
    /// Had a join request approved (or approved automatically).
    JoinRequest,
    /// Had the account created by an administrator.
    CreatedByAdministrator,
    /// Was linked from another organisation.
    Linked,
}

impl From<MembershipOrigin> for MembershipOriginBody {
    fn from(origin: MembershipOrigin) -> Self {
        match origin {
            MembershipOrigin::Founder => Self::Founder,
            MembershipOrigin::Invitation => Self::Invitation,
            MembershipOrigin::JoinRequest => Self::JoinRequest,
            MembershipOrigin::CreatedByAdministrator => Self::CreatedByAdministrator,
            MembershipOrigin::Linked => Self::Linked,
        }
    }
}

/// A membership just created.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MembershipBody {
    /// The organisation's id.
    pub org_id: String,
    /// The member's account id.
    pub user_id: String,
    /// The member's role key.
    pub role: String,
    /// Whether it is in force.
    pub status: MembershipStatusBody,
    /// How the person became a member.
    pub origin: MembershipOriginBody,
    /// Who added the member (the inviter or approver), if anyone.
    pub added_by: Option<String>,
    /// When.
    pub added_at: DateTime<Utc>,
    /// When the membership ends by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Membership> for MembershipBody {
    fn from(membership: &Membership) -> Self {
        Self {
            org_id: membership.org.to_string(),
            user_id: membership.user.to_string(),
            role: membership.role.to_string(),
            status: match membership.status {
                MembershipStatus::Active => MembershipStatusBody::Active,
                MembershipStatus::Suspended { .. } => MembershipStatusBody::Suspended,
            },
            origin: membership.origin.into(),
            added_by: membership.added_by.map(|u| u.to_string()),
            added_at: membership.added_at,
            expires_at: membership.expires_at,
        }
    }
}

/// Where a join request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JoinRequestStateBody {
    /// Waiting for an administrator.
    Pending,
    /// Approved: the requester is a member.
    Approved,
    /// Rejected.
    Rejected,
    /// Withdrawn by the requester.
    Withdrawn,
}

/// A request to join an organisation, as its requester sees it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JoinRequestBody {
    /// Its id.
    pub id: String,
    /// The organisation's id.
    pub org_id: String,
    /// The requester's account id.
    pub user_id: String,
    /// What the requester wrote.
    pub message: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub state: JoinRequestStateBody,
    /// When it was approved, rejected or withdrawn.
    pub decided_at: Option<DateTime<Utc>>,
    /// The role given, when approved.
    pub role: Option<String>,
    /// Why it was rejected, when the administrator said.
    pub reason: Option<String>,
}

impl From<&JoinRequest> for JoinRequestBody {
    fn from(request: &JoinRequest) -> Self {
        let (state, decided_at, role, reason) = match &request.state {
            JoinRequestState::Pending => (JoinRequestStateBody::Pending, None, None, None),
            JoinRequestState::Approved { at, role, .. } => {
                (JoinRequestStateBody::Approved, Some(*at), Some(role.to_string()), None)
            }
            JoinRequestState::Rejected { at, reason, .. } => {
                (JoinRequestStateBody::Rejected, Some(*at), None, reason.as_ref().map(ToString::to_string))
            }
            JoinRequestState::Withdrawn { at } => (JoinRequestStateBody::Withdrawn, Some(*at), None, None),
        };
        Self {
            id: request.id.to_string(),
            org_id: request.org.to_string(),
            user_id: request.user.to_string(),
            message: request.message.as_ref().map(ToString::to_string),
            created_at: request.created_at,
            state,
            decided_at,
            role,
            reason,
        }
    }
}

/// A pending request to join, as those who decide see it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PendingJoinRequestBody {
    /// Its id.
    pub id: String,
    /// The requester's account id.
    pub user_id: String,
    /// The requester's name.
    pub name: String,
    /// The requester's address.
    pub email: String,
    /// What the requester wrote.
    pub message: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<&JoinRequestView> for PendingJoinRequestBody {
    fn from(view: &JoinRequestView) -> Self {
        Self {
            id: view.request.id.to_string(),
            user_id: view.request.user.to_string(),
            name: view.name.clone(),
            email: view.email.to_string(),
            message: view.request.message.as_ref().map(ToString::to_string),
            created_at: view.request.created_at,
        }
    }
}

/// A request to join.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewJoinRequest {
    /// A note to the administrators (at most 1000 characters).
    pub message: Option<String>,
}

/// What asking to join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JoinOutcomeKind {
    /// The request waits for an administrator, who was notified.
    Pending,
    /// The organisation trusts the caller's verified address domain: they are a member.
    Joined,
}

/// What asking to join did: a pending `request`, or a `membership` at once.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JoinOutcomeBody {
    /// `pending` or `joined`.
    pub outcome: JoinOutcomeKind,
    /// The pending request (when `pending`).
    pub request: Option<JoinRequestBody>,
    /// The new membership (when `joined`).
    pub membership: Option<MembershipBody>,
}

/// An approval; send `{}` to give the organisation's default role.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JoinApproval {
    /// The role to give; the organisation's default role when absent.
    pub role: Option<String>,
}

/// A rejection; send `{}` to give no reason.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JoinRejection {
    /// Why, shown to the requester (at most 1000 characters).
    pub reason: Option<String>,
}

/// `POST /orgs/{org}/invitations` succeeded.
#[derive(Debug, ApiResponse)]
pub enum InvitationCreated {
    /// Invited; the link is on its way to the address.
    #[oai(status = 201)]
    Created(Json<InvitationBody>),
}

/// `POST /orgs/{org}/join-requests` succeeded.
#[derive(Debug, ApiResponse)]
pub enum JoinRequested {
    /// A request was created and waits for an administrator (`outcome: pending`).
    #[oai(status = 201)]
    Pending(Json<JoinOutcomeBody>),
    /// The organisation admits the caller's verified address domain at once: the caller
    /// is a member with the default role (`outcome: joined`).
    #[oai(status = 200)]
    Joined(Json<JoinOutcomeBody>),
}

// ---------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------

fn conflict(slug: &str, title: &str, detail: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, slug, title, detail)
}

fn gone(slug: &str, title: &str, detail: String) -> ApiError {
    ApiError::new(StatusCode::GONE, slug, title, detail)
}

fn already_member(detail: String) -> ApiError {
    conflict("already-member", "Already a member", detail)
}

fn escalation(violation: &InvariantViolation) -> ApiError {
    crate::problem::violation(violation)
}

fn invalid_invitation_link(detail: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid-token", "Link not valid", detail)
}

fn wrong_account(detail: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "invitation-for-another-address", "Invitation for another address", detail)
}

/// `410` for an invitation link that can no longer be used, one slug per reason.
fn closed_invitation(status: InvitationStatus, detail: String) -> ApiError {
    match status {
        InvitationStatus::Expired => gone("invitation-expired", "Invitation expired", detail),
        InvitationStatus::Revoked => gone("invitation-revoked", "Invitation withdrawn", detail),
        InvitationStatus::Accepted => gone("invitation-used", "Invitation already used", detail),
        InvitationStatus::Declined => gone("invitation-declined", "Invitation declined", detail),
        // Not closed; the domain does not report it so, but say something true.
        InvitationStatus::Pending => conflict("invitation-pending", "Invitation pending", detail),
    }
}

impl From<InviteError> for ApiError {
    fn from(error: InviteError) -> Self {
        let detail = error.to_string();
        match error {
            InviteError::Access(e) => e.into(),
            InviteError::Invalid(value) => ApiError::invalid(field_errors(&[value])),
            InviteError::UnknownRole(_) => ApiError::invalid_field("role", detail),
            InviteError::Escalation(violation) => escalation(&violation),
            InviteError::AlreadyMember(_) => already_member(detail),
            InviteError::AlreadyInvited { .. } => conflict("already-invited", "Already invited", detail),
            InviteError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ManageInvitationError> for ApiError {
    fn from(error: ManageInvitationError) -> Self {
        let detail = error.to_string();
        match error {
            ManageInvitationError::Access(e) => e.into(),
            ManageInvitationError::NotFound => ApiError::not_found("invitation"),
            ManageInvitationError::Closed(_) => conflict("invitation-closed", "Invitation closed", detail),
            ManageInvitationError::Escalation(violation) => escalation(&violation),
            ManageInvitationError::RoleGone(_) => conflict("role-gone", "Role no longer exists", detail),
            ManageInvitationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<AcceptInvitationError> for ApiError {
    fn from(error: AcceptInvitationError) -> Self {
        let detail = error.to_string();
        match error {
            AcceptInvitationError::InvalidToken => invalid_invitation_link(detail),
            AcceptInvitationError::Expired { .. } => closed_invitation(InvitationStatus::Expired, detail),
            AcceptInvitationError::Revoked { .. } => closed_invitation(InvitationStatus::Revoked, detail),
            AcceptInvitationError::AlreadyUsed => closed_invitation(InvitationStatus::Accepted, detail),
            AcceptInvitationError::Declined { .. } => closed_invitation(InvitationStatus::Declined, detail),
            AcceptInvitationError::WrongAccount { .. } => wrong_account(detail),
            AcceptInvitationError::EmailNotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "email-not-verified", "Email address not verified", detail)
            }
            AcceptInvitationError::PasswordChangeRequired => crate::problem::password_change_required(),
            AcceptInvitationError::AlreadyMember => already_member(detail),
            AcceptInvitationError::RoleGone { .. } => {
                gone("invitation-role-gone", "Offered role no longer exists", detail)
            }
            AcceptInvitationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<DeclineInvitationError> for ApiError {
    fn from(error: DeclineInvitationError) -> Self {
        let detail = error.to_string();
        match error {
            DeclineInvitationError::InvalidToken => invalid_invitation_link(detail),
            DeclineInvitationError::Closed(status) => closed_invitation(status, detail),
            DeclineInvitationError::PasswordChangeRequired => crate::problem::password_change_required(),
            DeclineInvitationError::WrongAccount { .. } => wrong_account(detail),
            DeclineInvitationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ListInvitationsError> for ApiError {
    fn from(error: ListInvitationsError) -> Self {
        let detail = error.to_string();
        match error {
            ListInvitationsError::Access(e) => e.into(),
            ListInvitationsError::InvalidToken => invalid_invitation_link(detail),
            ListInvitationsError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RequestToJoinError> for ApiError {
    fn from(error: RequestToJoinError) -> Self {
        let detail = error.to_string();
        match error {
            // Exactly the problem of an unknown `{org}`: nobody learns that an
            // invitation-only organisation exists.
            RequestToJoinError::OrgNotFound => ApiError::not_found("organisation"),
            RequestToJoinError::Invalid(invalid) => invalid.into(),
            RequestToJoinError::PasswordChangeRequired => crate::problem::password_change_required(),
            RequestToJoinError::EmailNotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "email-not-verified", "Email address not verified", detail)
            }
            RequestToJoinError::AlreadyMember => already_member(detail),
            RequestToJoinError::AlreadyPending => conflict("already-requested", "Already asked to join", detail),
            RequestToJoinError::Unexpected(e) => e.into(),
        }
    }
}

impl From<DecideJoinRequestError> for ApiError {
    fn from(error: DecideJoinRequestError) -> Self {
        let detail = error.to_string();
        match error {
            DecideJoinRequestError::Access(e) => e.into(),
            DecideJoinRequestError::NotFound => ApiError::not_found("join request"),
            DecideJoinRequestError::NotPending(_) => conflict("already-decided", "Already decided", detail),
            DecideJoinRequestError::UnknownRole(_) => ApiError::invalid_field("role", detail),
            DecideJoinRequestError::Escalation(violation) => escalation(&violation),
            DecideJoinRequestError::Invalid(invalid) => invalid.into(),
            DecideJoinRequestError::AlreadyMember => already_member(detail),
            DecideJoinRequestError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ListJoinRequestsError> for ApiError {
    fn from(error: ListJoinRequestsError) -> Self {
        match error {
            ListJoinRequestsError::Access(e) => e.into(),
            ListJoinRequestsError::Unexpected(e) => e.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing helpers (shape only; the rules stay in the domain)
// ---------------------------------------------------------------------------------------

fn invitation_id(raw: &str) -> Result<InvitationId, ApiError> {
    InvitationId::parse(raw).map_err(|_| ApiError::not_found("invitation"))
}

fn join_request_id(raw: &str) -> Result<JoinRequestId, ApiError> {
    JoinRequestId::parse(raw).map_err(|_| ApiError::not_found("join request"))
}

/// An optional role key from a body; blank counts as absent.
fn optional_role(raw: Option<&str>) -> Result<Option<RoleKey>, ApiError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(raw) => RoleKey::parse(raw).map(Some).map_err(|e| ApiError::invalid(field_errors(&[e.for_field("role")]))),
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

#[OpenApi(tag = "Tag::Invitations")]
impl InvitationsApi {
    /// The organisation's open invitations (pending and expired), newest first.
    ///
    /// Needs `members.manage`.
    #[oai(path = "/orgs/:org/invitations", method = "get", operation_id = "list_invitations")]
    async fn list(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<Vec<InvitationBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let invitations = self.0.guildhall.invitations().list(caller.user(), org).await?;
        Ok(Json(invitations.iter().map(InvitationBody::of_summary).collect()))
    }

    /// Invite someone by email; they are emailed a link to accept.
    ///
    /// Needs `members.manage`, and the role offered may grant no more than the inviter
    /// holds. An address with an open invitation gets `409 already-invited` (resend that
    /// one instead).
    #[oai(path = "/orgs/:org/invitations", method = "post", operation_id = "create_invitation")]
    async fn invite(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<NewInvitation>,
    ) -> ApiResult<InvitationCreated> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let Json(body) = body;
        let role = match RoleKey::parse(&body.role) {
            Ok(role) => role,
            Err(role_error) => {
                // Report every malformed field at once.
                let mut problems = vec![role_error.for_field("role")];
                if let Err(email_error) = EmailAddress::parse(&body.email) {
                    problems.insert(0, email_error);
                }
                return Err(ApiError::invalid(field_errors(&problems)));
            }
        };
        let invitation = self.0.guildhall.invitations().invite(caller.user(), org, &body.email, &role).await?;
        Ok(InvitationCreated::Created(Json(InvitationBody::written(&invitation))))
    }

    /// Withdraw an open invitation; its link stops working.
    ///
    /// Needs `members.manage`, and not for a role above the caller's own.
    #[oai(path = "/orgs/:org/invitations/:id", method = "delete", operation_id = "revoke_invitation")]
    async fn revoke(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
    ) -> ApiResult<Json<InvitationBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = invitation_id(&id.0)?;
        let invitation = self.0.guildhall.invitations().revoke(caller.user(), org, id).await?;
        Ok(Json(InvitationBody::written(&invitation)))
    }

    /// Send an open invitation again, with a new link and a new expiry.
    ///
    /// The previous link stops working. Works on expired invitations too.
    #[oai(path = "/orgs/:org/invitations/:id/resend", method = "post", operation_id = "resend_invitation")]
    async fn resend(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
    ) -> ApiResult<Json<InvitationBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = invitation_id(&id.0)?;
        let invitation = self.0.guildhall.invitations().resend(caller.user(), org, id).await?;
        Ok(Json(InvitationBody::written(&invitation)))
    }

    /// What an invitation link is about, for its landing page (no sign-in needed).
    ///
    /// The token goes in the body so that it does not land in access logs. Shows the
    /// organisation, the role, the status and whether the invited address has an account.
    #[oai(path = "/invitations/details", method = "post", operation_id = "get_invitation_details")]
    async fn details(&self, body: Json<InvitationToken>) -> ApiResult<Json<InvitationDetailsBody>> {
        let details = self.0.guildhall.invitations().details(&body.0.token).await?;
        Ok(Json(details.into()))
    }

    /// Accept an invitation as the signed-in account; returns the new membership.
    ///
    /// The account's verified address must be the invited one. An invitation works once:
    /// an expired, withdrawn, declined or used one is `410` with a slug saying which.
    #[oai(path = "/invitations/accept", method = "post", operation_id = "accept_invitation")]
    async fn accept(&self, credentials: Credentials, body: Json<InvitationToken>) -> ApiResult<Json<MembershipBody>> {
        let caller = self.0.caller(&credentials).await?;
        let membership = self.0.guildhall.invitations().accept(caller.user(), &body.0.token).await?;
        Ok(Json(MembershipBody::from(&membership)))
    }

    /// Decline an invitation sent to the signed-in account's address.
    #[oai(path = "/invitations/decline", method = "post", operation_id = "decline_invitation")]
    async fn decline(&self, credentials: Credentials, body: Json<InvitationToken>) -> ApiResult<Json<Done>> {
        let caller = self.0.caller(&credentials).await?;
        self.0.guildhall.invitations().decline(caller.user(), &body.0.token).await?;
        Ok(Json(Done::new("the invitation was declined")))
    }

    /// Pending invitations to my verified address, in every organisation.
    #[oai(path = "/me/invitations", method = "get", operation_id = "list_my_invitations")]
    async fn mine(&self, credentials: Credentials) -> ApiResult<Json<Vec<InvitationBody>>> {
        let caller = self.0.caller(&credentials).await?;
        let invitations = self.0.guildhall.invitations().mine(caller.user()).await?;
        Ok(Json(invitations.iter().map(InvitationBody::of_summary).collect()))
    }

    /// Every request to join I made, newest first.
    #[oai(path = "/me/join-requests", method = "get", operation_id = "list_my_join_requests")]
    async fn my_join_requests(&self, credentials: Credentials) -> ApiResult<Json<Vec<JoinRequestBody>>> {
        let caller = self.0.caller(&credentials).await?;
        let requests = self.0.guildhall.join_requests().mine(caller.user()).await?;
        Ok(Json(requests.iter().map(JoinRequestBody::from).collect()))
    }

    /// The organisation's pending requests to join, oldest first.
    ///
    /// Needs `members.manage`.
    #[oai(path = "/orgs/:org/join-requests", method = "get", operation_id = "list_join_requests")]
    async fn pending(
        &self,
        credentials: Credentials,
        org: Path<String>,
    ) -> ApiResult<Json<Vec<PendingJoinRequestBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let requests = self.0.guildhall.join_requests().pending(caller.user(), org).await?;
        Ok(Json(requests.iter().map(PendingJoinRequestBody::from).collect()))
    }

    /// Ask to join an organisation (by id or slug).
    ///
    /// The organisation's join policy decides: `201` with `outcome: pending` when the
    /// request waits for an administrator (who is emailed), `200` with `outcome: joined`
    /// when the caller's verified address domain admits them at once. An organisation
    /// that takes no requests from the caller reads exactly like an unknown one (`404`).
    #[oai(path = "/orgs/:org/join-requests", method = "post", operation_id = "request_to_join")]
    async fn request_to_join(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<NewJoinRequest>,
    ) -> ApiResult<JoinRequested> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let outcome =
            self.0.guildhall.join_requests().request_to_join(caller.user(), org, body.0.message.as_deref()).await?;
        Ok(match outcome {
            JoinOutcome::Pending(request) => JoinRequested::Pending(Json(JoinOutcomeBody {
                outcome: JoinOutcomeKind::Pending,
                request: Some(JoinRequestBody::from(&request)),
                membership: None,
            })),
            JoinOutcome::Joined(membership) => JoinRequested::Joined(Json(JoinOutcomeBody {
                outcome: JoinOutcomeKind::Joined,
                request: None,
                membership: Some(MembershipBody::from(&membership)),
            })),
        })
    }

    /// Approve a pending request: the requester becomes a member (with `role`, or the
    /// organisation's default role) and is told so.
    ///
    /// Needs `members.manage`, and the role may grant no more than the approver holds.
    #[oai(path = "/orgs/:org/join-requests/:id/approve", method = "post", operation_id = "approve_join_request")]
    async fn approve(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
        body: Json<JoinApproval>,
    ) -> ApiResult<Json<MembershipBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = join_request_id(&id.0)?;
        let Json(body) = body;
        let role = optional_role(body.role.as_deref())?;
        let membership = self.0.guildhall.join_requests().approve(caller.user(), org, id, role.as_ref()).await?;
        Ok(Json(MembershipBody::from(&membership)))
    }

    /// Reject a pending request; the requester is told, with the reason when given.
    ///
    /// Needs `members.manage`.
    #[oai(path = "/orgs/:org/join-requests/:id/reject", method = "post", operation_id = "reject_join_request")]
    async fn reject(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
        body: Json<JoinRejection>,
    ) -> ApiResult<Json<JoinRequestBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = join_request_id(&id.0)?;
        let Json(body) = body;
        let request = self.0.guildhall.join_requests().reject(caller.user(), org, id, body.reason.as_deref()).await?;
        Ok(Json(JoinRequestBody::from(&request)))
    }

    /// Withdraw my own pending request to join.
    ///
    /// Someone else's request reads as not found.
    #[oai(path = "/orgs/:org/join-requests/:id", method = "delete", operation_id = "withdraw_join_request")]
    async fn withdraw(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
    ) -> ApiResult<Json<JoinRequestBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = join_request_id(&id.0)?;
        let request = self.0.guildhall.join_requests().withdraw(caller.user(), org, id).await?;
        Ok(Json(JoinRequestBody::from(&request)))
    }
}
