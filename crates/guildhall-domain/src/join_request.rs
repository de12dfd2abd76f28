//! Join requests: pending → approved | rejected | withdrawn.

use chrono::{DateTime, Utc};

use crate::ids::{JoinRequestId, OrgId, UserId};
use crate::values::{Note, RoleKey};

/// The state of a join request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "snake_case"))]
pub enum JoinRequestState {
    /// Waiting for an administrator.
    Pending,
    /// Approved: the membership was created in the same commit.
    Approved {
        /// Who approved (none when the join policy approved it automatically).
        by: Option<UserId>,
        /// When.
        at: DateTime<Utc>,
        /// The role given.
        role: RoleKey,
    },
    /// Rejected.
    Rejected {
        /// Who rejected.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
        /// Why, shown to the requester.
        reason: Option<Note>,
    },
    /// Withdrawn by the requester.
    Withdrawn {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A person's request to join an organisation. At most one pending per (org, user).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JoinRequest {
    /// Its id.
    pub id: JoinRequestId,
    /// The organisation.
    pub org: OrgId,
    /// The requester.
    pub user: UserId,
    /// What the requester wrote.
    pub message: Option<Note>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Its state.
    pub state: JoinRequestState,
}

impl JoinRequest {
    /// Whether it awaits a decision.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        matches!(self.state, JoinRequestState::Pending)
    }
}
