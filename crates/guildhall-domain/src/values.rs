//! Validating value objects.
//!
//! Each type has a private inner value and a fallible constructor (`parse`): parse at
//! the border, then trust the type. Errors say what is wrong and what would be right.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Parses an optional field: absent or blank is `None`; anything else must parse.
///
/// # Errors
/// Whatever `parse` returns for a non-blank value.
pub fn parse_optional<T>(
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, InvalidValue> {
    raw.map(str::trim).filter(|text| !text.is_empty()).map(parse).transpose()
}

/// Why a value could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidValue {
    field: &'static str,
    problem: String,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }

    /// The name of the field, as an API or a form would call it (`email`, `first_name`).
    #[must_use]
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with the value, as a sentence a person can act on.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The same problem reported under another field name (for example `invitee_email`).
    #[must_use]
    pub fn for_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Trims, collapses inner runs of whitespace, and checks length and control characters.
fn clean_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return Err(InvalidValue::new(field, "must not be blank"));
    }
    if has_control(&collapsed) {
        return Err(InvalidValue::new(field, "must not contain control characters"));
    }
    let count = collapsed.chars().count();
    if count > max_chars {
        return Err(InvalidValue::new(field, format!("must be at most {max_chars} characters long (it has {count})")));
    }
    Ok(collapsed)
}

macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims the text, collapses inner whitespace and validates it.
            ///
            /// # Errors
            /// Returns [`InvalidValue`] when the text is blank, longer than
            #[doc = concat!("`", stringify!($max), "` characters, or contains control characters.")]
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                clean_text($field, raw, $max).map(Self)
            }

            /// The validated text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A literal known to be valid (built-in names); unit tests parse each one.
            #[allow(dead_code)]
            pub(crate) fn literal(text: &'static str) -> Self {
                Self(text.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

bounded_text!(
    /// An organisation's display name ("Acme Physio, Leeds").
    OrgName, "name", 120
);
bounded_text!(
    /// A facility's name ("North Clinic").
    FacilityName, "facility_name", 100
);
bounded_text!(
    /// A member's job title in an organisation ("Practice manager").
    Position, "position", 100
);
bounded_text!(
    /// A custom role's display name ("Front desk").
    RoleName, "role_name", 60
);
bounded_text!(
    /// A short free text a person writes: a join-request message or a rejection reason.
    Note, "note", 1000
);

/// An email address: the account's username.
///
/// Parsing trims surrounding whitespace. Identity is case-insensitive: two addresses
/// that differ only in letter case are equal and hash alike, while [`as_str`](Self::as_str)
/// keeps the spelling the person typed for display.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct EmailAddress {
    display: String,
    normalized: String,
}

impl EmailAddress {
    /// The longest accepted address (RFC 5321 path limit).
    pub const MAX_CHARS: usize = 254;

    /// Parses an address such as `jo.bloggs@acme-physio.example`.
    ///
    /// # Errors
    /// Returns [`InvalidValue`] (field `email`) when the address is empty, longer than
    /// 254 characters, has no or several `@`, has an empty or malformed local part, or a
    /// domain that is not a dotted host name with a top-level domain of letters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "email";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue::new(FIELD, "must not be blank"));
        }
        let count = trimmed.chars().count();
        if count > Self::MAX_CHARS {
            return Err(InvalidValue::new(FIELD, format!("must be at most 254 characters long (it has {count})")));
        }
        let mut parts = trimmed.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidValue::new(FIELD, "must contain exactly one @, as in name@example.com"));
        };
        check_local_part(local).map_err(|problem| InvalidValue::new(FIELD, problem))?;
        check_domain(domain).map_err(|problem| InvalidValue::new(FIELD, problem))?;
        Ok(Self { display: trimmed.to_owned(), normalized: trimmed.to_lowercase() })
    }

    /// The address as typed (trimmed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lower-cased address: the identity used for comparisons and uniqueness.
    #[must_use]
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The part before the `@`, lower-cased.
    #[must_use]
    pub fn local_part(&self) -> &str {
        self.normalized.split('@').next().unwrap_or_default()
    }

    /// The part after the `@`, lower-cased.
    #[must_use]
    pub fn domain(&self) -> &str {
        self.normalized.rsplit('@').next().unwrap_or_default()
    }
}

