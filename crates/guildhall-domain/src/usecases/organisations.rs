//! Create and configure organisations: settings, notification routing, facilities,
//! capabilities, run history and the audit log.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Context, OrgRef, OrganisationCreation, unexpected_duplicate};
use crate::audit::{AuditAction, AuditEntry, AuditTarget, FieldChange};
use crate::catalogue::{CapabilityDef, Catalogue, permissions};
use crate::error::{AccessError, Invalid, Unexpected, from_store_error};
use crate::ids::{FacilityId, OrgId, RunId, UserId};
use crate::membership::{Membership, MembershipOrigin};
use crate::org::{
    Facility, InvitationLifetime, JoinPolicy, NotificationRouting, OrgSettings, Organisation, RunOutcome, RunRecord,
};
use crate::password::PasswordPolicy;
use crate::policy::{InvariantViolation, check_no_escalation};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition, UndeliveredEmail};
use crate::query::{Page, PageRequest};
use crate::role::builtin;
use crate::values::{CapabilityKey, EmailAddress, FacilityName, InvalidValue, OrgName, OrgSlug, RoleKey, Topic};

/// Organisations and their configuration.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Organisations {
    pub(crate) ctx: Context,
}

/// Whether a capability is on for an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityState {
    /// The capability as the catalogue declares it.
    pub def: CapabilityDef,
    /// Whether it is on for this organisation (its own setting, else the default).
    pub enabled: bool,
}

/// What a member sees of their organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationView {
    /// The organisation and its settings.
    pub organisation: Organisation,
    /// Every declared capability and whether it is on, in key order.
    pub capabilities: Vec<CapabilityState>,
}

/// A change to an organisation's name, slug and settings; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrganisationUpdate {
    /// The display name.
    pub name: Option<String>,
    /// The URL name.
    pub slug: Option<String>,
    /// Who may join without an invitation.
    pub join_policy: Option<JoinPolicy>,
    /// The role given to people who join by request or verified domain.
    pub default_role: Option<RoleKey>,
    /// How long invitations stay valid, in seconds (one hour to 30 days).
    pub invitation_lifetime_seconds: Option<i64>,
    /// The password rules for members.
    pub password_policy: Option<PasswordPolicy>,
    /// Shared addresses per topic key; replaces the whole routing (topics left out are
    /// no longer routed).
    pub routing: Option<Vec<(String, Vec<String>)>>,
}

/// A run of a capability, as the embedder reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The capability that ran.
    pub capability: CapabilityKey,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (not before it started).
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Counters (`patients_contacted`: 120): at most [`RunReport::MAX_COUNTS`], each name
    /// non-blank and at most [`RunReport::MAX_COUNT_NAME_CHARS`] characters.
    pub counts: BTreeMap<String, u64>,
}

impl RunReport {
    /// The most counters one run may report.
    pub const MAX_COUNTS: usize = 50;
    /// The longest counter name, in characters.
    pub const MAX_COUNT_NAME_CHARS: usize = 64;
    /// The longest outcome detail, in characters.
    pub const MAX_DETAIL_CHARS: usize = 1000;
}

