//! The command line: `guildhall [serve]`, `migrate`, `check-config`, `admin`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, App, StartError};
use crate::config::{Config, ConfigError, Resolved, Sources};

/// Guildhall: organisation membership for clinics, practices and small businesses.
///
/// With no command it serves: the REST API under /api/v1, its documentation at /docs,
/// /healthz, /readyz and /metrics, and delivers queued email. With no configuration it
/// listens on 127.0.0.1:8080, keeps its data in a SQLite file under ./var/ and writes
/// emails as .eml files under ./var/outbox/.
///
/// Configuration: built-in defaults, then guildhall.toml (or --config), then GUILDHALL_*
/// environment variables (GUILDHALL_LISTEN, GUILDHALL_DATABASE_URL, GUILDHALL_PUBLIC_URL,
/// GUILDHALL_DATA_DIR, GUILDHALL_MAIL__SMTP__HOST, ...). docs/operations.md lists every key.
#[derive(Debug, Parser)]
#[command(name = "guildhall", version, about, long_about)]
pub struct Cli {
    /// The configuration file (default: guildhall.toml in the working directory, if present).
    #[arg(long, short, global = true, env = "GUILDHALL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and deliver email until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply, revert or list database migrations.
    #[command(subcommand)]
    Migrate(Migrate),
    /// Check the configuration and print it as the service would use it (the SMTP
    /// password masked); exits non-zero naming the first invalid key.
    CheckConfig,
    /// Operator actions that need no API: create an organisation with its administrator,
    /// end a person's sessions, disable or enable an account.
    #[command(subcommand)]
    Admin(Admin),
}

/// `guildhall migrate ...`
#[derive(Debug, Subcommand)]
pub enum Migrate {
    /// Apply every pending migration.
    Up,
    /// Revert the most recent migration (or --steps N, or --all). Reverting drops data.
    Down {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: u32,
        /// Revert every migration (leaves an empty database).
        #[arg(long)]
        all: bool,
    },
    /// List every migration and whether it is applied.
    Status,
}

/// `guildhall admin ...`
#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Create an organisation and its first administrator. A new account gets an email
    /// with a link to choose its password (there is no default password); an existing
    /// account simply becomes the administrator. The email is delivered by a running
    /// `guildhall serve`.
    CreateOrg(CreateOrg),
    /// End every session of an account (signed out everywhere, at once).
    EndSessions(AccountArg),
    /// Disable an account: it can no longer sign in and its sessions end.
    DisableAccount(AccountArg),
    /// Enable a disabled account again.
    EnableAccount(AccountArg),
}

/// `guildhall admin create-org`
#[derive(Debug, Args)]
pub struct CreateOrg {
    /// The organisation's address in URLs: lower-case letters, digits and hyphens.
    #[arg(long)]
    pub slug: String,
    /// Its display name.
    #[arg(long)]
    pub name: String,
    /// The administrator's email address.
    #[arg(long, value_name = "EMAIL")]
    pub admin_email: String,
    /// The administrator's first name (for a new account).
    #[arg(long)]
    pub first_name: String,
    /// The administrator's last name (for a new account).
    #[arg(long)]
    pub last_name: String,
}

/// An account, by email address.
#[derive(Debug, Args)]
pub struct AccountArg {
    /// The account's email address.
    #[arg(long, value_name = "EMAIL")]
    pub email: String,
}

/// What went wrong, and how the process should exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is invalid (exit 78, `EX_CONFIG`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Starting or serving failed (exit 1).
    #[error(transparent)]
    Start(#[from] StartError),
    /// An operator action was refused or failed (exit 1).
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) => ExitCode::from(78),
            Self::Start(_) | Self::Refused(_) => ExitCode::FAILURE,
        }
    }
}

/// Parses the command line and runs it; what `main` calls.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("guildhall: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, Sources::from_process(None))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("guildhall: {error}");
            error.exit_code()
        }
    }
}

/// Runs a parsed command line with configuration from `sources` (whose `file` the
/// command line's `--config` replaces).
///
/// # Errors
/// [`CliError`] saying what failed.
pub async fn run(cli: Cli, mut sources: Sources) -> Result<(), CliError> {
    if cli.config.is_some() {
        sources.file = cli.config.clone();
    }
    let config = Config::load(&sources)?;
    let resolved = config.resolve()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", resolved.config.to_toml());
            println!("# database: {}", resolved.database_url_for_display());
            println!("# public URL: {}", resolved.links.base());
            println!("# configuration OK");
            Ok(())
        }
        Command::Serve => serve(resolved).await,
        Command::Migrate(command) => {
            crate::telemetry::init_logging(&resolved.config.log).ok();
            migrate(&resolved, command).await
        }
        Command::Admin(command) => {
            crate::telemetry::init_logging(&resolved.config.log).ok();
            crate::admin::run(resolved, command).await
        }
    }
}

async fn serve(resolved: Resolved) -> Result<(), CliError> {
    crate::telemetry::init_logging(&resolved.config.log)
        .map_err(|e| ConfigError::Invalid { key: "log.filter".into(), problem: e.to_string() })?;
    let database = resolved.database_url_for_display();
    let outbox = resolved.smtp.as_ref().map_or_else(
        || format!("{} (each email is written there as an .eml file)", resolved.outbox_dir.display()),
        |smtp| format!("SMTP via {}", smtp.host),
    );
    let server = App::build(resolved).await?.bind().await?;
    let base = format!("http://{}", server.address());
    println!("Guildhall is listening on {base}");
    println!("  API:      {base}/api/v1  (OpenAPI document: {base}/openapi.json)");
    println!("  API docs: {base}/docs");
    println!("  Health:   {base}/healthz  {base}/readyz  {base}/metrics");
    println!("  Database: {database}");
    println!("  Email:    {outbox}");
    println!("Stop it with Ctrl-C.");
    tracing::info!(address = %server.address(), "listening");
    server.serve(app::shutdown_signal()).await?;
    Ok(())
}

async fn migrate(resolved: &Resolved, command: Migrate) -> Result<(), CliError> {
    let store = app::connect(resolved).await?;
    let result = match command {
        Migrate::Up => store.migrate().await.map(|()| "every migration is applied".to_owned()),
        Migrate::Down { all: true, .. } => {
            store.migrate_down().await.map(|()| "every migration is reverted".to_owned())
        }
        Migrate::Down { steps, .. } => {
            store.migrate_down_by(steps).await.map(|()| format!("reverted up to {steps} migration(s)"))
        }
        Migrate::Status => store.migrations().await.map(|migrations| {
            let lines: Vec<String> = migrations
                .iter()
                .map(|m| format!("{}  {}", if m.applied { "applied" } else { "pending" }, m.name))
                .collect();
            lines.join("\n")
        }),
    };
    store.close().await.ok();
    let message = result.map_err(|e| StartError::Schema(e.to_string()))?;
    println!("{message}");
    Ok(())
}
