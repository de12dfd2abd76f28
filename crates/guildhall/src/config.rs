//! Configuration: built-in defaults, then `guildhall.toml`, then `GUILDHALL_*`
//! environment variables, each layer overriding the one before.
//!
//! Every key has a default, so the service starts with no configuration at all: on
//! `127.0.0.1:8080`, over a SQLite file under `./var/`, writing emails as `.eml` files
//! under `./var/outbox/`. Environment variables name a key in upper case with `__`
//! between sections: `GUILDHALL_LISTEN`, `GUILDHALL_DATABASE_URL`,
//! `GUILDHALL_MAIL__SMTP__HOST`, `GUILDHALL_ARGON2__MEMORY_KIB`.
//!
//! [`Config::load`] reads the layers; [`Config::resolve`] checks every value and derives
//! what defaults to another (the database next to the data directory, the public URL from
//! the listen address). Both fail with a message that names the key, so an operator knows
//! what to fix. `docs/operations.md` lists every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use guildhall_domain::usecases::OrganisationCreation;
use serde::{Deserialize, Serialize};

/// The configuration file read when none is named: `guildhall.toml` in the working
/// directory, if it exists.
pub const DEFAULT_FILE: &str = "guildhall.toml";

/// Prefix of the environment variables that configure the service.
pub const ENV_PREFIX: &str = "GUILDHALL_";

/// Everything an operator can set. Field names are the keys of `guildhall.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address to listen on (`127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Where the service keeps its files: the default SQLite database and file outbox
    /// (`./var`).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; empty: `sqlite://{data_dir}/guildhall.db`.
    pub database_url: String,
    /// The address people reach the service at, used in emailed links; empty:
    /// `http://{listen}`.
    pub public_url: String,
    /// Apply pending migrations at start (`true`). With several instances, set it to
    /// `false` and run `guildhall migrate up` once per release instead.
    pub auto_migrate: bool,
    /// Who may create organisations: `anyone` with a verified account, or `operators`
    /// only (with `guildhall admin create-org`).
    pub organisation_creation: OrganisationCreationSetting,
    /// Origins whose pages may make cookie-authenticated requests that change state;
    /// empty: the public URL's origin.
    pub allowed_origins: Vec<String>,
    /// The largest request body accepted, in bytes (65536).
    pub max_body_bytes: usize,
    /// How long shutdown waits for requests in flight (`30s`).
    #[serde(with = "humantime_duration")]
    pub shutdown_grace: Duration,
    /// Logging.
    pub log: LogConfig,
    /// Email.
    pub mail: MailConfig,
    /// Password hashing.
    pub argon2: Argon2Config,
    /// Session lifetimes.
    pub sessions: SessionsConfig,
    /// Failed sign-in throttling.
    pub throttle: ThrottleConfig,
    /// What organisations can switch on or off: services offered to their clients,
    /// automations, rules and other features. The default is the set the products built
    /// on Guildhall share (patient tasks, questionnaires, self-booking, automated recall,
    /// and the standard monitoring rules); `capabilities = []` declares none.
    pub capabilities: Vec<CapabilityConfig>,
}

/// One capability organisations can switch on or off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityConfig {
    /// Its key: lower-case letters, digits and underscores (`patient_tasks`).
    pub key: String,
    /// `service`, `automation`, `rule` or `feature` (how it is presented).
    pub kind: CapabilityKindSetting,
    /// Whether a new organisation has it on.
    #[serde(default)]
    pub enabled_by_default: bool,
    /// One sentence for administrators.
    pub description: String,
}

/// What sort of thing a capability is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityKindSetting {
    /// A service offered to the organisation's clients.
    Service,
    /// An automation that runs and reports runs.
    Automation,
    /// A rule the organisation can enable or disable.
    Rule,
    /// Any other feature.
    Feature,
}

/// The capabilities declared when the configuration names none.
fn default_capabilities() -> Vec<CapabilityConfig> {
    use CapabilityKindSetting::{Automation, Rule, Service};
    [
        ("patient_tasks", Service, false, "Patient tasks offered in the patient portal"),
        ("questionnaires", Service, false, "Questionnaires patients complete in the patient portal"),
        ("self_booking", Service, false, "Self-booking links patients use to book appointments"),
        ("automated_recall", Automation, false, "Recalls patients due a review, and records each run"),
        ("rule_overdue_monitoring", Rule, true, "Flags patients whose monitoring is overdue"),
        ("rule_medication_review", Rule, true, "Flags patients due a medication review"),
        ("rule_unanswered_questionnaires", Rule, false, "Flags questionnaires left unanswered for two weeks"),
    ]
    .into_iter()
    .map(|(key, kind, enabled_by_default, description)| CapabilityConfig {
        key: key.to_owned(),
        kind,
        enabled_by_default,
        description: description.to_owned(),
    })
    .collect()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./var"),
            database_url: String::new(),
            public_url: String::new(),
            auto_migrate: true,
            organisation_creation: OrganisationCreationSetting::Anyone,
            allowed_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            log: LogConfig::default(),
            mail: MailConfig::default(),
            argon2: Argon2Config::default(),
            sessions: SessionsConfig::default(),
            throttle: ThrottleConfig::default(),
            capabilities: default_capabilities(),
        }
    }
}

