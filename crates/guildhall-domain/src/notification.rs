//! Emails the domain asks to send.
//!
//! Use cases put an [`OutboundEmail`] into the same commit as the change that causes it
//! (the transactional outbox); the mail adapter renders and delivers it later. A message
//! that carries a secret (a token or a temporary password) holds it only until it is
//! sent: the outbox adapter erases the payload once delivered.

use chrono::{DateTime, Utc};

use crate::ids::{InvitationId, JoinRequestId, MessageId, OrgId};
use crate::password::Password;
use crate::token::Token;
use crate::values::{EmailAddress, Note, Topic};

/// What to tell the recipient. Every variant has a template in the mail adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// You are invited to join an organisation.
    Invitation {
        /// The invitation.
        invitation: InvitationId,
        /// The organisation's name.
        org_name: String,
        /// Who invited.
        invited_by: String,
        /// The role offered.
        role_name: String,
        /// The token for the acceptance link.
        token: Token,
        /// When the link stops working.
        expires_at: DateTime<Utc>,
    },
    /// An administrator created an account for you.
    AccountCreated {
        /// The organisation's name.
        org_name: String,
        /// Who created it.
        created_by: String,
        /// The temporary password (works once; must be changed at first sign-in).
        temporary_password: Password,
        /// When it stops working.
        expires_at: DateTime<Utc>,
    },
    /// Somebody tried to sign up with your address, or to move another account to it,
    /// while it already has an account.
    SignUpAttemptWithExistingAccount,
    /// Someone asked to move your account to another address (sent to the current one).
    EmailChangeRequested {
        /// The address asked for.
        new_email: EmailAddress,
    },
    /// Your account's address was changed (sent to the old one).
    EmailChanged {
        /// The new address.
        new_email: EmailAddress,
    },
    /// Please confirm your address.
    VerifyEmail {
        /// The token for the link.
        token: Token,
        /// When it stops working.
        expires_at: DateTime<Utc>,
    },
    /// Somebody asked to reset your password.
    PasswordReset {
        /// The token for the link.
        token: Token,
        /// When it stops working.
        expires_at: DateTime<Utc>,
    },
    /// Your password was changed (security notice).
    PasswordChanged {
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone asks to join an organisation you manage (or whose shared address you are).
    JoinRequestReceived {
        /// The request.
        request: JoinRequestId,
        /// The organisation's name.
        org_name: String,
        /// The requester's name.
        requester_name: String,
        /// The requester's address.
        requester_email: EmailAddress,
        /// What they wrote.
        message: Option<Note>,
    },
    /// Your request to join was approved.
    JoinRequestApproved {
        /// The organisation's name.
        org_name: String,
        /// The role given.
        role_name: String,
    },
    /// Your request to join was rejected.
    JoinRequestRejected {
        /// The organisation's name.
        org_name: String,
        /// Why.
        reason: Option<Note>,
    },
    /// A message to someone could not be delivered (sent to the failed-messaging topic).
    DeliveryFailed {
        /// To whom the failed message was addressed.
        original_recipient: EmailAddress,
        /// What it was (the template's name).
        what: String,
        /// The last error.
        error: String,
    },
}

impl Notification {
    /// The template's stable name (`invitation`, `password_reset`).
    #[must_use]
    pub fn template(&self) -> &'static str {
        match self {
            Self::Invitation { .. } => "invitation",
            Self::AccountCreated { .. } => "account_created",
            Self::SignUpAttemptWithExistingAccount => "sign_up_attempt_with_existing_account",
            Self::EmailChangeRequested { .. } => "email_change_requested",
            Self::EmailChanged { .. } => "email_changed",
            Self::VerifyEmail { .. } => "verify_email",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged { .. } => "password_changed",
            Self::JoinRequestReceived { .. } => "join_request_received",
            Self::JoinRequestApproved { .. } => "join_request_approved",
            Self::JoinRequestRejected { .. } => "join_request_rejected",
            Self::DeliveryFailed { .. } => "delivery_failed",
        }
    }

    /// Whether the message carries a secret the outbox must erase once sent.
    #[must_use]
    pub fn carries_secret(&self) -> bool {
        matches!(
            self,
            Self::Invitation { .. }
                | Self::AccountCreated { .. }
                | Self::VerifyEmail { .. }
                | Self::PasswordReset { .. }
        )
    }
}

/// An email in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEmail {
    /// Its id.
    pub id: MessageId,
    /// The organisation it concerns, if any (for routing delivery failures).
    pub org: Option<OrgId>,
    /// The topic it was routed by, when sent to a shared address.
    pub topic: Option<Topic>,
    /// The recipient.
    pub to: EmailAddress,
    /// What to say.
    pub notification: Notification,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
}
