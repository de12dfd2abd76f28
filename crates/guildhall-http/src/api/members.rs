//! `/orgs/{org}/members`: searching, creating, linking, editing, suspending and removing
//! members, leaving, and explaining a member's permissions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use guildhall_domain::ids::{FacilityId, UserId};
use guildhall_domain::membership::{AccessScope, MemberState, Membership, MembershipStatus};
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::query::{MemberPage, MemberSummary};
use guildhall_domain::role::{Denial, Explanation, Reason};
use guildhall_domain::usecases::{
    CreateMemberError, CreateMemberOutcome, LinkMemberError, MemberDetails, MemberQueryError, MemberSearch,
    MemberSettings, MemberStatusError, MemberUpdate, NewMember, UpdateMemberError,
};
use guildhall_domain::values::{AlertKind, EmailAddress, PersonName, PhoneNumber, Position, ResourceKind, RoleKey};
use guildhall_domain::values::{InvalidValue, parse_optional};
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::invitations::MembershipOriginBody;
use super::{Done, Tag, patch_field};
use crate::problem::{ApiError, ApiResult, FieldError, field_errors};
use crate::session::Credentials;
use crate::state::ApiState;

/// `/orgs/{org}/members` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct MembersApi(pub ApiState);

// ---------------------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------------------

/// How far a member's access to one kind of resource reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AccessScopeBody {
    /// No access.
    None,
    /// Only what the member owns.
    Own,
    /// What the member owns plus what belongs to the member's facilities.
    Facility,
    /// Everything in the organisation.
    Organisation,
}

impl From<AccessScopeBody> for AccessScope {
    fn from(scope: AccessScopeBody) -> Self {
        match scope {
            AccessScopeBody::None => AccessScope::None,
            AccessScopeBody::Own => AccessScope::Own,
            AccessScopeBody::Facility => AccessScope::Facility,
            AccessScopeBody::Organisation => AccessScope::Organisation,
        }
    }
}

impl From<AccessScope> for AccessScopeBody {
    fn from(scope: AccessScope) -> Self {
        match scope {
            AccessScope::None => AccessScopeBody::None,
            AccessScope::Own => AccessScopeBody::Own,
            AccessScope::Facility => AccessScopeBody::Facility,
            AccessScope::Organisation => AccessScopeBody::Organisation,
        }
    }
}

/// A membership's state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MemberStateBody {
    /// In force.
    Active,
    /// Suspended by an administrator: the member can do nothing in the organisation.
    Suspended,
    /// Past its expiry.
    Expired,
}

impl From<MemberState> for MemberStateBody {
    fn from(state: MemberState) -> Self {
        match state {
            MemberState::Active => Self::Active,
            MemberState::Suspended => Self::Suspended,
            MemberState::Expired => Self::Expired,
        }
    }
}

/// One member, as an administrator (or the member themselves) sees them.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename = "Member")]
pub struct MemberBody {
    /// The member's account id.
    pub user_id: String,
    /// Email address (the username).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Phone number (E.164).
    pub phone: Option<String>,
    /// Role key (`user`, `user_plus`, `manager`, `administrator` or a custom role).
    pub role: String,
    /// Job title.
    pub position: Option<String>,
    /// Ids of the facilities the member is attributed to.
    pub facilities: Vec<String>,
    /// An aide (not a licensed therapist): never has patients assigned and never messages
    /// patients, whatever the role grants.
    pub aide: bool,
    /// Access scope per resource kind (`patients`, `lists`, `content`, `workflows`,
    /// `nps`, ...); a kind not listed has no access.
    pub access: BTreeMap<String, AccessScopeBody>,
    /// Alerts the member receives (`new_leads`, `new_intakes`, `nps_low`,
    /// `nps_passive`, `nps_promoter`, ...).
    pub alerts: Vec<String>,
    /// State now.
    pub state: MemberStateBody,
    /// When the membership was suspended, while it is.
    pub suspended_at: Option<DateTime<Utc>>,
    /// When the membership ends by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the member can do now: the role's permissions, minus what aides never hold,
    /// and nothing while suspended or expired.
    pub permissions: Vec<String>,
    /// How the person became a member.
    pub origin: MembershipOriginBody,
    /// Who added them (absent for the founder).
    pub added_by: Option<String>,
    /// When they were added.
    pub added_at: DateTime<Utc>,
    /// The account must change its password before it can do anything (it has not
    /// signed in since its account was created, or its password no longer meets the rules).
    pub password_change_required: bool,
    /// While an administrator-created account has not signed in yet: when its emailed
    /// temporary password stops working.
    pub temporary_password_expires_at: Option<DateTime<Utc>>,
}

