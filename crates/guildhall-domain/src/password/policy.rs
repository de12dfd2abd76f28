//! [`PasswordPolicy`]: the rules, checking a password against them, and combining them.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

use crate::password::{CharacterClass, Password, is_common_password};

/// The rules a password must satisfy, as an organisation (or the whole installation)
/// configures them.
///
/// A policy can only exist with sane bounds: it requires at least
/// [`LOWEST_MIN_LENGTH`](Self::LOWEST_MIN_LENGTH) characters, allows at least
/// [`LOWEST_MAX_LENGTH`](Self::LOWEST_MAX_LENGTH) (so passphrases and password managers
/// work) and at most [`HIGHEST_MAX_LENGTH`](Self::HIGHEST_MAX_LENGTH) (so hashing a
/// submitted password has a bounded cost). Lengths count Unicode scalar values after
/// NFKC, as [`Password::char_count`] does.
///
/// With the `serde` feature it deserialises through the same checks as
/// [`PasswordPolicy::new`], so a stored or submitted policy with bad bounds is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "PasswordPolicyRepr"))]
pub struct PasswordPolicy {
    min_length: usize,
    max_length: usize,
    required_classes: BTreeSet<CharacterClass>,
    reject_email_local_part: bool,
    reject_common_passwords: bool,
}

impl PasswordPolicy {
    /// A policy may not require fewer characters than this (NIST SP 800-63B's floor).
    pub const LOWEST_MIN_LENGTH: usize = 8;
    /// A policy must allow at least this many characters (NIST SP 800-63B).
    pub const LOWEST_MAX_LENGTH: usize = 64;
    /// A policy may not allow more characters than this, to bound the cost of hashing.
    pub const HIGHEST_MAX_LENGTH: usize = 1024;
    /// The email local-part rule only applies to local parts at least this long.
    ///
    /// A one- to three-letter local part (`al@`, `ops@`) occurs inside a large share of
    /// ordinary passwords and words (`always`, `topsoil`), so refusing them would reject
    /// good passwords while adding nothing an attacker could not guess anyway.
    pub const LOCAL_PART_MIN_CHARS: usize = 4;

    /// Checks the bounds and builds a policy.
    ///
    /// Duplicate classes in `required_classes` are ignored.
    ///
    /// # Errors
    ///
    /// Returns the first problem found, in this order:
    /// [`InvalidPasswordPolicy::MinLengthTooLow`] when `min_length` is below
    /// [`LOWEST_MIN_LENGTH`](Self::LOWEST_MIN_LENGTH),
    /// [`InvalidPasswordPolicy::MaxLengthTooLow`] when `max_length` is below
    /// [`LOWEST_MAX_LENGTH`](Self::LOWEST_MAX_LENGTH),
    /// [`InvalidPasswordPolicy::MaxLengthTooHigh`] when `max_length` is above
    /// [`HIGHEST_MAX_LENGTH`](Self::HIGHEST_MAX_LENGTH), and
    /// [`InvalidPasswordPolicy::MinLengthAboveMaxLength`] when `min_length` exceeds
    /// `max_length`.
    pub fn new(
        min_length: usize,
        max_length: usize,
        required_classes: impl IntoIterator<Item = CharacterClass>,
        reject_email_local_part: bool,
        reject_common_passwords: bool,
    ) -> Result<Self, InvalidPasswordPolicy> {
        if min_length < Self::LOWEST_MIN_LENGTH {
            return Err(InvalidPasswordPolicy::MinLengthTooLow { min_length });
        }
        if max_length < Self::LOWEST_MAX_LENGTH {
            return Err(InvalidPasswordPolicy::MaxLengthTooLow { max_length });
        }
        if max_length > Self::HIGHEST_MAX_LENGTH {
            return Err(InvalidPasswordPolicy::MaxLengthTooHigh { max_length });
        }
        if min_length > max_length {
            return Err(InvalidPasswordPolicy::MinLengthAboveMaxLength { min_length, max_length });
        }
        Ok(Self {
            min_length,
            max_length,
            required_classes: required_classes.into_iter().collect(),
            reject_email_local_part,
            reject_common_passwords,
        })
    }

