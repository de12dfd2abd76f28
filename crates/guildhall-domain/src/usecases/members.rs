//! Members: administrator-created accounts, linking, edits, suspension, removal,
//! leaving, search and permission checks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Context, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::catalogue::permissions;
use crate::error::{AccessError, Invalid, Unexpected, from_store_error};
use crate::ids::{FacilityId, InvitationId, OrgId, UserId};
use crate::membership::{AccessScope, AccessSettings, MemberState, Membership, MembershipOrigin, MembershipStatus};
use crate::notification::Notification;
use crate::password::PasswordPolicy;
use crate::policy::{
    InvariantViolation, check_access_grant, check_administrators_remain, check_no_escalation, check_not_outranked,
};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition};
use crate::query::{MemberCursor, MemberPage, MemberQuery};
use crate::role::{Explanation, RolePolicy, Scope};
use crate::user::{PasswordState, TemporaryPassword, User, UserStatus};
use crate::values::{
    AlertKind, EmailAddress, InvalidValue, Permission, PersonName, PhoneNumber, Position, ResourceKind, RoleKey,
    parse_optional,
};

/// Members of organisations.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Members {
    pub(crate) ctx: Context,
}

/// The membership fields an administrator sets (creating or editing a member).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSettings {
    /// Job title.
    pub position: Option<String>,
    /// Facilities the member is attributed to.
    pub facilities: BTreeSet<FacilityId>,
    /// Whether the member is an aide.
    pub aide: bool,
    /// Access scope per resource kind.
    pub access: BTreeMap<ResourceKind, AccessScope>,
    /// Alerts the member receives.
    pub alerts: BTreeSet<AlertKind>,
}

/// An administrator's form for a new member (the analytics and physio seeds' "create
/// user").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMember {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address: the username.
    pub email: String,
    /// Phone number, if any.
    pub phone: Option<String>,
    /// Role.
    pub role: String,
    /// Membership settings.
    pub settings: MemberSettings,
}

/// What [`Members::create_member`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateMemberOutcome {
    /// A new account was created and its temporary password emailed to it.
    AccountCreated {
        /// The new account.
        user: UserId,
        /// Its membership.
        membership: Box<Membership>,
        /// When the temporary password stops working.
        temporary_password_expires_at: DateTime<Utc>,
    },
    /// The address already has an account; nobody joins without consent, so an
    /// invitation with the same role was sent instead. The form's position, facilities,
    /// aide flag, access and alerts are not applied: set them once the invitation is
    /// accepted.
    InvitationSent {
        /// The invitation.
        invitation: InvitationId,
    },
}

/// [`Members::create_member`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateMemberError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Some fields are invalid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The role would grant more than the actor holds.
    #[error(transparent)]
    Escalation(InvariantViolation),
    /// The person is a member already.
    #[error("{0} is already a member of this organisation")]
    AlreadyMember(String),
    /// An open invitation for the address exists already.
    #[error("{0} already has an open invitation to this organisation; resend it instead")]
    AlreadyInvited(EmailAddress),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Members::link_existing_user`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkMemberError {
    /// Not allowed in the target organisation.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The actor does not manage the user in the source organisation.
    #[error("you can only link people you manage in another organisation; invite them instead")]
    NotManagedBySource,
    /// The role does not exist in the target organisation.
    #[error("there is no role \"{0}\" in this organisation")]
    UnknownRole(RoleKey),
    /// The role would grant more than the actor holds, or the user outranks the actor.
    #[error(transparent)]
    Escalation(InvariantViolation),
    /// The user is a member already.
    #[error("they are already a member of this organisation")]
    AlreadyMember,
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// An administrator's change to a member; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberUpdate {
    /// New role.
    pub role: Option<RoleKey>,
    /// New job title (`Some(None)` clears it).
    pub position: Option<Option<String>>,
    /// New facilities.
    pub facilities: Option<BTreeSet<FacilityId>>,
    /// New aide flag.
    pub aide: Option<bool>,
    /// New access scopes (replace all).
    pub access: Option<BTreeMap<ResourceKind, AccessScope>>,
    /// New alerts (replace all).
    pub alerts: Option<BTreeSet<AlertKind>>,
    /// New expiry (`Some(None)` removes it).
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// [`Members::update_member`] (and the `change_*` shorthands) failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateMemberError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No such member.
    #[error("that person is not a member of this organisation")]
    MemberNotFound,
    /// Some fields are invalid (every problem is listed).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The change breaks an invariant (escalation, outranked target, no administrator left).
    #[error(transparent)]
    Refused(InvariantViolation),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Members::suspend`], [`Members::reactivate`], [`Members::remove`] or
