//! Memberships: a person's place in one organisation.
//!
//! The account (email, password, names, phone) is global; everything about the person's
//! work in an organisation lives here, so the same person can be a Manager in one
//! organisation and a User in another.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

use crate::ids::{FacilityId, OrgId, UserId};
use crate::values::{AlertKind, Position, ResourceKind, RoleKey};

/// How far a member's access to one kind of resource reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum AccessScope {
    /// No access.
    #[default]
    None,
    /// Only what the member owns.
    Own,
    /// What the member owns plus what belongs to the member's facilities.
    Facility,
    /// Everything in the organisation.
    Organisation,
}

impl AccessScope {
    /// The scope's name as used in settings and the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Own => "own",
            Self::Facility => "facility",
            Self::Organisation => "organisation",
        }
    }
}

impl fmt::Display for AccessScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access scope per resource kind; a kind not listed has no access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct AccessSettings(BTreeMap<ResourceKind, AccessScope>);

impl AccessSettings {
    /// Settings from explicit entries (entries with [`AccessScope::None`] are dropped).
    #[must_use]
    pub fn new(entries: impl IntoIterator<Item = (ResourceKind, AccessScope)>) -> Self {
        Self(entries.into_iter().filter(|(_, scope)| *scope != AccessScope::None).collect())
    }

    /// The scope for one kind.
    #[must_use]
    pub fn scope_for(&self, kind: &ResourceKind) -> AccessScope {
        self.0.get(kind).copied().unwrap_or_default()
    }

    /// Every kind with some access.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceKind, AccessScope)> {
        self.0.iter().map(|(k, s)| (k, *s))
    }
}

/// Whether a membership is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "status", rename_all = "snake_case"))]
pub enum MembershipStatus {
    /// In force.
    Active,
    /// Paused by an administrator; the member can do nothing in the organisation.
    Suspended {
        /// When.
        since: DateTime<Utc>,
        /// By whom.
        by: UserId,
    },
}

/// How a person became a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MembershipOrigin {
    /// Created the organisation.
    Founder,
    /// Accepted an invitation.
    Invitation,
    /// Had a join request approved (or auto-approved).
    JoinRequest,
    /// Had the account created by an administrator.
    CreatedByAdministrator,
    /// Was linked from another organisation the administrator also manages.
    Linked,
}

/// A person's membership of one organisation. At most one per (organisation, user).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Membership {
    /// The organisation.
    pub org: OrgId,
    /// The member.
    pub user: UserId,
    /// The member's role.
    pub role: RoleKey,
    /// Job title.
    pub position: Option<Position>,
    /// Facilities the member is attributed to.
    pub facilities: BTreeSet<FacilityId>,
    /// An aide (not a licensed therapist): never holds patient assignment or messaging.
    pub aide: bool,
    /// Access scope per resource kind.
    pub access: AccessSettings,
    /// Alerts the member receives.
    pub alerts: BTreeSet<AlertKind>,
    /// Active or suspended.
    pub status: MembershipStatus,
    /// When the membership ends by itself, if ever. A membership reads as inactive from
    /// this instant on; no background job is involved.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who added the member (none for the founder).
    pub added_by: Option<UserId>,
    /// When.
    pub added_at: DateTime<Utc>,
    /// How.
    pub origin: MembershipOrigin,
}

impl Membership {
    /// A new active membership with no facilities, access, alerts or expiry.
    #[must_use]
    pub fn new(
        org: OrgId,
        user: UserId,
        role: RoleKey,
        origin: MembershipOrigin,
        added_by: Option<UserId>,
        added_at: DateTime<Utc>,
    ) -> Self {
        Self {
            org,
            user,
            role,
            position: None,
            facilities: BTreeSet::new(),
            aide: false,
            access: AccessSettings::default(),
            alerts: BTreeSet::new(),
            status: MembershipStatus::Active,
            expires_at: None,
            added_by,
            added_at,
            origin,
        }
    }

    /// Whether the membership is suspended.
    #[must_use]
    pub fn is_suspended(&self) -> bool {
        matches!(self.status, MembershipStatus::Suspended { .. })
    }

    /// Whether the expiry, if any, has passed at `now`.
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// In force at `now`: not suspended and not expired.
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.is_suspended() && !self.is_expired(now)
    }

    /// The status as shown in lists, derived at `now`.
    #[must_use]
    pub fn state(&self, now: DateTime<Utc>) -> MemberState {
        if self.is_suspended() {
            MemberState::Suspended
        } else if self.is_expired(now) {
            MemberState::Expired
        } else {
            MemberState::Active
        }
    }
}

/// A membership's status as derived at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MemberState {
    /// In force.
    Active,
    /// Suspended by an administrator.
    Suspended,
    /// Past its expiry.
    Expired,
}
