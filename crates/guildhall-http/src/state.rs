//! What every handler shares.

use std::sync::Arc;

use async_trait::async_trait;
use guildhall_domain::ids::OrgId;
use guildhall_domain::ports::SignInAttempts;
use guildhall_domain::usecases::{Guildhall, OrgRef};

use crate::problem::ApiError;
use crate::throttle::{InProcessAttempts, SignInThrottle, ThrottleSettings};

/// Settings of the HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Origins (`https://portal.example.org`) whose pages may make cookie-authenticated
    /// requests that change state. Usually just the public base URL's origin.
    pub allowed_origins: Vec<String>,
    /// The largest request body accepted, in bytes (64 KiB); larger ones get `413`.
    pub body_limit: usize,
    /// Failed sign-in throttling.
    pub throttle: ThrottleSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), body_limit: 64 * 1024, throttle: ThrottleSettings::default() }
    }
}

/// Whether the service can serve requests (the database answers, its schema is current).
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` with a reason an operator can act on when not ready.
    async fn check(&self) -> Result<(), String>;
}

/// Always ready (for services with nothing to wait for, and for tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

#[async_trait]
impl Readiness for AlwaysReady {
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The use cases and everything the handlers share. Cheap to clone.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct ApiState {
    /// The use cases.
    pub guildhall: Guildhall,
    /// Adapter settings.
    pub settings: Arc<HttpSettings>,
    /// Failed sign-in counters.
    pub throttle: Arc<SignInThrottle>,
    /// Readiness probe.
    pub readiness: Arc<dyn Readiness>,
    /// The clock the use cases read (for states derived at "now" in views).
    pub clock: Arc<dyn guildhall_domain::ports::Clock>,
}

impl ApiState {
    /// The state for these use cases and settings; the throttle reads `clock` and keeps
    /// its counters in this process ([`InProcessAttempts`]) until
    /// [`Self::with_sign_in_attempts`] gives it shared ones.
    #[must_use]
    pub fn new(
        guildhall: Guildhall,
        settings: HttpSettings,
        clock: Arc<dyn guildhall_domain::ports::Clock>,
        readiness: Arc<dyn Readiness>,
    ) -> Self {
        let throttle =
            Arc::new(SignInThrottle::new(settings.throttle, clock.clone(), Arc::new(InProcessAttempts::new())));
        Self { guildhall, settings: Arc::new(settings), throttle, readiness, clock }
    }

    /// The same state with the failed sign-in counters kept in `attempts` (the database,
    /// `guildhall_store::Store`, so that every instance of the service shares them).
    /// Counts kept so far are not carried over.
    #[must_use]
    pub fn with_sign_in_attempts(mut self, attempts: Arc<dyn SignInAttempts>) -> Self {
        self.throttle = Arc::new(SignInThrottle::new(self.settings.throttle, self.clock.clone(), attempts));
        self
    }

    /// The signed-in caller (with full access) and the organisation a path names: what
    /// every org-scoped handler starts with.
    ///
    /// # Errors
    /// As [`Self::caller`] and [`Self::org`].
    pub async fn scope(
        &self,
        credentials: &crate::session::Credentials,
        org: &str,
    ) -> Result<(crate::session::Caller, OrgId), ApiError> {
        let caller = self.caller(credentials).await?;
        let org = self.org(org).await?;
        Ok((caller, org))
    }

    /// The organisation a path names by id or slug. An unknown one is `404`, like one
    /// the caller does not belong to (the use cases check membership).
    ///
    /// # Errors
    /// `404` when no organisation has this id or slug.
    pub async fn org(&self, reference: &str) -> Result<OrgId, ApiError> {
        let parsed = OrgRef::parse(reference).ok_or_else(|| ApiError::not_found("organisation"))?;
        match self.guildhall.organisations().resolve(&parsed).await {
            Ok(Some(org)) => Ok(org),
            Ok(None) => Err(ApiError::not_found("organisation")),
            Err(e) => Err(e.into()),
        }
    }
}