fn access_body(membership: &Membership) -> BTreeMap<String, AccessScopeBody> {
    membership.access.iter().map(|(kind, scope)| (kind.to_string(), scope.into())).collect()
}

fn facilities_body(membership: &Membership) -> Vec<String> {
    membership.facilities.iter().map(ToString::to_string).collect()
}

fn alerts_body(membership: &Membership) -> Vec<String> {
    membership.alerts.iter().map(ToString::to_string).collect()
}

impl MemberBody {
    /// The body of a member's details.
    #[must_use]
    pub fn of(details: &MemberDetails) -> Self {
        let m = &details.membership;
        let u = &details.user;
        Self {
            user_id: u.id.to_string(),
            email: u.email.to_string(),
            first_name: u.name.first().to_owned(),
            last_name: u.name.last().to_owned(),
            phone: u.phone.as_ref().map(ToString::to_string),
            role: m.role.to_string(),
            position: m.position.as_ref().map(ToString::to_string),
            facilities: facilities_body(m),
            aide: m.aide,
            access: access_body(m),
            alerts: alerts_body(m),
            state: details.state.into(),
            suspended_at: match &m.status {
                MembershipStatus::Active => None,
                MembershipStatus::Suspended { since, .. } => Some(*since),
            },
            expires_at: m.expires_at,
            permissions: details.permissions.iter().map(ToString::to_string).collect(),
            origin: m.origin.into(),
            added_by: m.added_by.map(|id| id.to_string()),
            added_at: m.added_at,
            password_change_required: u.password.must_change,
            temporary_password_expires_at: u.password.temporary.as_ref().map(|t| t.expires_at),
        }
    }
}

/// One member in a search result.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberListItem {
    /// The member's account id.
    pub user_id: String,
    /// Email address.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Role key.
    pub role: String,
    /// Job title.
    pub position: Option<String>,
    /// Ids of the facilities the member is attributed to.
    pub facilities: Vec<String>,
    /// Whether the member is an aide.
    pub aide: bool,
    /// State now.
    pub state: MemberStateBody,
    /// When the membership ends by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When they were added.
    pub added_at: DateTime<Utc>,
}

impl MemberListItem {
    fn of(summary: &MemberSummary, now: DateTime<Utc>) -> Self {
        let m = &summary.membership;
        Self {
            user_id: m.user.to_string(),
            email: summary.email.to_string(),
            first_name: summary.name.first().to_owned(),
            last_name: summary.name.last().to_owned(),
            role: m.role.to_string(),
            position: m.position.as_ref().map(ToString::to_string),
            facilities: facilities_body(m),
            aide: m.aide,
            state: m.state(now).into(),
            expires_at: m.expires_at,
            added_at: m.added_at,
        }
    }
}

/// One page of members, by last name then first name.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberPageBody {
    /// The members on this page.
    pub items: Vec<MemberListItem>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl MemberPageBody {
    fn of(page: &MemberPage, now: DateTime<Utc>) -> Self {
        Self {
            items: page.items.iter().map(|s| MemberListItem::of(s, now)).collect(),
            next_cursor: page.next.as_ref().map(guildhall_domain::query::MemberCursor::encode),
        }
    }
}