/// [`Organisations::create`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrganisationError {
    /// The service lets only its operators create organisations
    /// ([`OrganisationCreation::OperatorsOnly`]).
    #[error("only the service's operators may create organisations here; ask one to create it for you")]
    OperatorsOnly,
    /// The slug or the name is not valid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The actor's account is disabled or no longer exists.
    #[error("your account is disabled or no longer exists, so it cannot create an organisation")]
    AccountUnavailable,
    /// The actor's address is not verified yet.
    #[error("verify your email address first, then create the organisation")]
    EmailNotVerified,
    /// The account must change its password first (a temporary password, or one that no
    /// longer meets the rules): until then it can do nothing else.
    #[error("change your password first; until then your account can do nothing else")]
    PasswordChangeRequired,

    /// Another organisation has this slug.
    #[error("the slug \"{0}\" is already used by another organisation; choose another")]
    SlugTaken(OrgSlug),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::resolve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveOrganisationError {
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::get`], [`Organisations::facilities`], [`Organisations::capabilities`],
/// [`Organisations::runs`] or [`Organisations::audit_log`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewOrganisationError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Something unexpected (also a page cursor the store did not issue).
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::update`] failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateOrganisationError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Some fields are not valid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The new default role grants more than the actor holds.
    #[error(
        "people who join would get the role {role}, but {violation}; choose a role within your own permissions or ask an administrator"
    )]
    Escalation {
        /// The default role the update would give joiners.
        role: RoleKey,
        /// What the actor lacks.
        violation: InvariantViolation,
    },
    /// Another organisation has the new slug.
    #[error("the slug \"{0}\" is already used by another organisation; choose another")]
    SlugTaken(OrgSlug),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::create_facility`], [`Organisations::rename_facility`] or
/// [`Organisations::delete_facility`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageFacilityError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The name is not valid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Another facility of the organisation has this name (ignoring letter case).
    #[error("this organisation already has a facility called \"{0}\"; choose another name")]
    NameTaken(FacilityName),
    /// No such facility in this organisation (rename and delete only).
    #[error("facility not found; it may have been deleted already")]
    NotFound,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::set_capability`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SetCapabilityError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The catalogue declares no such capability.
    #[error("there is no capability called \"{0}\"")]
    UnknownCapability(CapabilityKey),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Organisations::record_run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordRunError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The report is not valid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The catalogue declares no such capability.
    #[error("there is no capability called \"{0}\"")]
    UnknownCapability(CapabilityKey),
    /// The capability is switched off for the organisation.
    #[error(
        "{0} is switched off for this organisation, so its runs cannot be recorded; someone with the org.settings permission can switch it on"
    )]
    CapabilityDisabled(CapabilityKey),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(
    CreateOrganisationError,
    ResolveOrganisationError,
    ViewOrganisationError,
    UpdateOrganisationError,
    ManageFacilityError,
    SetCapabilityError,
    RecordRunError
);

impl Organisations {
    /// The largest page of runs or audit entries.
    pub const MAX_PAGE_LIMIT: u32 = 200;

