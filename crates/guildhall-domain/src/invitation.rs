//! Invitations: pending → accepted | revoked | expired.
//!
//! Expiry is derived from the clock, never scheduled: a pending invitation whose
//! `expires_at` has passed reads as expired.

use chrono::{DateTime, Utc};

use crate::ids::{InvitationId, OrgId, UserId};
use crate::token::TokenHash;
use crate::values::{EmailAddress, RoleKey};

/// The stored state of an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "snake_case"))]
pub enum InvitationState {
    /// Waiting for the invitee (or expired, once `expires_at` has passed).
    Pending,
    /// Accepted: single use, so it can never be accepted again.
    Accepted {
        /// The account that accepted.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdrawn by an administrator.
    Revoked {
        /// Who revoked it.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turned down by the invitee.
    Declined {
        /// When.
        at: DateTime<Utc>,
    },
}

impl std::fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Accepted => "already accepted",
            Self::Revoked => "revoked",
            Self::Declined => "declined",
            Self::Expired => "expired",
        })
    }
}

/// An invitation's status as read at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum InvitationStatus {
    /// Can be accepted.
    Pending,
    /// Was accepted.
    Accepted,
    /// Was revoked.
    Revoked,
    /// Was declined.
    Declined,
    /// Was pending past its expiry.
    Expired,
}

/// An invitation to join an organisation with a role.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organisation.
    pub org: OrgId,
    /// The address invited; only an account with this verified address may accept.
    pub email: EmailAddress,
    /// The role the invitee will have.
    pub role: RoleKey,
    /// The hash of the current token (resending rotates it).
    pub token_hash: TokenHash,
    /// Who invited.
    pub invited_by: UserId,
    /// When it was first sent.
    pub created_at: DateTime<Utc>,
    /// When the current token stops working.
    pub expires_at: DateTime<Utc>,
    /// How many times it was resent.
    pub resent: u32,
    /// Stored state.
    pub state: InvitationState,
}

impl Invitation {
    /// The status at `now`.
    #[must_use]
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        match self.state {
            InvitationState::Pending if now >= self.expires_at => InvitationStatus::Expired,
            InvitationState::Pending => InvitationStatus::Pending,
            InvitationState::Accepted { .. } => InvitationStatus::Accepted,
            InvitationState::Revoked { .. } => InvitationStatus::Revoked,
            InvitationState::Declined { .. } => InvitationStatus::Declined,
        }
    }

    /// Whether it is stored as pending (expired or not): the state resend, revoke and
    /// accept start from.
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(self.state, InvitationState::Pending)
    }
}
