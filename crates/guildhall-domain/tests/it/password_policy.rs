//! Properties of the password policy: compliant passwords pass, each broken rule is
//! reported alone, generated temporary passwords comply, `strictest` is at least as strict
//! as each input, and NFKC variants of common passwords are still refused.

use std::collections::BTreeSet;

use guildhall_domain::password::{
    CharacterClass, Password, PasswordPolicy, PasswordViolation, common_passwords, is_common_password,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

// Characters that NFKC leaves alone (so a generated length is the counted length), each
// in exactly one class by construction, including non-ASCII ones.
const UPPERCASE: &[char] = &['A', 'M', 'Z', 'É', 'Ж', 'Ω'];
const LOWERCASE: &[char] = &['a', 'm', 'z', 'é', 'ß', 'ж', 'ω'];
const DIGITS: &[char] = &['0', '5', '9', '٣', '४'];
const SYMBOLS: &[char] = &['!', '#', '%', '@', '-', '€', '¿', '😀'];
/// Characters of no class: a space and caseless letters.
const CLASSLESS: &[char] = &[' ', 'ー', '中', '日'];

fn characters_of(class: CharacterClass) -> &'static [char] {
    match class {
        CharacterClass::Uppercase => UPPERCASE,
        CharacterClass::Lowercase => LOWERCASE,
        CharacterClass::Digit => DIGITS,
        CharacterClass::Symbol => SYMBOLS,
    }
}

/// Filler characters: every class except `excluded`, plus the classless ones.
fn filler(excluded: Option<CharacterClass>) -> Vec<char> {
    CharacterClass::ALL
        .into_iter()
        .filter(|class| Some(*class) != excluded)
        .flat_map(|class| characters_of(class).iter().copied())
        .chain(CLASSLESS.iter().copied())
        .collect()
}

/// Independent statement of the local-part rule: the whole local part, or the part
/// before a `+`, compared case-insensitively, when at least four characters long.
fn contains_local_part(password: &str, local_part: &str) -> bool {
    let password = password.to_lowercase();
    let local_part = local_part.to_lowercase();
    let mut variants = vec![local_part.as_str()];
    if let Some((untagged, _)) = local_part.split_once('+') {
        variants.push(untagged);
    }
    variants.into_iter().any(|variant| variant.chars().count() >= 4 && password.contains(variant))
}

fn violations(policy: &PasswordPolicy, password: &str, local: Option<&str>) -> Vec<PasswordViolation> {
    match policy.validate(&Password::new(password), local) {
        Ok(()) => Vec::new(),
        Err(rejected) => rejected.violations().to_vec(),
    }
}