/// [`Members::leave`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MemberStatusError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No such member.
    #[error("that person is not a member of this organisation")]
    MemberNotFound,
    /// Administrators cannot suspend or remove themselves this way; use "leave".
    #[error("you cannot do this to your own membership; use leave instead")]
    OwnMembership,
    /// The membership is already in the requested state.
    #[error("the membership is already {0}")]
    AlreadyInState(&'static str),
    /// The change breaks an invariant.
    #[error(transparent)]
    Refused(InvariantViolation),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Members::search`], [`Members::get`], [`Members::explain`] or
/// [`Members::authorize`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MemberQueryError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No such member.
    #[error("that person is not a member of this organisation")]
    MemberNotFound,
    /// The query is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(CreateMemberError, LinkMemberError, UpdateMemberError, MemberStatusError, MemberQueryError);

/// A search from a client: every field as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSearch {
    /// Name or email substring.
    pub text: Option<String>,
    /// Role key.
    pub role: Option<String>,
    /// Facility id.
    pub facility: Option<String>,
    /// `active`, `suspended` or `expired`.
    pub state: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<u32>,
    /// The previous page's `next` cursor.
    pub cursor: Option<String>,
}

/// A member who should receive an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecipient {
    /// The member.
    pub user: UserId,
    /// Their name.
    pub name: String,
    /// Their address.
    pub email: EmailAddress,
}

/// One member with their account details, as an administrator sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDetails {
    /// The membership.
    pub membership: Membership,
    /// The account.
    pub user: User,
    /// State now.
    pub state: MemberState,
    /// Effective permissions now.
    pub permissions: BTreeSet<Permission>,
}

/// Validates membership settings against the organisation and catalogue, collecting
/// every problem.
async fn validated_settings(
    ctx: &Context,
    org: OrgId,
    settings: &MemberSettings,
    problems: &mut Vec<InvalidValue>,
) -> Result<(Option<Position>, AccessSettings), Unexpected> {
    let position =
        parse_optional(settings.position.as_deref(), Position::parse).map_err(|e| problems.push(e)).ok().flatten();
    check_facilities(ctx, org, &settings.facilities, problems).await?;
    Ok((position, checked_access(ctx, &settings.access, &settings.alerts, problems)))
}

async fn check_facilities(
    ctx: &Context,
    org: OrgId,
    facilities: &BTreeSet<FacilityId>,
    problems: &mut Vec<InvalidValue>,
) -> Result<(), Unexpected> {
    if facilities.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<FacilityId> =
        ctx.ports.organisations.facilities(org).await?.into_iter().map(|f| f.id).collect();
    for unknown in facilities.difference(&known) {
        problems.push(InvalidValue::new("facilities", format!("there is no facility {unknown} in this organisation")));
    }
    Ok(())
}

fn checked_access(
    ctx: &Context,
    access: &BTreeMap<ResourceKind, AccessScope>,
    alerts: &BTreeSet<AlertKind>,
    problems: &mut Vec<InvalidValue>,
) -> AccessSettings {
    for kind in access.keys().filter(|k| !ctx.catalogue.has_resource_kind(k)) {
        problems.push(InvalidValue::new("access", format!("there is no resource kind called \"{kind}\"")));
    }
    for alert in alerts.iter().filter(|a| !ctx.catalogue.has_alert(a)) {
        problems.push(InvalidValue::new("alerts", format!("there is no alert called \"{alert}\"")));
    }
    AccessSettings::new(access.iter().map(|(k, s)| (k.clone(), *s)))
}

/// A temporary password meeting `policy`, from two fresh secrets (retrying in the
/// vanishingly rare case the bytes cannot make one).
fn temporary_password(
    ctx: &Context,
    policy: &PasswordPolicy,
    local_part: &str,
) -> Result<crate::password::Password, Unexpected> {
    for _ in 0..8 {
        let mut bytes = [0u8; 64];
        let (first, second) = bytes.split_at_mut(32);
        first.copy_from_slice(ctx.ports.token_generator.generate().bytes());
        second.copy_from_slice(ctx.ports.token_generator.generate().bytes());
        if let Some(password) = policy.generate_temporary(&bytes, Some(local_part)) {
            return Ok(password);
        }
    }
    Err(Unexpected::message("could not generate a temporary password that meets the policy"))
}

impl Members {
    /// Creates an account for a new colleague with a random temporary password that is
    /// emailed to them (never returned), works once, expires
    /// (`Settings::temporary_password_lifetime`) and forces a password change at first
    /// sign-in. If the address already has an account, sends an invitation with the same
    /// role instead: nobody is added to an organisation without their consent.
    ///
    /// # Errors
    /// See [`CreateMemberError`]: the actor needs `members.manage` and may give only a
    /// role within their own permissions; every invalid field is reported at once.
    pub async fn create_member(
        &self,
        actor: UserId,
        org: OrgId,
        form: &NewMember,
    ) -> Result<CreateMemberOutcome, CreateMemberError> {
        let ctx = &self.ctx;
        let mut problems = Vec::new();
        let name = PersonName::parse(&form.first_name, &form.last_name).map_err(|e| problems.extend(e)).ok();
        let email = EmailAddress::parse(&form.email).map_err(|e| problems.push(e)).ok();
        let phone =
            parse_optional(form.phone.as_deref(), PhoneNumber::parse).map_err(|e| problems.push(e)).ok().flatten();
        let role = RoleKey::parse(&form.role).map_err(|e| problems.push(e)).ok();
        ctx.decide_and_commit_or_redecide(
            || async {
                let access = ctx.authorized::<CreateMemberError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let mut problems = problems.clone();
                let (position, access_settings) = validated_settings(ctx, org, &form.settings, &mut problems).await?;
                let offered = role.as_ref().and_then(|r| {
                    let found = access.roles.get(r);
                    if found.is_none() {
                        problems
                            .push(InvalidValue::new("role", format!("there is no role \"{r}\" in this organisation")));
                    }
                    found
                });
                let (Some(name), Some(email), Some(offered), true) = (&name, &email, offered, problems.is_empty())
                else {
                    return Err(Invalid(problems).into());
                };
                let held = access.held(&ctx.catalogue, now);
                check_no_escalation(&held, &offered.permissions(&ctx.catalogue))
                    .map_err(CreateMemberError::Escalation)?;
                check_access_grant(
                    &access.actor,
                    held.is_superset(&ctx.catalogue.all_permissions()),
                    &AccessSettings::default(),
                    &BTreeSet::new(),
                    &access_settings,
                    &form.settings.facilities,
                )
                .map_err(CreateMemberError::Escalation)?;
                let mut changes = ChangeSet::new();
                changes.require(Precondition::OrgVersion { org, version: access.org.version });

                if let Some(existing) = ctx.ports.users.user_by_email(email).await? {
                    if ctx.ports.memberships.membership(org, existing.id).await?.is_some() {
                        return Err(CreateMemberError::AlreadyMember(email.to_string()));
                    }
                    if ctx.pending_invitation(org, email).await?.is_some() {
                        return Err(CreateMemberError::AlreadyInvited(email.clone()));
                    }
                    let (invitation, message) = ctx.new_invitation(&access, actor, email, offered).await?;
                    changes
                        .push(Change::InsertInvitation(invitation.clone()))
                        .audit(ctx.audit(
                            Some(org),
                            Some(actor),
                            AuditAction::InvitationSent,
                            AuditTarget::Invitation(invitation.id),
                            vec![
                                FieldChange::new("email", None::<String>, Some(email)),
                                FieldChange::new("role", None::<String>, Some(&offered.key)),
                            ],
                        ))
                        .send(message);
                    return Ok((CreateMemberOutcome::InvitationSent { invitation: invitation.id }, changes));
                }

                let creator = ctx.ports.users.user(actor).await?.map(|u| u.name.full()).unwrap_or_default();
                let policy = PasswordPolicy::strictest([
                    &ctx.settings.platform_password_policy,
                    &access.org.settings.password_policy,
                ])
                .unwrap_or_else(|| ctx.settings.platform_password_policy.clone());
                let temporary = temporary_password(ctx, &policy, email.local_part())?;
                let hash = ctx.ports.hasher.hash(&temporary).await.map_err(|e| Unexpected::new("hashing failed", e))?;
                let expires_at = now + ctx.settings.temporary_password_lifetime;
                let user = User {
                    id: UserId::from_uuid(ctx.new_id()),
                    email: email.clone(),
                    name: name.clone(),
                    phone: phone.clone(),
                    email_verified_at: None,
                    status: UserStatus::Active,
                    password: PasswordState {
                        hash: None,
                        temporary: Some(TemporaryPassword { hash, expires_at }),
                        must_change: true,
                        changed_at: None,
                    },
                    created_at: now,
                    version: 0,
                };
                let membership = Membership {
                    position,
                    facilities: form.settings.facilities.clone(),
                    aide: form.settings.aide,
                    access: access_settings,
                    alerts: form.settings.alerts.clone(),
                    ..Membership::new(
                        org,
                        user.id,
                        offered.key.clone(),
                        MembershipOrigin::CreatedByAdministrator,
                        Some(actor),
                        now,
                    )
                };
                changes
                    .push(Change::InsertUser(user.clone()))
                    .push(Change::InsertMembership(membership.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::MemberCreated,
                        AuditTarget::User(user.id),
                        vec![
                            FieldChange::new("email", None::<String>, Some(email)),
                            FieldChange::new("role", None::<String>, Some(&offered.key)),
                            FieldChange::new("aide", None::<String>, Some(form.settings.aide)),
                        ],
                    ))
                    .send(ctx.email(
                        Some(org),
                        email,
                        Notification::AccountCreated {
                            org_name: access.org.name.to_string(),
                            created_by: creator,
                            temporary_password: temporary,
                            expires_at,
                        },
                    ));
                Ok((
                    CreateMemberOutcome::AccountCreated {
                        user: user.id,
                        membership: Box::new(membership),
                        temporary_password_expires_at: expires_at,
                    },
                    changes,
                ))
            },
            |duplicate| match duplicate {
                // A concurrent sign-up took the address: deciding again sends an invitation.
                Duplicate::Email => None,
                Duplicate::Membership => Some(CreateMemberError::AlreadyMember(form.email.trim().to_owned())),
                other => Some(unexpected_duplicate(other)),
            },
        )
        .await
    }

    /// Adds `user`, whom the actor manages in `source_org`, to `target_org` (TrackStat's
    /// linked accounts). Creates only a membership: the account is shared.
    ///
    /// # Errors
    /// See [`LinkMemberError`]: the actor needs `members.manage` in both organisations,
    /// must not be outranked by the user in the source organisation, and may give only a
    /// role within their own permissions in the target.
    pub async fn link_existing_user(
        &self,
        actor: UserId,
        source_org: OrgId,
        target_org: OrgId,
        user: UserId,
        role: &RoleKey,
    ) -> Result<Membership, LinkMemberError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                // The organisation being changed is checked first: a member of it without
                // the permission hears "forbidden", whatever they name as the source.
                let target = ctx.authorized::<LinkMemberError>(target_org, actor, &permissions::MEMBERS_MANAGE).await?;
                let source = ctx.authorized::<LinkMemberError>(source_org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let managed = ctx
                    .ports
                    .memberships
                    .membership(source_org, user)
                    .await?
                    .ok_or(LinkMemberError::NotManagedBySource)?;
                // Only someone in force there, with a usable account, can be vouched for.
                let account = ctx.ports.users.user(user).await?;
                if !managed.is_active(now) || !account.is_some_and(|a| a.is_active()) {
                    return Err(LinkMemberError::NotManagedBySource);
                }
                let source_policy = source.policy(&ctx.catalogue);
                check_not_outranked(
                    &source.held(&ctx.catalogue, now),
                    &source_policy.role_permissions(&managed.role),
                    Some(user),
                )
                .map_err(|_| LinkMemberError::NotManagedBySource)?;
                let offered = target.roles.get(role).ok_or_else(|| LinkMemberError::UnknownRole(role.clone()))?;
                check_no_escalation(&target.held(&ctx.catalogue, now), &offered.permissions(&ctx.catalogue))
                    .map_err(LinkMemberError::Escalation)?;
                if ctx.ports.memberships.membership(target_org, user).await?.is_some() {
                    return Err(LinkMemberError::AlreadyMember);
                }
                let membership =
                    Membership::new(target_org, user, role.clone(), MembershipOrigin::Linked, Some(actor), now);
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org: target_org, version: target.org.version })
                    .require(Precondition::OrgUnchanged { org: source_org, version: source.org.version })
                    .push(Change::InsertMembership(membership.clone()))
                    .audit(ctx.audit(
                        Some(target_org),
                        Some(actor),
                        AuditAction::MemberLinked,
                        AuditTarget::User(user),
                        vec![
                            FieldChange::new("linked_from", None::<String>, Some(source.org.name.as_str())),
                            FieldChange::new("role", None::<String>, Some(role)),
                        ],
                    ));
                Ok((membership, changes))
            },
            |duplicate| match duplicate {
                Duplicate::Membership => LinkMemberError::AlreadyMember,
                other => unexpected_duplicate(other),
            },
        )
        .await
    }

    /// Changes a member's role, position, facilities, aide flag, access, alerts or expiry.
    ///
    /// # Errors
    /// See [`UpdateMemberError`]: the actor needs `members.manage`, may change only
    /// members whose role is within their own permissions, may assign only such roles,
    /// and no change may leave the organisation without an administrator (an expiry on
    /// the last administrator included).
    pub async fn update_member(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        update: &MemberUpdate,
    ) -> Result<Membership, UpdateMemberError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = ctx.authorized::<UpdateMemberError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
                let now = ctx.now();
                let current =
                    ctx.ports.memberships.membership(org, user).await?.ok_or(UpdateMemberError::MemberNotFound)?;
                let policy = access.policy(&ctx.catalogue);
                let held = access.held(&ctx.catalogue, now);
                check_not_outranked(&held, &policy.role_permissions(&current.role), Some(user))
                    .map_err(UpdateMemberError::Refused)?;

                let mut problems = Vec::new();
                let mut next = current.clone();
                let mut diff = Vec::new();
                if let Some(role) = &update.role {
                    match access.roles.get(role) {
                        Some(found) => {
                            check_no_escalation(&held, &found.permissions(&ctx.catalogue))
                                .map_err(UpdateMemberError::Refused)?;
                            diff.push(FieldChange::new("role", Some(&current.role), Some(role)));
                            next.role = role.clone();
                        }
                        None => problems.push(InvalidValue::new(
                            "role",
                            format!("there is no role \"{role}\" in this organisation"),
                        )),
                    }
                }
                if let Some(position) = &update.position {
                    let parsed = parse_optional(position.as_deref(), Position::parse)
                        .map_err(|e| problems.push(e))
                        .ok()
                        .flatten();
                    diff.push(FieldChange::new("position", current.position.as_ref(), parsed.as_ref()));
                    next.position = parsed;
                }
                if let Some(facilities) = &update.facilities {
                    check_facilities(ctx, org, facilities, &mut problems).await?;
                    diff.push(FieldChange::new(
                        "facilities",
                        Some(facilities_text(&current.facilities)),
                        Some(facilities_text(facilities)),
                    ));
                    next.facilities = facilities.clone();
                }
                if let Some(aide) = update.aide {
                    diff.push(FieldChange::new("aide", Some(current.aide), Some(aide)));
                    next.aide = aide;
                }
                if update.access.is_some() || update.alerts.is_some() {
                    let access_map: BTreeMap<ResourceKind, AccessScope> = update
                        .access
                        .clone()
                        .unwrap_or_else(|| current.access.iter().map(|(k, s)| (k.clone(), s)).collect());
                    let alerts = update.alerts.clone().unwrap_or_else(|| current.alerts.clone());
                    let settings = checked_access(ctx, &access_map, &alerts, &mut problems);
                    if update.access.is_some() {
                        diff.push(FieldChange::new(
                            "access",
                            Some(access_text(&current.access)),
                            Some(access_text(&settings)),
                        ));
                    }
                    if update.alerts.is_some() {
                        diff.push(FieldChange::new(
                            "alerts",
                            Some(keys_text(&current.alerts)),
                            Some(keys_text(&alerts)),
                        ));
                    }
                    next.access = settings;
                    next.alerts = alerts;
                }
                if let Some(expires_at) = update.expires_at {
                    if expires_at.is_some_and(|at| at <= now) {
                        problems.push(InvalidValue::new(
                            "expires_at",
                            "must be in the future; to end a membership now, remove the member",
                        ));
                    }
                    diff.push(FieldChange::new("expires_at", current.expires_at, expires_at));
                    next.expires_at = expires_at;
                }
                if !problems.is_empty() {
                    return Err(Invalid(problems).into());
                }
                let full_administrator = held.is_superset(&ctx.catalogue.all_permissions());
                check_access_grant(
                    &access.actor,
                    full_administrator,
                    &current.access,
                    &current.facilities,
                    &next.access,
                    &next.facilities,
                )
                .map_err(UpdateMemberError::Refused)?;
                let before = ctx.administrators_and(access.org.id, &access.roles, &[], &[&current]).await?;
                check_administrators_remain(
                    &ctx.catalogue,
                    &access.roles,
                    &before,
                    |m| Some(if m.user == user { next.clone() } else { m.clone() }),
                    now,
                )
                .map_err(UpdateMemberError::Refused)?;
                let mut changes = ChangeSet::new();
                changes
                    .require(Precondition::OrgVersion { org, version: access.org.version })
                    .push(Change::UpdateMembership(next.clone()))
                    .audit(ctx.audit(
                        Some(org),
                        Some(actor),
                        AuditAction::MemberUpdated,
                        AuditTarget::User(user),
                        diff,
                    ));
                Ok((next, changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// Gives a member another role. Shorthand for [`update_member`](Self::update_member).
    ///
    /// # Errors
    /// See [`UpdateMemberError`].
    pub async fn change_role(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        role: &RoleKey,
    ) -> Result<Membership, UpdateMemberError> {
        self.update_member(actor, org, user, &MemberUpdate { role: Some(role.clone()), ..MemberUpdate::default() })
            .await
    }

    /// Sets a member's facilities. Shorthand for [`update_member`](Self::update_member).
    ///
    /// # Errors
    /// See [`UpdateMemberError`].
    pub async fn change_facilities(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        facilities: BTreeSet<FacilityId>,
    ) -> Result<Membership, UpdateMemberError> {
        self.update_member(actor, org, user, &MemberUpdate { facilities: Some(facilities), ..MemberUpdate::default() })
            .await
    }

    /// Sets a member's access scopes. Shorthand for [`update_member`](Self::update_member).
    ///
    /// # Errors
    /// See [`UpdateMemberError`].
    pub async fn change_access(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        access: BTreeMap<ResourceKind, AccessScope>,
    ) -> Result<Membership, UpdateMemberError> {
        self.update_member(actor, org, user, &MemberUpdate { access: Some(access), ..MemberUpdate::default() }).await
    }

    /// Sets a member's alerts (notification preferences). Shorthand for
    /// [`update_member`](Self::update_member).
    ///
    /// # Errors
    /// See [`UpdateMemberError`].
    pub async fn change_alerts(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        alerts: BTreeSet<AlertKind>,
    ) -> Result<Membership, UpdateMemberError> {
        self.update_member(actor, org, user, &MemberUpdate { alerts: Some(alerts), ..MemberUpdate::default() }).await
    }

    /// Sets a member's job title. Shorthand for [`update_member`](Self::update_member).
    ///
    /// # Errors
    /// See [`UpdateMemberError`].
    pub async fn change_position(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        position: Option<String>,
    ) -> Result<Membership, UpdateMemberError> {
        self.update_member(actor, org, user, &MemberUpdate { position: Some(position), ..MemberUpdate::default() })
            .await
    }

    /// Suspends a member: they can do nothing in the organisation and their sessions end.
    ///
    /// # Errors
    /// See [`MemberStatusError`].
    pub async fn suspend(&self, actor: UserId, org: OrgId, user: UserId) -> Result<Membership, MemberStatusError> {
        self.change_status(actor, org, user, StatusChange::Suspend).await
    }

    /// Lifts a suspension.
    ///
    /// # Errors
    /// See [`MemberStatusError`].
    pub async fn reactivate(&self, actor: UserId, org: OrgId, user: UserId) -> Result<Membership, MemberStatusError> {
        self.change_status(actor, org, user, StatusChange::Reactivate).await
    }

    /// Removes a member from the organisation; their sessions end.
    ///
    /// # Errors
    /// See [`MemberStatusError`].
    pub async fn remove(&self, actor: UserId, org: OrgId, user: UserId) -> Result<Membership, MemberStatusError> {
        self.change_status(actor, org, user, StatusChange::Remove).await
    }

    /// Leaves an organisation. The last administrator cannot leave.
    ///
    /// # Errors
    /// See [`MemberStatusError`].
    pub async fn leave(&self, user: UserId, org: OrgId) -> Result<Membership, MemberStatusError> {
        self.change_status(user, org, user, StatusChange::Leave).await
    }

    async fn change_status(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        change: StatusChange,
    ) -> Result<Membership, MemberStatusError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let access = if change == StatusChange::Leave {
                    ctx.org_access::<MemberStatusError>(org, actor).await?
                } else {
                    ctx.authorized::<MemberStatusError>(org, actor, &permissions::MEMBERS_MANAGE).await?
                };
                let now = ctx.now();
                if change != StatusChange::Leave && actor == user && change != StatusChange::Reactivate {
                    return Err(MemberStatusError::OwnMembership);
                }
                let current =
                    ctx.ports.memberships.membership(org, user).await?.ok_or(MemberStatusError::MemberNotFound)?;
                if change != StatusChange::Leave {
                    let policy = access.policy(&ctx.catalogue);
                    check_not_outranked(
                        &access.held(&ctx.catalogue, now),
                        &policy.role_permissions(&current.role),
                        Some(user),
                    )
                    .map_err(MemberStatusError::Refused)?;
                }
                let next = match change {
                    StatusChange::Suspend if current.is_suspended() => {
                        return Err(MemberStatusError::AlreadyInState("suspended"));
                    }
                    StatusChange::Reactivate if !current.is_suspended() => {
                        return Err(MemberStatusError::AlreadyInState("active"));
                    }
                    StatusChange::Suspend => Some(Membership {
                        status: MembershipStatus::Suspended { since: now, by: actor },
                        ..current.clone()
                    }),
                    StatusChange::Reactivate => {
                        Some(Membership { status: MembershipStatus::Active, ..current.clone() })
                    }
                    StatusChange::Remove | StatusChange::Leave => None,
                };
                let before = ctx.administrators_and(access.org.id, &access.roles, &[], &[&current]).await?;
                check_administrators_remain(
                    &ctx.catalogue,
                    &access.roles,
                    &before,
                    |m| if m.user == user { next.clone() } else { Some(m.clone()) },
                    now,
                )
                .map_err(MemberStatusError::Refused)?;
                let mut changes = ChangeSet::new();
                changes.require(Precondition::OrgVersion { org, version: access.org.version });
                let (action, field) = match change {
                    StatusChange::Suspend => {
                        (AuditAction::MemberSuspended, FieldChange::new("status", Some("active"), Some("suspended")))
                    }
                    StatusChange::Reactivate => {
                        (AuditAction::MemberReactivated, FieldChange::new("status", Some("suspended"), Some("active")))
                    }
                    StatusChange::Remove => {
                        (AuditAction::MemberRemoved, FieldChange::new("role", Some(&current.role), None::<String>))
                    }
                    StatusChange::Leave => {
                        (AuditAction::MemberLeft, FieldChange::new("role", Some(&current.role), None::<String>))
                    }
                };
                match &next {
                    Some(updated) => changes.push(Change::UpdateMembership(updated.clone())),
                    None => changes.push(Change::DeleteMembership { org, user }),
                };
                if matches!(change, StatusChange::Suspend | StatusChange::Remove) {
                    changes.push(Change::RevokeSessionsOf { user, except: None, at: now });
                }
                changes.audit(ctx.audit(Some(org), Some(actor), action, AuditTarget::User(user), vec![field]));
                Ok((next.unwrap_or(current), changes))
            },
            unexpected_duplicate,
        )
        .await
    }

    /// One page of the organisation's members, by last name then first name.
    ///
    /// # Errors
    /// See [`MemberQueryError`]: the actor needs `members.manage`; an invalid filter or
    /// cursor is reported with the field.
    pub async fn search(
        &self,
        actor: UserId,
        org: OrgId,
        search: &MemberSearch,
    ) -> Result<MemberPage, MemberQueryError> {
        let ctx = &self.ctx;
        ctx.authorized::<MemberQueryError>(org, actor, &permissions::MEMBERS_MANAGE).await?;
        let mut problems = Vec::new();
        let text = search.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.chars().count() > 100) {
            problems.push(InvalidValue::new("q", "must be at most 100 characters"));
        }
        let role = search.role.as_deref().and_then(|r| RoleKey::parse(r).map_err(|e| problems.push(e)).ok());
        let facility = search.facility.as_deref().and_then(|f| {
            FacilityId::parse(f).map_err(|_| problems.push(InvalidValue::new("facility", "must be a facility id"))).ok()
        });
        let state = match search.state.as_deref() {
            None => None,
            Some("active") => Some(MemberState::Active),
            Some("suspended") => Some(MemberState::Suspended),
            Some("expired") => Some(MemberState::Expired),
            Some(_) => {
                problems.push(InvalidValue::new("status", "must be active, suspended or expired"));
                None
            }
        };
        let limit = search.limit.unwrap_or(MemberQuery::DEFAULT_LIMIT);
        if !(1..=MemberQuery::MAX_LIMIT).contains(&limit) {
            problems.push(InvalidValue::new("limit", format!("must be between 1 and {}", MemberQuery::MAX_LIMIT)));
        }
        let after = search.cursor.as_deref().and_then(|c| MemberCursor::decode(c).map_err(|e| problems.push(e)).ok());
        if !problems.is_empty() {
            return Err(Invalid(problems).into());
        }
        let query = MemberQuery { org, text, role, facility, state, as_of: ctx.now(), limit, after };
        Ok(ctx.ports.memberships.search_members(&query).await?)
    }

    /// One member with their account and effective permissions. Members may look at
    /// themselves; looking at others needs `members.manage`.
    ///
    /// # Errors
    /// See [`MemberQueryError`].
    pub async fn get(&self, actor: UserId, org: OrgId, user: UserId) -> Result<MemberDetails, MemberQueryError> {
        let ctx = &self.ctx;
        let access = if actor == user {
            ctx.active_access::<MemberQueryError>(org, actor).await?
        } else {
            ctx.authorized::<MemberQueryError>(org, actor, &permissions::MEMBERS_MANAGE).await?
        };
        let membership = ctx.ports.memberships.membership(org, user).await?.ok_or(MemberQueryError::MemberNotFound)?;
        let account = ctx.ports.users.user(user).await?.ok_or(MemberQueryError::MemberNotFound)?;
        let now = ctx.now();
        let permissions = access.policy(&ctx.catalogue).effective_permissions(&membership, now);
        Ok(MemberDetails { state: membership.state(now), membership, user: account, permissions })
    }

    /// Explains whether `user` holds `permission` in `org`, step by step. Members may ask
    /// about themselves; asking about others needs `members.manage`.
    ///
    /// # Errors
    /// See [`MemberQueryError`].
    pub async fn explain(
        &self,
        actor: UserId,
        org: OrgId,
        user: UserId,
        permission: &str,
    ) -> Result<Explanation, MemberQueryError> {
        let ctx = &self.ctx;
        let permission = Permission::parse(permission).map_err(Invalid::from)?;
        let access = if actor == user {
            ctx.active_access::<MemberQueryError>(org, actor).await?
        } else {
            ctx.authorized::<MemberQueryError>(org, actor, &permissions::MEMBERS_MANAGE).await?
        };
        if !ctx.catalogue.has_permission(&permission) {
            return Err(Invalid::from(InvalidValue::new(
                "permission",
                format!("there is no permission called \"{permission}\""),
            ))
            .into());
        }
        let membership = ctx.ports.memberships.membership(org, user).await?.ok_or(MemberQueryError::MemberNotFound)?;
        Ok(access.policy(&ctx.catalogue).explain(Some(&membership), &permission, ctx.now()))
    }

    /// Who should receive `alert` in `org`: members in force, with an active account,
    /// who opted into the alert. When the event concerns a `facility` (a lead or an intake
    /// at one site), only members attributed to that facility receive it, plus members
    /// attributed to no facility at all (organisation-wide staff). For the embedder's own
    /// notification code: it answers for the system, not for a signed-in person.
    ///
    /// # Errors
    /// [`MemberQueryError::Invalid`] for an alert the catalogue does not know;
    /// [`MemberQueryError::Unexpected`] when storage fails.
    pub async fn alert_recipients(
        &self,
        org: OrgId,
        alert: &AlertKind,
        facility: Option<FacilityId>,
    ) -> Result<Vec<AlertRecipient>, MemberQueryError> {
        let ctx = &self.ctx;
        if !ctx.catalogue.has_alert(alert) {
            return Err(
                Invalid::from(InvalidValue::new("alert", format!("there is no alert called \"{alert}\""))).into()
            );
        }
        let now = ctx.now();
        let mut recipients = Vec::new();
        for membership in ctx.ports.memberships.memberships_with_alert(org, alert).await? {
            let reaches =
                facility.is_none_or(|f| membership.facilities.is_empty() || membership.facilities.contains(&f));
            if !membership.is_active(now) || !reaches {
                continue;
            }
            if let Some(user) = ctx.ports.users.user(membership.user).await?
                && user.is_active()
            {
                recipients.push(AlertRecipient { user: user.id, name: user.name.full(), email: user.email });
            }
        }
        recipients.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(recipients)
    }

    /// Checks that `user` may use `permission` within `scope`: the embedder's permission
    /// check for its own resources.
    ///
    /// # Errors
    /// [`MemberQueryError::Access`]: `NotFound` when the user is not a member of the
    /// scope's organisation, `Forbidden` with the reason otherwise.
    pub async fn authorize(
        &self,
        user: UserId,
        permission: &Permission,
        scope: &Scope,
    ) -> Result<(), MemberQueryError> {
        let ctx = &self.ctx;
        let org = scope.org();
        let membership = ctx.ports.memberships.membership(org, user).await?;
        let roles = crate::role::RoleSet::new(ctx.ports.organisations.custom_roles(org).await?);
        RolePolicy::new(&ctx.catalogue, &roles)
            .authorize(membership.as_ref(), permission, scope, ctx.now())
            .map_err(|denial| AccessError::from_denial(permission, denial).into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusChange {
    Suspend,
    Reactivate,
    Remove,
    Leave,
}

fn facilities_text(facilities: &BTreeSet<FacilityId>) -> String {
    facilities.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn access_text(access: &AccessSettings) -> String {
    access.iter().map(|(kind, scope)| format!("{kind}={scope}")).collect::<Vec<_>>().join(", ")
}

fn keys_text(alerts: &BTreeSet<AlertKind>) -> String {
    alerts.iter().map(AlertKind::as_str).collect::<Vec<_>>().join(", ")
}