/// Who may create organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationCreationSetting {
    /// Anyone with an active, verified account.
    Anyone,
    /// Only the service's operators, from the command line.
    Operators,
}

impl From<OrganisationCreationSetting> for OrganisationCreation {
    fn from(setting: OrganisationCreationSetting) -> Self {
        match setting {
            OrganisationCreationSetting::Anyone => Self::Anyone,
            OrganisationCreationSetting::Operators => Self::OperatorsOnly,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (one readable line per event) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Which events to log, as a `tracing` filter (`info`, `guildhall=debug,info`).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, filter: "info".into() }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `file`: write each message as an `.eml` file under `outbox_dir`; `smtp`: send
    /// through `mail.smtp`.
    pub transport: MailTransport,
    /// The sender (`Guildhall <no-reply@guildhall.localhost>`).
    pub from: String,
    /// The product's name in subjects and signatures (`Guildhall`).
    pub product_name: String,
    /// Where the `file` transport writes; empty: `{data_dir}/outbox`.
    pub outbox_dir: PathBuf,
    /// The SMTP server (for `transport = "smtp"`).
    pub smtp: SmtpConfig,
    /// How the outbox is worked through.
    pub dispatch: DispatchConfig,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            from: "Guildhall <no-reply@guildhall.localhost>".into(),
            product_name: "Guildhall".into(),
            outbox_dir: PathBuf::new(),
            smtp: SmtpConfig::default(),
            dispatch: DispatchConfig::default(),
        }
    }
}

/// Where emails go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailTransport {
    /// `.eml` files in a directory.
    File,
    /// An SMTP server.
    Smtp,
}

/// The SMTP server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (checked against its certificate) or address.
    pub host: String,
    /// Port; 0 for the security mode's default (587, 465 or 25).
    pub port: u16,
    /// `starttls` (required), `tls` (implicit TLS) or `none` (local relays only).
    pub security: SmtpSecuritySetting,
    /// User name, when the server requires authentication.
    pub username: String,
    /// Password for `username`. Never printed.
    pub password: String,
    /// The longest one message may take (`30s`).
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// Connections kept open to the server (4).
    pub max_connections: u32,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 0,
            security: SmtpSecuritySetting::Starttls,
            username: String::new(),
            password: String::new(),
            timeout: Duration::from_secs(30),
            max_connections: 4,
        }
    }
}

/// Never prints the password.
impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "(set)" })
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecuritySetting {
    /// STARTTLS, required.
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption.
    None,
}

/// How the outbox is worked through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Run the dispatcher in this process (`true`).
    pub enabled: bool,
    /// Messages claimed at once (32).
    pub batch_size: u32,
    /// Messages sent at the same time (4).
    pub concurrency: usize,
    /// How long a claim holds its messages (`10m`).
    #[serde(with = "humantime_duration")]
    pub lease: Duration,
    /// Attempts before a failing message is given up (12).
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles per attempt (`30s`).
    #[serde(with = "humantime_duration")]
    pub first_retry: Duration,
    /// The longest delay between attempts (`4h`).
    #[serde(with = "humantime_duration")]
    pub max_retry: Duration,
    /// How often an empty outbox is looked at again (`1s`).
    #[serde(with = "humantime_duration")]
    pub poll_interval: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        let defaults = guildhall_mail::dispatch::DispatchSettings::default();
        Self {
            enabled: true,
            batch_size: defaults.batch_size,
            concurrency: defaults.concurrency,
            lease: defaults.lease.to_std().unwrap_or(Duration::from_secs(600)),
            max_attempts: defaults.max_attempts,
            first_retry: defaults.first_retry.to_std().unwrap_or(Duration::from_secs(30)),
            max_retry: defaults.max_retry.to_std().unwrap_or(Duration::from_secs(4 * 3600)),
            poll_interval: defaults.idle_poll,
        }
    }
}

/// Argon2id parameters for new password hashes (existing hashes keep theirs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory per hash in KiB (19456, OWASP's recommendation).
    pub memory_kib: u32,
    /// Passes over the memory (2).
    pub iterations: u32,
    /// Lanes (1).
    pub parallelism: u32,
    /// Hashes computed at once; 0: the number of cores.
    pub concurrency: usize,
}

