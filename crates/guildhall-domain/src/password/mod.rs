//! Password rules: what an organisation may require of a password, and checking a
//! candidate against those requirements.
//!
//! The rules follow NIST SP 800-63B where it is firm (a length floor, a generous length
//! ceiling, a blocklist of common passwords, no part of the account name) and let an
//! organisation add composition rules (character classes) on top, because some customers
//! are audited against them.
//!
//! - [`Password`] is a candidate as typed, NFKC-normalised so that the same characters
//!   typed on different keyboards or pasted from different sources count the same. It
//!   never shows itself in logs.
//! - [`PasswordPolicy`] is a validated set of rules; [`PasswordPolicy::validate`] reports
//!   every broken rule at once as a [`PasswordRejected`].
//! - [`PasswordPolicy::generate_temporary`] turns caller-supplied random bytes into a
//!   password that satisfies the policy (the domain draws no randomness itself).
//! - [`is_common_password`] checks the bundled blocklist of about 20,000 common passwords
//!   (Django's list; `data/README.md` says where it comes from).
//!
//! **Architecture Invariant:** nothing here reads the clock, draws randomness or does
//! I/O; the blocklist is compiled into the binary.
//!
//! ```
//! use guildhall_domain::password::{CharacterClass, Password, PasswordPolicy, PasswordViolation};
//!
//! let policy = PasswordPolicy::seed_default();
//! let rejected = policy
//!     .validate(&Password::new("Password1"), Some("jane.doe"))
//!     .unwrap_err();
//! assert_eq!(
//!     rejected.violations(),
//!     [
//!         PasswordViolation::TooShort { min: 10, actual: 9 },
//!         PasswordViolation::MissingClass(CharacterClass::Symbol),
//!         PasswordViolation::CommonPassword,
//!     ]
//! );
//! assert!(policy.validate(&Password::new("Tr0ub4dor&3-horse"), Some("jane.doe")).is_ok());
//!
//! // The bytes come from the OS RNG through a port; any 64 bytes work here.
//! let temporary = policy.generate_temporary(&[42; 64], Some("jane.doe"));
//! assert!(temporary.is_some_and(|p| policy.validate(&p, Some("jane.doe")).is_ok()));
//! ```

mod blocklist;
mod generate;
mod policy;

use std::collections::BTreeSet;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

pub use blocklist::{blocklist_len, common_passwords, is_common_password};
pub use policy::{InvalidPasswordPolicy, PasswordPolicy, PasswordRejected, PasswordViolation};

/// A candidate password as typed, NFKC-normalised.
///
/// Normalising means that a password typed as `ｐａｓｓ` (full-width) and as `pass` is the
/// same password, both for the rules and for the hash, so a person can log in from any
/// keyboard. `Debug` prints `Password(<redacted>)`; there is deliberately no `Display`
/// and no `Serialize`, so a password cannot end up in a log line or a response body by
/// accident. Equality (for messages that carry a temporary password, and for tests)
/// takes the same time whatever the contents; checking a sign-in is the hasher's job.
#[derive(Clone)]
pub struct Password(String);

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        let (left, right) = (self.0.as_bytes(), other.0.as_bytes());
        // Only the lengths may leak through timing, not where the contents differ.
        left.len() == right.len() && left.iter().zip(right).fold(0_u8, |diff, (l, r)| diff | (l ^ r)) == 0
    }
}

impl Eq for Password {}

impl Password {
    /// Wraps `raw`, normalised to Unicode NFKC.
    ///
    /// Any string is accepted: whether it is *good enough* is for
    /// [`PasswordPolicy::validate`] to say.
    #[must_use]
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into().nfkc().collect())
    }

    /// The normalised password, for hashing. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The length as the rules count it: Unicode scalar values after NFKC.
    ///
    /// This is what a person would call "characters" for almost all text; a few emoji
    /// built from several code points count as more than one.
    #[must_use]
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }

    /// The character classes that occur in the password at least once.
    #[must_use]
    pub fn classes(&self) -> BTreeSet<CharacterClass> {
        self.0.chars().filter_map(CharacterClass::of).collect()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A kind of character a policy can require at least one of.
///
/// Classification is Unicode-aware, so `É`, `ß` and `٣` count as an upper-case letter, a
/// lower-case letter and a digit. Letters without case (for example Chinese characters)
/// count towards no class; whitespace counts towards no class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CharacterClass {
    /// A letter for which [`char::is_uppercase`] holds.
    Uppercase,
    /// A letter for which [`char::is_lowercase`] holds.
    Lowercase,
    /// A character for which [`char::is_numeric`] holds.
    Digit,
    /// Anything that is neither alphanumeric nor whitespace, such as `!`, `€` or `😀`.
    Symbol,
}

