//! `/orgs`: organisations, their settings, capabilities, runs, facilities and audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use guildhall_domain::audit::{AuditEntry, AuditTarget, FieldChange};
use guildhall_domain::catalogue::permissions;
use guildhall_domain::catalogue::{CapabilityKind, Catalogue};
use guildhall_domain::ids::{FacilityId, OrgId, UserId};
use guildhall_domain::org::{
    Facility, InvitationLifetime, JoinPolicy, OrgSettings, Organisation, RunOutcome, RunRecord,
};
use guildhall_domain::password::{CharacterClass, InvalidPasswordPolicy, PasswordPolicy};
use guildhall_domain::ports::UndeliveredEmail;
use guildhall_domain::query::{Page, PageRequest};
use guildhall_domain::role::Scope;
use guildhall_domain::usecases::{
    CapabilityState, CreateOrganisationError, ManageFacilityError, MemberQueryError, OrganisationUpdate, Organisations,
    RecordRunError, ResolveOrganisationError, RunReport, SetCapabilityError, UpdateOrganisationError,
    ViewOrganisationError,
};
use guildhall_domain::values::{CapabilityKey, EmailDomain, InvalidValue, OrgName, OrgSlug, RoleKey};
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::Tag;
use crate::problem::{ApiError, ApiResult, FieldError};
use crate::session::Credentials;
use crate::state::ApiState;

/// `/orgs` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct OrgsApi(pub ApiState);

/// The page size of runs, audit entries and dead letters when none is asked for.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

// ----------------------------------------------------------------------------------------
// Organisation and settings
// ----------------------------------------------------------------------------------------

/// A new organisation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewOrganisation {
    /// URL name: lower-case letters, digits and dashes, unique.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// Who may become a member without an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JoinMode {
    /// Only invited people join.
    InvitationOnly,
    /// Anyone with an account may ask to join; an administrator decides.
    RequestsAllowed,
    /// People with a verified address at one of `domains` may join without an invitation.
    VerifiedDomains,
}

/// Who may join without an invitation, and how.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JoinPolicyBody {
    /// `invitation_only`, `requests_allowed` or `verified_domains`.
    pub mode: JoinMode,
    /// For `verified_domains` (and only then): the email domains whose verified
    /// addresses may join (`acme-physio.example`).
    #[oai(default)]
    pub domains: Vec<String>,
    /// For `verified_domains` (and only then): whether matching people join at once with
    /// the default role (`true`) or by a request an administrator decides (`false`).
    #[oai(default)]
    pub auto_approve: bool,
}

impl JoinPolicyBody {
    fn of(policy: &JoinPolicy) -> Self {
        match policy {
            JoinPolicy::InvitationOnly => {
                Self { mode: JoinMode::InvitationOnly, domains: Vec::new(), auto_approve: false }
            }
            JoinPolicy::RequestsAllowed => {
                Self { mode: JoinMode::RequestsAllowed, domains: Vec::new(), auto_approve: false }
            }
            JoinPolicy::VerifiedDomains { domains, auto_approve } => Self {
                mode: JoinMode::VerifiedDomains,
                domains: domains.iter().map(ToString::to_string).collect(),
                auto_approve: *auto_approve,
            },
        }
    }

    /// The policy, or every problem with it (under `field`).
    fn parse(self, field: &str, problems: &mut Vec<FieldError>) -> Option<JoinPolicy> {
        match self.mode {
            JoinMode::InvitationOnly | JoinMode::RequestsAllowed => {
                let mut fine = true;
                if !self.domains.is_empty() {
                    fine = false;
                    problems.push(field_error(
                        &format!("{field}.domains"),
                        "domains apply only to the verified_domains mode; leave them out or choose that mode",
                    ));
                }
                if self.auto_approve {
                    fine = false;
                    problems.push(field_error(
                        &format!("{field}.auto_approve"),
                        "auto_approve applies only to the verified_domains mode; leave it out or choose that mode",
                    ));
                }
                let policy = if self.mode == JoinMode::InvitationOnly {
                    JoinPolicy::InvitationOnly
                } else {
                    JoinPolicy::RequestsAllowed
                };
                fine.then_some(policy)
            }
            JoinMode::VerifiedDomains => {
                let mut domains = BTreeSet::new();
                let mut fine = true;
                for raw in &self.domains {
                    match EmailDomain::parse(raw) {
                        Ok(domain) => {
                            domains.insert(domain);
                        }
                        Err(problem) => {
                            fine = false;
                            problems.push(field_error(
                                &format!("{field}.domains"),
                                format!("{raw:?}: {}", problem.problem()),
                            ));
                        }
                    }
                }
                // An empty list is the domain's to refuse, with its own message.
                fine.then_some(JoinPolicy::VerifiedDomains { domains, auto_approve: self.auto_approve })
            }
        }
    }
}