impl Default for Argon2Config {
    fn default() -> Self {
        let defaults = guildhall_http::system::Argon2Settings::default();
        Self {
            memory_kib: defaults.memory_kib,
            iterations: defaults.iterations,
            parallelism: defaults.parallelism,
            concurrency: 0,
        }
    }
}

/// Session and one-time link lifetimes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session unused this long ends (`12h`).
    #[serde(with = "humantime_duration")]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in however much it is used (`14days`).
    #[serde(with = "humantime_duration")]
    pub absolute_lifetime: Duration,
    /// How long a temporary password and an operator's set-password link work (`72h`).
    #[serde(with = "humantime_duration")]
    pub temporary_password_lifetime: Duration,
    /// How long a password-reset link works (`1h`).
    #[serde(with = "humantime_duration")]
    pub password_reset_lifetime: Duration,
    /// How long an email-verification link works (`48h`).
    #[serde(with = "humantime_duration")]
    pub email_verification_lifetime: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        Self {
            idle_timeout: hours(12),
            absolute_lifetime: hours(14 * 24),
            temporary_password_lifetime: hours(72),
            password_reset_lifetime: hours(1),
            email_verification_lifetime: hours(48),
        }
    }
}

/// Failed sign-in throttling, per account and per client address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Throttle at all (`true`; switch off only to measure raw sign-in throughput).
    pub enabled: bool,
    /// Failures allowed before any delay (10).
    pub free_failures: u32,
    /// The first delay; it doubles per further failure (`1s`).
    #[serde(with = "humantime_duration")]
    pub base_delay: Duration,
    /// The longest delay (`15m`).
    #[serde(with = "humantime_duration")]
    pub max_delay: Duration,
    /// Failures are forgotten after this long without one (`1h`).
    #[serde(with = "humantime_duration")]
    pub forget_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            free_failures: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// Where configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The file named on the command line (it must exist), or `None` for
    /// [`DEFAULT_FILE`] if it exists.
    pub file: Option<PathBuf>,
    /// The environment variables to read (all of the process's, usually).
    pub env: Vec<(String, String)>,
}

impl Sources {
    /// The named file (if any) and this process's environment.
    #[must_use]
    ///
    /// Variables that are not Guildhall's are not read, so one that is not valid
    /// Unicode elsewhere in the environment does no harm; one of Guildhall's that is not
    /// is passed on with its invalid bytes replaced, and then fails as a wrong value.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.to_str()?.to_owned();
                name.starts_with(ENV_PREFIX).then(|| (name, value.to_string_lossy().into_owned()))
            })
            .collect();
        Self { file, env }
    }
}

/// A configuration that cannot be used. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named on the command line does not exist or cannot be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key has a value of the wrong kind, or is unknown.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A key's value is well-formed but unusable.
    #[error("invalid configuration: `{key}` {problem}")]
    Invalid {
        /// The key (`mail.smtp.host`).
        key: String,
        /// What is wrong, and what would be right.
        problem: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, problem: impl fmt::Display) -> Self {
        Self::Invalid { key: key.to_owned(), problem: problem.to_string() }
    }

    /// The key the error is about, when it is about one key.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            Self::File { .. } | Self::Parse(_) => None,
        }
    }
}

