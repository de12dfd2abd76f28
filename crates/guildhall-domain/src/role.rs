//! Roles and the role policy: who may do what.
//!
//! Every organisation has the four built-in roles of the analytics seed (User, User plus,
//! Manager, Administrator) and may add custom roles. A member's *effective* permissions
//! are their role's permissions, minus the aide-forbidden set when the member is an aide,
//! and nothing at all while the membership is suspended or expired.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

use crate::catalogue::{Catalogue, permissions as p};
use crate::ids::{FacilityId, OrgId, UserId};
use crate::membership::{AccessScope, Membership};
use crate::values::{Permission, ResourceKind, RoleKey, RoleName};

/// The built-in role keys.
pub mod builtin {
    use crate::values::RoleKey;

    /// All reports; no campaigns, financials, downloads or user management.
    pub const USER: RoleKey = RoleKey::from_static("user");
    /// User plus campaigns.
    pub const USER_PLUS: RoleKey = RoleKey::from_static("user_plus");
    /// User plus campaigns, financials and downloads; no user management.
    pub const MANAGER: RoleKey = RoleKey::from_static("manager");
    /// Everything, including permissions an embedder registers later.
    pub const ADMINISTRATOR: RoleKey = RoleKey::from_static("administrator");
}

/// What a role grants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RoleGrant {
    /// The whole catalogue, including permissions registered later.
    All,
    /// Exactly these permissions.
    Only(BTreeSet<Permission>),
}

/// A role: a named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Role {
    /// Its key, unique within the organisation.
    pub key: RoleKey,
    /// Its display name.
    pub name: RoleName,
    /// What it grants.
    pub grant: RoleGrant,
    /// Built-in roles exist in every organisation and cannot be edited or deleted.
    pub built_in: bool,
}

impl Role {
    /// The four built-in roles, least privileged first.
    #[must_use]
    pub fn builtins() -> Vec<Role> {
        let reports = [p::REPORTS_VIEW, p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE];
        let user: BTreeSet<Permission> = reports.into_iter().collect();
        let mut user_plus = user.clone();
        user_plus.insert(p::CAMPAIGNS_ACCESS);
        let mut manager = user_plus.clone();
        manager.extend([p::FINANCIALS_ACCESS, p::REPORTS_DOWNLOAD]);
        let named = |key: RoleKey, name: &'static str, grant| Role {
            key,
            name: RoleName::literal(name),
            grant,
            built_in: true,
        };
        vec![
            named(builtin::USER, "User", RoleGrant::Only(user)),
            named(builtin::USER_PLUS, "User plus", RoleGrant::Only(user_plus)),
            named(builtin::MANAGER, "Manager", RoleGrant::Only(manager)),
            named(builtin::ADMINISTRATOR, "Administrator", RoleGrant::All),
        ]
    }

    /// The permissions this role grants, resolved against `catalogue`.
    #[must_use]
    pub fn permissions(&self, catalogue: &Catalogue) -> BTreeSet<Permission> {
        match &self.grant {
            RoleGrant::All => catalogue.all_permissions(),
            RoleGrant::Only(set) => set.clone(),
        }
    }
}

/// The roles of one organisation: the built-ins plus its custom roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet {
    roles: BTreeMap<RoleKey, Role>,
}

impl RoleSet {
    /// The built-ins plus `custom` (custom roles never replace a built-in).
    #[must_use]
    pub fn new(custom: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: BTreeMap<RoleKey, Role> = Role::builtins().into_iter().map(|r| (r.key.clone(), r)).collect();
        for role in custom {
            roles.entry(role.key.clone()).or_insert(role);
        }
        Self { roles }
    }

    /// A role by key.
    #[must_use]
    pub fn get(&self, key: &RoleKey) -> Option<&Role> {
        self.roles.get(key)
    }

    /// Every role, by key.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// Replaces or adds a role (used to evaluate proposed changes).
    pub(crate) fn put(&mut self, role: Role) {
        self.roles.insert(role.key.clone(), role);
    }

    /// Removes a role (used to evaluate proposed changes).
    pub(crate) fn remove(&mut self, key: &RoleKey) {
        self.roles.remove(key);
    }