fn check_local_part(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("needs a name before the @".into());
    }
    if local.chars().count() > 64 {
        return Err("the part before the @ must be at most 64 characters".into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before the @ must not start or end with a dot or contain two dots in a row".into());
    }
    if let Some(bad) = local.chars().find(|c| c.is_whitespace() || c.is_control() || "\"(),:;<>[\\]".contains(*c)) {
        return Err(format!("the part before the @ must not contain {bad:?}"));
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    const HINT: &str = "needs a domain after the @ such as example.com";
    if domain.is_empty() {
        return Err(HINT.into());
    }
    if domain.len() > 253 {
        return Err("the domain must be at most 253 characters".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("{HINT} (a dotted name)"));
    }
    for label in &labels {
        let valid_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if label.is_empty() || label.len() > 63 || !valid_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the domain part {label:?} is not a valid host name label"));
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    let punycode = tld.to_ascii_lowercase().starts_with("xn--");
    if !punycode && (tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err(format!("the top-level domain {tld:?} must be letters, such as com or uk"));
    }
    Ok(())
}

impl PartialEq for EmailAddress {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}
impl Eq for EmailAddress {}
impl Hash for EmailAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}
impl PartialOrd for EmailAddress {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for EmailAddress {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.normalized.cmp(&other.normalized)
    }
}
impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}
impl TryFrom<String> for EmailAddress {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.display
    }
}

/// The domain of an email address (`acme-physio.example`), lower-cased; used by join
/// policies that trust verified addresses of an organisation's own domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct EmailDomain(String);

impl EmailDomain {
    /// Parses a domain such as `acme-physio.example`.
    ///
    /// # Errors
    /// Returns [`InvalidValue`] (field `domain`) when it is not a dotted host name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let lowered = raw.trim().trim_start_matches('@').to_ascii_lowercase();
        check_domain(&lowered).map_err(|problem| InvalidValue::new("domain", problem))?;
        Ok(Self(lowered))
    }

    /// The lower-cased domain.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `email` is at exactly this domain (not a subdomain of it).
    #[must_use]
    pub fn matches(&self, email: &EmailAddress) -> bool {
        email.domain() == self.0
    }
}

impl fmt::Display for EmailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for EmailDomain {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<EmailDomain> for String {
    fn from(value: EmailDomain) -> Self {
        value.0
    }
}

/// A person's first and last name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PersonName {
    first: String,
    last: String,
}

impl PersonName {
    /// The longest accepted first or last name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates both names (trimmed, inner whitespace collapsed, non-blank, at most 100
    /// characters each), reporting every problem at once.
    ///
    /// # Errors
    /// Returns one [`InvalidValue`] per bad part (fields `first_name`, `last_name`).
    pub fn parse(first: &str, last: &str) -> Result<Self, Vec<InvalidValue>> {
        let first = clean_text("first_name", first, Self::MAX_CHARS);
        let last = clean_text("last_name", last, Self::MAX_CHARS);
        match (first, last) {
            (Ok(first), Ok(last)) => Ok(Self { first, last }),
            (first, last) => Err([first.err(), last.err()].into_iter().flatten().collect()),
        }
    }

    /// The first (given) name.
    #[must_use]
    pub fn first(&self) -> &str {
        &self.first
    }

    /// The last (family) name.
    #[must_use]
    pub fn last(&self) -> &str {
        &self.last
    }

    /// "First Last".
    #[must_use]
    pub fn full(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.first, self.last)
    }
}

/// A phone number in E.164 form (`+441134960000`).
///
/// Parsing accepts the spaces, dashes, dots and parentheses people type, and a leading
/// `00` in place of `+`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Normalises and validates a phone number.
    ///
    /// # Errors
    /// Returns [`InvalidValue`] (field `phone`) unless the number, without separators,
    /// is `+` (or `00`) followed by 8 to 15 digits, the first not 0.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "phone";
        const HINT: &str =
            "must be in international form, starting with + and the country code, as in +44 113 496 0000";
        let compact: String =
            raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')).collect();
        let digits = if let Some(rest) = compact.strip_prefix('+') {
            rest
        } else if let Some(rest) = compact.strip_prefix("00") {
            rest
        } else {
            return Err(InvalidValue::new(FIELD, HINT));
        };
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(InvalidValue::new(
                FIELD,
                "may contain only digits, spaces, dashes, dots and brackets after the +",
            ));
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(InvalidValue::new(FIELD, HINT));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// The E.164 form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for PhoneNumber {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

