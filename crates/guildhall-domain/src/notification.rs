//! Emails the domain asks to send.
//!
//! Use cases put an [`OutboundEmail`] into the same commit as the change that causes it
//! (the transactional outbox); the mail adapter renders and delivers it later. A message
//! that carries a secret (a token or a temporary password) holds it only until it is
//! sent: the outbox adapter erases the payload once delivered.

use chrono::{DateTime, Utc};

use crate::catalogue::topics;
use crate::ids::{InvitationId, JoinRequestId, MessageId, OrgId};
use crate::org::NotificationRouting;
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
    /// A service operator made you the administrator of a new organisation.
    AdministratorAppointed {
        /// The organisation's name.
        org_name: String,
        /// The link to choose a password, for an account created with the organisation;
        /// `None` for an account that already had one (the person signs in as usual).
        set_password: Option<SetPasswordLink>,
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
            Self::AdministratorAppointed { .. } => "administrator_appointed",
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
                | Self::AdministratorAppointed { set_password: Some(_), .. }
                | Self::VerifyEmail { .. }
                | Self::PasswordReset { .. }
        )
    }
}

/// A link to choose the first password of an account a service operator created: a
/// one-time password-reset token that works until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPasswordLink {
    /// The token for the link.
    pub token: Token,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
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

impl OutboundEmail {
    /// The longest error text a failure report quotes (characters).
    pub const MAX_REPORTED_ERROR: usize = 500;

    /// The reports to queue when delivery of this message is given up: a
    /// [`Notification::DeliveryFailed`] to each of its organisation's failed-messaging
    /// addresses (`routing` is that organisation's), on the failed-messaging topic.
    ///
    /// None for a message that concerns no organisation, none for a message that is
    /// itself a failure report (a report that cannot be delivered is not reported, so
    /// reports never loop), and none to the address that just failed.
    #[must_use]
    pub fn failure_reports(
        &self,
        routing: &NotificationRouting,
        error: &str,
        now: DateTime<Utc>,
        mut new_id: impl FnMut() -> MessageId,
    ) -> Vec<OutboundEmail> {
        if self.org.is_none() || matches!(self.notification, Notification::DeliveryFailed { .. }) {
            return Vec::new();
        }
        let error: String = error.chars().take(Self::MAX_REPORTED_ERROR).collect();
        routing
            .addresses(&topics::FAILED_MESSAGING)
            .into_iter()
            .filter(|address| **address != self.to)
            .map(|address| OutboundEmail {
                id: new_id(),
                org: self.org,
                topic: Some(topics::FAILED_MESSAGING),
                to: address.clone(),
                notification: Notification::DeliveryFailed {
                    original_recipient: self.to.clone(),
                    what: self.notification.template().to_owned(),
                    error: error.clone(),
                },
                queued_at: now,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use uuid::Uuid;

    use super::*;
    use crate::catalogue::Catalogue;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse(text).unwrap()
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn routing(addresses: &[&str]) -> NotificationRouting {
        let set: BTreeSet<EmailAddress> = addresses.iter().map(|a| address(a)).collect();
        NotificationRouting::new(&Catalogue::builtin(), [(topics::FAILED_MESSAGING, set)]).unwrap()
    }

    fn email(org: Option<OrgId>, to: &str, notification: Notification) -> OutboundEmail {
        OutboundEmail {
            id: MessageId::from_uuid(Uuid::from_u128(1)),
            org,
            topic: None,
            to: address(to),
            notification,
            queued_at: at(),
        }
    }

    fn ids() -> impl FnMut() -> MessageId {
        let mut n = 100;
        move || {
            n += 1;
            MessageId::from_uuid(Uuid::from_u128(n))
        }
    }

    #[test]
    fn a_dead_letter_is_reported_to_every_failed_messaging_address_but_the_one_that_failed() {
        let org = Some(OrgId::from_uuid(Uuid::from_u128(7)));
        let failed = email(org, "ops@clinic.example", Notification::PasswordChanged { at: at() });
        let reports = failed.failure_reports(
            &routing(&["ops@clinic.example", "it@clinic.example", "boss@clinic.example"]),
            &"x".repeat(600),
            at(),
            ids(),
        );
        let to: Vec<&str> = reports.iter().map(|r| r.to.as_str()).collect();
        assert_eq!(to, ["boss@clinic.example", "it@clinic.example"]);
        for report in &reports {
            assert_eq!((report.org, report.topic.as_ref()), (org, Some(&topics::FAILED_MESSAGING)));
            let Notification::DeliveryFailed { original_recipient, what, error } = &report.notification else {
                panic!("not a failure report: {report:?}");
            };
            assert_eq!((original_recipient.as_str(), what.as_str()), ("ops@clinic.example", "password_changed"));
            assert_eq!(error.chars().count(), OutboundEmail::MAX_REPORTED_ERROR);
        }
        assert_ne!(reports[0].id, reports[1].id);
    }

    #[test]
    fn an_administrator_appointment_carries_a_secret_only_with_a_set_password_link() {
        let link = SetPasswordLink { token: Token::parse(&"ab".repeat(32)).unwrap(), expires_at: at() };
        let with_link = Notification::AdministratorAppointed { org_name: "Acme".into(), set_password: Some(link) };
        let without = Notification::AdministratorAppointed { org_name: "Acme".into(), set_password: None };
        assert!(with_link.carries_secret());
        assert!(!without.carries_secret());
        assert_eq!(without.template(), "administrator_appointed");
    }

    #[test]
    fn reports_are_not_reported_and_messages_without_an_organisation_have_nobody_to_report_to() {
        let org = Some(OrgId::from_uuid(Uuid::from_u128(7)));
        let routing = routing(&["ops@clinic.example"]);
        let report = email(
            org,
            "it@clinic.example",
            Notification::DeliveryFailed {
                original_recipient: address("a@b.example"),
                what: "invitation".into(),
                error: "550".into(),
            },
        );
        assert!(report.failure_reports(&routing, "550", at(), ids()).is_empty());
        let orgless = email(None, "a@b.example", Notification::PasswordChanged { at: at() });
        assert!(orgless.failure_reports(&routing, "550", at(), ids()).is_empty());
        let unrouted = email(org, "a@b.example", Notification::PasswordChanged { at: at() });
        assert!(unrouted.failure_reports(&NotificationRouting::default(), "550", at(), ids()).is_empty());
    }
}