    /// Creates an organisation with default settings; `actor` becomes its first member,
    /// an administrator.
    ///
    /// # Errors
    /// See [`CreateOrganisationError`]: refused first when the service lets only its
    /// operators create organisations ([`Settings::organisation_creation`](super::Settings::organisation_creation));
    /// then every invalid field at once, then the account must be active with a verified
    /// address, and the slug must be free.
    pub async fn create(&self, actor: UserId, slug: &str, name: &str) -> Result<Organisation, CreateOrganisationError> {
        if self.ctx.settings.organisation_creation == OrganisationCreation::OperatorsOnly {
            return Err(CreateOrganisationError::OperatorsOnly);
        }
        let (slug, name) = match (OrgSlug::parse(slug), OrgName::parse(name)) {
            (Ok(slug), Ok(name)) => (slug, name),
            (slug, name) => return Err(Invalid([slug.err(), name.err()].into_iter().flatten().collect()).into()),
        };
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let account = ctx.ports.users.user(actor).await?;
                let account = account.filter(|a| a.is_active()).ok_or(CreateOrganisationError::AccountUnavailable)?;
                if account.password.must_change {
                    return Err(CreateOrganisationError::PasswordChangeRequired);
                }
                if !account.is_verified() {
                    return Err(CreateOrganisationError::EmailNotVerified);
                }
                let now = ctx.now();
                let organisation = Organisation {
                    id: OrgId::from_uuid(ctx.new_id()),
                    slug: slug.clone(),
                    name: name.clone(),
                    settings: OrgSettings::default(),
                    created_by: actor,
                    created_at: now,
                    version: 0,
                };
                let founder = Membership::new(
                    organisation.id,
                    actor,
                    builtin::ADMINISTRATOR,
                    MembershipOrigin::Founder,
                    None,
                    now,
                );
                let mut changes = ChangeSet::new();
                changes
                    .push(Change::InsertOrganisation(organisation.clone()))
                    .push(Change::InsertMembership(founder))
                    .audit(ctx.audit(
                        Some(organisation.id),
                        Some(actor),
                        AuditAction::OrgCreated,
                        AuditTarget::Organisation(organisation.id),
                        vec![
                            FieldChange::new("slug", None::<String>, Some(&slug)),
                            FieldChange::new("name", None::<String>, Some(&name)),
                        ],
                    ));
                Ok((organisation, changes))
            },
            |duplicate| match duplicate {
                Duplicate::Slug => CreateOrganisationError::SlugTaken(slug.clone()),
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// The id of the organisation a client referred to by id or slug, if it exists.
    ///
    /// Checks no access: callers go on to an org-scoped use case, which answers a
    /// non-member exactly as it answers a missing organisation. Adapters MUST answer a
    /// reference that does not resolve exactly as they answer `AccessError::NotFound`
    /// (one 404 body), or `resolve` would tell strangers which slugs exist.
    ///
    /// # Errors
    /// Only [`ResolveOrganisationError::Unexpected`].
    pub async fn resolve(&self, org: &OrgRef) -> Result<Option<OrgId>, ResolveOrganisationError> {
        let organisations = &self.ctx.ports.organisations;
        let found = match org {
            OrgRef::Id(id) => organisations.organisation(*id).await?,
            OrgRef::Slug(slug) => organisations.organisation_by_slug(slug).await?,
        };
        Ok(found.map(|organisation| organisation.id))
    }

    /// The organisation, its settings and its capabilities, for any active member.
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn get(&self, actor: UserId, org: OrgId) -> Result<OrganisationView, ViewOrganisationError> {
        let access = self.ctx.active_access::<ViewOrganisationError>(org, actor).await?;
        let capabilities = capability_states(&self.ctx.catalogue, &access.org);
        Ok(OrganisationView { organisation: access.org, capabilities })
    }

    /// Changes the organisation's name, slug and settings; needs `org.settings`.
    ///
    /// Every field is checked and every problem reported at once. Giving joiners a new
    /// default role, or switching to a join policy that admits people at once
    /// (verified domains with auto-approval), is allowed only when that role's
    /// permissions are all held by the actor. An update that changes nothing writes
    /// nothing.
    ///
    /// # Errors
    /// See [`UpdateOrganisationError`].
    pub async fn update(
        &self,
        actor: UserId,
        org: OrgId,
        update: OrganisationUpdate,
    ) -> Result<Organisation, UpdateOrganisationError> {
        let ctx = &self.ctx;
        let parsed = ParsedUpdate::parse(&ctx.catalogue, &update);
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<UpdateOrganisationError>(org, actor, &permissions::ORG_SETTINGS).await?;
                let current = &access.org;
                let mut problems = parsed.problems.clone();
                if let Some(role) = &parsed.default_role
                    && access.roles.get(role).is_none()
                {
                    let known: Vec<String> = access.roles.iter().map(|r| r.key.to_string()).collect();
                    problems.push(InvalidValue::new(
                        "default_role",
                        format!("there is no role \"{role}\" in this organisation; choose one of {}", known.join(", ")),
                    ));
                }
                if !problems.is_empty() {
                    return Err(Invalid(problems).into());
                }
                let next = parsed.apply(current);
                let fields = changed_fields(current, &next);
                if fields.is_empty() {
                    return Ok((current.clone(), ChangeSet::new()));
                }
                let role_changed = next.settings.default_role != current.settings.default_role;
                let policy_changed = next.settings.join_policy != current.settings.join_policy;
                if role_changed || policy_changed {
                    // Who may join, and as what, is member management, not just a setting.
                    access.require(&ctx.catalogue, &permissions::MEMBERS_MANAGE, ctx.now())?;
                }
                if role_changed || (policy_changed && admits_at_once(&next.settings.join_policy)) {
                    let now = ctx.now();
                    let granted = access.policy(&ctx.catalogue).role_permissions(&next.settings.default_role);
                    check_no_escalation(&access.held(&ctx.catalogue, now), &granted).map_err(|violation| {
                        UpdateOrganisationError::Escalation { role: next.settings.default_role.clone(), violation }
                    })?;
                }
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: current.version })
                    .push(Change::UpdateOrganisation(next.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::OrgSettingsChanged,
                        AuditTarget::Organisation(org),
                        fields,
                    ));
                Ok((next, changes))
            },
            |duplicate| match (duplicate, &parsed.slug) {
                (Duplicate::Slug, Some(slug)) => UpdateOrganisationError::SlugTaken(slug.clone()),
                (other, _) => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// The organisation's facilities, by name, for any active member.
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn facilities(&self, actor: UserId, org: OrgId) -> Result<Vec<Facility>, ViewOrganisationError> {
        self.ctx.active_access::<ViewOrganisationError>(org, actor).await?;
        Ok(self.ctx.ports.organisations.facilities(org).await?)
    }

    /// Adds a facility; needs `org.settings`. Names are unique ignoring letter case.
    ///
    /// # Errors
    /// See [`ManageFacilityError`].
    pub async fn create_facility(
        &self,
        actor: UserId,
        org: OrgId,
        name: &str,
    ) -> Result<Facility, ManageFacilityError> {
        let ctx = &self.ctx;
        let name = FacilityName::parse(name);
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<ManageFacilityError>(org, actor, &permissions::ORG_SETTINGS).await?;
                let name = name.clone().map_err(Invalid::from)?;
                let existing = ctx.ports.organisations.facilities(org).await?;
                if let Some(clash) = existing.iter().find(|f| same_name(&f.name, &name)) {
                    return Err(ManageFacilityError::NameTaken(clash.name.clone()));
                }
                let facility = Facility {
                    id: FacilityId::from_uuid(ctx.new_id()),
                    org,
                    name: name.clone(),
                    created_at: ctx.now(),
                };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .push(Change::InsertFacility(facility.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::FacilityCreated,
                        AuditTarget::Facility(facility.id),
                        vec![FieldChange::new("name", None::<String>, Some(&name))],
                    ));
                Ok((facility, changes))
            },
            |duplicate| facility_duplicate(duplicate, name.as_ref().ok()),
        )
        .await
    }

    /// Renames a facility; needs `org.settings`. Changing only the letter case is allowed.
    ///
    /// # Errors
    /// See [`ManageFacilityError`].
    pub async fn rename_facility(
        &self,
        actor: UserId,
        org: OrgId,
        id: FacilityId,
        name: &str,
    ) -> Result<Facility, ManageFacilityError> {
        let ctx = &self.ctx;
        let name = FacilityName::parse(name);
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<ManageFacilityError>(org, actor, &permissions::ORG_SETTINGS).await?;
                let name = name.clone().map_err(Invalid::from)?;
                let existing = ctx.ports.organisations.facilities(org).await?;
                let current = existing.iter().find(|f| f.id == id).ok_or(ManageFacilityError::NotFound)?;
                if current.name == name {
                    return Ok((current.clone(), ChangeSet::new()));
                }
                if let Some(clash) = existing.iter().find(|f| f.id != id && same_name(&f.name, &name)) {
                    return Err(ManageFacilityError::NameTaken(clash.name.clone()));
                }
                let renamed = Facility { name: name.clone(), ..current.clone() };
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .push(Change::UpdateFacility(renamed.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::FacilityRenamed,
                        AuditTarget::Facility(id),
                        vec![FieldChange::new("name", Some(&current.name), Some(&name))],
                    ));
                Ok((renamed, changes))
            },
            |duplicate| facility_duplicate(duplicate, name.as_ref().ok()),
        )
        .await
    }

    /// Deletes a facility and removes it from every member attributed to it; needs
    /// `org.settings`. Returns the deleted facility.
    ///
    /// # Errors
    /// See [`ManageFacilityError`].
    pub async fn delete_facility(
        &self,
        actor: UserId,
        org: OrgId,
        id: FacilityId,
    ) -> Result<Facility, ManageFacilityError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<ManageFacilityError>(org, actor, &permissions::ORG_SETTINGS).await?;
                let existing = ctx.ports.organisations.facilities(org).await?;
                let current = existing.into_iter().find(|f| f.id == id).ok_or(ManageFacilityError::NotFound)?;
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .push(Change::DeleteFacility { org, id })
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::FacilityDeleted,
                        AuditTarget::Facility(id),
                        vec![FieldChange::new("name", Some(&current.name), None::<String>)],
                    ));
                Ok((current, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Every capability the catalogue declares and whether it is on for the organisation,
    /// in key order, for any active member.
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn capabilities(&self, actor: UserId, org: OrgId) -> Result<Vec<CapabilityState>, ViewOrganisationError> {
        let access = self.ctx.active_access::<ViewOrganisationError>(org, actor).await?;
        Ok(capability_states(&self.ctx.catalogue, &access.org))
    }

    /// Switches a capability on or off for the organisation; needs `org.settings`.
    ///
    /// The organisation keeps a setting only while it differs from the catalogue default,
    /// so switching back to the default follows later changes of that default. Setting
    /// the state it already has writes nothing.
    ///
    /// # Errors
    /// See [`SetCapabilityError`].
    pub async fn set_capability(
        &self,
        actor: UserId,
        org: OrgId,
        key: &CapabilityKey,
        enabled: bool,
    ) -> Result<CapabilityState, SetCapabilityError> {
        let ctx = &self.ctx;
        let def = ctx.catalogue.capability(key);
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<SetCapabilityError>(org, actor, &permissions::ORG_SETTINGS).await?;
                let def = def.ok_or_else(|| SetCapabilityError::UnknownCapability(key.clone()))?;
                let state = CapabilityState { def: def.clone(), enabled };
                let before = access.org.capability_enabled(&ctx.catalogue, key);
                if before == enabled {
                    return Ok((state, ChangeSet::new()));
                }
                let mut next = access.org.clone();
                if enabled == def.enabled_by_default {
                    next.settings.capabilities.remove(key);
                } else {
                    next.settings.capabilities.insert(key.clone(), enabled);
                }
                next.version = access.org.version.saturating_add(1);
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .push(Change::UpdateOrganisation(next))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::CapabilityToggled,
                        AuditTarget::Capability(key.clone()),
                        vec![FieldChange::new("enabled", Some(before), Some(enabled))],
                    ));
                Ok((state, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Records a run of a capability (an automated recall run, a rule evaluation);
    /// needs `runs.record`.
    ///
    /// Any declared capability may report runs, whatever its
    /// [`kind`](crate::catalogue::CapabilityKind): the kind only changes how it is
    /// presented, and rules and services run too. The capability must be on for the
    /// organisation, so that runs of a switched-off service show up as an error in the
    /// embedder rather than as history nobody asked for.
    ///
    /// # Errors
    /// See [`RecordRunError`]: every problem with the report at once (finish before
    /// start, blank or over-long counter names, too many counters, a blank or over-long
    /// outcome detail), then the capability must be declared and on.
    pub async fn record_run(&self, actor: UserId, org: OrgId, report: RunReport) -> Result<RunRecord, RecordRunError> {
        let ctx = &self.ctx;
        let problems = run_report_problems(&report);
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<RecordRunError>(org, actor, &permissions::RUNS_RECORD).await?;
                if !problems.is_empty() {
                    return Err(Invalid(problems.clone()).into());
                }
                if ctx.catalogue.capability(&report.capability).is_none() {
                    return Err(RecordRunError::UnknownCapability(report.capability.clone()));
                }
                if !access.org.capability_enabled(&ctx.catalogue, &report.capability) {
                    return Err(RecordRunError::CapabilityDisabled(report.capability.clone()));
                }
                let run = RunRecord {
                    id: RunId::from_uuid(ctx.new_id()),
                    org,
                    capability: report.capability.clone(),
                    started_at: report.started_at,
                    finished_at: report.finished_at,
                    outcome: report.outcome.clone(),
                    counts: report.counts.clone(),
                    recorded_by: actor,
                };
                let mut changes = ChangeSet::new();
                // Recording a run changes no setting, so it must not make administrators'
                // concurrent changes decide again; it must fail if the capability was
                // switched off (or the recorder's access changed) meanwhile.
                changes
                    .require(Precondition::OrgUnchanged { org, version: access.org.version })
                    .push(Change::InsertRun(run.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::RunRecorded,
                        AuditTarget::Run(run.id),
                        vec![
                            FieldChange::new("capability", None::<String>, Some(&run.capability)),
                            FieldChange::new("outcome", None::<String>, Some(outcome_name(&run.outcome))),
                        ],
                    ));
                Ok((run, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// One page of the organisation's run history, newest first; needs `runs.record`.
    /// The page size is clamped to 1..=[`Self::MAX_PAGE_LIMIT`].
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn runs(
        &self,
        actor: UserId,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<RunRecord>, ViewOrganisationError> {
        let ctx = &self.ctx;
        ctx.authorized::<ViewOrganisationError>(org, actor, &permissions::RUNS_RECORD).await?;
        Ok(ctx.ports.organisations.runs(org, clamp(page)).await?)
    }

    /// One page of the organisation's audit log, newest first; needs `audit.view`.
    /// The page size is clamped to 1..=[`Self::MAX_PAGE_LIMIT`].
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn audit_log(
        &self,
        actor: UserId,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, ViewOrganisationError> {
        let ctx = &self.ctx;
        ctx.authorized::<ViewOrganisationError>(org, actor, &permissions::AUDIT_VIEW).await?;
        Ok(ctx.ports.audit_log.audit_entries(org, clamp(page)).await?)
    }

    /// One page of the organisation's messages that could not be delivered (dead
    /// letters), newest first; needs `org.settings`, the permission that sets where
    /// failure reports go. The page size is clamped to 1..=[`Self::MAX_PAGE_LIMIT`].
    ///
    /// # Errors
    /// See [`ViewOrganisationError`].
    pub async fn undelivered(
        &self,
        actor: UserId,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<UndeliveredEmail>, ViewOrganisationError> {
        let ctx = &self.ctx;
        ctx.authorized::<ViewOrganisationError>(org, actor, &permissions::ORG_SETTINGS).await?;
        Ok(ctx.ports.deliveries.undelivered(org, clamp(page)).await?)
    }
}

/// An [`OrganisationUpdate`] checked as far as it can be without the organisation.
struct ParsedUpdate {
    name: Option<OrgName>,
    slug: Option<OrgSlug>,
    join_policy: Option<JoinPolicy>,
    default_role: Option<RoleKey>,
    invitation_lifetime: Option<InvitationLifetime>,
    password_policy: Option<PasswordPolicy>,
    routing: Option<NotificationRouting>,
    problems: Vec<InvalidValue>,
}

impl ParsedUpdate {
    fn parse(catalogue: &Catalogue, update: &OrganisationUpdate) -> Self {
        let mut problems = Vec::new();
        let name = update.name.as_deref().and_then(|name| keep(&mut problems, OrgName::parse(name)));
        let slug = update.slug.as_deref().and_then(|slug| keep(&mut problems, OrgSlug::parse(slug)));
        let invitation_lifetime = update.invitation_lifetime_seconds.and_then(|seconds| {
            let lifetime = InvitationLifetime::from_seconds(seconds);
            keep(&mut problems, lifetime.map_err(|problem| problem.for_field("invitation_lifetime_seconds")))
        });
        let join_policy = match &update.join_policy {
            Some(JoinPolicy::VerifiedDomains { domains, .. }) if domains.is_empty() => {
                problems.push(InvalidValue::new(
                    "join_policy",
                    "list at least one email domain whose verified addresses may join, or choose another join policy",
                ));
                None
            }
            other => other.clone(),
        };
        let routing = update.routing.as_deref().and_then(|entries| match parse_routing(catalogue, entries) {
            Ok(routing) => Some(routing),
            Err(more) => {
                problems.extend(more);
                None
            }
        });
        Self {
            name,
            slug,
            join_policy,
            default_role: update.default_role.clone(),
            invitation_lifetime,
            password_policy: update.password_policy.clone(),
            routing,
            problems,
        }
    }

    /// The organisation with the update applied; the version is the one the commit gives.
    fn apply(&self, current: &Organisation) -> Organisation {
        let mut next = current.clone();
        let settings = &mut next.settings;
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        if let Some(slug) = &self.slug {
            next.slug = slug.clone();
        }
        if let Some(policy) = &self.join_policy {
            settings.join_policy = policy.clone();
        }
        if let Some(role) = &self.default_role {
            settings.default_role = role.clone();
        }
        if let Some(lifetime) = self.invitation_lifetime {
            settings.invitation_lifetime = lifetime;
        }
        if let Some(policy) = &self.password_policy {
            settings.password_policy = policy.clone();
        }
        if let Some(routing) = &self.routing {
            settings.routing = routing.clone();
        }
        next.version = current.version.saturating_add(1);
        next
    }
}

/// The value, or `None` with its problem noted.
fn keep<T>(problems: &mut Vec<InvalidValue>, result: Result<T, InvalidValue>) -> Option<T> {
    result.map_err(|problem| problems.push(problem)).ok()
}

/// Reads topic keys and addresses, reporting every problem (bad topic, bad address,
/// repeated topic, unknown topic, too many addresses) at once.
fn parse_routing(
    catalogue: &Catalogue,
    entries: &[(String, Vec<String>)],
) -> Result<NotificationRouting, Vec<InvalidValue>> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::new();
    for (raw_topic, raw_addresses) in entries {
        let topic = Topic::parse(raw_topic).ok();
        if topic.is_none() {
            problems.push(InvalidValue::new("routing", format!("there is no notification topic called {raw_topic:?}")));
        }
        let mut addresses = BTreeSet::new();
        for raw in raw_addresses {
            match EmailAddress::parse(raw) {
                Ok(address) => {
                    addresses.insert(address);
                }
                Err(problem) => problems.push(InvalidValue::new(
                    "routing",
                    format!("{}: {raw:?} is not a valid email address: {}", raw_topic.trim(), problem.problem()),
                )),
            }
        }
        if let Some(topic) = topic {
            if seen.insert(topic.clone()) {
                parsed.push((topic, addresses));
            } else {
                problems.push(InvalidValue::new(
                    "routing",
                    format!("{topic} is listed more than once; give all its addresses in one entry"),
                ));
            }
        }
    }
    match NotificationRouting::new(catalogue, parsed) {
        Ok(routing) if problems.is_empty() => Ok(routing),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// One [`FieldChange`] per field that differs; the password policy as its rules.
fn changed_fields(before: &Organisation, after: &Organisation) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let mut compare = |field: &str, before: String, after: String| {
        if before != after {
            fields.push(FieldChange::new(field, Some(before), Some(after)));
        }
    };
    let (b, a) = (&before.settings, &after.settings);
    compare("name", before.name.to_string(), after.name.to_string());
    compare("slug", before.slug.to_string(), after.slug.to_string());
    compare("join_policy", describe_join_policy(&b.join_policy), describe_join_policy(&a.join_policy));
    compare("default_role", b.default_role.to_string(), a.default_role.to_string());
    compare(
        "invitation_lifetime_seconds",
        b.invitation_lifetime.seconds().to_string(),
        a.invitation_lifetime.seconds().to_string(),
    );
    compare("password_policy", b.password_policy.rules().join("; "), a.password_policy.rules().join("; "));
    compare("routing", describe_routing(&b.routing), describe_routing(&a.routing));
    fields
}

fn describe_join_policy(policy: &JoinPolicy) -> String {
    match policy {
        JoinPolicy::InvitationOnly => "invitation only".to_owned(),
        JoinPolicy::RequestsAllowed => "requests allowed".to_owned(),
        JoinPolicy::VerifiedDomains { domains, auto_approve } => {
            let domains: Vec<&str> = domains.iter().map(|d| d.as_str()).collect();
            let how = if *auto_approve { "join at once" } else { "by request" };
            format!("verified addresses at {} ({how})", domains.join(", "))
        }
    }
}

fn describe_routing(routing: &NotificationRouting) -> String {
    let topics: Vec<String> = routing
        .iter()
        .map(|(topic, addresses)| {
            let addresses: Vec<&str> = addresses.iter().map(EmailAddress::as_str).collect();
            format!("{topic}: {}", addresses.join(", "))
        })
        .collect();
    if topics.is_empty() { "none".to_owned() } else { topics.join("; ") }
}

/// Whether the policy makes people members without anyone deciding.
fn admits_at_once(policy: &JoinPolicy) -> bool {
    matches!(policy, JoinPolicy::VerifiedDomains { auto_approve: true, .. })
}

fn capability_states(catalogue: &Catalogue, org: &Organisation) -> Vec<CapabilityState> {
    catalogue
        .capabilities()
        .map(|def| CapabilityState { enabled: org.capability_enabled(catalogue, &def.key), def: def.clone() })
        .collect()
}

fn same_name(a: &FacilityName, b: &FacilityName) -> bool {
    a.as_str().to_lowercase() == b.as_str().to_lowercase()
}

fn facility_duplicate(duplicate: Duplicate, name: Option<&FacilityName>) -> ManageFacilityError {
    match (duplicate, name) {
        (Duplicate::FacilityName, Some(name)) => ManageFacilityError::NameTaken(name.clone()),
        (other, _) => unexpected_duplicate(other),
    }
}

fn run_report_problems(report: &RunReport) -> Vec<InvalidValue> {
    let mut problems = Vec::new();
    if report.finished_at < report.started_at {
        problems.push(InvalidValue::new(
            "finished_at",
            format!(
                "{} is before the start ({}); a run cannot finish before it starts",
                report.finished_at, report.started_at
            ),
        ));
    }
    if report.counts.len() > RunReport::MAX_COUNTS {
        problems.push(InvalidValue::new(
            "counts",
            format!("at most {} counts may be reported; got {}", RunReport::MAX_COUNTS, report.counts.len()),
        ));
    }
    for key in report.counts.keys() {
        let length = key.chars().count();
        if key.trim().is_empty() {
            problems.push(InvalidValue::new("counts", "every count needs a name; one name is blank"));
        } else if length > RunReport::MAX_COUNT_NAME_CHARS {
            problems.push(InvalidValue::new(
                "counts",
                format!(
                    "the count name {key:?} has {length} characters; at most {} are allowed",
                    RunReport::MAX_COUNT_NAME_CHARS
                ),
            ));
        } else if key.chars().any(char::is_control) {
            problems.push(InvalidValue::new("counts", format!("the count name {key:?} contains control characters")));
        }
    }
    if let RunOutcome::PartiallySucceeded { detail } | RunOutcome::Failed { detail } = &report.outcome {
        let length = detail.chars().count();
        if detail.trim().is_empty() {
            problems.push(InvalidValue::new("detail", "say what went wrong; the detail must not be blank"));
        } else if length > RunReport::MAX_DETAIL_CHARS {
            problems.push(InvalidValue::new(
                "detail",
                format!("must be at most {} characters long (it has {length})", RunReport::MAX_DETAIL_CHARS),
            ));
        }
    }
    problems
}

fn outcome_name(outcome: &RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::PartiallySucceeded { .. } => "partially succeeded",
        RunOutcome::Failed { .. } => "failed",
    }
}

fn clamp(page: PageRequest) -> PageRequest {
    PageRequest { limit: page.limit.clamp(1, Organisations::MAX_PAGE_LIMIT), after: page.after }
}