/// An administrator's "create user" form.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewMemberRequest {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address: the username. The new colleague is emailed a sign-in link and a
    /// temporary password there.
    pub email: String,
    /// Phone number in international form.
    pub phone: Option<String>,
    /// Role key (`user`, `user_plus`, `manager`, `administrator` or a custom role); it
    /// may grant only permissions the caller holds.
    pub role: String,
    /// Job title.
    pub position: Option<String>,
    /// Ids of the facilities the member is attributed to (facility NPS reporting and
    /// facility-specific lead and intake alerts follow them).
    #[oai(default)]
    pub facilities: Vec<String>,
    /// An aide (not a licensed therapist): never has patients assigned and never messages
    /// patients through the patient portal, whatever the role grants.
    #[oai(default)]
    pub aide: bool,
    /// Access scope per resource kind: `patients`, `lists`, `content`, `workflows` (the
    /// access settings) and `nps` (NPS access), plus any kind the embedder registers.
    /// A kind not listed has no access.
    #[oai(default)]
    pub access: BTreeMap<String, AccessScopeBody>,
    /// Alerts to receive: `new_leads`, `new_intakes`, `nps_low` (low score alerts),
    /// `nps_passive`, `nps_promoter`, plus any the embedder registers.
    #[oai(default)]
    pub alerts: Vec<String>,
}

/// An existing account to add from another organisation the caller manages.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkMemberRequest {
    /// The organisation (id or slug) where the caller manages the person already.
    pub source_org: String,
    /// The person's account id.
    pub user_id: String,
    /// Their role in this organisation.
    pub role: String,
}

/// Changes to a member; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberPatch {
    /// A new role key.
    pub role: Option<String>,
    /// A new job title; `null` or blank removes it.
    pub position: MaybeUndefined<String>,
    /// New facility ids (replace all).
    pub facilities: Option<Vec<String>>,
    /// A new aide flag.
    pub aide: Option<bool>,
    /// New access scopes per resource kind (replace all; a kind not listed has no access).
    pub access: Option<BTreeMap<String, AccessScopeBody>>,
    /// New alerts (replace all).
    pub alerts: Option<Vec<String>>,
    /// When the membership ends by itself (in the future); `null` removes the expiry.
    pub expires_at: MaybeUndefined<DateTime<Utc>>,
}

/// An invitation sent instead of creating an account.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitedInstead {
    /// The invitation's id.
    pub invitation_id: String,
    /// What happened, as a sentence to show a person.
    pub message: String,
}

/// `POST /orgs/{org}/members` succeeded.
#[derive(Debug, ApiResponse)]
pub enum CreateMemberResponse {
    /// The account was created and its temporary password emailed to it.
    #[oai(status = 201)]
    Created(Json<Box<MemberBody>>),
    /// The address has an account already: nobody joins without consent, so an
    /// invitation with the same role was emailed instead. Position, facilities, aide
    /// flag, access and alerts were not applied; set them once it is accepted.
    #[oai(status = 202)]
    InvitationSent(Json<InvitedInstead>),
}

/// `POST /orgs/{org}/members/link` succeeded.
#[derive(Debug, ApiResponse)]
pub enum LinkMemberResponse {
    /// The person is now a member of this organisation too.
    #[oai(status = 201)]
    Linked(Json<MemberBody>),
}

/// What kind of step an explanation step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ExplanationStepKind {
    /// The person is a member with a role.
    MemberWithRole,
    /// The role grants the permission.
    RoleGrants,
    /// The check stopped here: denied.
    Denied,
}

/// Why a permission was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DenialReason {
    /// Not a member of the organisation.
    NotAMember,
    /// The membership is suspended.
    Suspended,
    /// The membership has expired.
    Expired,
    /// The role does not grant the permission.
    MissingPermission,
    /// Aides never hold this permission.
    Aide,
    /// The access scope does not reach the resource.
    OutOfScope,
}

impl From<&Denial> for DenialReason {
    fn from(denial: &Denial) -> Self {
        match denial {
            Denial::NotAMember => Self::NotAMember,
            Denial::Suspended => Self::Suspended,
            Denial::Expired(_) => Self::Expired,
            Denial::MissingPermission { .. } => Self::MissingPermission,
            Denial::Aide { .. } => Self::Aide,
            Denial::OutOfScope { .. } => Self::OutOfScope,
        }
    }
}

