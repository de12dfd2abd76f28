//! Typed identifiers.
//!
//! Every entity has its own identifier type over a UUID, so a `UserId` can never be
//! passed where an `OrgId` is expected. Identifiers are created by the
//! [`IdGenerator`](crate::ports::IdGenerator) port (UUID v7 in production, for index
//! locality); the domain never generates them itself.

use std::fmt;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID (read back from storage or from a request).
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated text form.
            ///
            /// # Errors
            /// Returns [`InvalidId`] when `text` is not a UUID.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(text.trim())
                    .map(Self)
                    .map_err(|_| InvalidId { kind: stringify!($name) })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

typed_id!(
    /// Identifies a [`User`](crate::user::User) account.
    UserId
);
typed_id!(
    /// Identifies an [`Organisation`](crate::org::Organisation).
    OrgId
);
typed_id!(
    /// Identifies an [`Invitation`](crate::invitation::Invitation).
    InvitationId
);
typed_id!(
    /// Identifies a [`JoinRequest`](crate::join_request::JoinRequest).
    JoinRequestId
);
typed_id!(
    /// Identifies a [`Facility`](crate::org::Facility) of an organisation.
    FacilityId
);
typed_id!(
    /// Identifies a [`RunRecord`](crate::org::RunRecord).
    RunId
);
typed_id!(
    /// Identifies an [`AuditEntry`](crate::audit::AuditEntry).
    AuditId
);
typed_id!(
    /// Identifies an [`OutboundEmail`](crate::notification::OutboundEmail) in the outbox.
    MessageId
);
typed_id!(
    /// Identifies a [`Session`](crate::token::Session).
    SessionId
);

/// A text that should have been an identifier was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a UUID such as 0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d")]
pub struct InvalidId {
    kind: &'static str,
}
