//! [`PasswordPolicy::generate_temporary`]: a temporary password from caller-supplied
//! random bytes.

use crate::password::{CharacterClass, Password, PasswordPolicy};

/// Upper-case letters without `I` and `O` (read as `l`, `1`, `0`).
const UPPERCASE: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Lower-case letters without `l` and `o` (read as `I`, `1`, `0`).
const LOWERCASE: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
/// Digits without `0` and `1`.
const DIGITS: &[u8] = b"23456789";
/// Symbols on every common keyboard layout without a dead key (so no `^`, `~`, `` ` ``),
/// that mail clients do not turn into something else (no quotes, `<`, `>`, `&`, `*`),
/// break lines at (no `-`, `/`) or drop when a person selects a word (no `.`, `,`, `:`).
const SYMBOLS: &[u8] = b"!#%+=?@_";

/// How many characters the random part of a long temporary password has before it
/// repeats. 48 characters cost 288 of the 512 random bits, which leaves ample room for
/// the rejection sampling that places the required classes.
const RANDOM_CORE_MAX: usize = 48;

impl PasswordPolicy {
    /// A temporary password is at least this long: 24 characters from a 64-character
    /// alphabet carry at least 135 bits of entropy even when all four classes are forced
    /// (20 free characters at 6 bits, plus the forced characters' own choices).
    /// 20 characters would carry only 120.
    pub const TEMPORARY_MIN_LENGTH: usize = 24;

    /// The 64 characters a temporary password is made of: the [`CharacterClass`]es
    /// without look-alikes (`0`/`O`/`o`, `1`/`l`/`I`) and with only symbols that are safe
    /// to type on any keyboard and to copy out of an email.
    pub const TEMPORARY_ALPHABET: &'static str = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789!#%+=?@_";

    /// Builds a temporary password that satisfies this policy, from `random` bytes the
    /// caller drew from the operating system's RNG (the domain draws no randomness).
    ///
    /// The password has `max(min_length, TEMPORARY_MIN_LENGTH)` characters from
    /// [`TEMPORARY_ALPHABET`](Self::TEMPORARY_ALPHABET) (never more than
    /// `max_length`, which is at least 64), with one character of each required class at
    /// a position chosen by the bytes. Every choice is uniform given uniform bytes: the
    /// alphabet has 64 characters, so six bits pick one without modulo bias, and
    /// positions and class characters use rejection sampling. It therefore carries at
    /// least 128 bits of entropy. Past 48 characters the random part repeats: 64 bytes
    /// cannot pay for fresh characters up to the 1024 a policy may require, and the
    /// entropy lies in the random part anyway.
    ///
    /// The same bytes always give the same password.
    ///
    /// Returns `None` when the bytes run out before every choice is made (vanishingly
    /// rare with uniform bytes) or when the result still breaks the policy (it happens
    /// to contain the email local part: about one chance in 50,000 for a four-letter
    /// local part and 24 characters): draw fresh bytes and call again.
    #[must_use]
    pub fn generate_temporary(&self, random: &[u8; 64], email_local_part: Option<&str>) -> Option<Password> {
        let alphabet = Self::TEMPORARY_ALPHABET.as_bytes();
        let length = self.min_length().max(Self::TEMPORARY_MIN_LENGTH);
        let core_length = length.min(RANDOM_CORE_MAX);
        let mut bits = BitReader::new(random);

        let mut core = Vec::with_capacity(core_length);
        for _ in 0..core_length {
            core.push(*alphabet.get(bits.take(6)?)?);
        }

        let mut free_positions: Vec<usize> = (0..core_length).collect();
        for class in self.required_classes() {
            let pick = bits.below(free_positions.len())?;
            let position = *free_positions.get(pick)?;
            free_positions.swap_remove(pick);
            let characters = class_characters(*class);
            *core.get_mut(position)? = *characters.get(bits.below(characters.len())?)?;
        }

        let text: String = core.iter().cycle().take(length).map(|&byte| char::from(byte)).collect();
        let password = Password::new(text);
        self.validate(&password, email_local_part).ok()?;
        Some(password)
    }
}

fn class_characters(class: CharacterClass) -> &'static [u8] {
    match class {
        CharacterClass::Uppercase => UPPERCASE,
        CharacterClass::Lowercase => LOWERCASE,
        CharacterClass::Digit => DIGITS,
        CharacterClass::Symbol => SYMBOLS,
    }
}

