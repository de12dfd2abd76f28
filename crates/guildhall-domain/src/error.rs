//! Errors shared by the use cases.

use std::fmt;

use crate::catalogue::permissions;
use crate::role::Denial;
use crate::values::{InvalidValue, Permission};

/// Something went wrong that the caller cannot fix (storage down, a hasher failure).
/// Shown to people as a generic failure; the source is for logs.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct Unexpected {
    context: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Unexpected {
    /// An unexpected failure described by `context`, caused by `source`.
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self { context: context.into(), source: Some(source.into()) }
    }

    /// An unexpected failure with no underlying error.
    pub fn message(context: impl Into<String>) -> Self {
        Self { context: context.into(), source: None }
    }
}

/// A storage adapter failed (connection lost, disk full, a constraint it could not
/// translate). Adapters MUST translate the failures callers can act on (unique
/// violations) into [`CommitError::Duplicate`](crate::ports::CommitError::Duplicate).
#[derive(Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(source.into())
    }
}

impl From<StoreError> for Unexpected {
    fn from(error: StoreError) -> Self {
        Self::new("storage failed", error)
    }
}

/// The caller may not act in this organisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The organisation does not exist, or the caller is not a member of it: the two
    /// read the same so that nobody learns which organisations exist.
    #[error("organisation not found")]
    NotFound,
    /// The caller is a member but lacks the permission.
    #[error("you need the {permission} permission to do this: {denial}")]
    Forbidden {
        /// The permission needed.
        permission: Permission,
        /// Why it is not held.
        denial: Denial,
    },
    /// The caller is a member, but the membership is suspended or expired: they can do
    /// nothing in the organisation, not even read it. (Always [`Denial::Suspended`] or
    /// [`Denial::Expired`].)
    #[error("{0}; ask an administrator of the organisation if this is a mistake")]
    Inactive(Denial),
    /// The account must change its password first (a temporary password, or one that no
    /// longer meets the rules): until then it can do nothing else.
    #[error("change your password first; until then your account can do nothing else")]
    PasswordChangeRequired,
}

impl AccessError {
    /// The error for a [`Denial`] of `permission`.
    #[must_use]
    pub fn from_denial(permission: &Permission, denial: Denial) -> Self {
        match denial {
            Denial::NotAMember => Self::NotFound,
            denial => Self::Forbidden { permission: permission.clone(), denial },
        }
    }

    /// Whether the caller lacks `members.manage` (for messages that suggest asking an
    /// administrator).
    #[must_use]
    pub fn is_forbidden_member_management(&self) -> bool {
        matches!(self, Self::Forbidden { permission, .. } if *permission == permissions::MEMBERS_MANAGE)
    }
}

/// Every invalid field of a request, reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid(pub Vec<InvalidValue>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid input: {}", parts.join("; "))
    }
}

impl From<InvalidValue> for Invalid {
    fn from(value: InvalidValue) -> Self {
        Self(vec![value])
    }
}

impl From<Vec<InvalidValue>> for Invalid {
    fn from(values: Vec<InvalidValue>) -> Self {
        Self(values)
    }
}

/// Implements `From<StoreError>` for a use-case error through its `Unexpected` variant.
macro_rules! from_store_error {
    ($($error:ty),* $(,)?) => {
        $(impl From<$crate::error::StoreError> for $error {
            fn from(error: $crate::error::StoreError) -> Self {
                Self::Unexpected($crate::error::Unexpected::from(error))
            }
        })*
    };
}
pub(crate) use from_store_error;