impl Config {
    /// Reads defaults, then the file, then `GUILDHALL_*` variables.
    ///
    /// Variables starting `GUILDHALL_TEST_` are the test suite's, not configuration, and
    /// are ignored; any other unknown `GUILDHALL_*` variable is an error (a misspelt
    /// variable should not be silently ignored).
    ///
    /// # Errors
    /// [`ConfigError::File`] when a named file cannot be read; [`ConfigError::Parse`]
    /// naming the key and where its value came from when a value has the wrong kind or a
    /// key is unknown.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        match &sources.file {
            Some(path) => {
                std::fs::File::open(path)
                    .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_FILE).is_file() => figment = figment.merge(Toml::file(DEFAULT_FILE)),
            None => {}
        }
        let mut variables: Vec<&(String, String)> = sources
            .env
            .iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !name.starts_with("GUILDHALL_TEST_"))
            .filter(|(name, _)| name != "GUILDHALL_CONFIG" && !injected_by_kubernetes(name))
            .collect();
        variables.sort();
        for (name, value) in variables {
            figment = figment.merge(EnvVariable { name, value });
        }
        // Lossy: a variable's text becomes a number or a boolean where the key wants one
        // (variables are kept as text, so a password of digits stays a string).
        figment.extract_lossy().map_err(|e| ConfigError::Parse(describe(&e)))
    }

    /// Checks every value and fills in the derived defaults.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first key that cannot be used.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let database_url = if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("guildhall.db").display())
        } else {
            self.database_url.clone()
        };
        if !["sqlite:", "postgres:", "postgresql:"].iter().any(|p| database_url.starts_with(p)) {
            return Err(ConfigError::invalid(
                "database_url",
                "must start with sqlite:// (a file) or postgres:// (a server), as in postgres://guildhall@db.internal/guildhall",
            ));
        }
        if self.public_url.is_empty() && (self.listen.ip().is_unspecified() || self.listen.port() == 0) {
            return Err(ConfigError::invalid(
                "public_url",
                format!(
                    "must be set when listen is {} (links and allowed origins cannot be derived from it)",
                    self.listen
                ),
            ));
        }
        let public_url =
            if self.public_url.is_empty() { format!("http://{}", self.listen) } else { self.public_url.clone() };
        let links =
            guildhall_mail::render::Links::new(&public_url).map_err(|e| ConfigError::invalid("public_url", e))?;
        let allowed_origins = if self.allowed_origins.is_empty() {
            vec![origin_of(links.base())]
        } else {
            for origin in &self.allowed_origins {
                if origin_of(origin) != *origin || guildhall_mail::render::Links::new(origin).is_err() {
                    return Err(ConfigError::invalid(
                        "allowed_origins",
                        format!(
                            "holds {origin:?}, which is not an origin like https://portal.example.org (scheme, host and port only)"
                        ),
                    ));
                }
            }
            self.allowed_origins.clone()
        };
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid("max_body_bytes", "must be at least 1024"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::invalid("log.filter", format!("is not a tracing filter: {e}")))?;
        let outbox_dir = if self.mail.outbox_dir.as_os_str().is_empty() {
            self.data_dir.join("outbox")
        } else {
            self.mail.outbox_dir.clone()
        };
        let smtp = match self.mail.transport {
            MailTransport::File => None,
            MailTransport::Smtp => Some(self.smtp_settings()?),
        };
        let dispatch = self.dispatch_settings()?;
        let argon2 = self.argon2_settings()?;
        guildhall_http::system::Argon2Hasher::new(argon2).map_err(|e| ConfigError::invalid("argon2", e))?;
        guildhall_mail::compose::Composer::new(
            guildhall_mail::render::Renderer::new(links.clone(), self.mail.product_name.clone()),
            &self.mail.from,
        )
        .map_err(|e| ConfigError::invalid("mail.from", e))?;
        Ok(Resolved {
            config: self.clone(),
            database_url,
            links,
            allowed_origins,
            outbox_dir,
            smtp,
            dispatch,
            argon2,
            domain: self.domain_settings()?,
            throttle: self.throttle_settings()?,
            catalogue: self.catalogue()?,
        })
    }

    fn catalogue(&self) -> Result<guildhall_domain::catalogue::Catalogue, ConfigError> {
        use guildhall_domain::catalogue::{CapabilityDef, CapabilityKind, Catalogue};
        let mut builder = Catalogue::builder();
        for (index, capability) in self.capabilities.iter().enumerate() {
            let key = guildhall_domain::values::CapabilityKey::parse(&capability.key)
                .map_err(|e| ConfigError::invalid(&format!("capabilities[{index}].key"), e))?;
            if capability.description.trim().is_empty() {
                return Err(ConfigError::invalid(&format!("capabilities[{index}].description"), "must not be empty"));
            }
            let kind = match capability.kind {
                CapabilityKindSetting::Service => CapabilityKind::Service,
                CapabilityKindSetting::Automation => CapabilityKind::Automation,
                CapabilityKindSetting::Rule => CapabilityKind::Rule,
                CapabilityKindSetting::Feature => CapabilityKind::Feature,
            };
            builder = builder
                .capability(CapabilityDef {
                    key,
                    kind,
                    enabled_by_default: capability.enabled_by_default,
                    description: capability.description.clone(),
                })
                .map_err(|e| ConfigError::invalid(&format!("capabilities[{index}].key"), e))?;
        }
        Ok(builder.build())
    }

    fn smtp_settings(&self) -> Result<guildhall_mail::transport::SmtpSettings, ConfigError> {
        use guildhall_mail::transport::{SmtpSecurity, SmtpSettings};
        let smtp = &self.mail.smtp;
        if smtp.host.is_empty() {
            return Err(ConfigError::invalid("mail.smtp.host", "must be set when mail.transport is \"smtp\""));
        }
        if smtp.username.is_empty() != smtp.password.is_empty() {
            return Err(ConfigError::invalid(
                "mail.smtp.password",
                "and mail.smtp.username must both be set (the server requires authentication) or both be empty",
            ));
        }
        if smtp.timeout.is_zero() {
            return Err(ConfigError::invalid("mail.smtp.timeout", "must be positive"));
        }
        if smtp.max_connections == 0 {
            return Err(ConfigError::invalid("mail.smtp.max_connections", "must be at least 1"));
        }
        let mut settings = SmtpSettings::new(smtp.host.clone());
        settings.port = (smtp.port != 0).then_some(smtp.port);
        settings.security = match smtp.security {
            SmtpSecuritySetting::Starttls => SmtpSecurity::StartTls,
            SmtpSecuritySetting::Tls => SmtpSecurity::ImplicitTls,
            SmtpSecuritySetting::None => SmtpSecurity::None,
        };
        settings.credentials = (!smtp.username.is_empty()).then(|| (smtp.username.clone(), smtp.password.clone()));
        settings.timeout = smtp.timeout;
        settings.max_connections = smtp.max_connections;
        Ok(settings)
    }

    fn dispatch_settings(&self) -> Result<guildhall_mail::dispatch::DispatchSettings, ConfigError> {
        let d = &self.mail.dispatch;
        let settings = guildhall_mail::dispatch::DispatchSettings {
            batch_size: d.batch_size,
            lease: chrono_duration("mail.dispatch.lease", d.lease)?,
            concurrency: d.concurrency,
            max_attempts: d.max_attempts,
            first_retry: chrono_duration("mail.dispatch.first_retry", d.first_retry)?,
            max_retry: chrono_duration("mail.dispatch.max_retry", d.max_retry)?,
            idle_poll: d.poll_interval,
        };
        settings.validate().map_err(|e| {
            let key = if e.setting == "idle_poll" { "poll_interval" } else { e.setting };
            ConfigError::invalid(&format!("mail.dispatch.{key}"), e.problem)
        })?;
        Ok(settings)
    }

    fn argon2_settings(&self) -> Result<guildhall_http::system::Argon2Settings, ConfigError> {
        let a = &self.argon2;
        if a.memory_kib < 8 * a.parallelism.max(1) {
            return Err(ConfigError::invalid("argon2.memory_kib", "must be at least 8 KiB per lane"));
        }
        if a.iterations == 0 {
            return Err(ConfigError::invalid("argon2.iterations", "must be at least 1"));
        }
        if a.parallelism == 0 {
            return Err(ConfigError::invalid("argon2.parallelism", "must be at least 1"));
        }
        let concurrency = if a.concurrency == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            a.concurrency
        };
        Ok(guildhall_http::system::Argon2Settings {
            memory_kib: a.memory_kib,
            iterations: a.iterations,
            parallelism: a.parallelism,
            concurrency,
        })
    }

    fn domain_settings(&self) -> Result<guildhall_domain::usecases::Settings, ConfigError> {
        let s = &self.sessions;
        let positive = |key: &str, value: Duration| {
            if value.is_zero() {
                Err(ConfigError::invalid(key, "must be positive"))
            } else {
                chrono_duration(key, value)
            }
        };
        let idle_timeout = positive("sessions.idle_timeout", s.idle_timeout)?;
        let absolute_timeout = positive("sessions.absolute_lifetime", s.absolute_lifetime)?;
        if absolute_timeout < idle_timeout {
            return Err(ConfigError::invalid("sessions.absolute_lifetime", "must be at least sessions.idle_timeout"));
        }
        Ok(guildhall_domain::usecases::Settings {
            sessions: guildhall_domain::token::SessionPolicy { idle_timeout, absolute_timeout },
            temporary_password_lifetime: positive(
                "sessions.temporary_password_lifetime",
                s.temporary_password_lifetime,
            )?,
            password_reset_lifetime: positive("sessions.password_reset_lifetime", s.password_reset_lifetime)?,
            email_verification_lifetime: positive(
                "sessions.email_verification_lifetime",
                s.email_verification_lifetime,
            )?,
            organisation_creation: self.organisation_creation.into(),
            ..guildhall_domain::usecases::Settings::default()
        })
    }

    fn throttle_settings(&self) -> Result<guildhall_http::throttle::ThrottleSettings, ConfigError> {
        let t = &self.throttle;
        let base_delay = chrono_duration("throttle.base_delay", t.base_delay)?;
        let max_delay = chrono_duration("throttle.max_delay", t.max_delay)?;
        if max_delay < base_delay {
            return Err(ConfigError::invalid("throttle.max_delay", "must be at least throttle.base_delay"));
        }
        let forget_after = chrono_duration("throttle.forget_after", t.forget_after)?;
        if forget_after < max_delay {
            return Err(ConfigError::invalid("throttle.forget_after", "must be at least throttle.max_delay"));
        }
        Ok(guildhall_http::throttle::ThrottleSettings {
            enabled: t.enabled,
            policy: guildhall_domain::throttle::ThrottlePolicy {
                free_failures: t.free_failures,
                base_delay,
                max_delay,
                forget_after,
            },
        })
    }

    /// The configuration as `guildhall.toml` would hold it, with the SMTP password and
    /// any password in the database URL masked (what `guildhall check-config` prints).
    #[must_use]
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = redact_url(&shown.database_url);
        if !shown.mail.smtp.password.is_empty() {
            shown.mail.smtp.password = "(set)".into();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
}

