//! TEMPORARY STUB, replaced by the password-policy module.
#![allow(missing_docs, clippy::all, dead_code, unused)]
use std::collections::BTreeSet;
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}
impl Password {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CharacterClass {
    Uppercase,
    Lowercase,
    Digit,
    Symbol,
}
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PasswordPolicy {
    min_length: usize,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordViolation {
    #[error("short")]
    TooShort { min: usize, actual: usize },
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rejected")]
pub struct PasswordRejected {
    violations: Vec<PasswordViolation>,
}
impl PasswordRejected {
    pub fn violations(&self) -> &[PasswordViolation] {
        &self.violations
    }
}
impl PasswordPolicy {
    pub fn seed_default() -> Self {
        Self { min_length: 10 }
    }
    pub fn nist_800_63b() -> Self {
        Self { min_length: 15 }
    }
    pub fn validate(&self, p: &Password, _l: Option<&str>) -> Result<(), PasswordRejected> {
        if p.char_count() >= self.min_length {
            Ok(())
        } else {
            Err(PasswordRejected {
                violations: vec![PasswordViolation::TooShort { min: self.min_length, actual: p.char_count() }],
            })
        }
    }
    pub fn strictest<'a>(p: impl IntoIterator<Item = &'a PasswordPolicy>) -> Option<PasswordPolicy> {
        p.into_iter().max_by_key(|p| p.min_length).cloned()
    }
    pub fn generate_temporary(&self, random: &[u8; 64], _l: Option<&str>) -> Option<Password> {
        Some(Password(format!("Aa1!{}", random.iter().take(20).map(|b| char::from(b'a' + b % 26)).collect::<String>())))
    }
}
