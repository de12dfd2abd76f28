//! Deterministic stand-ins for the clock, identifiers, secrets and password hashing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::password::Password;
use crate::ports::{Clock, HashError, IdGenerator, PasswordHasher, TokenGenerator};
use crate::token::{Secret, hex};
use crate::user::PasswordHash;

/// 2026-01-05T09:00:00Z, where [`ManualClock::default`] starts and [`SequentialIds`]
/// count from, in seconds since the Unix epoch.
const DEFAULT_START_SECONDS: i64 = 1_767_603_600;

/// A clock that only moves when a test moves it.
///
/// Cloning the `Arc` that holds it (as [`TestKit`](super::TestKit) does) lets a test move
/// the time every use case reads.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Sets the time (it may go backwards, to test clock skew).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time by `by` (negative to go back), saturating at the ends of
    /// `DateTime`'s range.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.checked_add_signed(by).unwrap_or(if by < Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        });
    }
}

impl Default for ManualClock {
    /// A clock showing 2026-01-05T09:00:00Z (a Monday morning).
    fn default() -> Self {
        Self::new(DateTime::from_timestamp(DEFAULT_START_SECONDS, 0).unwrap_or_default())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        // The time is a plain value: a panic elsewhere cannot leave it half-written.
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Deterministic, unique, time-ordered identifiers with the UUID version 7 layout.
///
/// The *n*-th identifier (from 0) carries the 48-bit millisecond timestamp
/// 2026-01-05T09:00:00Z + *n* ms, version bits `0111`, RFC 4122 variant bits `10`, and
/// *n* again in the low bits, so identifiers sort in the order they were made and two
/// runs of the same test see the same identifiers. The timestamp is a counter, not the
/// [`ManualClock`]: ids order like production ids (by creation) without tying tests to
/// a clock.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl SequentialIds {
    /// A generator whose first identifier is the one for *n* = 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many identifiers were generated.
    #[must_use]
    pub fn generated(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

/// The UUID v7 layout, built by hand (the crate's `uuid` has no `v7` feature).
fn uuid_v7_layout(millis: u64, counter: u64) -> Uuid {
    let (millis, counter) = (millis.to_be_bytes(), counter.to_be_bytes());
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&millis[2..]);
    bytes[6..8].copy_from_slice(&counter[6..]);
    bytes[8..].copy_from_slice(&counter);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes)
}

impl IdGenerator for SequentialIds {
    fn generate(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let start_millis = u64::try_from(DEFAULT_START_SECONDS).unwrap_or_default() * 1_000;
        uuid_v7_layout(start_millis.wrapping_add(n) & 0xffff_ffff_ffff, n)
    }
}

/// Deterministic "secrets": the SHA-256 of a label and a counter.
///
/// **For tests only. NOT SECURE:** anyone can compute every token this generator will
/// ever produce. Production wiring MUST use a generator backed by the operating system's
/// CSPRNG.
#[derive(Debug, Default)]
pub struct SequentialTokens {
    next: AtomicU64,
}

impl SequentialTokens {
    /// A generator starting at counter 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many secrets were generated.
    #[must_use]
    pub fn generated(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

impl TokenGenerator for SequentialTokens {
    fn generate(&self) -> Secret {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut digest = Sha256::new();
        digest.update(b"guildhall-testing-not-a-secret:");
        digest.update(n.to_be_bytes());
        Secret::from_bytes(digest.finalize().into())
    }
}

/// A fast, deterministic password hasher for tests: `fake$<hex sha256(salt || password)>$<salt>`
/// with a counter for salt, so hashing the same password twice gives different hashes as
/// a real hasher would.
///
/// **For tests only. NOT SECURE:** one unsalted-speed SHA-256 is trivially brute-forced.
/// It counts its calls so tests can check that, for example, a sign-in with an unknown
/// address still spends a (dummy) verification.
#[derive(Debug, Default)]
pub struct FakeHasher {
    failing: AtomicBool,
    salts: AtomicU64,
    hash_calls: AtomicU64,
    verify_calls: AtomicU64,
    dummy_calls: AtomicU64,
}

impl FakeHasher {
    /// A working hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A hasher whose every operation fails with [`HashError`] (the worker pool is gone).
    #[must_use]
    pub fn failing() -> Self {
        let hasher = Self::default();
        hasher.set_failing(true);
        hasher
    }

    /// Makes every later operation fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// How many times [`PasswordHasher::hash`] was called (failed calls included).
    #[must_use]
    pub fn hash_calls(&self) -> u64 {
        self.hash_calls.load(Ordering::Relaxed)
    }

    /// How many times [`PasswordHasher::verify`] was called (failed calls included).
    #[must_use]
    pub fn verify_calls(&self) -> u64 {
        self.verify_calls.load(Ordering::Relaxed)
    }

    /// How many times [`PasswordHasher::verify_dummy`] was called (failed calls included).
    #[must_use]
    pub fn dummy_verify_calls(&self) -> u64 {
        self.dummy_calls.load(Ordering::Relaxed)
    }

    /// Hashes without counting the call or honouring [`set_failing`](Self::set_failing):
    /// for fixtures, which must not disturb what a test observes.
    #[must_use]
    pub fn hash_uncounted(&self, password: &Password) -> PasswordHash {
        let salt = format!("{:016x}", self.salts.fetch_add(1, Ordering::Relaxed));
        PasswordHash::new(format!("fake${}${salt}", digest(&salt, password)))
    }

    fn check(&self) -> Result<(), HashError> {
        if self.failing.load(Ordering::Relaxed) {
            Err(HashError("the fake hasher was told to fail".to_owned()))
        } else {
            Ok(())
        }
    }
}

fn digest(salt: &str, password: &Password) -> String {
    let mut digest = Sha256::new();
    digest.update(salt.as_bytes());
    digest.update(password.expose().as_bytes());
    hex(&digest.finalize())
}

#[async_trait]
impl PasswordHasher for FakeHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.hash_calls.fetch_add(1, Ordering::Relaxed);
        self.check()?;
        Ok(self.hash_uncounted(password))
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        self.verify_calls.fetch_add(1, Ordering::Relaxed);
        self.check()?;
        let mut parts = hash.as_str().split('$');
        let (Some("fake"), Some(expected), Some(salt), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HashError("not a hash the fake hasher made".to_owned()));
        };
        Ok(digest(salt, password) == expected)
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), HashError> {
        self.dummy_calls.fetch_add(1, Ordering::Relaxed);
        self.check()?;
        let _same_work = digest("dummy-salt", password);
        Ok(())
    }
}
