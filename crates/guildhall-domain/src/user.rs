//! User accounts. One account per email address; the address is the username.

use chrono::{DateTime, Utc};

use crate::ids::UserId;
use crate::values::{EmailAddress, PersonName, PhoneNumber};

/// A password hash in the hasher's own encoding (a PHC string for Argon2id). Opaque to
/// the domain.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps an encoded hash.
    #[must_use]
    pub fn new(encoded: impl Into<String>) -> Self {
        Self(encoded.into())
    }

    /// The encoded hash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A temporary password set by an administrator-created account: sent by email only,
/// works once, expires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TemporaryPassword {
    /// Its hash.
    pub hash: PasswordHash,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The account's password state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PasswordState {
    /// The hash of the chosen password, if one was chosen.
    pub hash: Option<PasswordHash>,
    /// A pending temporary password, if any.
    pub temporary: Option<TemporaryPassword>,
    /// The next sign-in must change the password before doing anything else.
    pub must_change: bool,
    /// When the password was last chosen.
    pub changed_at: Option<DateTime<Utc>>,
}

/// Whether the account can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "status", rename_all = "snake_case"))]
pub enum UserStatus {
    /// Usable.
    Active,
    /// Disabled by an operator; cannot sign in.
    Disabled {
        /// When.
        since: DateTime<Utc>,
    },
}

/// A person's account.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct User {
    /// Never changes.
    pub id: UserId,
    /// The username; unique ignoring case.
    pub email: EmailAddress,
    /// First and last name.
    pub name: PersonName,
    /// Phone number, if given.
    pub phone: Option<PhoneNumber>,
    /// When the address was proven, if it was.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Active or disabled.
    pub status: UserStatus,
    /// Password state. Never serialised: a `User` handed to an adapter that serialises
    /// it (an API response, a log line) must not carry password hashes.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub password: PasswordState,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Incremented by every change to the account; commits that read version *n* succeed
    /// only while it is still *n*.
    pub version: u64,
}

impl User {
    /// Whether the address has been verified.
    #[must_use]
    pub fn is_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    /// Whether the account may sign in.
    #[must_use]
    pub fn is_active(&self) -> bool {
        matches!(self.status, UserStatus::Active)
    }
}
