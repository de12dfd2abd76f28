//! The production implementations of the domain's non-storage ports: the system clock,
//! the operating system's random generator, UUID v7 identifiers and Argon2id hashing.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash as EncodedHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use guildhall_domain::password::Password;
use guildhall_domain::ports::{Clock, HashError, IdGenerator, PasswordHasher, TokenGenerator};
use guildhall_domain::token::Secret;
use guildhall_domain::user::PasswordHash;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Secrets from the operating system's random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsTokens;

/// Fills `buffer` from the operating system's generator. A system that cannot produce
/// random bytes cannot issue safe tokens, so after a few failed attempts the process
/// stops rather than hand out a guessable secret.
fn os_random(buffer: &mut [u8]) {
    for _ in 0..3 {
        if getrandom::fill(buffer).is_ok() {
            return;
        }
    }
    tracing::error!("the operating system's random generator failed; stopping rather than issue weak secrets");
    std::process::abort();
}

impl TokenGenerator for OsTokens {
    fn generate(&self) -> Secret {
        let mut bytes = [0_u8; 32];
        os_random(&mut bytes);
        Secret::from_bytes(bytes)
    }
}

/// UUID v7 identifiers (time-ordered, so new rows land at the end of indexes).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7Ids;

impl IdGenerator for UuidV7Ids {
    fn generate(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory per hash, in KiB (19 MiB by default, OWASP's recommendation).
    pub memory_kib: u32,
    /// Passes over the memory (2).
    pub iterations: u32,
    /// Lanes (1).
    pub parallelism: u32,
    /// How many hashes may run at once (the number of cores): sign-in floods then queue
    /// here instead of taking every thread from the requests that do not hash.
    pub concurrency: usize,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            concurrency: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// The Argon2 parameters are out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid Argon2 settings: {0}")]
pub struct InvalidArgon2Settings(String);

/// Argon2id on tokio's blocking pool, at most [`Argon2Settings::concurrency`] at a time.
#[derive(Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Hasher").field("params", self.argon2.params()).finish_non_exhaustive()
    }
}

impl Argon2Hasher {
    /// A hasher with these parameters.
    ///
    /// # Errors
    /// [`InvalidArgon2Settings`] when Argon2 refuses the parameters (memory below
    /// 8 KiB per lane, no iterations) or the concurrency is zero.
    pub fn new(settings: Argon2Settings) -> Result<Self, InvalidArgon2Settings> {
        if settings.concurrency == 0 {
            return Err(InvalidArgon2Settings("concurrency must be at least 1".into()));
        }
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| InvalidArgon2Settings(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        Ok(Self { argon2, permits: Arc::new(Semaphore::new(settings.concurrency)) })
    }

    /// Runs `work` on the blocking pool once a hashing permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit =
            self.permits.clone().acquire_owned().await.map_err(|_| HashError("the hashing pool is closed".into()))?;
        let argon2 = self.argon2.clone();
        // The permit moves into the task: a caller that is dropped (client gone) must not
        // free it while the hash still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            lower_this_threads_priority();
            work(&argon2)
        })
        .await
        .map_err(|e| HashError(format!("the hashing task failed: {e}")))
    }
}

/// Lowers the calling thread's scheduling priority to nice 10, once per thread.
///
/// Hashing is the one CPU-bound thing the service does, tens of milliseconds a time: at
/// normal priority a burst of sign-ups or sign-ins takes every core and session-checked
/// reads wait their turn behind it. Niced, the hashes use whatever the other requests
/// leave, which is all of it when nothing else runs. A thread cannot take its priority back
/// without privileges, so a blocking-pool thread that hashed once keeps nice 10 for
/// whatever else runs on it (files the outbox writes), until tokio retires it. Failure
/// (a platform without the call) leaves the priority as it was.
fn lower_this_threads_priority() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    LOWERED.with(|lowered| {
        if !lowered.replace(true)
            && let Ok(value) = thread_priority::ThreadPriorityValue::try_from(25_u8)
        {
            // 25 on thread-priority's 0..=99 scale is nice 10 for the normal policy.
            let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Crossplatform(value));
        }
    });
}

fn encode(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0_u8; 16];
    os_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    argon2.hash_password(password, &salt).map(|hash| hash.to_string()).map_err(|e| HashError(e.to_string()))
}

fn verify(argon2: &Argon2<'_>, password: &[u8], encoded: &str) -> Result<bool, HashError> {
    let parsed = EncodedHash::new(encoded).map_err(|e| HashError(format!("unreadable password hash: {e}")))?;
    match argon2.verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(HashError(e.to_string())),
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let password = password.expose().as_bytes().to_vec();
        self.run(move |argon2| encode(argon2, &password)).await?.map(PasswordHash::new)
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        let password = password.expose().as_bytes().to_vec();
        let encoded = hash.as_str().to_owned();
        // Hashes made with other parameters still verify: their parameters are encoded in
        // them, and Argon2 reads them from there.
        self.run(move |argon2| verify(argon2, &password, &encoded)).await?
    }

    /// Hashes the password with a fresh salt and the current parameters and throws the
    /// result away: that costs what verifying an account's password costs (a verification
    /// is one hash and a comparison), without keeping a dummy hash computed at start (two
    /// Argon2 runs, and their 19 MiB each, before the service answered anything).
    async fn verify_dummy(&self, password: &Password) -> Result<(), HashError> {
        let password = password.expose().as_bytes().to_vec();
        self.run(move |argon2| encode(argon2, &password)).await?.map(|_| ())
    }
}
