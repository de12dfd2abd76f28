//! The bundled list of common passwords (see `data/README.md` for its source).

use std::collections::HashSet;
use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

/// One password a line, lower-cased, most common first.
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

fn blocklist() -> &'static HashSet<&'static str> {
    static BLOCKLIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    BLOCKLIST.get_or_init(|| common_passwords().collect())
}

/// Whether `candidate` is on the bundled list of common passwords.
///
/// The match is exact but ignores case and Unicode presentation: the candidate is
/// NFKC-normalised and lower-cased first, so `PASSWORD1` and `ｐａｓｓｗｏｒｄ１` are both
/// common. A common password with something appended (`password1!x`) is not a match:
/// the list holds what attackers try first, not every variation of it.
#[must_use]
pub fn is_common_password(candidate: &str) -> bool {
    let folded: String = candidate.nfkc().collect::<String>().to_lowercase();
    blocklist().contains(folded.as_str())
}

/// How many distinct passwords the bundled list holds.
#[must_use]
pub fn blocklist_len() -> usize {
    blocklist().len()
}

/// The bundled common passwords, lower-cased, most common first.
///
/// Useful to show which entries a policy would still admit, and for tests.
pub fn common_passwords() -> impl Iterator<Item = &'static str> {
    COMMON_PASSWORDS.lines().filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocklist_holds_at_least_ten_thousand_distinct_passwords() {
        assert!(blocklist_len() >= 10_000, "{}", blocklist_len());
        assert_eq!(blocklist_len(), common_passwords().count(), "entries are distinct");
    }

    #[test]
    fn every_blocklist_entry_is_in_the_form_candidates_are_compared_in() {
        // A candidate is NFKC-normalised and lower-cased before the lookup, so an entry
        // in any other form could never match.
        for entry in common_passwords() {
            assert_eq!(entry, entry.nfkc().collect::<String>().to_lowercase(), "{entry:?}");
        }
    }

    #[test]
    fn the_blocklist_starts_with_the_most_common_passwords() {
        let top: Vec<&str> = common_passwords().take(2).collect();
        assert_eq!(top, ["123456", "123456789"]);
    }

    #[test]
    fn a_listed_password_is_common_whatever_its_case() {
        assert!(is_common_password("password1"));
        assert!(is_common_password("PassWord1"));
        assert!(is_common_password("IloveYOU"));
    }

    #[test]
    fn a_full_width_variant_of_a_listed_password_is_common() {
        assert!(is_common_password("ｐａｓｓｗｏｒｄ１"));
    }

    #[test]
    fn a_listed_password_with_something_appended_is_not_an_exact_match() {
        assert!(!is_common_password("password1 but longer and mine"));
        assert!(!is_common_password(""));
    }
}
