//! Invariant checks and the role-change preview.
//!
//! Everything here is pure: given the roles and the memberships a change touches, it says
//! what the change would do and which invariants it would break. Use cases call it before
//! every commit; the preview endpoint calls it without committing.
//!
//! The administrators check is exact on partial data: a member is an administrator
//! after a change only if they were one before or the change touches them, so callers
//! pass every current administrator plus every member the change touches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

use crate::catalogue::Catalogue;
use crate::ids::{FacilityId, UserId};
use crate::membership::{AccessScope, AccessSettings, Membership};
use crate::role::{Role, RoleGrant, RolePolicy, RoleSet};
use crate::values::{Permission, ResourceKind, RoleKey, RoleName};

/// An invariant a change would break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// No active, unsuspended, non-expiring member able to manage members and roles
    /// would remain.
    #[error(
        "the organisation would have no administrator left: at least one active member without an expiry must be able to manage members and roles"
    )]
    NoAdministratorLeft,
    /// The actor would grant permissions they do not hold.
    #[error("you cannot grant permissions you do not hold yourself: {}", join(.missing))]
    Escalation {
        /// The permissions the actor lacks.
        missing: BTreeSet<Permission>,
    },
    /// The actor would widen someone's access to a kind of resource beyond their own.
    #[error("you cannot give access to {kind} wider than your own ({held}); asked for {granted}")]
    WiderAccess {
        /// The resource kind.
        kind: ResourceKind,
        /// The scope asked for.
        granted: AccessScope,
        /// The actor's own scope for that kind.
        held: AccessScope,
    },
    /// The actor would attribute someone to a facility they are not attributed to.
    #[error("you can only attribute people to facilities you belong to yourself")]
    ForeignFacility {
        /// The facility.
        facility: FacilityId,
    },
    /// The target member (or role) currently holds permissions the actor lacks.
    #[error("you cannot change someone whose role has permissions you do not hold: {}", join(.missing))]
    Outranked {
        /// The member, when the target is a member.
        user: Option<UserId>,
        /// The permissions the actor lacks.
        missing: BTreeSet<Permission>,
    },
}

fn join(set: &BTreeSet<Permission>) -> String {
    set.iter().map(Permission::as_str).collect::<Vec<_>>().join(", ")
}

/// Checks that `granted` ⊆ `held`.
///
/// # Errors
/// [`InvariantViolation::Escalation`] listing what is missing.
pub fn check_no_escalation(
    held: &BTreeSet<Permission>,
    granted: &BTreeSet<Permission>,
) -> Result<(), InvariantViolation> {
    let missing: BTreeSet<Permission> = granted.difference(held).cloned().collect();
    if missing.is_empty() { Ok(()) } else { Err(InvariantViolation::Escalation { missing }) }
}

/// Checks that the target's current permissions ⊆ the actor's.
///
/// # Errors
/// [`InvariantViolation::Outranked`] listing what is missing.
pub fn check_not_outranked(
    held: &BTreeSet<Permission>,
    target: &BTreeSet<Permission>,
    user: Option<UserId>,
) -> Result<(), InvariantViolation> {
    let missing: BTreeSet<Permission> = target.difference(held).cloned().collect();
    if missing.is_empty() { Ok(()) } else { Err(InvariantViolation::Outranked { user, missing }) }
}

/// Checks that `actor` may give a member `access` and `facilities` where they had
/// `before_access` and `before_facilities`: a full administrator (holding the whole
/// catalogue) may give anything; anyone else may widen a scope only up to their own for
/// that kind and add only facilities they are attributed to themselves. Narrowing is
/// always allowed.
///
/// # Errors
/// [`InvariantViolation::WiderAccess`] or [`InvariantViolation::ForeignFacility`].
pub fn check_access_grant(
    actor: &Membership,
    full_administrator: bool,
    before_access: &AccessSettings,
    before_facilities: &BTreeSet<FacilityId>,
    access: &AccessSettings,
    facilities: &BTreeSet<FacilityId>,
) -> Result<(), InvariantViolation> {
    if full_administrator {
        return Ok(());
    }
    for (kind, granted) in access.iter() {
        let held = actor.access.scope_for(kind);
        if granted > before_access.scope_for(kind) && granted > held {
            return Err(InvariantViolation::WiderAccess { kind: kind.clone(), granted, held });
        }
    }
    if let Some(facility) = facilities.difference(before_facilities).find(|f| !actor.facilities.contains(f)) {
        return Err(InvariantViolation::ForeignFacility { facility: *facility });
    }
    Ok(())
}

/// How many of `members` count as administrators under `roles`.
#[must_use]
pub fn count_administrators<'a>(
    catalogue: &Catalogue,
    roles: &RoleSet,
    members: impl IntoIterator<Item = &'a Membership>,
    now: DateTime<Utc>,
) -> usize {
    let policy = RolePolicy::new(catalogue, roles);
    members.into_iter().filter(|m| policy.is_administrator(m, now)).count()
}

