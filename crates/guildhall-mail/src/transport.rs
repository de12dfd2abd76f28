//! Putting composed messages on the wire ([`SmtpTransport`]) or on disk
//! ([`FileTransport`], the embedded default), and telling a transient failure from a
//! permanent one so that the dispatcher knows whether to retry.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the server could not be reached, timed out, or answered
    /// 4xx (greylisting, a full mailbox, a busy server).
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Will never succeed as it is: the server answered 5xx (no such user, refused), or
    /// the message cannot be built.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Delivers one composed message.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `message` to the recipients of its envelope.
    ///
    /// # Errors
    /// [`SendError::Transient`] when a later attempt may succeed, [`SendError::Permanent`]
    /// when it cannot.
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpSecurity {
    /// Plain TCP upgraded with `STARTTLS`, which is required (port 587 by default).
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465 by default).
    ImplicitTls,
    /// No encryption at all (port 25 by default). Only for a relay on the same host or a
    /// local test server: credentials and messages cross the network in clear.
    None,
}

impl SmtpSecurity {
    /// The port this kind of connection uses unless another is configured.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::ImplicitTls => 465,
            Self::None => 25,
        }
    }
}

/// Where and how to reach the SMTP server.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// The server's host name (checked against its TLS certificate) or address.
    pub host: String,
    /// The port; `None` for the security mode's default.
    pub port: Option<u16>,
    /// Connection security.
    pub security: SmtpSecurity,
    /// User name and password, when the server requires authentication.
    pub credentials: Option<(String, String)>,
    /// The longest one message may take, from connecting to the server's final answer; an
    /// attempt that takes longer is abandoned as a transient failure (a server that
    /// accepts connections and then stalls must not hold a dispatcher forever).
    pub timeout: Duration,
    /// How many connections to keep open to the server.
    pub max_connections: u32,
}

impl SmtpSettings {
    /// STARTTLS to `host` on port 587, no authentication, a 30 s timeout, 4 connections.
    #[must_use]
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            security: SmtpSecurity::StartTls,
            credentials: None,
            timeout: Duration::from_secs(30),
            max_connections: 4,
        }
    }
}

/// Never prints the password.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// An SMTP transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("the SMTP settings are not usable: {0}")]
pub struct SmtpSetupError(String);

/// Delivery over SMTP (lettre, TLS by rustls with the Mozilla root certificates), with a
/// pool of reused connections.
#[derive(Clone)]
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    deadline: Duration,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport").field("server", &self.server).finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// A transport for `settings`. Nothing is connected until the first message.
    ///
    /// # Errors
    /// [`SmtpSetupError`] when the host is empty or TLS cannot be set up for it.
    pub fn new(settings: &SmtpSettings) -> Result<Self, SmtpSetupError> {
        let host = settings.host.trim();
        if host.is_empty() {
            return Err(SmtpSetupError("the SMTP host is empty".into()));
        }
        let port = settings.port.unwrap_or_else(|| settings.security.default_port());
        let tls = || TlsParameters::new(host.to_owned()).map_err(|error| SmtpSetupError(error.to_string()));
        let tls = match settings.security {
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(settings.max_connections.max(1)));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self { inner: builder.build(), server: format!("{host}:{port}"), deadline: settings.timeout })
    }

    /// Whether the server accepts a connection (and authentication, when configured).
    ///
    /// # Errors
    /// The classified failure when it does not.
    pub async fn check(&self) -> Result<(), SendError> {
        match tokio::time::timeout(self.deadline, self.inner.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(SendError::Transient(format!("{} did not accept a connection", self.server))),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> SendError {
        SendError::Transient(format!("{} did not answer within {:?}", self.server, self.deadline))
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        // lettre's own timeout bounds each read and write on the tokio executor only
        // partly (the connect); this bounds the whole exchange.
        match tokio::time::timeout(self.deadline, self.inner.send(message.clone())).await {
            Ok(result) => result.map(drop).map_err(|error| classify(&error)),
            Err(_) => Err(self.timed_out()),
        }
    }
}

/// Permanent: a 5xx answer about this message (no such mailbox, refused, too large), or a
/// message this server can never take (it needs SMTPUTF8 or 8BITMIME, which the server
/// lacks). Everything else is worth retrying, including what an operator must fix and
/// that would otherwise kill every queued message at once: 4xx, refused or dropped
/// connections, timeouts, TLS failures, a server without STARTTLS or without a usable
/// authentication mechanism, and rejected credentials (530, 534, 535, 538).
fn classify(error: &smtp::Error) -> SendError {
    let text = error.to_string();
    let configuration =
        matches!(error.status().map(|code| code.to_string()).as_deref(), Some("530" | "534" | "535" | "538"));
    let unsendable = error.is_client() && (text.contains("SMTPUTF8") || text.contains("8BITMIME"));
    if (error.is_permanent() && !configuration) || unsendable {
        SendError::Permanent(text)
    } else {
        if configuration || error.is_client() || error.is_tls() {
            tracing::error!(error = %text, "the SMTP server refuses the configured connection or credentials");
        }
        SendError::Transient(text)
    }
}

/// Writes each message as an RFC 5322 `.eml` file into a directory, for a newcomer's
/// machine and for tests: any mail client opens them.
///
/// A message is written to a temporary file and renamed into place, so a reader never
/// sees half of one, and its file name comes from its `Message-ID`: delivering the same
/// outbox message twice rewrites one file instead of making two. Files are readable by
/// their owner only, as they may hold a sign-in link or a temporary password.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir`, created (with its parents) when missing.
    ///
    /// # Errors
    /// The I/O error when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory messages are written into.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file_name(message: &Message) -> String {
        let id = message
            .headers()
            .get_raw("Message-ID")
            .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned())
            .unwrap_or_default();
        let safe: String =
            id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@')).collect();
        if safe.is_empty() { "message.eml".to_owned() } else { format!("{safe}.eml") }
    }
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let name = Self::file_name(message);
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let bytes = message.formatted();
        let failed = |error: std::io::Error| SendError::Transient(format!("writing {}: {error}", path.display()));
        write_private(&temporary, &bytes).await.map_err(failed)?;
        tokio::fs::rename(&temporary, &path).await.map_err(failed)
    }
}

async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}
