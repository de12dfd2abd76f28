//! Secret tokens, their hashes, one-time tokens and sessions.
//!
//! Every token (session, invitation, password reset, email verification) is 256 bits
//! from the [`TokenGenerator`](crate::ports::TokenGenerator) port, shown once, and stored
//! only as its SHA-256 hash; look-ups go by hash.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::ids::{SessionId, UserId};
use crate::values::EmailAddress;

/// 256 random bits from a cryptographically secure generator.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// Wraps bytes that came from a cryptographically secure generator.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A token as handed to a person (in a link, a cookie, a header): 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token text for a secret.
    #[must_use]
    pub fn from_secret(secret: &Secret) -> Self {
        Self(hex(secret.bytes()))
    }

    /// Reads a token presented by a client. Returns `None` when the text cannot be a
    /// Guildhall token; callers treat that exactly like an unknown token.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self(text.to_ascii_lowercase()))
    }

    /// The token text. Show it once; never log or store it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256 hash: what is stored and looked up.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 hash of a [`Token`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps a stored hash.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for storage as text.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// What a one-time token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "purpose", rename_all = "snake_case"))]
pub enum TokenPurpose {
    /// Proves control of this address.
    VerifyEmail {
        /// The address being verified.
        email: EmailAddress,
    },
    /// Lets the holder set a new password.
    ResetPassword,
}

/// A single-use token: email verification or password reset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OneTimeToken {
    /// The hash of the token that was sent.
    pub hash: TokenHash,
    /// The account it acts on.
    pub user: UserId,
    /// What it does.
    pub purpose: TokenPurpose,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used, if it was.
    pub used_at: Option<DateTime<Utc>>,
}

impl OneTimeToken {
    /// Whether it can still be used at `now`.
    #[must_use]
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however much it is used.
    pub absolute_timeout: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle_timeout: Duration::hours(12), absolute_timeout: Duration::days(14) }
    }
}

/// A signed-in session. Carries only the user: permissions are read per request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Whose it is.
    pub user: UserId,
    /// The hash of the session token.
    pub token_hash: TokenHash,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_seen_at: DateTime<Utc>,
    /// When it ends whatever happens.
    pub expires_at: DateTime<Utc>,
    /// The session may only change the password (signed in with a temporary password,
    /// or with one that no longer meets the rules).
    pub password_change_required: bool,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether it is still valid at `now` under `policy`.
    #[must_use]
    pub fn is_valid(&self, policy: &SessionPolicy, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.last_seen_at + policy.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_64_hex_digits_and_hashes_with_sha256() {
        let token = Token::from_secret(&Secret::from_bytes([0xab; 32]));
        assert_eq!(token.expose(), "ab".repeat(32));
        // sha256 of the ASCII text, computed independently
        let expected: [u8; 32] = Sha256::digest("ab".repeat(32).as_bytes()).into();
        assert_eq!(token.hash(), TokenHash::from_bytes(expected));
        assert_ne!(token.hash(), Token::from_secret(&Secret::from_bytes([0xac; 32])).hash());
    }

    #[test]
    fn parsing_accepts_only_well_formed_tokens() {
        let text = "0F".repeat(32);
        assert_eq!(Token::parse(&text).map(|t| t.hash()), Token::parse(&text.to_lowercase()).map(|t| t.hash()));
        assert!(Token::parse("abc").is_none());
        assert!(Token::parse(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let token = Token::from_secret(&Secret::from_bytes([7; 32]));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(!format!("{:?}", Secret::from_bytes([7; 32])).contains('7'));
    }
}