    /// Keys of roles whose permissions include both `members.manage` and `roles.manage`:
    /// the roles that make a member count as an administrator.
    #[must_use]
    pub fn administering_roles(&self, catalogue: &Catalogue) -> Vec<RoleKey> {
        self.roles
            .values()
            .filter(|role| {
                let perms = role.permissions(catalogue);
                perms.contains(&p::MEMBERS_MANAGE) && perms.contains(&p::ROLES_MANAGE)
            })
            .map(|role| role.key.clone())
            .collect()
    }
}

/// Where a permission is exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere in the organisation.
    Organisation(OrgId),
    /// On one resource of the organisation, whose reach the member's access scope for
    /// that resource kind must cover.
    Resource(ResourceRef),
}

impl Scope {
    /// The organisation the scope lies in.
    #[must_use]
    pub fn org(&self) -> OrgId {
        match self {
            Self::Organisation(org) => *org,
            Self::Resource(resource) => resource.org,
        }
    }
}

/// A resource that an access scope governs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// The organisation that owns it.
    pub org: OrgId,
    /// Its kind (`patients`, `lists`, ...).
    pub kind: ResourceKind,
    /// The member it belongs to (for `own` access), if any.
    pub owner: Option<UserId>,
    /// The facility it belongs to (for `facility` access), if any.
    pub facility: Option<FacilityId>,
}

/// Why access was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The actor is not a member of the organisation. Callers show this as "not found".
    #[error("you are not a member of this organisation")]
    NotAMember,
    /// The membership is suspended.
    #[error("your membership of this organisation is suspended")]
    Suspended,
    /// The membership has expired.
    #[error("your membership of this organisation expired on {0}")]
    Expired(DateTime<Utc>),
    /// The member's role does not grant the permission.
    #[error("your role ({role}) does not grant {permission}")]
    MissingPermission {
        /// The member's role.
        role: RoleKey,
        /// The permission needed.
        permission: Permission,
    },
    /// The permission is one aides never hold.
    #[error("member is an aide: {permission} is never available to aides")]
    Aide {
        /// The permission needed.
        permission: Permission,
    },
    /// The member's access scope for this resource kind does not reach the resource.
    #[error("your access to {kind} is {scope}, which does not reach this one")]
    OutOfScope {
        /// The resource kind.
        kind: ResourceKind,
        /// The member's access scope for it.
        scope: AccessScope,
    },
}

/// One step of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The actor is a member with this role.
    MemberWithRole(RoleKey),
    /// The role grants the permission.
    RoleGrants {
        /// The role.
        role: RoleKey,
        /// Whether it is through the administrator's whole-catalogue grant.
        through_all: bool,
    },
    /// The check failed for this reason.
    Denied(Denial),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MemberWithRole(role) => write!(f, "member with role {role}"),
            Self::RoleGrants { role, through_all: true } => write!(f, "role {role} grants every permission"),
            Self::RoleGrants { role, through_all: false } => write!(f, "role {role} grants it"),
            Self::Denied(denial) => write!(f, "denied: {denial}"),
        }
    }
}

/// The chain of reasons behind an allow or deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The permission asked about.
    pub permission: Permission,
    /// Whether it is allowed.
    pub allowed: bool,
    /// Why, in the order the checks ran.
    pub reasons: Vec<Reason>,
}

/// Evaluates permissions for one organisation's roles.
#[derive(Debug, Clone, Copy)]
pub struct RolePolicy<'a> {
    catalogue: &'a Catalogue,
    roles: &'a RoleSet,
}

impl<'a> RolePolicy<'a> {
    /// The policy for an organisation whose roles are `roles`.
    #[must_use]
    pub fn new(catalogue: &'a Catalogue, roles: &'a RoleSet) -> Self {
        Self { catalogue, roles }
    }