/// A checked configuration, with derived values filled in and converted to what the
/// adapters take.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What was configured.
    pub config: Config,
    /// The database to use.
    pub database_url: String,
    /// The public base URL, checked.
    pub links: guildhall_mail::render::Links,
    /// Origins allowed to make cookie-authenticated state changes.
    pub allowed_origins: Vec<String>,
    /// Where the file transport writes.
    pub outbox_dir: PathBuf,
    /// SMTP, when the transport is `smtp`.
    pub smtp: Option<guildhall_mail::transport::SmtpSettings>,
    /// The dispatcher's settings.
    pub dispatch: guildhall_mail::dispatch::DispatchSettings,
    /// Argon2id.
    pub argon2: guildhall_http::system::Argon2Settings,
    /// The use cases' settings.
    pub domain: guildhall_domain::usecases::Settings,
    /// Throttling.
    pub throttle: guildhall_http::throttle::ThrottleSettings,
    /// Permissions, topics and the configured capabilities.
    pub catalogue: guildhall_domain::catalogue::Catalogue,
}

impl Resolved {
    /// Whether the database is a SQLite file (the embedded default).
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The database URL with any password replaced by `***`, for logs and messages.
    #[must_use]
    pub fn database_url_for_display(&self) -> String {
        redact_url(&self.database_url)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let url = redact_password_parameter(url);
    let url = url.as_str();
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `...?sslmode=require&password=secret` → `...?sslmode=require&password=***`.
fn redact_password_parameter(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_owned() };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// `https://example.org/app` → `https://example.org`.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            format!("{}://{authority}", scheme.to_ascii_lowercase())
        }
        None => url.to_owned(),
    }
}

