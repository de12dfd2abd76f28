//! The audit log: who did what, to what, where, when, with a before/after summary.
//!
//! Entries are written in the same commit as the change they describe (see
//! [`crate::ports::ChangeSet`]), so a change never lands without its entry.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::ids::{AuditId, FacilityId, InvitationId, JoinRequestId, OrgId, RunId, UserId};
use crate::values::{CapabilityKey, RoleKey};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[allow(missing_docs)] // each variant is its own description
pub enum AuditAction {
    UserSignedUp,
    EmailVerified,
    PasswordChanged,
    PasswordReset,
    ProfileUpdated,
    AccountDisabled,
    AccountEnabled,
    OrgCreated,
    OrgSettingsChanged,
    FacilityCreated,
    FacilityRenamed,
    FacilityDeleted,
    CapabilityToggled,
    RunRecorded,
    InvitationSent,
    InvitationResent,
    InvitationRevoked,
    InvitationAccepted,
    InvitationDeclined,
    JoinRequested,
    JoinRequestApproved,
    JoinRequestRejected,
    JoinRequestWithdrawn,
    MemberCreated,
    MemberLinked,
    MemberUpdated,
    MemberSuspended,
    MemberReactivated,
    MemberRemoved,
    MemberLeft,
    RoleCreated,
    RoleEdited,
    RoleDeleted,
}

impl AuditAction {
    /// The action's stable name (`member.suspended`), as stored and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserSignedUp => "user.signed_up",
            Self::EmailVerified => "user.email_verified",
            Self::PasswordChanged => "user.password_changed",
            Self::PasswordReset => "user.password_reset",
            Self::ProfileUpdated => "user.profile_updated",
            Self::AccountDisabled => "user.disabled",
            Self::AccountEnabled => "user.enabled",
            Self::OrgCreated => "org.created",
            Self::OrgSettingsChanged => "org.settings_changed",
            Self::FacilityCreated => "facility.created",
            Self::FacilityRenamed => "facility.renamed",
            Self::FacilityDeleted => "facility.deleted",
            Self::CapabilityToggled => "capability.toggled",
            Self::RunRecorded => "run.recorded",
            Self::InvitationSent => "invitation.sent",
            Self::InvitationResent => "invitation.resent",
            Self::InvitationRevoked => "invitation.revoked",
            Self::InvitationAccepted => "invitation.accepted",
            Self::InvitationDeclined => "invitation.declined",
            Self::JoinRequested => "join_request.created",
            Self::JoinRequestApproved => "join_request.approved",
            Self::JoinRequestRejected => "join_request.rejected",
            Self::JoinRequestWithdrawn => "join_request.withdrawn",
            Self::MemberCreated => "member.created",
            Self::MemberLinked => "member.linked",
            Self::MemberUpdated => "member.updated",
            Self::MemberSuspended => "member.suspended",
            Self::MemberReactivated => "member.reactivated",
            Self::MemberRemoved => "member.removed",
            Self::MemberLeft => "member.left",
            Self::RoleCreated => "role.created",
            Self::RoleEdited => "role.edited",
            Self::RoleDeleted => "role.deleted",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action was done to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", content = "id", rename_all = "snake_case"))]
#[allow(missing_docs)] // each variant names its target
pub enum AuditTarget {
    User(UserId),
    Organisation(OrgId),
    Facility(FacilityId),
    Capability(CapabilityKey),
    Run(RunId),
    Invitation(InvitationId),
    JoinRequest(JoinRequestId),
    Role(RoleKey),
}

/// One field's value before and after a change (as display text; never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldChange {
    /// The field (`role`, `status`).
    pub field: String,
    /// Before, if it had a value.
    pub before: Option<String>,
    /// After, if it has a value.
    pub after: Option<String>,
}

impl FieldChange {
    /// A field that changed from `before` to `after`.
    #[must_use]
    pub fn new(field: &str, before: Option<impl ToString>, after: Option<impl ToString>) -> Self {
        Self { field: field.to_owned(), before: before.map(|b| b.to_string()), after: after.map(|a| a.to_string()) }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuditEntry {
    /// Its id (time-ordered).
    pub id: AuditId,
    /// The organisation, for organisation-scoped actions.
    pub org: Option<OrgId>,
    /// Who acted (none for the system, such as an automatic approval).
    pub actor: Option<UserId>,
    /// What was done.
    pub action: AuditAction,
    /// To what.
    pub target: AuditTarget,
    /// When.
    pub at: DateTime<Utc>,
    /// What changed.
    pub changes: Vec<FieldChange>,
}