/// One step of an explanation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExplanationStep {
    /// What kind of step.
    pub kind: ExplanationStepKind,
    /// For a denial: why.
    pub denial: Option<DenialReason>,
    /// The step as a sentence (`role manager grants it`, `denied: member is an aide: ...`).
    pub text: String,
}

/// Whether a member holds a permission, and why.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PermissionExplanation {
    /// The permission asked about.
    pub permission: String,
    /// Whether the member holds it now.
    pub allowed: bool,
    /// The steps of the check, in order; a denial is the last one.
    pub reasons: Vec<ExplanationStep>,
    /// The outcome and its last reason in one sentence.
    pub summary: String,
}

impl PermissionExplanation {
    fn of(explanation: &Explanation) -> Self {
        let reasons: Vec<ExplanationStep> = explanation
            .reasons
            .iter()
            .map(|reason| {
                let (kind, denial) = match reason {
                    Reason::MemberWithRole(_) => (ExplanationStepKind::MemberWithRole, None),
                    Reason::RoleGrants { .. } => (ExplanationStepKind::RoleGrants, None),
                    Reason::Denied(denial) => (ExplanationStepKind::Denied, Some(denial.into())),
                };
                ExplanationStep { kind, denial, text: reason.to_string() }
            })
            .collect();
        let last = explanation.reasons.last().map(ToString::to_string).unwrap_or_default();
        let summary = match (explanation.allowed, explanation.reasons.last()) {
            (_, Some(Reason::Denied(_))) => last,
            (true, _) => format!("granted: {last}"),
            (false, _) => "denied".to_owned(),
        };
        Self { permission: explanation.permission.to_string(), allowed: explanation.allowed, reasons, summary }
    }
}

// ---------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------

fn refused(violation: &InvariantViolation) -> ApiError {
    crate::problem::violation(violation)
}

impl From<CreateMemberError> for ApiError {
    fn from(error: CreateMemberError) -> Self {
        let detail = error.to_string();
        match error {
            CreateMemberError::Access(e) => e.into(),
            CreateMemberError::Invalid(invalid) => invalid.into(),
            CreateMemberError::Escalation(violation) => refused(&violation),
            CreateMemberError::AlreadyMember(_) => {
                ApiError::new(StatusCode::CONFLICT, "already-member", "Already a member", detail)
            }
            CreateMemberError::AlreadyInvited(_) => {
                ApiError::new(StatusCode::CONFLICT, "already-invited", "Already invited", detail)
            }
            CreateMemberError::Unexpected(e) => e.into(),
        }
    }
}

impl From<LinkMemberError> for ApiError {
    fn from(error: LinkMemberError) -> Self {
        let detail = error.to_string();
        match error {
            LinkMemberError::Access(e) => e.into(),
            LinkMemberError::NotManagedBySource => {
                ApiError::new(StatusCode::FORBIDDEN, "not-managed-by-source", "You do not manage this person", detail)
            }
            LinkMemberError::UnknownRole(_) => ApiError::invalid_field("role", detail),
            LinkMemberError::Escalation(violation) => refused(&violation),
            LinkMemberError::AlreadyMember => {
                ApiError::new(StatusCode::CONFLICT, "already-member", "Already a member", detail)
            }
            LinkMemberError::Unexpected(e) => e.into(),
        }
    }
}

impl From<UpdateMemberError> for ApiError {
    fn from(error: UpdateMemberError) -> Self {
        match error {
            UpdateMemberError::Access(e) => e.into(),
            UpdateMemberError::MemberNotFound => ApiError::not_found("member"),
            UpdateMemberError::Invalid(invalid) => invalid.into(),
            UpdateMemberError::Refused(violation) => refused(&violation),
            UpdateMemberError::Unexpected(e) => e.into(),
        }
    }
}