    /// The policy a new installation starts with: 10 to 128 characters, one of each
    /// character class, not the email local part, not a common password.
    #[must_use]
    pub fn seed_default() -> Self {
        Self {
            min_length: 10,
            max_length: 128,
            required_classes: CharacterClass::ALL.into_iter().collect(),
            reject_email_local_part: true,
            reject_common_passwords: true,
        }
    }

    /// NIST SP 800-63B (revision 4) for a password used as the only factor: at least 15
    /// characters, up to 128, no composition rules, not the email local part, not a
    /// common password.
    #[must_use]
    pub fn nist_800_63b() -> Self {
        Self {
            min_length: 15,
            max_length: 128,
            required_classes: BTreeSet::new(),
            reject_email_local_part: true,
            reject_common_passwords: true,
        }
    }

    /// The fewest characters a password may have.
    #[must_use]
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// The most characters a password may have.
    #[must_use]
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The classes a password must contain at least one character of.
    #[must_use]
    pub fn required_classes(&self) -> &BTreeSet<CharacterClass> {
        &self.required_classes
    }

    /// Whether a password containing the email local part is refused.
    #[must_use]
    pub fn reject_email_local_part(&self) -> bool {
        self.reject_email_local_part
    }

    /// Whether a password on the bundled common-password list is refused.
    #[must_use]
    pub fn reject_common_passwords(&self) -> bool {
        self.reject_common_passwords
    }

    /// Checks `password` against every rule of the policy.
    ///
    /// `email_local_part` is the part of the person's email address before the `@`
    /// (`None` when there is no address yet). If a whole address is passed, only the
    /// part before its last `@` is used. The local part and the password are compared
    /// after NFKC and lower-casing, as substrings; if the local part carries a
    /// `+tag` (`jane.doe+guildhall`), the part before the `+` (`jane.doe`) is checked too.
    /// Either is only checked when it has at least
    /// [`LOCAL_PART_MIN_CHARS`](Self::LOCAL_PART_MIN_CHARS) characters.
    ///
    /// # Errors
    ///
    /// Returns [`PasswordRejected`] listing **every** rule the password breaks, in this
    /// order: [`PasswordViolation::TooShort`] or [`PasswordViolation::TooLong`], then one
    /// [`PasswordViolation::MissingClass`] per missing class in [`CharacterClass`] order,
    /// then [`PasswordViolation::ContainsEmailLocalPart`], then
    /// [`PasswordViolation::CommonPassword`]. The list is never empty.
    pub fn validate(&self, password: &Password, email_local_part: Option<&str>) -> Result<(), PasswordRejected> {
        let mut violations = Vec::new();

        let actual = password.char_count();
        if actual < self.min_length {
            violations.push(PasswordViolation::TooShort { min: self.min_length, actual });
        } else if actual > self.max_length {
            violations.push(PasswordViolation::TooLong { max: self.max_length, actual });
        }

        let present = password.classes();
        violations
            .extend(self.required_classes.difference(&present).map(|class| PasswordViolation::MissingClass(*class)));

        if self.reject_email_local_part && email_local_part.is_some_and(|local| contains_local_part(password, local)) {
            violations.push(PasswordViolation::ContainsEmailLocalPart);
        }

        if self.reject_common_passwords && is_common_password(password.expose()) {
            violations.push(PasswordViolation::CommonPassword);
        }

        if violations.is_empty() { Ok(()) } else { Err(PasswordRejected { violations }) }
    }