fn chrono_duration(key: &str, value: Duration) -> Result<chrono::Duration, ConfigError> {
    chrono::Duration::from_std(value).map_err(|_| ConfigError::invalid(key, "is too long"))
}

/// Variables Kubernetes adds for a Service named `guildhall` (`GUILDHALL_SERVICE_HOST`,
/// `GUILDHALL_PORT_8080_TCP`, ...): not configuration, and not an error.
fn injected_by_kubernetes(name: &str) -> bool {
    name.starts_with("GUILDHALL_SERVICE_") || name == "GUILDHALL_PORT" || name.starts_with("GUILDHALL_PORT_")
}

/// One `GUILDHALL_*` variable as a configuration layer: `GUILDHALL_MAIL__SMTP__HOST`
/// sets `mail.smtp.host`. Read from [`Sources::env`] rather than the process
/// environment, so configurations can be loaded side by side (tests do).
struct EnvVariable<'a> {
    name: &'a str,
    value: &'a str,
}

impl Provider for EnvVariable<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        let key = self.name[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
        // Lists and tables are written as TOML-like values (`[...]`, `{...}`); everything
        // else stays text, converted to the key's type on extraction.
        let value: Value = if self.value.trim_start().starts_with(['[', '{']) {
            self.value.parse().map_err(|e: std::convert::Infallible| figment::Error::from(e.to_string()))?
        } else {
            Value::from(self.value.to_owned())
        };
        Ok(Profile::Default.collect(figment::util::nest(&key, value).into_dict().unwrap_or_default()))
    }
}