/// Checks invariant 1 after a change to memberships: `before` holds every current
/// administrator and every member the change touches; `apply` maps each to its state
/// after the change (`None`: no longer a member).
///
/// # Errors
/// [`InvariantViolation::NoAdministratorLeft`].
pub fn check_administrators_remain(
    catalogue: &Catalogue,
    roles_after: &RoleSet,
    before: &[Membership],
    apply: impl Fn(&Membership) -> Option<Membership>,
    now: DateTime<Utc>,
) -> Result<(), InvariantViolation> {
    let after: Vec<Membership> = before.iter().filter_map(apply).collect();
    if count_administrators(catalogue, roles_after, &after, now) > 0 {
        Ok(())
    } else {
        Err(InvariantViolation::NoAdministratorLeft)
    }
}

/// A proposed change to roles or role assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// Create a custom role.
    CreateRole {
        /// Its key.
        key: RoleKey,
        /// Its name.
        name: RoleName,
        /// Its permissions.
        permissions: BTreeSet<Permission>,
    },
    /// Replace a custom role's permissions.
    EditRole {
        /// The role.
        key: RoleKey,
        /// Its new permissions.
        permissions: BTreeSet<Permission>,
    },
    /// Give a member another role.
    AssignRole {
        /// The member.
        user: UserId,
        /// The new role.
        role: RoleKey,
    },
    /// Delete a custom role, moving its members to `replacement`.
    DeleteRole {
        /// The role.
        key: RoleKey,
        /// Where its members go; required when it has members.
        replacement: Option<RoleKey>,
    },
}

impl RoleChange {
    /// The roles whose members the change can affect (the administrators are loaded
    /// besides).
    #[must_use]
    pub fn affected_roles(&self) -> Vec<RoleKey> {
        match self {
            Self::CreateRole { .. } | Self::AssignRole { .. } => Vec::new(),
            Self::EditRole { key, .. } | Self::DeleteRole { key, .. } => vec![key.clone()],
        }
    }
}

/// Why a proposed change cannot even be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleChangeProblem {
    /// The role does not exist.
    #[error("there is no role \"{0}\" in this organisation")]
    UnknownRole(RoleKey),
    /// A role with this key exists already.
    #[error("a role \"{0}\" exists already; choose another key")]
    RoleExists(RoleKey),
    /// Built-in roles cannot be edited or deleted.
    #[error("{0} is a built-in role and cannot be edited or deleted; create a custom role instead")]
    BuiltInRole(RoleKey),
    /// A permission the catalogue does not know.
    #[error("there is no permission called \"{0}\"")]
    UnknownPermission(Permission),
    /// The member does not exist.
    #[error("that person is not a member of this organisation")]
    UnknownMember(UserId),
    /// Deleting a role that members have needs a replacement.
    #[error("{count} member(s) have the role {role}; choose a replacement role for them")]
    ReplacementRequired {
        /// The role.
        role: RoleKey,
        /// How many members have it.
        count: usize,
    },
    /// The role is the organisation's default role for people who join.
    #[error("{0} is the organisation's default role for people who join; choose another default role first")]
    DefaultRole(RoleKey),
    /// The replacement is the role being deleted.
    #[error("the replacement must be another role than the one being deleted")]
    ReplacementIsSame,
}

/// What one member gains and loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberImpact {
    /// The member.
    pub user: UserId,
    /// Their role before.
    pub role_before: RoleKey,
    /// Their role after.
    pub role_after: RoleKey,
    /// Effective permissions gained.
    pub gained: BTreeSet<Permission>,
    /// Effective permissions lost.
    pub lost: BTreeSet<Permission>,
}

/// The outcome of a proposed role change: nothing is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChangePreview {
    /// Members whose effective permissions change, by user id.
    pub impacts: Vec<MemberImpact>,
    /// Invariants the change would break; saving is refused unless empty.
    pub violations: Vec<InvariantViolation>,
    /// The roles after the change.
    pub roles_after: RoleSet,
}

impl RoleChangePreview {
    /// Whether the change may be saved.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for RoleChangePreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
        f.write_str(&messages.join("; "))
    }
}