    /// The policy that is at least as strict as each of `policies`, for a person who
    /// belongs to several organisations with different rules; `None` when `policies` is
    /// empty.
    ///
    /// It takes the highest minimum length, the lowest maximum length, the union of the
    /// required classes, and turns each reject rule on if any policy has it on. A password
    /// valid under the result is then valid under every input policy, with one exception:
    /// when one policy's minimum is above another's maximum, no password can satisfy both,
    /// and the result's maximum is raised to its minimum (the longer password is the safer
    /// side to err on), so the result is still a valid policy.
    #[must_use]
    pub fn strictest<'a>(policies: impl IntoIterator<Item = &'a PasswordPolicy>) -> Option<PasswordPolicy> {
        let mut policies = policies.into_iter();
        let mut strictest = policies.next()?.clone();
        let mut lowest_max = strictest.max_length;
        for policy in policies {
            strictest.min_length = strictest.min_length.max(policy.min_length);
            lowest_max = lowest_max.min(policy.max_length);
            strictest.required_classes.extend(policy.required_classes.iter().copied());
            strictest.reject_email_local_part |= policy.reject_email_local_part;
            strictest.reject_common_passwords |= policy.reject_common_passwords;
        }
        // Every input had 8 <= min <= max <= 1024 and max >= 64, so the highest min and
        // the lowest max both lie in those bounds, and so does the larger of the two.
        strictest.max_length = lowest_max.max(strictest.min_length);
        Some(strictest)
    }

    /// Each rule as a short phrase to show before the person types, in the order
    /// violations are reported, for example `"at least 10 characters"`.
    #[must_use]
    pub fn rules(&self) -> Vec<String> {
        let mut rules =
            vec![format!("at least {} characters", self.min_length), format!("at most {} characters", self.max_length)];
        rules.extend(self.required_classes.iter().map(|class| {
            match class {
                CharacterClass::Uppercase => "at least one upper-case letter",
                CharacterClass::Lowercase => "at least one lower-case letter",
                CharacterClass::Digit => "at least one digit",
                CharacterClass::Symbol => "at least one symbol such as !, # or %",
            }
            .to_owned()
        }));
        if self.reject_email_local_part {
            rules.push("not containing the part of your email address before the @".to_owned());
        }
        if self.reject_common_passwords {
            rules.push("not a commonly used password".to_owned());
        }
        rules
    }
}

/// The local-part spellings worth checking: the whole local part and, for `name+tag`,
/// `name`; each NFKC, lower-cased and at least `LOCAL_PART_MIN_CHARS` long.
fn local_part_variants(email_local_part: &str) -> Vec<String> {
    let folded = email_local_part.nfkc().collect::<String>().to_lowercase();
    let local = folded.rsplit_once('@').map_or(folded.as_str(), |(before, _)| before);
    let mut variants = vec![local];
    if let Some((untagged, _tag)) = local.split_once('+') {
        variants.push(untagged);
    }
    variants
        .into_iter()
        .filter(|variant| variant.chars().count() >= PasswordPolicy::LOCAL_PART_MIN_CHARS)
        .map(str::to_owned)
        .collect()
}

fn contains_local_part(password: &Password, email_local_part: &str) -> bool {
    let folded = password.expose().to_lowercase();
    local_part_variants(email_local_part).iter().any(|variant| folded.contains(variant.as_str()))
}

/// Why a policy could not be built; each message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPasswordPolicy {
    /// The minimum length is below [`PasswordPolicy::LOWEST_MIN_LENGTH`].
    #[error(
        "a minimum password length of {min_length} is too low: a policy must require at \
         least {lowest} characters; raise the minimum to {lowest} or more",
        lowest = PasswordPolicy::LOWEST_MIN_LENGTH
    )]
    MinLengthTooLow {
        /// The minimum length that was asked for.
        min_length: usize,
    },
    /// The maximum length is below [`PasswordPolicy::LOWEST_MAX_LENGTH`].
    #[error(
        "a maximum password length of {max_length} is too low: a policy must allow at least \
         {lowest} characters so that passphrases and password managers work; raise the \
         maximum to {lowest} or more",
        lowest = PasswordPolicy::LOWEST_MAX_LENGTH
    )]
    MaxLengthTooLow {
        /// The maximum length that was asked for.
        max_length: usize,
    },
    /// The maximum length is above [`PasswordPolicy::HIGHEST_MAX_LENGTH`].
    #[error(
        "a maximum password length of {max_length} is too high: a policy may allow at most \
         {highest} characters; lower the maximum to {highest} or less",
        highest = PasswordPolicy::HIGHEST_MAX_LENGTH
    )]
    MaxLengthTooHigh {
        /// The maximum length that was asked for.
        max_length: usize,
    },
    /// The minimum length is greater than the maximum length.
    #[error(
        "the minimum password length ({min_length}) is greater than the maximum \
         ({max_length}); lower the minimum or raise the maximum"
    )]
    MinLengthAboveMaxLength {
        /// The minimum length that was asked for.
        min_length: usize,
        /// The maximum length that was asked for.
        max_length: usize,
    },
}