    /// The catalogue it evaluates against.
    #[must_use]
    pub fn catalogue(&self) -> &'a Catalogue {
        self.catalogue
    }

    /// The organisation's roles.
    #[must_use]
    pub fn roles(&self) -> &'a RoleSet {
        self.roles
    }

    /// The permissions a role grants (empty for an unknown role).
    #[must_use]
    pub fn role_permissions(&self, role: &RoleKey) -> BTreeSet<Permission> {
        self.roles.get(role).map(|r| r.permissions(self.catalogue)).unwrap_or_default()
    }

    /// What the membership's role grants, minus the aide mask; ignores status and expiry.
    #[must_use]
    pub fn granted_permissions(&self, membership: &Membership) -> BTreeSet<Permission> {
        let mut perms = self.role_permissions(&membership.role);
        if membership.aide {
            perms.retain(|perm| !self.catalogue.aide_forbidden().contains(perm));
        }
        perms
    }

    /// What the member can do now: [`granted_permissions`](Self::granted_permissions),
    /// or nothing while the membership is suspended or expired.
    #[must_use]
    pub fn effective_permissions(&self, membership: &Membership, now: DateTime<Utc>) -> BTreeSet<Permission> {
        if membership.is_active(now) { self.granted_permissions(membership) } else { BTreeSet::new() }
    }

    /// Whether the membership counts towards "at least one administrator": active, not
    /// suspended, with no expiry, and effectively holding both `members.manage` and
    /// `roles.manage`.
    #[must_use]
    pub fn is_administrator(&self, membership: &Membership, now: DateTime<Utc>) -> bool {
        if membership.expires_at.is_some() {
            return false;
        }
        let perms = self.effective_permissions(membership, now);
        perms.contains(&p::MEMBERS_MANAGE) && perms.contains(&p::ROLES_MANAGE)
    }

    /// Checks that `actor` (the caller's membership of `scope`'s organisation, if any) may
    /// use `permission` within `scope`.
    ///
    /// # Errors
    /// The first [`Denial`] met: not a member (also when the membership is of another
    /// organisation), suspended, expired, missing permission, aide, out of scope.
    pub fn authorize(
        &self,
        actor: Option<&Membership>,
        permission: &Permission,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<(), Denial> {
        let explanation = self.evaluate(actor, permission, Some(scope), now);
        match explanation.reasons.into_iter().last() {
            Some(Reason::Denied(denial)) => Err(denial),
            _ if explanation.allowed => Ok(()),
            _ => Err(Denial::NotAMember),
        }
    }

    /// Explains whether `actor` holds `permission` in the organisation, step by step.
    #[must_use]
    pub fn explain(&self, actor: Option<&Membership>, permission: &Permission, now: DateTime<Utc>) -> Explanation {
        self.evaluate(actor, permission, None, now)
    }

    fn evaluate(
        &self,
        actor: Option<&Membership>,
        permission: &Permission,
        scope: Option<&Scope>,
        now: DateTime<Utc>,
    ) -> Explanation {
        let mut reasons = Vec::new();
        let deny = |mut reasons: Vec<Reason>, denial| {
            reasons.push(Reason::Denied(denial));
            Explanation { permission: permission.clone(), allowed: false, reasons }
        };
        let Some(member) = actor.filter(|m| scope.is_none_or(|s| s.org() == m.org)) else {
            return deny(reasons, Denial::NotAMember);
        };
        reasons.push(Reason::MemberWithRole(member.role.clone()));
        if member.is_suspended() {
            return deny(reasons, Denial::Suspended);
        }
        if let Some(expired) = member.expires_at.filter(|at| *at <= now) {
            return deny(reasons, Denial::Expired(expired));
        }
        let role = self.roles.get(&member.role);
        let through_all = matches!(role.map(|r| &r.grant), Some(RoleGrant::All));
        if !self.role_permissions(&member.role).contains(permission) {
            let denial = Denial::MissingPermission { role: member.role.clone(), permission: permission.clone() };
            return deny(reasons, denial);
        }
        reasons.push(Reason::RoleGrants { role: member.role.clone(), through_all });
        if member.aide && self.catalogue.aide_forbidden().contains(permission) {
            return deny(reasons, Denial::Aide { permission: permission.clone() });
        }
        if let Some(Scope::Resource(resource)) = scope {
            let access = member.access.scope_for(&resource.kind);
            let reaches = match access {
                AccessScope::None => false,
                AccessScope::Own => resource.owner == Some(member.user),
                AccessScope::Facility => {
                    resource.owner == Some(member.user)
                        || resource.facility.is_some_and(|f| member.facilities.contains(&f))
                }
                AccessScope::Organisation => true,
            };
            if !reaches {
                return deny(reasons, Denial::OutOfScope { kind: resource.kind.clone(), scope: access });
            }
        }
        Explanation { permission: permission.clone(), allowed: true, reasons }
    }
}