/// A kind of character a password may be required to contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CharacterClassBody {
    /// An upper-case letter.
    Uppercase,
    /// A lower-case letter.
    Lowercase,
    /// A digit.
    Digit,
    /// Anything that is neither a letter, a digit nor white space (`!`, `€`).
    Symbol,
}

impl CharacterClassBody {
    fn of(class: CharacterClass) -> Self {
        match class {
            CharacterClass::Uppercase => Self::Uppercase,
            CharacterClass::Lowercase => Self::Lowercase,
            CharacterClass::Digit => Self::Digit,
            CharacterClass::Symbol => Self::Symbol,
        }
    }

    fn class(self) -> CharacterClass {
        match self {
            Self::Uppercase => CharacterClass::Uppercase,
            Self::Lowercase => CharacterClass::Lowercase,
            Self::Digit => CharacterClass::Digit,
            Self::Symbol => CharacterClass::Symbol,
        }
    }
}

/// The password rules for the organisation's members. A member's password must satisfy
/// the strictest combination of the rules of every organisation they belong to.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasswordPolicyBody {
    /// The fewest characters a password may have (at least 8).
    pub min_length: u32,
    /// The most characters a password may have (64 to 1024).
    pub max_length: u32,
    /// The kinds of character a password must contain at least one of.
    pub required_classes: Vec<CharacterClassBody>,
    /// Whether a password containing the part of the email address before the `@` is refused.
    pub reject_email_local_part: bool,
    /// Whether a password on the list of common passwords is refused.
    pub reject_common_passwords: bool,
}

impl PasswordPolicyBody {
    fn of(policy: &PasswordPolicy) -> Self {
        Self {
            min_length: u32::try_from(policy.min_length()).unwrap_or(u32::MAX),
            max_length: u32::try_from(policy.max_length()).unwrap_or(u32::MAX),
            required_classes: policy.required_classes().iter().copied().map(CharacterClassBody::of).collect(),
            reject_email_local_part: policy.reject_email_local_part(),
            reject_common_passwords: policy.reject_common_passwords(),
        }
    }

    /// The policy, or its problem (under `field`).
    fn parse(self, field: &str, problems: &mut Vec<FieldError>) -> Option<PasswordPolicy> {
        let policy = PasswordPolicy::new(
            self.min_length as usize,
            self.max_length as usize,
            self.required_classes.into_iter().map(CharacterClassBody::class),
            self.reject_email_local_part,
            self.reject_common_passwords,
        );
        match policy {
            Ok(policy) => Some(policy),
            Err(error) => {
                let part = match error {
                    InvalidPasswordPolicy::MinLengthTooLow { .. }
                    | InvalidPasswordPolicy::MinLengthAboveMaxLength { .. } => "min_length",
                    InvalidPasswordPolicy::MaxLengthTooLow { .. } | InvalidPasswordPolicy::MaxLengthTooHigh { .. } => {
                        "max_length"
                    }
                };
                problems.push(field_error(&format!("{field}.{part}"), error));
                None
            }
        }
    }
}

/// An organisation's settings.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SettingsBody {
    /// Who may join without an invitation.
    pub join_policy: JoinPolicyBody,
    /// The role (key) given to people who join by request or verified domain.
    pub default_role: String,
    /// How long invitations stay valid, in seconds (one hour to 30 days).
    pub invitation_lifetime_seconds: i64,
    /// The password rules for members.
    pub password_policy: PasswordPolicyBody,
    /// Shared addresses per notification topic (`failed_messaging` →
    /// `["office@acme.example"]`): where reports on that topic go.
    pub notification_routing: BTreeMap<String, Vec<String>>,
}

impl SettingsBody {
    fn of(settings: &OrgSettings) -> Self {
        Self {
            join_policy: JoinPolicyBody::of(&settings.join_policy),
            default_role: settings.default_role.to_string(),
            invitation_lifetime_seconds: settings.invitation_lifetime.seconds(),
            password_policy: PasswordPolicyBody::of(&settings.password_policy),
            notification_routing: settings
                .routing
                .iter()
                .map(|(topic, addresses)| (topic.to_string(), addresses.iter().map(ToString::to_string).collect()))
                .collect(),
        }
    }
}

/// What sort of thing a capability is (it changes only how it is presented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CapabilityKindBody {
    /// A service offered to the organisation's clients (patient tasks, questionnaires).
    Service,
    /// An automation that runs and reports runs (automated recall).
    Automation,
    /// A rule the organisation can switch on or off (a monitoring rule).
    Rule,
    /// Any other feature.
    Feature,
}

impl CapabilityKindBody {
    fn of(kind: CapabilityKind) -> Self {
        match kind {
            CapabilityKind::Service => Self::Service,
            CapabilityKind::Automation => Self::Automation,
            CapabilityKind::Rule => Self::Rule,
            CapabilityKind::Feature => Self::Feature,
        }
    }
}