/// Evaluates `change` proposed by `actor`.
///
/// `members` MUST hold every current administrator and every member whose role is in
/// [`RoleChange::affected_roles`] (and, for an assignment, the member concerned); other
/// members are unaffected by construction. Impacts are reported for the members passed.
///
/// # Errors
/// [`RoleChangeProblem`] when the change refers to something that does not exist or is
/// not allowed in any state (editing a built-in role).
pub fn preview_role_change(
    catalogue: &Catalogue,
    roles: &RoleSet,
    members: &[Membership],
    actor: &Membership,
    change: &RoleChange,
    now: DateTime<Utc>,
) -> Result<RoleChangePreview, RoleChangeProblem> {
    let before = RolePolicy::new(catalogue, roles);
    let held = before.effective_permissions(actor, now);
    let known = |set: &BTreeSet<Permission>| match set.iter().find(|p| !catalogue.has_permission(p)) {
        Some(unknown) => Err(RoleChangeProblem::UnknownPermission(unknown.clone())),
        None => Ok(()),
    };
    let custom = |key: &RoleKey| match roles.get(key) {
        None => Err(RoleChangeProblem::UnknownRole(key.clone())),
        Some(role) if role.built_in => Err(RoleChangeProblem::BuiltInRole(key.clone())),
        Some(role) => Ok(role),
    };

    let mut roles_after = roles.clone();
    let mut violations = Vec::new();
    let mut reassign: BTreeMap<UserId, RoleKey> = BTreeMap::new();
    match change {
        RoleChange::CreateRole { key, name, permissions } => {
            known(permissions)?;
            if roles.get(key).is_some() {
                return Err(RoleChangeProblem::RoleExists(key.clone()));
            }
            violations.extend(check_no_escalation(&held, permissions).err());
            roles_after.put(Role {
                key: key.clone(),
                name: name.clone(),
                grant: RoleGrant::Only(permissions.clone()),
                built_in: false,
            });
        }
        RoleChange::EditRole { key, permissions } => {
            known(permissions)?;
            let role = custom(key)?;
            violations.extend(check_not_outranked(&held, &role.permissions(catalogue), None).err());
            violations.extend(check_no_escalation(&held, permissions).err());
            roles_after.put(Role { grant: RoleGrant::Only(permissions.clone()), ..role.clone() });
        }
        RoleChange::AssignRole { user, role } => {
            let target = members.iter().find(|m| m.user == *user).ok_or(RoleChangeProblem::UnknownMember(*user))?;
            let new_role = roles.get(role).ok_or_else(|| RoleChangeProblem::UnknownRole(role.clone()))?;
            violations.extend(check_not_outranked(&held, &before.role_permissions(&target.role), Some(*user)).err());
            violations.extend(check_no_escalation(&held, &new_role.permissions(catalogue)).err());
            reassign.insert(*user, role.clone());
        }
        RoleChange::DeleteRole { key, replacement } => {
            let role = custom(key)?;
            let holders: Vec<&Membership> = members.iter().filter(|m| m.role == *key).collect();
            violations.extend(check_not_outranked(&held, &role.permissions(catalogue), None).err());
            match replacement {
                Some(to) if to == key => return Err(RoleChangeProblem::ReplacementIsSame),
                Some(to) => {
                    let to_role = roles.get(to).ok_or_else(|| RoleChangeProblem::UnknownRole(to.clone()))?;
                    // Checked even with no holders now: someone may take the role (accept an
                    // invitation) before the deletion commits, and would get the replacement.
                    violations.extend(check_no_escalation(&held, &to_role.permissions(catalogue)).err());
                    reassign.extend(holders.iter().map(|m| (m.user, to.clone())));
                }
                None if !holders.is_empty() => {
                    return Err(RoleChangeProblem::ReplacementRequired { role: key.clone(), count: holders.len() });
                }
                None => {}
            }
            roles_after.remove(key);
        }
    }

    let after = RolePolicy::new(catalogue, &roles_after);
    // What a role grants depends only on the role and the aide flag: computed once per
    // pair and policy, not once per member (10,000 members hold a handful of roles).
    let mut granted_before: BTreeMap<(&RoleKey, bool), BTreeSet<Permission>> = BTreeMap::new();
    let mut granted_after: BTreeMap<(&RoleKey, bool), BTreeSet<Permission>> = BTreeMap::new();
    let nothing = BTreeSet::new();
    let mut impacts = Vec::new();
    for member in members {
        let role_after = reassign.get(&member.user).unwrap_or(&member.role);
        let active = member.is_active(now);
        let was = if active {
            &*granted_before.entry((&member.role, member.aide)).or_insert_with(|| before.granted_permissions(member))
        } else {
            &nothing
        };
        let will = if active {
            &*granted_after.entry((role_after, member.aide)).or_insert_with(|| {
                let next = Membership { role: role_after.clone(), ..member.clone() };
                after.granted_permissions(&next)
            })
        } else {
            &nothing
        };
        if was != will || member.role != *role_after {
            impacts.push(MemberImpact {
                user: member.user,
                role_before: member.role.clone(),
                role_after: role_after.clone(),
                gained: will.difference(was).cloned().collect(),
                lost: was.difference(will).cloned().collect(),
            });
        }
    }
    impacts.sort_by_key(|impact| impact.user);
    // Invariant 1 after the change; only the reassigned members are copied.
    let administrator_remains = members.iter().any(|m| match reassign.get(&m.user) {
        Some(role) => after.is_administrator(&Membership { role: role.clone(), ..m.clone() }, now),
        None => after.is_administrator(m, now),
    });
    if !administrator_remains {
        violations.push(InvariantViolation::NoAdministratorLeft);
    }
    Ok(RoleChangePreview { impacts, violations, roles_after })
}
