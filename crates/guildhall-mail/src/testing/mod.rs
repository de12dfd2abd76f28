//! A real SMTP server for tests and benchmarks (feature `testing`): [`SmtpSink`] runs
//! aiosmtpd (PyPI) on a loopback port and collects what it accepts.
//!
//! aiosmtpd must be importable by `python3` (`pip install aiosmtpd`; `.ci/run` installs
//! it). [`SmtpSink::start_or_skip`] skips a test with a message when it is missing, except
//! under `CI=true`, where it fails: CI must never skip these tests silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::transport::{SmtpSecurity, SmtpSettings};

const SCRIPT: &str = include_str!("smtp_sink.py");

/// The sink could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// `python3` has no aiosmtpd.
    #[error("aiosmtpd is not installed for python3: run `pip install aiosmtpd`")]
    Missing,
    /// Anything else.
    #[error("the SMTP sink did not start: {0}")]
    Failed(String),
}

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope's recipients.
    pub recipients: Vec<String>,
    /// The message as received (RFC 5322).
    pub raw: Vec<u8>,
}

/// aiosmtpd on `127.0.0.1:port`, writing what it accepts into a private directory. The
/// server stops and the directory is removed when the sink is dropped.
///
/// Recipients choose the answer by their local part: `reject…` gets 550, `tempfail…`
/// 451 every time, `greylist…` 451 the first time only; anything else is accepted.
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A port on 127.0.0.1 that nothing listens on right now.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

impl SmtpSink {
    /// Starts a sink on a free loopback port.
    ///
    /// # Errors
    /// [`SinkError::Missing`] without aiosmtpd; [`SinkError::Failed`] otherwise.
    pub async fn start() -> Result<Self, SinkError> {
        Self::launch(None, None).await
    }

    /// Starts a sink on `port` (for a server that comes up where a client already
    /// tried to connect).
    ///
    /// # Errors
    /// [`SinkError::Missing`] without aiosmtpd; [`SinkError::Failed`] otherwise.
    pub async fn start_on(port: u16) -> Result<Self, SinkError> {
        Self::launch(Some(port), None).await
    }

    /// [`Self::start_or_skip`] for a server that requires these credentials.
    ///
    /// # Panics
    /// When the sink does not start, and under `CI=true` when aiosmtpd is missing.
    pub async fn start_requiring_auth_or_skip(user: &str, password: &str) -> Option<Self> {
        skip_if_missing(Self::launch(None, Some((user, password))).await)
    }

    /// Starts aiosmtpd on `port` (a free one when `None`).
    async fn launch(port: Option<u16>, credentials: Option<(&str, &str)>) -> Result<Self, SinkError> {
        static SINKS: AtomicU64 = AtomicU64::new(0);
        let failed = |what: &str, error: &dyn std::fmt::Display| SinkError::Failed(format!("{what}: {error}"));
        let port = match port {
            Some(port) => port,
            None => free_port().map_err(|error| failed("finding a free port", &error))?,
        };
        let dir = std::env::temp_dir().join(format!(
            "guildhall-smtp-sink-{}-{}-{port}",
            std::process::id(),
            SINKS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|error| failed("creating its directory", &error))?;
        let mut sink = Self { port, dir, child: None };
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&sink.dir)
            .arg(port.to_string())
            .args(credentials.map(|(user, password)| [user, password]).into_iter().flatten())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| failed("running python3", &error))?;
        let stdout = child.stdout.take().ok_or_else(|| SinkError::Failed("no stdout".into()))?;
        sink.child = Some(child);
        let mut first = String::new();
        let read = tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).read_line(&mut first)).await;
        match (read, first.trim()) {
            (Ok(Ok(_)), "READY") => Ok(sink),
            (Ok(Ok(_)), "MISSING aiosmtpd") => Err(SinkError::Missing),
            (Ok(Ok(_)), other) => Err(SinkError::Failed(format!("it said {other:?}"))),
            (Ok(Err(error)), _) => Err(failed("reading its output", &error)),
            (Err(_), _) => Err(SinkError::Failed("not ready within 30 s".into())),
        }
    }

    /// [`Self::start`] for a test: `None` (with a message) when aiosmtpd is missing,
    /// so the test can return early.
    ///
    /// # Panics
    /// When the sink does not start, and under `CI=true` when aiosmtpd is missing.
    #[allow(clippy::panic)]
    pub async fn start_or_skip() -> Option<Self> {
        skip_if_missing(Self::start().await)
    }

    /// [`Self::start_on`] for a test, skipping as [`Self::start_or_skip`] does.
    ///
    /// # Panics
    /// When the sink does not start, and under `CI=true` when aiosmtpd is missing.
    #[allow(clippy::panic)]
    pub async fn start_on_or_skip(port: u16) -> Option<Self> {
        skip_if_missing(Self::start_on(port).await)
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SMTP settings that reach it: no TLS (a loopback test server), no authentication,
    /// a 10 s timeout.
    #[must_use]
    pub fn settings(&self) -> SmtpSettings {
        smtp_settings(self.port)
    }

    /// What it accepted so far, in order.
    ///
    /// # Errors
    /// When its directory cannot be read.
    pub fn received(&self) -> std::io::Result<Vec<Received>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names.iter().map(|path| read_received(path)).collect()
    }

    /// Waits up to `timeout` until it accepted at least `count` messages, and returns
    /// them all.
    ///
    /// # Errors
    /// When its directory cannot be read or the messages do not arrive in time.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> std::io::Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received()?;
            if received.len() >= count {
                return Ok(received);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(std::io::Error::other(format!(
                    "{} of {count} messages arrived within {timeout:?}",
                    received.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[allow(clippy::panic)]
fn skip_if_missing(started: Result<SmtpSink, SinkError>) -> Option<SmtpSink> {
    match started {
        Ok(sink) => Some(sink),
        Err(SinkError::Missing) if !under_ci() => {
            eprintln!("skipping an SMTP test: aiosmtpd is not installed (pip install aiosmtpd)");
            None
        }
        Err(error) => panic!("{error} (under CI=true the SMTP tests must run, not skip)"),
    }
}

/// SMTP settings for a plain loopback test server on `port`.
#[must_use]
pub fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        port: Some(port),
        security: SmtpSecurity::None,
        timeout: Duration::from_secs(10),
        ..SmtpSettings::new("127.0.0.1")
    }
}

fn read_received(eml: &Path) -> std::io::Result<Received> {
    let raw = std::fs::read(eml)?;
    let recipients = std::fs::read_to_string(eml.with_extension("rcpt"))?.lines().map(str::to_owned).collect();
    Ok(Received { recipients, raw })
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