impl CharacterClass {
    /// Every class, in the order rules and violations are reported.
    pub const ALL: [Self; 4] = [Self::Uppercase, Self::Lowercase, Self::Digit, Self::Symbol];

    /// The class `c` belongs to, if any; a character belongs to at most one class.
    #[must_use]
    pub fn of(c: char) -> Option<Self> {
        if c.is_uppercase() {
            Some(Self::Uppercase)
        } else if c.is_lowercase() {
            Some(Self::Lowercase)
        } else if c.is_numeric() {
            Some(Self::Digit)
        } else if !c.is_alphanumeric() && !c.is_whitespace() {
            Some(Self::Symbol)
        } else {
            None
        }
    }
}

impl fmt::Display for CharacterClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uppercase => "an upper-case letter",
            Self::Lowercase => "a lower-case letter",
            Self::Digit => "a digit",
            Self::Symbol => "a symbol such as !, # or %",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_normalised_to_nfkc() {
        let password = Password::new("ｐａｓｓ①");
        assert_eq!(password.expose(), "pass1");
    }

    #[test]
    fn the_length_of_a_password_counts_unicode_scalar_values_after_normalisation() {
        // "ﬁ" is one ligature before NFKC and two letters after it.
        assert_eq!(Password::new("ﬁ").char_count(), 2);
        assert_eq!(Password::new("é").char_count(), 1);
        assert_eq!(Password::new("e\u{301}").char_count(), 1, "composed to é");
        assert_eq!(Password::new("日本語").char_count(), 3);
    }

    #[test]
    fn a_password_never_shows_itself_in_debug_output() {
        let password = Password::new("hunter2-secret");
        let shown = format!("{password:?} {password:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }

    #[test]
    fn passwords_are_equal_when_their_normalised_forms_are() {
        assert_eq!(Password::new("ｐａｓｓ"), Password::new("pass"));
        assert_ne!(Password::new("pass"), Password::new("pasS"));
        assert_ne!(Password::new("pass"), Password::new("pass "));
    }

    #[test]
    fn characters_are_classified_unicode_aware() {
        assert_eq!(CharacterClass::of('A'), Some(CharacterClass::Uppercase));
        assert_eq!(CharacterClass::of('É'), Some(CharacterClass::Uppercase));
        assert_eq!(CharacterClass::of('a'), Some(CharacterClass::Lowercase));
        assert_eq!(CharacterClass::of('ß'), Some(CharacterClass::Lowercase));
        assert_eq!(CharacterClass::of('7'), Some(CharacterClass::Digit));
        assert_eq!(CharacterClass::of('٣'), Some(CharacterClass::Digit));
        assert_eq!(CharacterClass::of('!'), Some(CharacterClass::Symbol));
        assert_eq!(CharacterClass::of('€'), Some(CharacterClass::Symbol));
        assert_eq!(CharacterClass::of('😀'), Some(CharacterClass::Symbol));
    }

    #[test]
    fn whitespace_and_caseless_letters_belong_to_no_class() {
        assert_eq!(CharacterClass::of(' '), None);
        assert_eq!(CharacterClass::of('\u{3000}'), None);
        assert_eq!(CharacterClass::of('中'), None);
    }

    #[test]
    fn the_classes_of_a_password_are_those_of_its_characters() {
        let classes = Password::new("ab C!").classes();
        assert_eq!(
            classes,
            BTreeSet::from([CharacterClass::Uppercase, CharacterClass::Lowercase, CharacterClass::Symbol])
        );
    }

    #[test]
    fn character_classes_describe_themselves_for_messages() {
        assert_eq!(CharacterClass::Uppercase.to_string(), "an upper-case letter");
        assert_eq!(CharacterClass::Lowercase.to_string(), "a lower-case letter");
        assert_eq!(CharacterClass::Digit.to_string(), "a digit");
        assert!(CharacterClass::Symbol.to_string().starts_with("a symbol"));
    }

    #[test]
    fn character_classes_are_ordered_as_reported() {
        let mut sorted = CharacterClass::ALL;
        sorted.sort();
        assert_eq!(sorted, CharacterClass::ALL);
    }
}