/// A capability the installation declares, and whether it is on for the organisation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CapabilityBody {
    /// Its key (`automated_recall`).
    pub key: String,
    /// What sort of capability it is.
    pub kind: CapabilityKindBody,
    /// What it does, as the installation describes it.
    pub description: String,
    /// Whether a new organisation has it on.
    pub enabled_by_default: bool,
    /// Whether it is on for this organisation.
    pub enabled: bool,
}

impl CapabilityBody {
    fn of(state: &CapabilityState) -> Self {
        Self {
            key: state.def.key.to_string(),
            kind: CapabilityKindBody::of(state.def.kind),
            description: state.def.description.clone(),
            enabled_by_default: state.def.enabled_by_default,
            enabled: state.enabled,
        }
    }
}

/// An organisation, its settings and its capabilities.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrganisationBody {
    /// Its id (never changes).
    pub id: String,
    /// Its URL name (may be renamed).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Its settings.
    pub settings: SettingsBody,
    /// Every capability the installation declares and whether it is on, in key order.
    pub capabilities: Vec<CapabilityBody>,
}

impl OrganisationBody {
    /// The body of `org`, with its capabilities as `catalogue` declares them.
    #[must_use]
    pub fn of(org: &Organisation, catalogue: &Catalogue) -> Self {
        let capabilities = catalogue
            .capabilities()
            .map(|def| CapabilityState { enabled: org.capability_enabled(catalogue, &def.key), def: def.clone() })
            .collect::<Vec<_>>();
        Self::with(org, &capabilities)
    }

    fn with(org: &Organisation, capabilities: &[CapabilityState]) -> Self {
        Self {
            id: org.id.to_string(),
            slug: org.slug.to_string(),
            name: org.name.to_string(),
            created_at: org.created_at,
            settings: SettingsBody::of(&org.settings),
            capabilities: capabilities.iter().map(CapabilityBody::of).collect(),
        }
    }
}

/// Changes to an organisation; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrganisationPatch {
    /// A new display name.
    pub name: Option<String>,
    /// A new URL name (links in emails use ids, so old links keep working).
    pub slug: Option<String>,
    /// Changes to the settings.
    pub settings: Option<SettingsPatch>,
}

/// Changes to an organisation's settings; absent fields stay as they are.
#[derive(Debug, Default, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SettingsPatch {
    /// Who may join without an invitation (the whole policy).
    pub join_policy: Option<JoinPolicyBody>,
    /// The role (key) given to people who join by request or verified domain.
    pub default_role: Option<String>,
    /// How long invitations stay valid, in seconds (3600 to 2592000).
    pub invitation_lifetime_seconds: Option<i64>,
    /// The password rules for members (the whole policy).
    pub password_policy: Option<PasswordPolicyBody>,
    /// Shared addresses per topic; replaces the whole routing (topics left out are no
    /// longer routed, a topic with no address is dropped).
    pub notification_routing: Option<BTreeMap<String, Vec<String>>>,
}

/// `POST /orgs` succeeded.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// Created; the caller is its first administrator.
    #[oai(status = 201)]
    Created(Json<OrganisationBody>),
}

// ----------------------------------------------------------------------------------------
// Capabilities
// ----------------------------------------------------------------------------------------

/// Capabilities to switch on or off.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CapabilityChanges {
    /// Capability key → whether it should be on (`{"automated_recall": true}`). Keys
    /// left out keep their state.
    pub capabilities: BTreeMap<String, bool>,
}

// ----------------------------------------------------------------------------------------
// Runs
// ----------------------------------------------------------------------------------------

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RunOutcomeBody {
    /// Completed.
    Succeeded,
    /// Completed with some items failing (say which in `detail`).
    PartiallySucceeded,
    /// Did not complete (say why in `detail`).
    Failed,
}

/// A run of a capability, as the system that ran it reports it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewRun {
    /// The capability that ran (its key); it must be on for the organisation.
    pub capability: String,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it finished (not before it started).
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// How it ended.
    pub outcome: RunOutcomeBody,
    /// For `partially_succeeded` and `failed` (required then, and only then): what went
    /// wrong, for people.
    pub detail: Option<String>,
    /// Counters (`patients_contacted`: 120), at most 50.
    #[oai(default)]
    pub counts: BTreeMap<String, u64>,
}

/// A recorded run.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RunBody {
    /// Its id.
    pub id: String,
    /// The capability that ran.
    pub capability: String,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it finished.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// How it ended.
    pub outcome: RunOutcomeBody,
    /// What went wrong, for runs that did not fully succeed.
    pub detail: Option<String>,
    /// The counters reported.
    pub counts: BTreeMap<String, u64>,
    /// The account that recorded it.
    pub recorded_by: String,
}

impl RunBody {
    fn of(run: &RunRecord) -> Self {
        let (outcome, detail) = match &run.outcome {
            RunOutcome::Succeeded => (RunOutcomeBody::Succeeded, None),
            RunOutcome::PartiallySucceeded { detail } => (RunOutcomeBody::PartiallySucceeded, Some(detail.clone())),
            RunOutcome::Failed { detail } => (RunOutcomeBody::Failed, Some(detail.clone())),
        };
        Self {
            id: run.id.to_string(),
            capability: run.capability.to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            outcome,
            detail,
            counts: run.counts.clone(),
            recorded_by: run.recorded_by.to_string(),
        }
    }
}