/// figment's message with the key and where its value came from.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| match &m.source {
                Some(source) => format!("{} {source}", m.name),
                None => m.name.to_string(),
            });
            match (key.is_empty(), source) {
                (false, Some(source)) => format!("`{key}` (from {source}): {}", e.kind),
                (false, None) => format!("`{key}`: {}", e.kind),
                (true, Some(source)) => format!("{} (from {source})", e.kind),
                (true, None) => e.kind.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// (De)serialises a `Duration` as text such as `30s`, `15m`, `12h`, `14days`.
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like 30s, 15m, 12h or 14days ({e})"))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(&Sources { file: None, env })
    }

    fn problem(result: Result<Resolved, ConfigError>) -> (String, String) {
        match result {
            Ok(_) => panic!("expected an invalid configuration"),
            Err(error) => (error.key().unwrap_or_default().to_owned(), error.to_string()),
        }
    }

    #[test]
    fn no_configuration_is_the_embedded_default() {
        let resolved = load(&[]).unwrap().resolve().unwrap();
        assert_eq!(resolved.config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(resolved.database_url, "sqlite://./var/guildhall.db");
        assert_eq!(resolved.outbox_dir, PathBuf::from("./var/outbox"));
        assert!(resolved.smtp.is_none(), "emails are written as files");
        assert_eq!(resolved.links.base(), "http://127.0.0.1:8080");
        assert_eq!(resolved.allowed_origins, vec!["http://127.0.0.1:8080".to_owned()]);
        assert_eq!(resolved.argon2.memory_kib, 19 * 1024);
        assert_eq!(resolved.domain.sessions.idle_timeout, chrono::Duration::hours(12));
    }

    #[test]
    fn environment_variables_override_and_reach_nested_keys() {
        let config = load(&[
            ("GUILDHALL_LISTEN", "0.0.0.0:9000"),
            ("GUILDHALL_DATA_DIR", "/srv/guildhall"),
            ("GUILDHALL_PUBLIC_URL", "https://members.example.org/"),
            ("GUILDHALL_MAIL__TRANSPORT", "smtp"),
            ("GUILDHALL_MAIL__SMTP__HOST", "smtp.example.org"),
            ("GUILDHALL_MAIL__SMTP__PORT", "2525"),
            ("GUILDHALL_SESSIONS__IDLE_TIMEOUT", "30m"),
            ("GUILDHALL_THROTTLE__ENABLED", "false"),
            ("GUILDHALL_ORGANISATION_CREATION", "operators"),
            ("GUILDHALL_TEST_POSTGRES_URL", "postgres://ignored"),
        ])
        .unwrap();
        let resolved = config.resolve().unwrap();
        assert_eq!(resolved.database_url, "sqlite:///srv/guildhall/guildhall.db");
        assert_eq!(resolved.links.base(), "https://members.example.org");
        assert_eq!(resolved.allowed_origins, vec!["https://members.example.org".to_owned()]);
        let smtp = resolved.smtp.unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.org", Some(2525)));
        assert_eq!(resolved.domain.sessions.idle_timeout, chrono::Duration::minutes(30));
        assert!(!resolved.throttle.enabled);
        assert_eq!(resolved.domain.organisation_creation, OrganisationCreation::OperatorsOnly);
    }

    #[test]
    fn a_file_sits_between_the_defaults_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("guildhall-config-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("guildhall.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\npublic_url = \"https://a.example\"\n[argon2]\niterations = 3\n",
        )
        .unwrap();
        let env = vec![("GUILDHALL_LISTEN".to_owned(), "127.0.0.1:7001".to_owned())];
        let config = Config::load(&Sources { file: Some(file.clone()), env }).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7001", "the environment wins");
        assert_eq!(config.public_url, "https://a.example", "the file beats the default");
        assert_eq!(config.argon2.iterations, 3);
        assert_eq!(config.argon2.memory_kib, 19 * 1024, "unset keys keep their default");
        let missing = Config::load(&Sources { file: Some(dir.join("absent.toml")), env: Vec::new() });
        assert!(matches!(missing, Err(ConfigError::File { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn wrong_values_and_unknown_keys_are_refused_naming_the_key_and_its_source() {
        let error = load(&[("GUILDHALL_LISTEN", "nowhere")]).unwrap_err().to_string();
        assert!(error.contains("`listen`") && error.contains("GUILDHALL_LISTEN"), "{error}");
        let error = load(&[("GUILDHALL_SESSIONS__IDLE_TIMEOUT", "soon")]).unwrap_err().to_string();
        assert!(error.contains("sessions.idle_timeout") && error.contains("not a duration"), "{error}");
        let error = load(&[("GUILDHALL_MAIL__SMTP__HOTS", "x")]).unwrap_err().to_string();
        assert!(error.contains("hots"), "a misspelt key is not ignored: {error}");
        let error = load(&[("GUILDHALL_ORGANISATION_CREATION", "admins")]).unwrap_err().to_string();
        assert!(error.contains("organisation_creation") && error.contains("operators"), "{error}");
    }

    #[test]
    fn unusable_values_are_refused_naming_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("GUILDHALL_DATABASE_URL", "mysql://db/guildhall")], "database_url"),
            (&[("GUILDHALL_PUBLIC_URL", "members.example.org")], "public_url"),
            (&[("GUILDHALL_MAIL__TRANSPORT", "smtp")], "mail.smtp.host"),
            (
                &[
                    ("GUILDHALL_MAIL__TRANSPORT", "smtp"),
                    ("GUILDHALL_MAIL__SMTP__HOST", "h"),
                    ("GUILDHALL_MAIL__SMTP__USERNAME", "u"),
                ],
                "mail.smtp.password",
            ),
            (&[("GUILDHALL_MAIL__FROM", "not an address")], "mail.from"),
            (&[("GUILDHALL_MAIL__DISPATCH__LEASE", "5s")], "mail.dispatch.lease"),
            (&[("GUILDHALL_ARGON2__ITERATIONS", "0")], "argon2.iterations"),
            (&[("GUILDHALL_ARGON2__MEMORY_KIB", "4")], "argon2.memory_kib"),
            (&[("GUILDHALL_SESSIONS__ABSOLUTE_LIFETIME", "1h")], "sessions.absolute_lifetime"),
            (&[("GUILDHALL_THROTTLE__MAX_DELAY", "0s")], "throttle.max_delay"),
            (&[("GUILDHALL_LOG__FILTER", "info,[[[")], "log.filter"),
            (&[("GUILDHALL_ALLOWED_ORIGINS", "[\"https://a.example/path\"]")], "allowed_origins"),
        ];
        for (env, key) in cases {
            let (named, message) = problem(load(env).unwrap().resolve());
            assert_eq!(named, *key, "{message}");
            assert!(message.contains(key), "{message}");
        }
    }

    #[test]
    fn capabilities_come_from_the_configuration_and_bad_ones_are_named() {
        let resolved = load(&[]).unwrap().resolve().unwrap();
        let keys: Vec<String> = resolved.catalogue.capabilities().map(|c| c.key.to_string()).collect();
        assert!(
            keys.contains(&"patient_tasks".to_owned()) && keys.contains(&"automated_recall".to_owned()),
            "{keys:?}"
        );
        let none = load(&[("GUILDHALL_CAPABILITIES", "[]")]).unwrap().resolve().unwrap();
        assert_eq!(none.catalogue.capabilities().count(), 0);
        let twice = r#"[{key="ab", kind="rule", description="A"}, {key="ab", kind="rule", description="A again"}]"#;
        let (key, message) = problem(load(&[("GUILDHALL_CAPABILITIES", twice)]).unwrap().resolve());
        assert_eq!(key, "capabilities[1].key", "{message}");
        let bad = r#"[{key="Not A Key", kind="service", description="x"}]"#;
        let (key, message) = problem(load(&[("GUILDHALL_CAPABILITIES", bad)]).unwrap().resolve());
        assert_eq!(key, "capabilities[0].key", "{message}");
    }

    #[test]
    fn variables_kubernetes_adds_are_not_configuration_but_a_public_url_is_needed_on_any_address() {
        let config =
            load(&[("GUILDHALL_SERVICE_HOST", "10.0.0.1"), ("GUILDHALL_PORT", "tcp://10.0.0.1:8080")]).unwrap();
        assert!(config.resolve().is_ok());
        let (key, message) = problem(load(&[("GUILDHALL_LISTEN", "0.0.0.0:8080")]).unwrap().resolve());
        assert_eq!(key, "public_url", "{message}");
        let set =
            load(&[("GUILDHALL_LISTEN", "0.0.0.0:8080"), ("GUILDHALL_PUBLIC_URL", "https://m.example.org")]).unwrap();
        assert!(set.resolve().is_ok());
    }

    #[test]
    fn the_smtp_password_is_never_shown() {
        let config =
            load(&[("GUILDHALL_MAIL__SMTP__USERNAME", "mailer"), ("GUILDHALL_MAIL__SMTP__PASSWORD", "hunter2-secret")])
                .unwrap();
        assert!(!config.to_toml().contains("hunter2-secret"));
        let with_password = load(&[("GUILDHALL_DATABASE_URL", "postgres://app:s3cret@db/guildhall")]).unwrap();
        assert!(!with_password.to_toml().contains("s3cret"), "{}", with_password.to_toml());
        assert!(!format!("{config:?}").contains("hunter2-secret"));
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/guildhall"), "postgres://app:***@db:5432/guildhall");
        assert_eq!(
            redact_url("postgres://app@db/g?sslmode=require&password=s3cret"),
            "postgres://app@db/g?sslmode=require&password=***"
        );
        let digits =
            load(&[("GUILDHALL_MAIL__SMTP__USERNAME", "u"), ("GUILDHALL_MAIL__SMTP__PASSWORD", "12345678")]).unwrap();
        assert_eq!(digits.mail.smtp.password, "12345678", "a password of digits stays text");
    }
}