impl From<MemberStatusError> for ApiError {
    fn from(error: MemberStatusError) -> Self {
        let detail = error.to_string();
        match error {
            MemberStatusError::Access(e) => e.into(),
            MemberStatusError::MemberNotFound => ApiError::not_found("member"),
            MemberStatusError::OwnMembership => {
                ApiError::new(StatusCode::CONFLICT, "own-membership", "Not on your own membership", detail)
            }
            MemberStatusError::AlreadyInState(_) => {
                ApiError::new(StatusCode::CONFLICT, "already-in-state", "Nothing to change", detail)
            }
            MemberStatusError::Refused(violation) => refused(&violation),
            MemberStatusError::Unexpected(e) => e.into(),
        }
    }
}

impl From<MemberQueryError> for ApiError {
    fn from(error: MemberQueryError) -> Self {
        match error {
            MemberQueryError::Access(e) => e.into(),
            MemberQueryError::MemberNotFound => ApiError::not_found("member"),
            MemberQueryError::Invalid(invalid) => invalid.into(),
            MemberQueryError::Unexpected(e) => e.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request parsing (typed values only; every rule is checked by the use case)
// ---------------------------------------------------------------------------------------

fn parse_facilities(raw: &[String], errors: &mut Vec<FieldError>) -> BTreeSet<FacilityId> {
    raw.iter()
        .filter_map(|text| match FacilityId::parse(text) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError {
                    field: "facilities".to_owned(),
                    message: format!("\"{text}\" is not a facility id"),
                });
                None
            }
        })
        .collect()
}