/// One page of runs, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RunPage {
    /// The runs.
    pub items: Vec<RunBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /orgs/{org}/runs` succeeded.
#[derive(Debug, ApiResponse)]
pub enum RunRecorded {
    /// Recorded.
    #[oai(status = 201)]
    Created(Json<RunBody>),
}

// ----------------------------------------------------------------------------------------
// Facilities
// ----------------------------------------------------------------------------------------

/// A site of an organisation; members are attributed to facilities.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FacilityBody {
    /// Its id.
    pub id: String,
    /// Its name, unique within the organisation ignoring letter case.
    pub name: String,
    /// When it was added.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl FacilityBody {
    fn of(facility: &Facility) -> Self {
        Self { id: facility.id.to_string(), name: facility.name.to_string(), created_at: facility.created_at }
    }
}

/// A facility's name.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FacilityForm {
    /// The name ("North Clinic"), unique within the organisation ignoring letter case.
    pub name: String,
}

/// `POST /orgs/{org}/facilities` succeeded.
#[derive(Debug, ApiResponse)]
pub enum FacilityCreated {
    /// Added.
    #[oai(status = 201)]
    Created(Json<FacilityBody>),
}

// ----------------------------------------------------------------------------------------
// Audit log and dead letters
// ----------------------------------------------------------------------------------------

/// What kind of thing an audited action was done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AuditTargetKind {
    /// An account (`id` is its user id).
    User,
    /// The organisation.
    Organisation,
    /// A facility.
    Facility,
    /// A capability (`id` is its key).
    Capability,
    /// A run.
    Run,
    /// An invitation.
    Invitation,
    /// A join request.
    JoinRequest,
    /// A role (`id` is its key).
    Role,
}

/// What an audited action was done to.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditTargetBody {
    /// The kind of thing.
    pub kind: AuditTargetKind,
    /// Its id (or key, for capabilities and roles).
    pub id: String,
}

impl AuditTargetBody {
    fn of(target: &AuditTarget) -> Self {
        let (kind, id) = match target {
            AuditTarget::User(id) => (AuditTargetKind::User, id.to_string()),
            AuditTarget::Organisation(id) => (AuditTargetKind::Organisation, id.to_string()),
            AuditTarget::Facility(id) => (AuditTargetKind::Facility, id.to_string()),
            AuditTarget::Capability(key) => (AuditTargetKind::Capability, key.to_string()),
            AuditTarget::Run(id) => (AuditTargetKind::Run, id.to_string()),
            AuditTarget::Invitation(id) => (AuditTargetKind::Invitation, id.to_string()),
            AuditTarget::JoinRequest(id) => (AuditTargetKind::JoinRequest, id.to_string()),
            AuditTarget::Role(key) => (AuditTargetKind::Role, key.to_string()),
        };
        Self { kind, id }
    }
}

/// One field's value before and after a change, as display text.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FieldChangeBody {
    /// The field (`role`, `name`).
    pub field: String,
    /// Before, if it had a value.
    pub before: Option<String>,
    /// After, if it has a value.
    pub after: Option<String>,
}

impl FieldChangeBody {
    fn of(change: &FieldChange) -> Self {
        Self { field: change.field.clone(), before: change.before.clone(), after: change.after.clone() }
    }
}

/// One entry of the audit log.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEntryBody {
    /// Its id.
    pub id: String,
    /// Who acted; absent for the system (an automatic approval).
    pub actor_id: Option<String>,
    /// The actor's name, when the caller may see that member (absent for the system,
    /// for people who are no longer members, and for callers who may not look up other
    /// members).
    pub actor_name: Option<String>,
    /// What was done, as a stable name (`member.suspended`, `org.settings_changed`).
    pub action: String,
    /// To what.
    pub target: AuditTargetBody,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// What changed, field by field.
    pub changes: Vec<FieldChangeBody>,
}

/// One page of the audit log, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntryBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A message that could not be delivered (its content is not kept).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UndeliveredBody {
    /// The message's id.
    pub id: String,
    /// To whom it was addressed.
    pub to: String,
    /// What it was (`invitation`, `password_reset`).
    pub template: String,
    /// When it was queued.
    pub queued_at: chrono::DateTime<chrono::Utc>,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The error that made delivery give up.
    pub last_error: Option<String>,
}

impl UndeliveredBody {
    fn of(email: &UndeliveredEmail) -> Self {
        Self {
            id: email.id.to_string(),
            to: email.to.to_string(),
            template: email.template.clone(),
            queued_at: email.queued_at,
            attempts: email.attempts,
            last_error: email.last_error.clone(),
        }
    }
}

/// One page of undelivered messages, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UndeliveredPage {
    /// The messages.
    pub items: Vec<UndeliveredBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// ----------------------------------------------------------------------------------------
// Error mapping
// ----------------------------------------------------------------------------------------

fn field_error(field: &str, message: impl std::fmt::Display) -> FieldError {
    FieldError { field: field.to_owned(), message: message.to_string() }
}

/// The field errors of `invalid`, each named by `rename` as the request names it.
fn renamed(invalid: &[InvalidValue], rename: impl Fn(&'static str) -> &'static str) -> Vec<FieldError> {
    invalid.iter().map(|v| field_error(rename(v.field()), v.problem())).collect()
}

/// The domain's name of an organisation field, as `PATCH /orgs/{org}` names it.
fn update_field(field: &'static str) -> &'static str {
    match field {
        "join_policy" => "settings.join_policy",
        "default_role" => "settings.default_role",
        "invitation_lifetime" | "invitation_lifetime_seconds" => "settings.invitation_lifetime_seconds",
        "password_policy" => "settings.password_policy",
        "routing" => "settings.notification_routing",
        other => other,
    }
}

/// The domain's name of a facility field, as the facility form names it.
fn facility_field(field: &'static str) -> &'static str {
    match field {
        "facility_name" => "name",
        other => other,
    }
}

/// `422` naming the `cursor` parameter.
fn bad_cursor() -> ApiError {
    ApiError::invalid_field("cursor", "is not a cursor from a previous page of this list; start again without it")
}

impl From<ResolveOrganisationError> for ApiError {
    fn from(error: ResolveOrganisationError) -> Self {
        match error {
            ResolveOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<CreateOrganisationError> for ApiError {
    fn from(error: CreateOrganisationError) -> Self {
        let detail = error.to_string();
        match error {
            CreateOrganisationError::OperatorsOnly => ApiError::new(
                StatusCode::FORBIDDEN,
                "organisation-creation-restricted",
                "Only operators create organisations",
                detail,
            ),
            CreateOrganisationError::Invalid(invalid) => invalid.into(),
            CreateOrganisationError::AccountUnavailable => ApiError::unauthenticated(detail),
            CreateOrganisationError::EmailNotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "email-not-verified", "Email address not verified", detail)
            }
            CreateOrganisationError::PasswordChangeRequired => crate::problem::password_change_required(),
            CreateOrganisationError::SlugTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "slug-taken", "Slug taken", detail)
            }
            CreateOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ViewOrganisationError> for ApiError {
    fn from(error: ViewOrganisationError) -> Self {
        match error {
            ViewOrganisationError::Access(e) => e.into(),
            ViewOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<UpdateOrganisationError> for ApiError {
    fn from(error: UpdateOrganisationError) -> Self {
        let detail = error.to_string();
        match error {
            UpdateOrganisationError::Access(e) => e.into(),
            UpdateOrganisationError::Invalid(invalid) => ApiError::invalid(renamed(&invalid.0, update_field)),
            UpdateOrganisationError::Escalation { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "escalation", "More than you hold", detail)
            }
            UpdateOrganisationError::SlugTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "slug-taken", "Slug taken", detail)
            }
            UpdateOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ManageFacilityError> for ApiError {
    fn from(error: ManageFacilityError) -> Self {
        let detail = error.to_string();
        match error {
            ManageFacilityError::Access(e) => e.into(),
            ManageFacilityError::Invalid(invalid) => ApiError::invalid(renamed(&invalid.0, facility_field)),
            ManageFacilityError::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "facility-name-taken", "Facility name taken", detail)
            }
            ManageFacilityError::NotFound => ApiError::not_found("facility"),
            ManageFacilityError::Unexpected(e) => e.into(),
        }
    }
}

impl From<SetCapabilityError> for ApiError {
    fn from(error: SetCapabilityError) -> Self {
        let detail = error.to_string();
        match error {
            SetCapabilityError::Access(e) => e.into(),
            SetCapabilityError::UnknownCapability(key) => {
                ApiError::invalid_field(&format!("capabilities.{key}"), detail)
            }
            SetCapabilityError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RecordRunError> for ApiError {
    fn from(error: RecordRunError) -> Self {
        let detail = error.to_string();
        match error {
            RecordRunError::Access(e) => e.into(),
            RecordRunError::Invalid(invalid) => invalid.into(),
            RecordRunError::UnknownCapability(_) => ApiError::invalid_field("capability", detail),
            RecordRunError::CapabilityDisabled(_) => {
                ApiError::new(StatusCode::CONFLICT, "capability-disabled", "Capability switched off", detail)
            }
            RecordRunError::Unexpected(e) => e.into(),
        }
    }
}

// ----------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------

/// One page of a list the domain pages with an opaque cursor.
///
/// The domain reports a cursor its store did not issue as `Unexpected`, the same as a
/// storage failure. To answer a client's bad cursor with `422` (and a real failure with
/// `500`), a refused cursor is followed by the same read without one: if that succeeds,
/// the cursor was the problem. The same read first also makes an outsider's or a plain
/// member's bad cursor a `404` or `403`, like any other request of theirs.
async fn page_of<T, F, Fut>(fetch: F, limit: Option<u32>, cursor: Option<String>) -> ApiResult<Page<T>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, ViewOrganisationError>>,
{
    let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    let Some(cursor) = cursor else { return Ok(fetch(PageRequest::first(limit)).await?) };
    let plausible = !cursor.is_empty() && cursor.len() <= 512 && cursor.chars().all(|c| c.is_ascii_graphic());
    if plausible {
        match fetch(PageRequest { limit, after: Some(cursor) }).await {
            Ok(page) => return Ok(page),
            Err(ViewOrganisationError::Access(e)) => return Err(e.into()),
            Err(ViewOrganisationError::Unexpected(e)) => {
                tracing::debug!(error = %e, "a page read with a cursor failed; checking whether the cursor is at fault");
            }
        }
    }
    match fetch(PageRequest::first(1)).await {
        Ok(_) => Err(bad_cursor()),
        Err(e) => Err(e.into()),
    }
}

impl OrgsApi {
    fn organisations(&self) -> Organisations {
        self.0.guildhall.organisations()
    }

    /// Answers as the domain would answer this caller about this organisation before
    /// looking at the request (`404` for outsiders), for requests the adapter refuses
    /// itself (a malformed id), so that an outsider cannot tell organisations apart.
    async fn require_member(&self, caller: UserId, org: OrgId) -> ApiResult<()> {
        self.organisations().get(caller, org).await?;
        Ok(())
    }

    /// The facility id in a path; a malformed one reads as a facility that does not exist.
    async fn facility_id(&self, caller: UserId, org: OrgId, id: &str) -> ApiResult<FacilityId> {
        match FacilityId::parse(id) {
            Ok(id) => Ok(id),
            Err(_) => {
                self.require_member(caller, org).await?;
                Err(ApiError::not_found("facility"))
            }
        }
    }

    /// The name of each actor of `entries` the caller may see, by id.
    async fn actor_names(
        &self,
        caller: UserId,
        org: OrgId,
        entries: &[AuditEntry],
    ) -> ApiResult<BTreeMap<UserId, String>> {
        let actors: BTreeSet<UserId> = entries.iter().filter_map(|e| e.actor).collect();
        let members = self.0.guildhall.members();
        let mut names = BTreeMap::new();
        for actor in actors {
            match members.get(caller, org, actor).await {
                Ok(details) => {
                    names.insert(actor, details.user.name.full());
                }
                // A former member, or one the caller may not look up: no name.
                Err(MemberQueryError::Access(_) | MemberQueryError::MemberNotFound | MemberQueryError::Invalid(_)) => {}
                Err(MemberQueryError::Unexpected(e)) => return Err(e.into()),
            }
        }
        Ok(names)
    }
}

#[OpenApi(tag = "Tag::Organisations")]
impl OrgsApi {
    /// Create an organisation; the caller becomes its first administrator.
    ///
    /// Where the service lets only its operators create organisations, this is refused
    /// with `403 organisation-creation-restricted`; an operator creates it instead.
    #[oai(path = "/orgs", method = "post", operation_id = "create_org")]
    async fn create(&self, credentials: Credentials, body: Json<NewOrganisation>) -> ApiResult<Created> {
        let caller = self.0.caller(&credentials).await?;
        let org = self.organisations().create(caller.user(), &body.0.slug, &body.0.name).await?;
        Ok(Created::Created(Json(OrganisationBody::of(&org, self.0.guildhall.catalogue()))))
    }

    /// An organisation the caller belongs to, by id or slug, with its settings and capabilities.
    #[oai(path = "/orgs/:org", method = "get", operation_id = "get_org")]
    async fn get(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<OrganisationBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let view = self.organisations().get(caller.user(), org).await?;
        Ok(Json(OrganisationBody::with(&view.organisation, &view.capabilities)))
    }

    /// Change an organisation's name, slug or settings (needs `org.settings`).
    ///
    /// Every invalid field is reported at once. Changing the default role or the join
    /// policy also needs `members.manage`, and the default role may grant only what the
    /// caller holds. A change that changes nothing writes nothing.
    #[oai(path = "/orgs/:org", method = "patch", operation_id = "update_org")]
    async fn update(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<OrganisationPatch>,
    ) -> ApiResult<Json<OrganisationBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let Json(body) = body;
        let settings = body.settings.unwrap_or_default();
        let mut problems = Vec::new();
        let join_policy = settings.join_policy.and_then(|p| p.parse("settings.join_policy", &mut problems));
        let default_role = settings.default_role.and_then(|role| {
            RoleKey::parse(&role).map_err(|e| problems.push(field_error("settings.default_role", e.problem()))).ok()
        });
        let password_policy = settings.password_policy.and_then(|p| p.parse("settings.password_policy", &mut problems));
        if !problems.is_empty() {
            // Refuse as the domain would refuse this caller first (an empty update checks
            // access and writes nothing), then list the other fields' problems too.
            self.organisations().update(caller.user(), org, OrganisationUpdate::default()).await?;
            if let Some(Err(e)) = body.name.as_deref().map(OrgName::parse) {
                problems.push(field_error("name", e.problem()));
            }
            if let Some(Err(e)) = body.slug.as_deref().map(OrgSlug::parse) {
                problems.push(field_error("slug", e.problem()));
            }
            if let Some(Err(e)) = settings.invitation_lifetime_seconds.map(InvitationLifetime::from_seconds) {
                problems.push(field_error("settings.invitation_lifetime_seconds", e.problem()));
            }
            return Err(ApiError::invalid(problems));
        }
        let update = OrganisationUpdate {
            name: body.name,
            slug: body.slug,
            join_policy,
            default_role,
            invitation_lifetime_seconds: settings.invitation_lifetime_seconds,
            password_policy,
            routing: settings.notification_routing.map(|routing| routing.into_iter().collect()),
        };
        let organisation = self.organisations().update(caller.user(), org, update).await?;
        Ok(Json(OrganisationBody::of(&organisation, self.0.guildhall.catalogue())))
    }

    /// Every capability the installation declares and whether it is on for the organisation.
    #[oai(path = "/orgs/:org/capabilities", method = "get", operation_id = "list_org_capabilities")]
    async fn capabilities(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<Vec<CapabilityBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let states = self.organisations().capabilities(caller.user(), org).await?;
        Ok(Json(states.iter().map(CapabilityBody::of).collect()))
    }

    /// Switch capabilities on or off (needs `org.settings`); answers every capability's state.
    ///
    /// Every key is checked before anything is written: one unknown key refuses the whole
    /// request (`422`, naming `capabilities.<key>`). Each change is then saved on its own,
    /// in key order.
    #[oai(path = "/orgs/:org/capabilities", method = "put", operation_id = "set_org_capabilities")]
    async fn set_capabilities(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<CapabilityChanges>,
    ) -> ApiResult<Json<Vec<CapabilityBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        // Settings are checked before anything else, so that even an empty or invalid
        // change is refused to those who may not make one.
        self.0
            .guildhall
            .members()
            .authorize(caller.user(), &permissions::ORG_SETTINGS, &Scope::Organisation(org))
            .await
            .map_err(ApiError::from)?;
        let organisations = self.organisations();
        let mut states = organisations.capabilities(caller.user(), org).await?;
        let mut changes = Vec::new();
        let mut problems = Vec::new();
        for (raw, enabled) in body.0.capabilities {
            let known = CapabilityKey::parse(&raw).ok().filter(|key| states.iter().any(|s| s.def.key == *key));
            match known {
                Some(key) => changes.push((key, enabled)),
                None => problems.push(field_error(
                    &format!("capabilities.{raw}"),
                    format!("there is no capability called {raw:?}; see GET /orgs/{{org}}/capabilities for the list"),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::invalid(problems));
        }
        for (key, enabled) in changes {
            let state = organisations.set_capability(caller.user(), org, &key, enabled).await?;
            if let Some(slot) = states.iter_mut().find(|s| s.def.key == key) {
                *slot = state;
            }
        }
        Ok(Json(states.iter().map(CapabilityBody::of).collect()))
    }

    /// The organisation's run history, newest first (needs `runs.record`).
    #[oai(path = "/orgs/:org/runs", method = "get", operation_id = "list_org_runs")]
    async fn runs(
        &self,
        credentials: Credentials,
        org: Path<String>,
        /// Page size, 1 to 200 (50 when absent).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<RunPage>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let (organisations, user) = (self.organisations(), caller.user());
        let fetch = move |page| {
            let organisations = organisations.clone();
            async move { organisations.runs(user, org, page).await }
        };
        let page = page_of(fetch, limit.0, cursor.0).await?;
        Ok(Json(RunPage { items: page.items.iter().map(RunBody::of).collect(), next_cursor: page.next }))
    }

    /// Record a run of a capability (needs `runs.record`); the capability must be on.
    #[oai(path = "/orgs/:org/runs", method = "post", operation_id = "record_org_run")]
    async fn record_run(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<NewRun>,
    ) -> ApiResult<RunRecorded> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let Json(body) = body;
        let mut problems = Vec::new();
        let capability = CapabilityKey::parse(&body.capability)
            .map_err(|e| problems.push(field_error("capability", e.problem())))
            .ok();
        let outcome = match (body.outcome, body.detail) {
            (RunOutcomeBody::Succeeded, None) => Some(RunOutcome::Succeeded),
            (RunOutcomeBody::Succeeded, Some(_)) => {
                problems.push(field_error(
                    "detail",
                    "only partially_succeeded and failed runs have a detail; leave it out",
                ));
                None
            }
            // A missing detail is blank: the domain says what it needs.
            (RunOutcomeBody::PartiallySucceeded, detail) => {
                Some(RunOutcome::PartiallySucceeded { detail: detail.unwrap_or_default() })
            }
            (RunOutcomeBody::Failed, detail) => Some(RunOutcome::Failed { detail: detail.unwrap_or_default() }),
        };
        let (Some(capability), Some(outcome)) = (capability, outcome) else {
            // Refuse as the domain would refuse this caller first: reading runs needs the
            // same permission as recording them.
            self.organisations().runs(caller.user(), org, PageRequest::first(1)).await?;
            return Err(ApiError::invalid(problems));
        };
        let report = RunReport {
            capability,
            started_at: body.started_at,
            finished_at: body.finished_at,
            outcome,
            counts: body.counts,
        };
        let run = self.organisations().record_run(caller.user(), org, report).await?;
        Ok(RunRecorded::Created(Json(RunBody::of(&run))))
    }

    /// The organisation's facilities, by name (any member).
    #[oai(path = "/orgs/:org/facilities", method = "get", operation_id = "list_org_facilities")]
    async fn facilities(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<Vec<FacilityBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let facilities = self.organisations().facilities(caller.user(), org).await?;
        Ok(Json(facilities.iter().map(FacilityBody::of).collect()))
    }

    /// Add a facility (needs `org.settings`).
    #[oai(path = "/orgs/:org/facilities", method = "post", operation_id = "create_org_facility")]
    async fn create_facility(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<FacilityForm>,
    ) -> ApiResult<FacilityCreated> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let facility = self.organisations().create_facility(caller.user(), org, &body.0.name).await?;
        Ok(FacilityCreated::Created(Json(FacilityBody::of(&facility))))
    }

    /// Rename a facility (needs `org.settings`).
    #[oai(path = "/orgs/:org/facilities/:id", method = "patch", operation_id = "rename_org_facility")]
    async fn rename_facility(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
        body: Json<FacilityForm>,
    ) -> ApiResult<Json<FacilityBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = self.facility_id(caller.user(), org, &id.0).await?;
        let facility = self.organisations().rename_facility(caller.user(), org, id, &body.0.name).await?;
        Ok(Json(FacilityBody::of(&facility)))
    }

    /// Delete a facility and detach its members from it (needs `org.settings`); answers
    /// the deleted facility.
    #[oai(path = "/orgs/:org/facilities/:id", method = "delete", operation_id = "delete_org_facility")]
    async fn delete_facility(
        &self,
        credentials: Credentials,
        org: Path<String>,
        id: Path<String>,
    ) -> ApiResult<Json<FacilityBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let id = self.facility_id(caller.user(), org, &id.0).await?;
        let facility = self.organisations().delete_facility(caller.user(), org, id).await?;
        Ok(Json(FacilityBody::of(&facility)))
    }

    /// The organisation's audit log, newest first (needs `audit.view`).
    #[oai(path = "/orgs/:org/audit", method = "get", operation_id = "list_org_audit")]
    async fn audit(
        &self,
        credentials: Credentials,
        org: Path<String>,
        /// Page size, 1 to 200 (50 when absent).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AuditPage>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let (organisations, user) = (self.organisations(), caller.user());
        let fetch = move |page| {
            let organisations = organisations.clone();
            async move { organisations.audit_log(user, org, page).await }
        };
        let page = page_of(fetch, limit.0, cursor.0).await?;
        let names = self.actor_names(user, org, &page.items).await?;
        let items = page
            .items
            .iter()
            .map(|entry| AuditEntryBody {
                id: entry.id.to_string(),
                actor_id: entry.actor.map(|a| a.to_string()),
                actor_name: entry.actor.and_then(|a| names.get(&a).cloned()),
                action: entry.action.as_str().to_owned(),
                target: AuditTargetBody::of(&entry.target),
                at: entry.at,
                changes: entry.changes.iter().map(FieldChangeBody::of).collect(),
            })
            .collect();
        Ok(Json(AuditPage { items, next_cursor: page.next }))
    }

    /// The organisation's messages that could not be delivered, newest first (needs
    /// `org.settings`, the permission that decides where failure reports go).
    #[oai(path = "/orgs/:org/undelivered", method = "get", operation_id = "list_org_undelivered")]
    async fn undelivered(
        &self,
        credentials: Credentials,
        org: Path<String>,
        /// Page size, 1 to 200 (50 when absent).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<UndeliveredPage>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let (organisations, user) = (self.organisations(), caller.user());
        let fetch = move |page| {
            let organisations = organisations.clone();
            async move { organisations.undelivered(user, org, page).await }
        };
        let page = page_of(fetch, limit.0, cursor.0).await?;
        Ok(Json(UndeliveredPage {
            items: page.items.iter().map(UndeliveredBody::of).collect(),
            next_cursor: page.next,
        }))
    }
}