/// One rule a password breaks. The message completes the sentence "The password …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "rule", content = "details", rename_all = "snake_case"))]
pub enum PasswordViolation {
    /// Fewer characters than the policy's minimum.
    #[error("must be at least {min} characters long (it has {actual})")]
    TooShort {
        /// The policy's minimum length.
        min: usize,
        /// The password's length.
        actual: usize,
    },
    /// More characters than the policy's maximum.
    #[error("must be at most {max} characters long (it has {actual})")]
    TooLong {
        /// The policy's maximum length.
        max: usize,
        /// The password's length.
        actual: usize,
    },
    /// No character of a class the policy requires.
    #[error("must contain {0}")]
    MissingClass(CharacterClass),
    /// Contains the part of the person's email address before the `@`.
    #[error("must not contain the part of your email address before the @")]
    ContainsEmailLocalPart,
    /// On the bundled list of common passwords.
    #[error("is too common: it appears in lists of passwords attackers try first")]
    CommonPassword,
}

/// A password that breaks one or more rules of a policy, with every rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the password {}; choose another one", join_messages(.violations))]
pub struct PasswordRejected {
    violations: Vec<PasswordViolation>,
}

impl PasswordRejected {
    /// The rules broken, in the order [`PasswordPolicy::validate`] documents; never empty.
    #[must_use]
    pub fn violations(&self) -> &[PasswordViolation] {
        &self.violations
    }

    /// The rules broken, by value.
    #[must_use]
    pub fn into_violations(self) -> Vec<PasswordViolation> {
        self.violations
    }
}

