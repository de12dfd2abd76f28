//! Organisations, their settings, facilities, capabilities and run history.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use crate::catalogue::Catalogue;
use crate::ids::{FacilityId, OrgId, RunId, UserId};
use crate::password::PasswordPolicy;
use crate::role::builtin;
use crate::values::{
    CapabilityKey, EmailAddress, EmailDomain, FacilityName, InvalidValue, OrgName, OrgSlug, RoleKey, Topic,
};

/// Who may become a member without an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "mode", rename_all = "snake_case"))]
pub enum JoinPolicy {
    /// Only invited people join.
    InvitationOnly,
    /// Anyone with an account may ask to join; an administrator decides.
    RequestsAllowed,
    /// Only people with a *verified* address at one of these domains may join without an
    /// invitation: at once when `auto_approve`, otherwise by a request an administrator
    /// decides.
    VerifiedDomains {
        /// The trusted domains.
        domains: BTreeSet<EmailDomain>,
        /// Whether matching people join at once with the default role.
        auto_approve: bool,
    },
}

/// How long invitations stay valid: between one hour and 30 days, 7 days by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "i64", into = "i64"))]
pub struct InvitationLifetime(i64);

impl InvitationLifetime {
    /// The shortest lifetime, in seconds (one hour).
    pub const MIN_SECONDS: i64 = 3_600;
    /// The longest lifetime, in seconds (30 days).
    pub const MAX_SECONDS: i64 = 30 * 86_400;

    /// A lifetime in seconds.
    ///
    /// # Errors
    /// [`InvalidValue`] (field `invitation_lifetime`) outside one hour..=30 days.
    pub fn from_seconds(seconds: i64) -> Result<Self, InvalidValue> {
        if (Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidValue::new(
                "invitation_lifetime",
                format!(
                    "must be between 1 hour and 30 days ({}..={} seconds); got {seconds}",
                    Self::MIN_SECONDS,
                    Self::MAX_SECONDS
                ),
            ))
        }
    }

    /// The lifetime.
    #[must_use]
    pub fn duration(self) -> Duration {
        Duration::seconds(self.0)
    }

    /// The lifetime in seconds.
    #[must_use]
    pub fn seconds(self) -> i64 {
        self.0
    }
}

impl Default for InvitationLifetime {
    fn default() -> Self {
        Self(7 * 86_400)
    }
}

impl TryFrom<i64> for InvitationLifetime {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::from_seconds(value)
    }
}

impl From<InvitationLifetime> for i64 {
    fn from(value: InvitationLifetime) -> Self {
        value.0
    }
}

/// Shared addresses per notification topic: where an organisation wants reports sent
/// instead of (for join requests: as well as) individual members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct NotificationRouting(BTreeMap<Topic, BTreeSet<EmailAddress>>);

impl NotificationRouting {
    /// The most addresses one topic may have.
    pub const MAX_ADDRESSES_PER_TOPIC: usize = 10;

    /// Routing from entries; topics with no address are dropped.
    ///
    /// # Errors
    /// Every problem at once: a topic the catalogue does not know, or more than ten
    /// addresses for a topic.
    pub fn new(
        catalogue: &Catalogue,
        entries: impl IntoIterator<Item = (Topic, BTreeSet<EmailAddress>)>,
    ) -> Result<Self, Vec<InvalidValue>> {
        let mut map = BTreeMap::new();
        let mut problems = Vec::new();
        for (topic, addresses) in entries {
            if !catalogue.has_topic(&topic) {
                problems
                    .push(InvalidValue::new("routing", format!("there is no notification topic called \"{topic}\"")));
            } else if addresses.len() > Self::MAX_ADDRESSES_PER_TOPIC {
                problems.push(InvalidValue::new(
                    "routing",
                    format!(
                        "{topic} has {} addresses; at most {} are allowed",
                        addresses.len(),
                        Self::MAX_ADDRESSES_PER_TOPIC
                    ),
                ));
            } else if !addresses.is_empty() {
                map.insert(topic, addresses);
            }
        }
        if problems.is_empty() { Ok(Self(map)) } else { Err(problems) }
    }

    /// The shared addresses for a topic (empty when none are set).
    #[must_use]
    pub fn addresses(&self, topic: &Topic) -> Vec<&EmailAddress> {
        self.0.get(topic).map(|set| set.iter().collect()).unwrap_or_default()
    }

    /// Every routed topic.
    pub fn iter(&self) -> impl Iterator<Item = (&Topic, &BTreeSet<EmailAddress>)> {
        self.0.iter()
    }
}

/// An organisation's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OrgSettings {
    /// Who may join without an invitation.
    pub join_policy: JoinPolicy,
    /// The role given to people who join by request or verified domain unless the
    /// approving administrator picks another.
    pub default_role: RoleKey,
    /// How long invitations stay valid.
    pub invitation_lifetime: InvitationLifetime,
    /// The password rules for the organisation's members (combined with the platform's
    /// and other organisations' rules: the strictest applies).
    pub password_policy: PasswordPolicy,
    /// Shared addresses per topic.
    pub routing: NotificationRouting,
    /// Capabilities switched away from their catalogue default.
    pub capabilities: BTreeMap<CapabilityKey, bool>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            join_policy: JoinPolicy::InvitationOnly,
            default_role: builtin::USER,
            invitation_lifetime: InvitationLifetime::default(),
            password_policy: PasswordPolicy::seed_default(),
            routing: NotificationRouting::default(),
            capabilities: BTreeMap::new(),
        }
    }
}

/// An organisation: a practice, clinic or business.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Organisation {
    /// Never changes.
    pub id: OrgId,
    /// Unique URL name; may be renamed.
    pub slug: OrgSlug,
    /// Display name.
    pub name: OrgName,
    /// Settings.
    pub settings: OrgSettings,
    /// Who created it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Incremented by every change made under an administrator's authority; commits that
    /// read version *n* succeed only while it is still *n* (see [`crate::ports::Precondition`]).
    pub version: u64,
}

impl Organisation {
    /// Whether a capability is on: the organisation's own setting, else the catalogue
    /// default; an unknown capability is off.
    #[must_use]
    pub fn capability_enabled(&self, catalogue: &Catalogue, key: &CapabilityKey) -> bool {
        let Some(def) = catalogue.capability(key) else { return false };
        self.settings.capabilities.get(key).copied().unwrap_or(def.enabled_by_default)
    }
}

/// A site of an organisation ("North Clinic"); members are attributed to facilities.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Facility {
    /// Its id.
    pub id: FacilityId,
    /// Its organisation.
    pub org: OrgId,
    /// Its name, unique within the organisation (ignoring case).
    pub name: FacilityName,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "outcome", rename_all = "snake_case"))]
pub enum RunOutcome {
    /// Completed.
    Succeeded,
    /// Completed with some items failing.
    PartiallySucceeded {
        /// What went wrong, for people.
        detail: String,
    },
    /// Did not complete.
    Failed {
        /// What went wrong, for people.
        detail: String,
    },
}

/// One run of an automated capability (a recall run), as reported by the embedder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// Its organisation.
    pub org: OrgId,
    /// The capability that ran.
    pub capability: CapabilityKey,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Counters the embedder reports (`patients_contacted`: 120).
    pub counts: BTreeMap<String, u64>,
    /// Who recorded it.
    pub recorded_by: UserId,
}