/// Slugs that would collide with routes or confuse people.
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "auth",
    "docs",
    "healthz",
    "invitations",
    "login",
    "me",
    "new",
    "orgs",
    "readyz",
    "settings",
    "signup",
    "static",
    "www",
];

/// An organisation's URL name (`acme-physio`): unique, lower-case, may be renamed.
///
/// Links in emails use ids or tokens, never slugs, because a slug can change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct OrgSlug(String);

impl OrgSlug {
    /// Validates a slug. Upper-case letters are lowered; nothing else is changed.
    ///
    /// # Errors
    /// Returns [`InvalidValue`] (field `slug`) unless the slug is 3 to 63 characters of
    /// `a-z`, `0-9` and single hyphens, starting with a letter and not ending with a
    /// hyphen, and is not a reserved word such as `api` or `admin`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "slug";
        let slug = raw.trim().to_ascii_lowercase();
        if !(3..=63).contains(&slug.len()) {
            return Err(InvalidValue::new(FIELD, "must be 3 to 63 characters long"));
        }
        if !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(InvalidValue::new(FIELD, "may contain only letters a-z, digits and hyphens"));
        }
        if !slug.starts_with(|c: char| c.is_ascii_lowercase()) || slug.ends_with('-') || slug.contains("--") {
            return Err(InvalidValue::new(
                FIELD,
                "must start with a letter, not end with a hyphen, and not contain two hyphens in a row",
            ));
        }
        if RESERVED_SLUGS.contains(&slug.as_str()) {
            return Err(InvalidValue::new(FIELD, format!("{slug:?} is reserved; choose another")));
        }
        Ok(Self(slug))
    }

    /// The slug.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for OrgSlug {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<OrgSlug> for String {
    fn from(value: OrgSlug) -> Self {
        value.0
    }
}

macro_rules! catalogue_key {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
        pub struct $name(std::borrow::Cow<'static, str>);

        impl $name {
            /// Validates a key: 2 to 64 characters of `a-z`, `0-9`, `_`, `.` and `-`,
            /// starting with a letter.
            ///
            /// # Errors
            #[doc = concat!("Returns [`InvalidValue`] (field `", $field, "`) otherwise.")]
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                check_key($field, raw.trim()).map(|key| Self(std::borrow::Cow::Owned(key.to_owned())))
            }

            /// A key known valid at compile time (the built-in catalogue's keys).
            #[allow(dead_code)]
            pub(crate) const fn from_static(key: &'static str) -> Self {
                Self(std::borrow::Cow::Borrowed(key))
            }

            /// The key.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0.into_owned()
            }
        }
    };
}

fn check_key<'a>(field: &'static str, key: &'a str) -> Result<&'a str, InvalidValue> {
    let valid = (2..=64).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(key)
    } else {
        Err(InvalidValue::new(
            field,
            "must be 2 to 64 characters of a-z, 0-9, '_', '.' and '-', starting with a letter",
        ))
    }
}