/// Reads the random bytes as a stream of bits, most significant bit first.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// The next `count` bits (at most `usize::BITS - 1`) as a number, or `None` when the
    /// bytes have run out.
    fn take(&mut self, count: u32) -> Option<usize> {
        let mut value = 0_usize;
        for _ in 0..count {
            let byte = self.bytes.get(self.position / 8)?;
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | usize::from(bit);
            self.position += 1;
        }
        Some(value)
    }

    /// A uniform number in `0..bound` by rejection sampling over the fewest bits that can
    /// hold `bound - 1`, or `None` when the bytes run out first (or `bound` is 0).
    fn below(&mut self, bound: usize) -> Option<usize> {
        let largest = bound.checked_sub(1)?;
        let count = usize::BITS - largest.leading_zeros();
        loop {
            let candidate = self.take(count)?;
            if candidate < bound {
                return Some(candidate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Deterministic but well-mixed bytes (SplitMix64), standing in for the OS RNG.
    fn bytes(seed: u64) -> [u8; 64] {
        let mut state = seed;
        let mut out = [0_u8; 64];
        for chunk in out.chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
        }
        out
    }

    #[test]
    fn the_alphabet_is_the_four_classes_without_look_alikes() {
        let alphabet = PasswordPolicy::TEMPORARY_ALPHABET;
        assert_eq!(alphabet.len(), 64);
        assert_eq!(alphabet.chars().collect::<BTreeSet<_>>().len(), 64, "no duplicates");
        let classes = [UPPERCASE, LOWERCASE, DIGITS, SYMBOLS].concat();
        assert_eq!(alphabet.as_bytes(), classes.as_slice());
        for look_alike in ['0', 'O', 'o', '1', 'l', 'I'] {
            assert!(!alphabet.contains(look_alike), "{look_alike}");
        }
        for (class, characters) in [
            (CharacterClass::Uppercase, UPPERCASE),
            (CharacterClass::Lowercase, LOWERCASE),
            (CharacterClass::Digit, DIGITS),
            (CharacterClass::Symbol, SYMBOLS),
        ] {
            for &c in characters {
                assert_eq!(CharacterClass::of(char::from(c)), Some(class));
            }
        }
    }

    #[test]
    fn a_temporary_password_satisfies_the_seed_default() {
        let policy = PasswordPolicy::seed_default();
        for seed in 0..500 {
            let password = policy.generate_temporary(&bytes(seed), Some("janedoe")).unwrap();
            assert!(policy.validate(&password, Some("janedoe")).is_ok(), "seed {seed}");
        }
    }

    #[test]
    fn a_temporary_password_has_twenty_four_characters_for_a_short_minimum() {
        let policy = PasswordPolicy::seed_default();
        let password = policy.generate_temporary(&bytes(1), None).unwrap();
        assert_eq!(password.char_count(), 24);
    }

    #[test]
    fn a_temporary_password_has_the_minimum_length_when_that_is_longer() {
        for min in [25, 48, 49, 200, 1024] {
            let policy = PasswordPolicy::new(min, 1024, CharacterClass::ALL, true, true).unwrap();
            let password = policy.generate_temporary(&bytes(min as u64), None).unwrap();
            assert_eq!(password.char_count(), min);
        }
    }

    #[test]
    fn a_temporary_password_uses_only_the_alphabet() {
        let policy = PasswordPolicy::nist_800_63b();
        for seed in 0..100 {
            let password = policy.generate_temporary(&bytes(seed), None).unwrap();
            assert!(password.expose().chars().all(|c| PasswordPolicy::TEMPORARY_ALPHABET.contains(c)), "seed {seed}");
        }
    }

    #[test]
    fn the_same_bytes_give_the_same_password_and_other_bytes_another() {
        let policy = PasswordPolicy::seed_default();
        let first = policy.generate_temporary(&bytes(7), None).unwrap();
        let again = policy.generate_temporary(&bytes(7), None).unwrap();
        let other = policy.generate_temporary(&bytes(8), None).unwrap();
        assert_eq!(first.expose(), again.expose());
        assert_ne!(first.expose(), other.expose());
    }

    #[test]
    fn the_characters_follow_the_bytes_six_bits_at_a_time() {
        // 0b000000_000001_000010_000011 ... : the first characters are alphabet[0], [1], [2], [3].
        let mut random = [0_u8; 64];
        random[..3].copy_from_slice(&[0b0000_0000, 0b0001_0000, 0b1000_0011]);
        let policy = PasswordPolicy::new(8, 64, [], false, false).unwrap();
        let password = policy.generate_temporary(&random, None).unwrap();
        assert!(password.expose().starts_with("ABCD"), "{}", password.expose());
    }

    #[test]
    fn no_temporary_password_comes_from_bytes_that_run_out() {
        // All-ones bytes make every position draw out of range, so rejection sampling
        // exhausts the bytes instead of biasing the choice.
        let policy = PasswordPolicy::seed_default();
        assert!(policy.generate_temporary(&[0xFF; 64], None).is_none());
    }

    #[test]
    fn no_temporary_password_is_returned_when_it_would_contain_the_local_part() {
        // All-zero bytes without required classes give "AAAA…A".
        let policy = PasswordPolicy::new(8, 64, [], true, false).unwrap();
        assert_eq!(policy.generate_temporary(&[0; 64], None).unwrap().expose(), "A".repeat(24));
        assert!(policy.generate_temporary(&[0; 64], Some("aaaa")).is_none());
    }

    #[test]
    fn the_bit_reader_rejects_out_of_range_values_instead_of_folding_them() {
        // 0b111 (7) is out of range for below(5) and must be skipped, not taken modulo 5.
        let random = [0b1110_1000; 1];
        let mut bits = BitReader::new(&random);
        assert_eq!(bits.below(5), Some(2));
        assert_eq!(bits.below(1), Some(0), "a single choice costs no bits");
        assert_eq!(bits.below(0), None);
    }
}