fn parse_access(
    raw: &BTreeMap<String, AccessScopeBody>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<ResourceKind, AccessScope> {
    raw.iter()
        .filter_map(|(kind, scope)| match ResourceKind::parse(kind) {
            Ok(kind) => Some((kind, AccessScope::from(*scope))),
            Err(e) => {
                errors.extend(field_errors(&[e.for_field("access")]));
                None
            }
        })
        .collect()
}

fn parse_alerts(raw: &[String], errors: &mut Vec<FieldError>) -> BTreeSet<AlertKind> {
    raw.iter()
        .filter_map(|alert| match AlertKind::parse(alert) {
            Ok(alert) => Some(alert),
            Err(e) => {
                errors.extend(field_errors(&[e.for_field("alerts")]));
                None
            }
        })
        .collect()
}

/// The problems the domain's value parsers find in a create form's plain fields, so that
/// a form refused for an unreadable facility, access kind or alert still lists every
/// problem at once.
fn plain_field_errors(form: &NewMemberRequest) -> Vec<FieldError> {
    let mut problems: Vec<InvalidValue> = Vec::new();
    if let Err(e) = PersonName::parse(&form.first_name, &form.last_name) {
        problems.extend(e);
    }
    if let Err(e) = EmailAddress::parse(&form.email) {
        problems.push(e);
    }
    if let Err(e) = parse_optional(form.phone.as_deref(), PhoneNumber::parse) {
        problems.push(e);
    }
    if let Err(e) = RoleKey::parse(&form.role) {
        problems.push(e);
    }
    if let Err(e) = parse_optional(form.position.as_deref(), Position::parse) {
        problems.push(e);
    }
    field_errors(&problems)
}

fn parse_user(text: &str) -> ApiResult<UserId> {
    UserId::parse(text).map_err(|_| ApiError::not_found("member"))
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

impl MembersApi {
    async fn details(&self, actor: UserId, org: guildhall_domain::ids::OrgId, user: UserId) -> ApiResult<MemberBody> {
        let details = self.0.guildhall.members().get(actor, org, user).await?;
        Ok(MemberBody::of(&details))
    }
}

#[OpenApi(tag = "Tag::Members")]
impl MembersApi {
    /// Search the organisation's members.
    ///
    /// By last name then first name, one page at a time. Needs `members.manage`.
    #[oai(path = "/orgs/:org/members", method = "get", operation_id = "search_members")]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        credentials: Credentials,
        org: Path<String>,
        /// Part of the first name, last name, full name or email address (case-insensitive).
        q: Query<Option<String>>,
        /// Only members with this role key.
        role: Query<Option<String>>,
        /// Only members attributed to this facility id.
        facility: Query<Option<String>>,
        /// Only members in this state now: `active`, `suspended` or `expired`.
        status: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<i64>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MemberPageBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        // Out-of-range numbers reach the use case as out-of-range numbers, so that it
        // reports them like any other bad limit.
        let limit = limit.0.map(|n| u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX }));
        let search =
            MemberSearch { text: q.0, role: role.0, facility: facility.0, state: status.0, limit, cursor: cursor.0 };
        let page = self.0.guildhall.members().search(caller.user(), org, &search).await?;
        Ok(Json(MemberPageBody::of(&page, self.0.clock.now())))
    }

    /// Create a user.
    ///
    /// Creates an account for a new colleague and makes them a member. They are emailed a
    /// link and a temporary password that works once, expires, and must be changed at
    /// first sign-in. If the address has an account already, an invitation with the same
    /// role is sent instead (`202`). Needs `members.manage`; the role may grant only
    /// permissions the caller holds.
    #[oai(path = "/orgs/:org/members", method = "post", operation_id = "create_member")]
    async fn create(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<NewMemberRequest>,
    ) -> ApiResult<CreateMemberResponse> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let Json(body) = body;
        let mut errors = Vec::new();
        let facilities = parse_facilities(&body.facilities, &mut errors);
        let access = parse_access(&body.access, &mut errors);
        let alerts = parse_alerts(&body.alerts, &mut errors);
        if !errors.is_empty() {
            let mut all = plain_field_errors(&body);
            all.extend(errors);
            return Err(ApiError::invalid(all));
        }
        let form = NewMember {
            first_name: body.first_name,
            last_name: body.last_name,
            email: body.email,
            phone: body.phone,
            role: body.role,
            settings: MemberSettings { position: body.position, facilities, aide: body.aide, access, alerts },
        };
        let outcome = self.0.guildhall.members().create_member(caller.user(), org, &form).await?;
        match outcome {
            CreateMemberOutcome::AccountCreated { user, .. } => {
                Ok(CreateMemberResponse::Created(Json(Box::new(self.details(caller.user(), org, user).await?))))
            }
            CreateMemberOutcome::InvitationSent { invitation } => {
                Ok(CreateMemberResponse::InvitationSent(Json(InvitedInstead {
                    invitation_id: invitation.to_string(),
                    message: format!(
                        "{} already has an account, so an invitation with this role was emailed instead; set their position, facilities, access and alerts once they accept it",
                        form.email.trim()
                    ),
                })))
            }
        }
    }

    /// Link a person from another organisation.
    ///
    /// Adds someone the caller manages in `source_org` to this organisation with the
    /// given role (one account, several memberships). Needs `members.manage` in both.
    #[oai(path = "/orgs/:org/members/link", method = "post", operation_id = "link_member")]
    async fn link(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<LinkMemberRequest>,
    ) -> ApiResult<LinkMemberResponse> {
        let caller = self.0.caller(&credentials).await?;
        let target = self.0.org(&org.0).await?;
        let source = self.0.org(&body.0.source_org).await?;
        let role = RoleKey::parse(&body.0.role).map_err(|e| ApiError::invalid(field_errors(&[e])))?;
        let user = UserId::parse(&body.0.user_id).map_err(|_| ApiError::not_found("member"))?;
        let membership =
            self.0.guildhall.members().link_existing_user(caller.user(), source, target, user, &role).await?;
        Ok(LinkMemberResponse::Linked(Json(self.details(caller.user(), target, membership.user).await?)))
    }

    /// A member's details.
    ///
    /// With their account, settings and effective permissions. Members may look at
    /// themselves; looking at others needs `members.manage`.
    #[oai(path = "/orgs/:org/members/:user", method = "get", operation_id = "get_member")]
    async fn get(
        &self,
        credentials: Credentials,
        org: Path<String>,
        user: Path<String>,
    ) -> ApiResult<Json<MemberBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        Ok(Json(self.details(caller.user(), org, user).await?))
    }

    /// Change a member.
    ///
    /// Role, position, facilities, aide flag, access, alerts or expiry; absent fields
    /// stay as they are. Needs `members.manage`; the caller may change only members whose
    /// role is within their own permissions, and no change may leave the organisation
    /// without an administrator.
    #[oai(path = "/orgs/:org/members/:user", method = "patch", operation_id = "update_member")]
    async fn update(
        &self,
        credentials: Credentials,
        org: Path<String>,
        user: Path<String>,
        body: Json<MemberPatch>,
    ) -> ApiResult<Json<MemberBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        let Json(body) = body;
        let mut problems = Vec::new();
        let role = body.role.as_deref().and_then(|r| RoleKey::parse(r).map_err(|e| problems.push(e)).ok());
        let mut errors = field_errors(&problems);
        let facilities = body.facilities.as_deref().map(|f| parse_facilities(f, &mut errors));
        let access = body.access.as_ref().map(|a| parse_access(a, &mut errors));
        let alerts = body.alerts.as_deref().map(|a| parse_alerts(a, &mut errors));
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let update = MemberUpdate {
            role,
            position: patch_field(body.position),
            facilities,
            aide: body.aide,
            access,
            alerts,
            expires_at: patch_field(body.expires_at),
        };
        self.0.guildhall.members().update_member(caller.user(), org, user, &update).await?;
        Ok(Json(self.details(caller.user(), org, user).await?))
    }

    /// Remove a member.
    ///
    /// Their membership ends and their sessions are signed out; the account stays.
    /// Needs `members.manage`. To leave yourself, use `POST /orgs/{org}/leave`.
    #[oai(path = "/orgs/:org/members/:user", method = "delete", operation_id = "remove_member")]
    async fn remove(&self, credentials: Credentials, org: Path<String>, user: Path<String>) -> ApiResult<Json<Done>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        self.0.guildhall.members().remove(caller.user(), org, user).await?;
        Ok(Json(Done::new("the member was removed from the organisation and signed out")))
    }

    /// Suspend a member.
    ///
    /// They can do nothing in the organisation until reactivated, and their sessions are
    /// signed out. Needs `members.manage`.
    #[oai(path = "/orgs/:org/members/:user/suspend", method = "post", operation_id = "suspend_member")]
    async fn suspend(
        &self,
        credentials: Credentials,
        org: Path<String>,
        user: Path<String>,
    ) -> ApiResult<Json<MemberBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        self.0.guildhall.members().suspend(caller.user(), org, user).await?;
        Ok(Json(self.details(caller.user(), org, user).await?))
    }

    /// Reactivate a suspended member. Needs `members.manage`.
    #[oai(path = "/orgs/:org/members/:user/reactivate", method = "post", operation_id = "reactivate_member")]
    async fn reactivate(
        &self,
        credentials: Credentials,
        org: Path<String>,
        user: Path<String>,
    ) -> ApiResult<Json<MemberBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        self.0.guildhall.members().reactivate(caller.user(), org, user).await?;
        Ok(Json(self.details(caller.user(), org, user).await?))
    }

    /// Explain a member's permission.
    ///
    /// Whether the member holds `permission` now, step by step (for example "denied:
    /// member is an aide"). Members may ask about themselves; asking about others needs
    /// `members.manage`.
    #[oai(path = "/orgs/:org/members/:user/explain", method = "get", operation_id = "explain_member_permission")]
    async fn explain(
        &self,
        credentials: Credentials,
        org: Path<String>,
        user: Path<String>,
        /// A permission key (`patients.message`, `reports.download`, ...).
        permission: Query<String>,
    ) -> ApiResult<Json<PermissionExplanation>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let user = parse_user(&user.0)?;
        let explanation = self.0.guildhall.members().explain(caller.user(), org, user, &permission.0).await?;
        Ok(Json(PermissionExplanation::of(&explanation)))
    }

    /// Leave the organisation.
    ///
    /// The caller's own membership ends. The last administrator cannot leave
    /// (`409 last-administrator`): make someone else an administrator first.
    #[oai(path = "/orgs/:org/leave", method = "post", operation_id = "leave_org")]
    async fn leave(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<Done>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        self.0.guildhall.members().leave(caller.user(), org).await?;
        Ok(Json(Done::new("you have left the organisation")))
    }
}