catalogue_key!(
    /// A role's key within an organisation (`administrator`, `front_desk`).
    RoleKey, "role"
);
catalogue_key!(
    /// A permission from the catalogue (`members.manage`, `reports.view`).
    Permission, "permission"
);
catalogue_key!(
    /// A notification topic an organisation can route to shared addresses
    /// (`failed_messaging`, `join_requests`).
    Topic, "topic"
);
catalogue_key!(
    /// A kind of resource whose access a membership scopes (`patients`, `nps`).
    ResourceKind, "resource_kind"
);
catalogue_key!(
    /// A notification a member can opt into (`new_leads`, `nps_low`).
    AlertKind, "alert"
);
catalogue_key!(
    /// An embedder-declared service, feature or rule that organisations toggle
    /// (`patient_tasks`, `automated_recall`).
    CapabilityKey, "capability"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_identity_ignores_case_but_display_keeps_it() {
        let typed = EmailAddress::parse("  Jo.Bloggs@Acme-Physio.Example ").unwrap();
        let lower = EmailAddress::parse("jo.bloggs@acme-physio.example").unwrap();
        assert_eq!(typed, lower);
        assert_eq!(typed.as_str(), "Jo.Bloggs@Acme-Physio.Example");
        assert_eq!(typed.normalized(), "jo.bloggs@acme-physio.example");
        assert_eq!(typed.local_part(), "jo.bloggs");
        assert_eq!(typed.domain(), "acme-physio.example");
    }

    #[test]
    fn email_with_two_at_signs_is_refused() {
        let err = EmailAddress::parse("a@b@example.com").unwrap_err();
        assert_eq!(err.field(), "email");
        assert!(err.problem().contains("exactly one @"));
    }

    #[test]
    fn email_without_dotted_domain_or_with_numeric_tld_is_refused() {
        assert!(EmailAddress::parse("jo@localhost").is_err());
        assert!(EmailAddress::parse("jo@example.123").is_err());
        assert!(EmailAddress::parse("jo@-bad.example").is_err());
        assert!(EmailAddress::parse("jo@ex ample.com").is_err());
        assert!(EmailAddress::parse("jo@xn--bcher-kva.xn--p1ai").is_ok());
    }

    #[test]
    fn email_longer_than_254_characters_is_refused() {
        let long = format!("{}@{}.example", "a".repeat(64), "b".repeat(63));
        assert!(EmailAddress::parse(&long).is_ok());
        let too_long =
            format!("a@{}.example", ["c".repeat(63), "d".repeat(63), "e".repeat(63), "f".repeat(60)].join("."));
        let err = EmailAddress::parse(&too_long).unwrap_err();
        assert!(err.problem().contains("254"), "{err}");
    }

    #[test]
    fn email_local_part_rules_are_enforced() {
        assert!(EmailAddress::parse("@example.com").is_err());
        assert!(EmailAddress::parse(".jo@example.com").is_err());
        assert!(EmailAddress::parse("jo..b@example.com").is_err());
        assert!(EmailAddress::parse("jo b@example.com").is_err());
        assert!(EmailAddress::parse("jo+tag@example.com").is_ok());
    }

    #[test]
    fn person_name_reports_both_blank_parts_at_once() {
        let errors = PersonName::parse("  ", "").unwrap_err();
        let fields: Vec<_> = errors.iter().map(InvalidValue::field).collect();
        assert_eq!(fields, ["first_name", "last_name"]);
    }

    #[test]
    fn person_name_is_trimmed_and_limited_to_100_characters() {
        let name = PersonName::parse("  Mary   Ann ", "Smith").unwrap();
        assert_eq!(name.first(), "Mary Ann");
        assert_eq!(name.full(), "Mary Ann Smith");
        assert!(PersonName::parse(&"x".repeat(100), "y").is_ok());
        let errors = PersonName::parse(&"x".repeat(101), "y").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].problem().contains("100"));
    }

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(PhoneNumber::parse("+44 (113) 496-0000").unwrap().as_str(), "+441134960000");
        assert_eq!(PhoneNumber::parse("0044 113 496 0000").unwrap().as_str(), "+441134960000");
        assert!(PhoneNumber::parse("0113 496 0000").is_err(), "national form needs a country code");
        assert!(PhoneNumber::parse("+44 113 ABC").is_err());
        assert!(PhoneNumber::parse("+1234567").is_err(), "too short");
        assert!(PhoneNumber::parse("+1234567890123456").is_err(), "more than 15 digits");
        assert!(PhoneNumber::parse("+0123456789").is_err(), "country codes never start with 0");
    }

    #[test]
    fn slugs_are_lowered_and_checked() {
        assert_eq!(OrgSlug::parse("Acme-Physio").unwrap().as_str(), "acme-physio");
        assert!(OrgSlug::parse("ab").is_err());
        assert!(OrgSlug::parse("1acme").is_err());
        assert!(OrgSlug::parse("acme-").is_err());
        assert!(OrgSlug::parse("ac--me").is_err());
        assert!(OrgSlug::parse("acme physio").is_err());
        assert!(OrgSlug::parse("admin").unwrap_err().problem().contains("reserved"));
    }

    #[test]
    fn catalogue_keys_accept_dotted_lower_case_names_only() {
        assert!(Permission::parse("members.manage").is_ok());
        assert!(RoleKey::parse("front_desk").is_ok());
        assert!(RoleKey::parse("Front").is_err());
        assert!(RoleKey::parse("x").is_err());
        assert!(RoleKey::parse("9lives").is_err());
    }

    #[test]
    fn bounded_text_collapses_whitespace_and_refuses_control_characters() {
        assert_eq!(OrgName::parse(" Acme   Physio ").unwrap().as_str(), "Acme Physio");
        assert!(OrgName::parse("Acme\u{7}").is_err());
        assert!(OrgName::parse(&"a".repeat(121)).is_err());
    }
}