fn join_messages(violations: &[PasswordViolation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What a serialised policy looks like; deserialising goes through [`PasswordPolicy::new`].
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordPolicyRepr {
    min_length: usize,
    max_length: usize,
    required_classes: BTreeSet<CharacterClass>,
    reject_email_local_part: bool,
    reject_common_passwords: bool,
}

#[cfg(feature = "serde")]
impl TryFrom<PasswordPolicyRepr> for PasswordPolicy {
    type Error = InvalidPasswordPolicy;

    fn try_from(repr: PasswordPolicyRepr) -> Result<Self, Self::Error> {
        Self::new(
            repr.min_length,
            repr.max_length,
            repr.required_classes,
            repr.reject_email_local_part,
            repr.reject_common_passwords,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CharacterClass::{Digit, Lowercase, Symbol, Uppercase};

    /// 8 to 64 characters, no other rule: each test switches on the one it is about.
    fn lenient() -> PasswordPolicy {
        PasswordPolicy::new(8, 64, [], false, false).unwrap()
    }

    fn violations(policy: &PasswordPolicy, password: &str, local: Option<&str>) -> Vec<PasswordViolation> {
        match policy.validate(&Password::new(password), local) {
            Ok(()) => Vec::new(),
            Err(rejected) => rejected.into_violations(),
        }
    }

    // --- building a policy ---

    #[test]
    fn a_policy_requiring_fewer_than_eight_characters_cannot_be_built() {
        let error = PasswordPolicy::new(7, 64, [], true, true).unwrap_err();
        assert_eq!(error, InvalidPasswordPolicy::MinLengthTooLow { min_length: 7 });
        assert!(error.to_string().contains("raise the minimum to 8"), "{error}");
    }

    #[test]
    fn a_policy_allowing_fewer_than_sixty_four_characters_cannot_be_built() {
        let error = PasswordPolicy::new(8, 63, [], true, true).unwrap_err();
        assert_eq!(error, InvalidPasswordPolicy::MaxLengthTooLow { max_length: 63 });
        assert!(error.to_string().contains("raise the maximum to 64"), "{error}");
    }

    #[test]
    fn a_policy_allowing_more_than_1024_characters_cannot_be_built() {
        let error = PasswordPolicy::new(8, 1025, [], true, true).unwrap_err();
        assert_eq!(error, InvalidPasswordPolicy::MaxLengthTooHigh { max_length: 1025 });
        assert!(error.to_string().contains("lower the maximum to 1024"), "{error}");
    }

    #[test]
    fn a_policy_whose_minimum_exceeds_its_maximum_cannot_be_built() {
        let error = PasswordPolicy::new(100, 64, [], true, true).unwrap_err();
        assert_eq!(error, InvalidPasswordPolicy::MinLengthAboveMaxLength { min_length: 100, max_length: 64 });
        assert!(error.to_string().contains("(100)"), "{error}");
    }

    #[test]
    fn a_policy_at_the_extreme_bounds_can_be_built() {
        assert!(PasswordPolicy::new(8, 64, [], false, false).is_ok());
        assert!(PasswordPolicy::new(1024, 1024, CharacterClass::ALL, true, true).is_ok());
    }

    #[test]
    fn duplicate_required_classes_count_once() {
        let policy = PasswordPolicy::new(8, 64, [Digit, Digit, Symbol], false, false).unwrap();
        assert_eq!(policy.required_classes(), &BTreeSet::from([Digit, Symbol]));
    }

    #[test]
    fn the_seed_default_is_ten_to_128_characters_of_all_classes_rejecting_local_part_and_common() {
        let expected = PasswordPolicy::new(10, 128, CharacterClass::ALL, true, true).unwrap();
        assert_eq!(PasswordPolicy::seed_default(), expected);
    }

    #[test]
    fn the_nist_policy_is_fifteen_to_128_characters_without_classes() {
        let expected = PasswordPolicy::new(15, 128, [], true, true).unwrap();
        assert_eq!(PasswordPolicy::nist_800_63b(), expected);
        assert_eq!(PasswordPolicy::nist_800_63b().min_length(), 15);
        assert!(PasswordPolicy::nist_800_63b().required_classes().is_empty());
    }

    // --- length ---

    #[test]
    fn a_password_one_character_short_is_refused_with_its_length() {
        assert_eq!(violations(&lenient(), "abcdefg", None), [PasswordViolation::TooShort { min: 8, actual: 7 }]);
    }

    #[test]
    fn a_password_of_exactly_the_minimum_length_is_accepted() {
        assert_eq!(violations(&lenient(), "abcdefgh", None), []);
    }

    #[test]
    fn a_password_one_character_too_long_is_refused_with_its_length() {
        let password = "a".repeat(65);
        assert_eq!(violations(&lenient(), &password, None), [PasswordViolation::TooLong { max: 64, actual: 65 }]);
    }

    #[test]
    fn a_password_of_exactly_the_maximum_length_is_accepted() {
        assert_eq!(violations(&lenient(), &"a".repeat(64), None), []);
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // Eight two-byte characters: 16 bytes, 8 characters.
        assert_eq!(violations(&lenient(), "éééééééé", None), []);
        // Seven four-byte emoji: 28 bytes, still too short.
        assert_eq!(violations(&lenient(), "😀😀😀😀😀😀😀", None), [PasswordViolation::TooShort { min: 8, actual: 7 }]);
    }

    #[test]
    fn length_is_counted_after_nfkc() {
        // Four "ﬃ" ligatures are 4 characters typed but 12 after NFKC.
        assert_eq!(violations(&lenient(), "ﬃﬃﬃﬃ", None), []);
    }

    // --- classes ---

    #[test]
    fn a_password_without_a_required_upper_case_letter_is_refused() {
        let policy = PasswordPolicy::new(8, 64, [Uppercase], false, false).unwrap();
        assert_eq!(violations(&policy, "lowercase only", None), [PasswordViolation::MissingClass(Uppercase)]);
        assert_eq!(violations(&policy, "lowercase Once", None), []);
    }

    #[test]
    fn a_password_without_a_required_lower_case_letter_is_refused() {
        let policy = PasswordPolicy::new(8, 64, [Lowercase], false, false).unwrap();
        assert_eq!(violations(&policy, "UPPERCASE ONLY", None), [PasswordViolation::MissingClass(Lowercase)]);
        assert_eq!(violations(&policy, "UPPERCASe", None), []);
    }

    #[test]
    fn a_password_without_a_required_digit_is_refused() {
        let policy = PasswordPolicy::new(8, 64, [Digit], false, false).unwrap();
        assert_eq!(violations(&policy, "no digits here", None), [PasswordViolation::MissingClass(Digit)]);
        assert_eq!(violations(&policy, "one digit 4 here", None), []);
    }

    #[test]
    fn a_password_without_a_required_symbol_is_refused_even_with_spaces() {
        let policy = PasswordPolicy::new(8, 64, [Symbol], false, false).unwrap();
        assert_eq!(violations(&policy, "spaces are not symbols", None), [PasswordViolation::MissingClass(Symbol)]);
        assert_eq!(violations(&policy, "a symbol: here", None), []);
    }

    #[test]
    fn unicode_letters_and_digits_satisfy_their_classes() {
        let policy = PasswordPolicy::new(8, 64, [Uppercase, Lowercase, Digit], false, false).unwrap();
        assert_eq!(violations(&policy, "Ünïcödé٣", None), []);
    }

    // --- email local part ---

    #[test]
    fn a_password_containing_the_email_local_part_is_refused_whatever_the_case() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(
            violations(&policy, "my-JaneDoe-password", Some("janedoe")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
    }

    #[test]
    fn a_password_containing_the_untagged_part_of_a_tagged_local_part_is_refused() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(
            violations(&policy, "janedoe-rocks-2024", Some("janedoe+guildhall")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
        assert_eq!(
            violations(&policy, "xx janedoe+guildhall xx", Some("janedoe+guildhall")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
    }

    #[test]
    fn a_local_part_shorter_than_four_characters_is_not_checked() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(violations(&policy, "always topsoil", Some("ops")), []);
        // Nor is a short untagged part, while the whole tagged part still is.
        assert_eq!(violations(&policy, "all the way home", Some("al+work")), []);
        assert_eq!(
            violations(&policy, "al+work forever", Some("al+work")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
    }

    #[test]
    fn a_local_part_of_exactly_four_characters_is_checked() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(violations(&policy, "hello jane doe", Some("jane")), [PasswordViolation::ContainsEmailLocalPart]);
    }

    #[test]
    fn the_local_part_is_compared_after_nfkc() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(
            violations(&policy, "ｊａｎｅｄｏｅ forever", Some("JaneDoe")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
    }

    #[test]
    fn a_whole_email_address_passed_as_local_part_is_cut_at_the_at_sign() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(
            violations(&policy, "janedoe forever", Some("janedoe@example.com")),
            [PasswordViolation::ContainsEmailLocalPart]
        );
    }

    #[test]
    fn the_local_part_rule_is_off_when_the_policy_does_not_reject_it() {
        assert_eq!(violations(&lenient(), "janedoe forever", Some("janedoe")), []);
    }

    #[test]
    fn without_an_email_address_the_local_part_rule_cannot_be_broken() {
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(violations(&policy, "janedoe forever", None), []);
    }

    // --- common passwords ---

    #[test]
    fn a_common_password_is_refused_whatever_its_case() {
        let policy = PasswordPolicy::new(8, 64, [], false, true).unwrap();
        assert_eq!(violations(&policy, "Password1", None), [PasswordViolation::CommonPassword]);
        assert_eq!(violations(&policy, "BASEBALL", None), [PasswordViolation::CommonPassword]);
    }

    #[test]
    fn a_full_width_common_password_is_refused() {
        let policy = PasswordPolicy::new(8, 64, [], false, true).unwrap();
        assert_eq!(violations(&policy, "ｐａｓｓｗｏｒｄ１", None), [PasswordViolation::CommonPassword]);
    }

    #[test]
    fn a_common_password_is_accepted_when_the_policy_allows_it() {
        assert_eq!(violations(&lenient(), "password1", None), []);
    }

    // --- reporting ---

    #[test]
    fn every_violation_is_reported_at_once_in_a_stable_order() {
        let policy = PasswordPolicy::seed_default();
        // "password" is common, 8 characters, lower-case only, and contains "pass" + "word".
        assert_eq!(
            violations(&policy, "password", Some("password")),
            [
                PasswordViolation::TooShort { min: 10, actual: 8 },
                PasswordViolation::MissingClass(Uppercase),
                PasswordViolation::MissingClass(Digit),
                PasswordViolation::MissingClass(Symbol),
                PasswordViolation::ContainsEmailLocalPart,
                PasswordViolation::CommonPassword,
            ]
        );
    }

    #[test]
    fn a_password_meeting_every_rule_of_the_seed_default_is_accepted() {
        let policy = PasswordPolicy::seed_default();
        assert_eq!(violations(&policy, "Correct-Horse-7-Battery", Some("janedoe")), []);
    }

    #[test]
    fn the_rejection_message_joins_every_violation() {
        let policy = PasswordPolicy::new(10, 64, [Digit], false, false).unwrap();
        let rejected = policy.validate(&Password::new("abcdefg"), None).unwrap_err();
        assert_eq!(
            rejected.to_string(),
            "the password must be at least 10 characters long (it has 7); must contain a \
             digit; choose another one"
        );
    }

    #[test]
    fn violation_messages_say_what_to_do() {
        assert_eq!(
            PasswordViolation::TooShort { min: 10, actual: 7 }.to_string(),
            "must be at least 10 characters long (it has 7)"
        );
        assert_eq!(
            PasswordViolation::TooLong { max: 64, actual: 70 }.to_string(),
            "must be at most 64 characters long (it has 70)"
        );
        assert_eq!(PasswordViolation::MissingClass(Uppercase).to_string(), "must contain an upper-case letter");
        assert_eq!(
            PasswordViolation::ContainsEmailLocalPart.to_string(),
            "must not contain the part of your email address before the @"
        );
        assert_eq!(
            PasswordViolation::CommonPassword.to_string(),
            "is too common: it appears in lists of passwords attackers try first"
        );
    }

    // --- strictest ---

    #[test]
    fn the_strictest_of_no_policies_is_none() {
        assert_eq!(PasswordPolicy::strictest([]), None);
    }

    #[test]
    fn the_strictest_of_one_policy_is_that_policy() {
        let policy = PasswordPolicy::seed_default();
        assert_eq!(PasswordPolicy::strictest([&policy]), Some(policy));
    }

    #[test]
    fn the_strictest_policy_takes_the_highest_minimum_the_lowest_maximum_and_every_rule() {
        let a = PasswordPolicy::new(12, 200, [Digit], true, false).unwrap();
        let b = PasswordPolicy::new(9, 100, [Symbol, Digit], false, true).unwrap();
        let expected = PasswordPolicy::new(12, 100, [Digit, Symbol], true, true).unwrap();
        assert_eq!(PasswordPolicy::strictest([&a, &b]), Some(expected.clone()));
        assert_eq!(PasswordPolicy::strictest([&b, &a]), Some(expected));
    }

    #[test]
    fn the_strictest_policy_never_has_a_maximum_below_its_minimum() {
        let long = PasswordPolicy::new(100, 200, [], false, false).unwrap();
        let short = PasswordPolicy::new(8, 64, [], false, false).unwrap();
        let strictest = PasswordPolicy::strictest([&short, &long]).unwrap();
        assert_eq!((strictest.min_length(), strictest.max_length()), (100, 100));
    }

    // --- rules ---

    #[test]
    fn the_rules_of_the_seed_default_are_listed_in_reporting_order() {
        assert_eq!(
            PasswordPolicy::seed_default().rules(),
            [
                "at least 10 characters",
                "at most 128 characters",
                "at least one upper-case letter",
                "at least one lower-case letter",
                "at least one digit",
                "at least one symbol such as !, # or %",
                "not containing the part of your email address before the @",
                "not a commonly used password",
            ]
        );
    }

    #[test]
    fn a_policy_without_optional_rules_lists_only_its_lengths() {
        assert_eq!(lenient().rules(), ["at least 8 characters", "at most 64 characters"]);
    }

    // --- serde ---

    #[cfg(feature = "serde")]
    mod serde_support {
        use super::*;
        use serde::Deserialize;
        use serde::de::value::{Error, MapDeserializer, SeqDeserializer, StrDeserializer};
        use serde::de::{IntoDeserializer, Visitor};

        /// Just enough of a self-describing format to feed derived `Deserialize` impls
        /// without a format crate.
        #[derive(Clone)]
        enum Value {
            Size(u64),
            Flag(bool),
            List(Vec<&'static str>),
            Text(&'static str),
        }

        impl<'de> serde::Deserializer<'de> for Value {
            type Error = Error;

            fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self {
                    Value::Size(n) => visitor.visit_u64(n),
                    Value::Flag(b) => visitor.visit_bool(b),
                    Value::Text(s) => visitor.visit_borrowed_str(s),
                    Value::List(items) => visitor.visit_seq(SeqDeserializer::new(
                        items.into_iter().map(IntoDeserializer::<Error>::into_deserializer),
                    )),
                }
            }

            fn deserialize_enum<V: Visitor<'de>>(
                self,
                name: &'static str,
                variants: &'static [&'static str],
                visitor: V,
            ) -> Result<V::Value, Error> {
                match self {
                    // A unit variant written as its name, as JSON writes it.
                    Value::Text(s) => StrDeserializer::new(s).deserialize_enum(name, variants, visitor),
                    other => other.deserialize_any(visitor),
                }
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                struct identifier ignored_any
            }
        }

        impl IntoDeserializer<'_, Error> for Value {
            type Deserializer = Self;
            fn into_deserializer(self) -> Self {
                self
            }
        }

        fn policy_from(fields: Vec<(&'static str, Value)>) -> Result<PasswordPolicy, Error> {
            PasswordPolicy::deserialize(MapDeserializer::new(fields.into_iter()))
        }

        fn fields(min: u64, max: u64) -> Vec<(&'static str, Value)> {
            vec![
                ("min_length", Value::Size(min)),
                ("max_length", Value::Size(max)),
                ("required_classes", Value::List(vec!["digit", "symbol"])),
                ("reject_email_local_part", Value::Flag(true)),
                ("reject_common_passwords", Value::Flag(false)),
            ]
        }

        #[test]
        fn a_valid_serialised_policy_deserialises_to_the_same_policy() {
            let expected = PasswordPolicy::new(12, 100, [Digit, Symbol], true, false).unwrap();
            assert_eq!(policy_from(fields(12, 100)).unwrap(), expected);
        }

        #[test]
        fn a_serialised_policy_with_invalid_bounds_is_refused_with_the_policy_error() {
            let error = policy_from(fields(6, 100)).unwrap_err();
            assert!(error.to_string().contains("raise the minimum to 8"), "{error}");
            let error = policy_from(fields(20, 10)).unwrap_err();
            assert!(error.to_string().contains("too low"), "{error}");
        }

        #[test]
        fn a_serialised_policy_with_an_unknown_field_is_refused() {
            let mut with_typo = fields(12, 100);
            with_typo.push(("min_lenght", Value::Size(12)));
            assert!(policy_from(with_typo).is_err());
        }

        #[test]
        fn character_classes_are_serialised_in_snake_case() {
            let class = CharacterClass::deserialize(StrDeserializer::<Error>::new("uppercase"));
            assert_eq!(class.unwrap(), Uppercase);
            assert!(CharacterClass::deserialize(Value::Text("Upper")).is_err());
        }

        #[test]
        fn a_violation_deserialises_from_its_rule_and_details() {
            let too_short = vec![("rule", Value::Text("too_short")), ("details", Value::Size(0))];
            // Details of the wrong shape are refused...
            assert!(PasswordViolation::deserialize(MapDeserializer::new(too_short.into_iter())).is_err());
            // ...and a rule without details reads as itself.
            let common = vec![("rule", Value::Text("common_password"))];
            assert_eq!(
                PasswordViolation::deserialize(MapDeserializer::new(common.into_iter())).unwrap(),
                PasswordViolation::CommonPassword
            );
        }
    }
}