fn any_policy_with(min_length: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = PasswordPolicy> + use<> {
    min_length
        .prop_flat_map(|min| {
            (
                Just(min),
                min.max(PasswordPolicy::LOWEST_MAX_LENGTH)..=PasswordPolicy::HIGHEST_MAX_LENGTH,
                subsequence(CharacterClass::ALL.to_vec(), 0..=4),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_filter_map("valid bounds", |(min, max, classes, local, common)| {
            PasswordPolicy::new(min, max, classes, local, common).ok()
        })
}

fn any_policy() -> impl Strategy<Value = PasswordPolicy> + use<> {
    any_policy_with(8..=200)
}

fn any_local_part() -> impl Strategy<Value = String> + use<> {
    "[a-z0-9.]{1,10}(\\+[a-z]{1,6})?"
}

/// `length` characters with at least one of each class in `required` and none of
/// `excluded`, shuffled.
fn password_of(
    length: usize,
    required: &BTreeSet<CharacterClass>,
    excluded: Option<CharacterClass>,
) -> impl Strategy<Value = String> + use<> {
    let forced: Vec<BoxedStrategy<char>> = required
        .iter()
        .filter(|class| Some(**class) != excluded)
        .map(|class| select(characters_of(*class)).boxed())
        .collect();
    let rest = length.saturating_sub(forced.len());
    (forced, proptest::collection::vec(select(filler(excluded)), rest))
        .prop_flat_map(|(mut forced, rest)| {
            forced.extend(rest);
            Just(forced).prop_shuffle()
        })
        .prop_map(|chars| chars.into_iter().collect())
}

/// A password the policy should accept: a length within its bounds (often at the
/// bounds), every required class.
fn compliant_password(policy: &PasswordPolicy) -> impl Strategy<Value = String> + use<> {
    let (min, max) = (policy.min_length(), policy.max_length());
    let classes = policy.required_classes().clone();
    prop_oneof![Just(min), Just(max), min..=max.min(min + 64)]
        .prop_flat_map(move |length| password_of(length, &classes, None))
}

fn full_width(ascii: &str) -> String {
    ascii
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
            ' ' => '\u{3000}',
            other => other,
        })
        .collect()
}

/// Blocklist entries of at least `min` characters, printable ASCII only (so that each
/// has a full-width form), which is all but a handful.
fn common_entries_of_at_least(min: usize) -> Vec<&'static str> {
    common_passwords()
        .filter(|entry| entry.chars().count() >= min)
        .filter(|entry| entry.chars().all(|c| c == ' ' || c.is_ascii_graphic()))
        .collect()
}

fn with_case(entry: &str, upper: &[bool]) -> String {
    entry
        .chars()
        .zip(upper.iter().copied().chain(std::iter::repeat(false)))
        .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
        .collect()
}

#[test]
fn the_test_alphabets_are_stable_under_nfkc_and_in_the_classes_they_claim() {
    for class in CharacterClass::ALL {
        for &c in characters_of(class) {
            assert_eq!(Password::new(c.to_string()).expose(), c.to_string());
            assert_eq!(CharacterClass::of(c), Some(class), "{c}");
        }
    }
    for &c in CLASSLESS {
        assert_eq!(Password::new(c.to_string()).expose(), c.to_string());
        assert_eq!(CharacterClass::of(c), None, "{c}");
    }
}

#[test]
fn thousands_of_blocklist_entries_qualify_for_a_policy_of_eight_characters() {
    // The "common" properties draw from these: long enough for any 8-character minimum.
    assert!(common_entries_of_at_least(8).len() > 5_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // (1)
    #[test]
    fn a_password_meeting_every_rule_is_accepted(
        (policy, password, local) in (any_policy(), any_local_part())
            .prop_flat_map(|(policy, local)| {
                let password = compliant_password(&policy);
                (Just(policy), password, Just(local))
            })
    ) {
        prop_assume!(!is_common_password(&password));
        prop_assume!(!contains_local_part(&password, &local));
        prop_assert_eq!(violations(&policy, &password, Some(&local)), vec![]);
    }

    // (2) too short
    #[test]
    fn a_password_below_the_minimum_is_refused_only_for_its_length(
        (policy, password) in any_policy().prop_flat_map(|policy| {
            let classes = policy.required_classes().clone();
            let lengths = classes.len().max(1)..policy.min_length();
            let password = lengths.prop_flat_map(move |length| password_of(length, &classes, None));
            (Just(policy), password)
        })
    ) {
        prop_assume!(!is_common_password(&password));
        let actual = password.chars().count();
        prop_assert_eq!(
            violations(&policy, &password, None),
            vec![PasswordViolation::TooShort { min: policy.min_length(), actual }]
        );
    }

    // (2) too long
    #[test]
    fn a_password_above_the_maximum_is_refused_only_for_its_length(
        (policy, password) in any_policy().prop_flat_map(|policy| {
            let classes = policy.required_classes().clone();
            let max = policy.max_length();
            let password = (max + 1..=max + 40)
                .prop_flat_map(move |length| password_of(length, &classes, None));
            (Just(policy), password)
        })
    ) {
        let actual = password.chars().count();
        prop_assert_eq!(
            violations(&policy, &password, None),
            vec![PasswordViolation::TooLong { max: policy.max_length(), actual }]
        );
    }

    // (2) each missing class
    #[test]
    fn a_password_lacking_a_required_class_is_refused_only_for_that_class(
        (policy, missing, password) in (any_policy(), select(CharacterClass::ALL.to_vec()))
            .prop_filter("the policy requires the class", |(policy, class)| {
                policy.required_classes().contains(class)
            })
            .prop_flat_map(|(policy, missing)| {
                let classes = policy.required_classes().clone();
                let password = (policy.min_length()..=policy.max_length().min(policy.min_length() + 30))
                    .prop_flat_map(move |length| password_of(length, &classes, Some(missing)));
                (Just(policy), Just(missing), password)
            })
    ) {
        prop_assume!(!is_common_password(&password));
        prop_assert_eq!(
            violations(&policy, &password, None),
            vec![PasswordViolation::MissingClass(missing)]
        );
    }

    // (2) contains the email local part
    #[test]
    fn a_password_containing_the_email_local_part_is_refused_only_for_that(
        (policy, local, inserted, password) in (
            any_policy(),
            "[a-z]{4,10}",
            prop::option::of("[a-z]{1,6}"),
            any::<bool>(),
            any::<prop::sample::Index>(),
        )
            .prop_filter_map("the policy rejects the local part", |(policy, name, tag, upper, at)| {
                if !policy.reject_email_local_part() {
                    return None;
                }
                let local = match tag {
                    Some(tag) => format!("{name}+{tag}"),
                    None => name.clone(),
                };
                // Insert the untagged name (which must still be caught) in either case.
                let inserted = if upper { name.to_uppercase() } else { name };
                Some((policy, local, inserted, at))
            })
            .prop_flat_map(|(policy, local, inserted, at)| {
                let classes = policy.required_classes().clone();
                let length = policy.min_length().saturating_sub(inserted.chars().count()).max(classes.len());
                let password = password_of(length, &classes, None);
                (Just(policy), Just(local), Just(inserted), password, Just(at))
            })
            .prop_map(|(policy, local, inserted, rest, at)| {
                let mut chars: Vec<char> = rest.chars().collect();
                let position = at.index(chars.len() + 1);
                chars.splice(position..position, inserted.chars());
                (policy, local, inserted, chars.into_iter().collect::<String>())
            })
    ) {
        prop_assume!(!is_common_password(&password));
        prop_assert!(password.to_lowercase().contains(&inserted.to_lowercase()));
        prop_assert_eq!(
            violations(&policy, &password, Some(&local)),
            vec![PasswordViolation::ContainsEmailLocalPart]
        );
    }

    // (2) common password
    #[test]
    fn a_common_password_meeting_every_other_rule_is_refused_only_for_being_common(
        (policy, password) in (select(common_entries_of_at_least(8)), proptest::collection::vec(any::<bool>(), 20))
            .prop_flat_map(|(entry, upper)| {
                let password = with_case(entry, &upper);
                let classes: Vec<CharacterClass> =
                    password.chars().filter_map(CharacterClass::of).collect::<BTreeSet<_>>().into_iter().collect();
                let length = password.chars().count();
                (
                    Just(password),
                    8..=length,
                    PasswordPolicy::LOWEST_MAX_LENGTH..=PasswordPolicy::HIGHEST_MAX_LENGTH,
                    subsequence(classes.clone(), 0..=classes.len()),
                    any::<bool>(),
                )
            })
            .prop_filter_map("valid bounds", |(password, min, max, classes, local)| {
                PasswordPolicy::new(min, max, classes, local, true).ok().map(|policy| (policy, password))
            })
    ) {
        // The local part is a word no listed password can contain.
        prop_assert_eq!(
            violations(&policy, &password, Some("zqxjzqxj")),
            vec![PasswordViolation::CommonPassword]
        );
    }

    // (3)
    #[test]
    fn a_generated_temporary_password_satisfies_the_policy_it_was_made_for(
        // Short minimums make 24-character passwords, where luck alone would often
        // miss a class; long ones exercise the repeating core and the 1024 ceiling.
        policy in prop_oneof![any_policy_with(8..=24), any_policy_with(8..=1024)],
        random in any::<[u8; 64]>(),
        local in prop::option::of(any_local_part()),
    ) {
        let generated = policy.generate_temporary(&random, local.as_deref());
        if local.is_none() {
            prop_assert!(generated.is_some(), "only running out of bytes or the local part may refuse");
        }
        if let Some(password) = generated {
            prop_assert_eq!(policy.validate(&password, local.as_deref()), Ok(()));
            prop_assert_eq!(
                password.char_count(),
                policy.min_length().max(PasswordPolicy::TEMPORARY_MIN_LENGTH)
            );
            prop_assert!(password.char_count() <= policy.max_length());
            prop_assert!(password.expose().chars().all(|c| PasswordPolicy::TEMPORARY_ALPHABET.contains(c)));
        }
    }

    // (4)
    #[test]
    fn a_password_valid_under_the_strictest_policy_is_valid_under_each_policy(
        (policies, strictest, local, compliant, arbitrary) in (
            proptest::collection::vec(any_policy(), 1..5),
            any_local_part(),
        )
            .prop_filter_map("some password can satisfy every policy", |(policies, local)| {
                let highest_min = policies.iter().map(PasswordPolicy::min_length).max()?;
                let lowest_max = policies.iter().map(PasswordPolicy::max_length).min()?;
                let strictest = PasswordPolicy::strictest(&policies)?;
                (highest_min <= lowest_max).then_some((policies, strictest, local))
            })
            .prop_flat_map(|(policies, strictest, local)| {
                let compliant = compliant_password(&strictest);
                let arbitrary = proptest::collection::vec(select(filler(None)), 0..80)
                    .prop_map(|chars| chars.into_iter().collect::<String>());
                (Just(policies), Just(strictest), Just(local), compliant, arbitrary)
            })
    ) {
        for password in [&compliant, &arbitrary] {
            if strictest.validate(&Password::new(password.as_str()), Some(&local)).is_ok() {
                for policy in &policies {
                    prop_assert_eq!(violations(policy, password, Some(&local)), vec![]);
                }
            }
        }
        // The compliant password is only refused for what no builder can rule out.
        let refused = violations(&strictest, &compliant, Some(&local));
        prop_assert!(
            refused.iter().all(|violation| matches!(
                violation,
                PasswordViolation::ContainsEmailLocalPart | PasswordViolation::CommonPassword
            )),
            "{:?}", refused
        );
    }

    #[test]
    fn the_strictest_policy_has_the_highest_minimum_and_every_rule_of_each_policy(
        policies in proptest::collection::vec(any_policy_with(8..=1024), 1..5),
    ) {
        let Some(strictest) = PasswordPolicy::strictest(&policies) else {
            return Err(TestCaseError::fail("no strictest policy of a non-empty list"));
        };
        for policy in &policies {
            prop_assert!(strictest.min_length() >= policy.min_length());
            prop_assert!(strictest.required_classes().is_superset(policy.required_classes()));
            prop_assert!(strictest.reject_email_local_part() >= policy.reject_email_local_part());
            prop_assert!(strictest.reject_common_passwords() >= policy.reject_common_passwords());
        }
        let lowest_max = policies.iter().map(PasswordPolicy::max_length).min().unwrap_or_default();
        prop_assert_eq!(strictest.max_length(), lowest_max.max(strictest.min_length()));
        // It is a policy that could have been built directly.
        prop_assert_eq!(
            PasswordPolicy::new(
                strictest.min_length(),
                strictest.max_length(),
                strictest.required_classes().iter().copied(),
                strictest.reject_email_local_part(),
                strictest.reject_common_passwords(),
            ),
            Ok(strictest.clone())
        );
    }

    // (5)
    #[test]
    fn a_full_width_variant_of_a_common_password_is_still_refused(
        entry in select(common_entries_of_at_least(8)),
    ) {
        let policy = PasswordPolicy::new(8, 64, [], false, true)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let variant = full_width(entry);
        prop_assert_ne!(&variant, entry);
        prop_assert_eq!(Password::new(variant.as_str()).char_count(), entry.chars().count());
        prop_assert!(is_common_password(&variant));
        prop_assert_eq!(violations(&policy, &variant, None), vec![PasswordViolation::CommonPassword]);
    }
}
