//! Wiring: the adapters around the use cases, and the server's life from start to a
//! clean stop.
//!
//! [`App::build`] connects to the database (applying migrations when configured to),
//! builds the use cases over the store, the HTTP surface, the outbox dispatcher and the
//! metrics. [`App::bind`] takes the listening socket; [`Server::serve`] answers requests
//! and delivers email until its stop signal fires, then stops accepting connections,
//! lets requests in flight finish (up to `shutdown_grace`), stops the dispatcher (sends in
//! progress finish, unstarted claims are released for another instance) and closes the
//! database pool.
//!
//! Nothing the instances must agree on lives in the process: sessions, the outbox, the
//! invariants' preconditions and the sign-in throttle's counters are all in the database,
//! so several instances can serve one PostgreSQL database.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use guildhall_domain::ports::{Clock, PasswordHasher};
use guildhall_domain::usecases::{Guildhall, Ports};
use guildhall_http::system::{Argon2Hasher, OsTokens, SystemClock, UuidV7Ids};
use guildhall_http::{ApiState, HttpSettings, Readiness};
use guildhall_mail::compose::Composer;
use guildhall_mail::dispatch::{DispatchPorts, Dispatcher};
use guildhall_mail::render::Renderer;
use guildhall_mail::transport::{FileTransport, SmtpTransport, Transport};
use guildhall_store::Store;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Response, Route, get, handler};
use tokio::sync::watch;

use crate::config::Resolved;
use crate::telemetry::{self, Metrics};

/// Why the service could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data or outbox directory could not be created.
    #[error("cannot create the directory {path}: {reason}")]
    Directory {
        /// Which one.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database could not be reached.
    #[error("cannot connect to the database {url}: {reason}")]
    Database {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// Migrations failed, or the schema does not match this build.
    #[error("{0}")]
    Schema(String),
    /// A part could not be set up from the configuration.
    #[error("cannot set up {part}: {reason}")]
    Setup {
        /// Which part.
        part: &'static str,
        /// Why.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {reason} (is another process using it? set GUILDHALL_LISTEN or `listen`)")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server failed while serving.
    #[error("the server stopped with an error: {0}")]
    Serve(String),
}

/// The service, wired and ready to bind.
#[allow(missing_debug_implementations)] // trait objects
pub struct App {
    resolved: Resolved,
    store: Arc<Store>,
    guildhall: Guildhall,
    clock: Arc<dyn Clock>,
    api: ApiState,
    metrics: Metrics,
    dispatcher: Option<Dispatcher>,
}

impl App {
    /// Connects to the database and builds every part. With `auto_migrate` pending
    /// migrations are applied; either way the schema must then match this build.
    ///
    /// # Errors
    /// [`StartError`] saying which part failed and why.
    pub async fn build(resolved: Resolved) -> Result<Self, StartError> {
        let store = connect(&resolved).await?;
        if resolved.config.auto_migrate {
            store.migrate().await.map_err(|e| StartError::Schema(format!("applying migrations failed: {e}")))?;
        }
        check_schema(&store).await?;
        let store = Arc::new(store);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let hasher: Arc<dyn PasswordHasher> = Arc::new(
            Argon2Hasher::new(resolved.argon2)
                .map_err(|e| StartError::Setup { part: "password hashing", reason: e.to_string() })?,
        );
        let ports = Ports::from_store(store.clone(), hasher, clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
        let guildhall = Guildhall::new(ports, Arc::new(resolved.catalogue.clone()), resolved.domain.clone());
        let settings = HttpSettings {
            allowed_origins: resolved.allowed_origins.clone(),
            body_limit: resolved.config.max_body_bytes,
            throttle: resolved.throttle,
        };
        let readiness = Arc::new(StoreReadiness { store: store.clone() });
        let api =
            ApiState::new(guildhall.clone(), settings, clock.clone(), readiness).with_sign_in_attempts(store.clone());
        let metrics = Metrics::new(store.clone());
        let dispatcher =
            if resolved.config.mail.dispatch.enabled { Some(dispatcher(&resolved, &store, &clock)?) } else { None };
        Ok(Self { resolved, store, guildhall, clock, api, metrics, dispatcher })
    }

    /// The use cases, for the command line's operator actions.
    #[must_use]
    pub fn guildhall(&self) -> &Guildhall {
        &self.guildhall
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The checked configuration.
    #[must_use]
    pub fn config(&self) -> &Resolved {
        &self.resolved
    }

    /// The whole HTTP surface: the API, `/docs`, `/openapi.json`, `/healthz`, `/readyz`
    /// and `/metrics`, each request observed ([`telemetry::observe`]).
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        let metrics = self.metrics.clone();
        let observed = metrics.clone();
        Route::new()
            .at("/metrics", get(metrics_endpoint).data(metrics).data(self.clock.clone()))
            .nest("/", guildhall_http::routes(self.api.clone()))
            .around(move |next, request| telemetry::observe(next, request, observed.clone()))
    }

    /// Takes the listening socket.
    ///
    /// # Errors
    /// [`StartError::Listen`] when the address cannot be bound.
    pub async fn bind(self) -> Result<Server, StartError> {
        let address = self.resolved.config.listen;
        let acceptor = TcpListener::bind(address)
            .into_acceptor()
            .await
            .map_err(|e| StartError::Listen { address, reason: e.to_string() })?;
        let local = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| StartError::Listen { address, reason: "no local address".into() })?;
        Ok(Server { app: self, acceptor, address: local })
    }
}

/// The service with its socket bound, ready to serve.
#[allow(missing_debug_implementations)] // holds the app
pub struct Server {
    app: App,
    acceptor: TcpAcceptor,
    address: SocketAddr,
}

impl Server {
    /// The address it listens on (the port is known even when `listen` asked for 0).
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The app.
    #[must_use]
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `stop` completes, then shuts down cleanly (see the module docs).
    ///
    /// # Errors
    /// [`StartError::Serve`] when the server fails.
    pub async fn serve(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
        let Self { app, acceptor, address } = self;
        let (stopping, stopped) = watch::channel(false);
        let dispatcher = app.dispatcher.clone().map(|dispatcher| {
            let stopped = stopped.clone();
            tokio::spawn(async move { dispatcher.run(stopped).await })
        });
        let mut http_stop = stopped.clone();
        let signal = tokio::spawn(async move {
            stop.await;
            tracing::info!("stopping: no new connections; requests in flight may finish");
            let _ = stopping.send(true);
        });
        let grace = app.resolved.config.shutdown_grace;
        let served = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app.endpoint(),
                async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                },
                Some(grace),
            )
            .await;
        signal.abort();
        if let Some(task) = dispatcher {
            // The dispatcher logs its own totals when it stops.
            if let Err(error) = task.await {
                tracing::error!(%error, "the outbox dispatcher failed");
            }
        }
        app.store.connection().clone().close().await.ok();
        tracing::info!(%address, "stopped");
        served.map_err(|e| StartError::Serve(e.to_string()))
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Connects to the configured database, creating the data directory first for the
/// embedded SQLite default.
///
/// # Errors
/// [`StartError::Directory`] or [`StartError::Database`].
pub async fn connect(resolved: &Resolved) -> Result<Store, StartError> {
    if resolved.is_sqlite() {
        create_dir(&resolved.config.data_dir)?;
    }
    Store::connect(&resolved.database_url)
        .await
        .map_err(|e| StartError::Database { url: resolved.database_url_for_display(), reason: e.to_string() })
}

async fn check_schema(store: &Store) -> Result<(), StartError> {
    let pending: Vec<String> = store
        .migrations()
        .await
        .map_err(|e| StartError::Schema(format!("cannot read the migrations' state: {e}")))?
        .into_iter()
        .filter(|m| !m.applied)
        .map(|m| m.name)
        .collect();
    if !pending.is_empty() {
        return Err(StartError::Schema(format!(
            "the database lacks {} migration(s) ({}); run `guildhall migrate up` (auto_migrate is off)",
            pending.len(),
            pending.join(", ")
        )));
    }
    store.check_schema().await.map_err(|e| StartError::Schema(format!("the database does not match this build: {e}")))
}

fn create_dir(path: &std::path::Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|e| StartError::Directory { path: path.to_owned(), reason: e.to_string() })
}

fn dispatcher(resolved: &Resolved, store: &Arc<Store>, clock: &Arc<dyn Clock>) -> Result<Dispatcher, StartError> {
    let transport: Arc<dyn Transport> = match &resolved.smtp {
        Some(settings) => Arc::new(
            SmtpTransport::new(settings).map_err(|e| StartError::Setup { part: "SMTP", reason: e.to_string() })?,
        ),
        None => {
            create_dir(&resolved.outbox_dir)?;
            Arc::new(
                FileTransport::new(&resolved.outbox_dir)
                    .map_err(|e| StartError::Directory { path: resolved.outbox_dir.clone(), reason: e.to_string() })?,
            )
        }
    };
    let renderer = Renderer::new(resolved.links.clone(), resolved.config.mail.product_name.clone());
    let composer = Composer::new(renderer, &resolved.config.mail.from)
        .map_err(|e| StartError::Setup { part: "email", reason: e.to_string() })?;
    let ports = DispatchPorts {
        outbox: store.clone(),
        organisations: store.clone(),
        transport,
        clock: clock.clone(),
        ids: Arc::new(UuidV7Ids),
    };
    Dispatcher::new(ports, composer, resolved.dispatch.clone())
        .map_err(|e| StartError::Setup { part: "the outbox dispatcher", reason: e.to_string() })
}

#[handler]
async fn metrics_endpoint(metrics: Data<&Metrics>, clock: Data<&Arc<dyn Clock>>) -> Response {
    Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics.render(clock.now()).await)
}

/// Ready when the database answers and has every migration this build knows.
struct StoreReadiness {
    store: Arc<Store>,
}

#[async_trait]
impl Readiness for StoreReadiness {
    async fn check(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| format!("the database does not answer: {e}"))?;
        let migrations =
            self.store.migrations().await.map_err(|e| format!("cannot read the migrations' state: {e}"))?;
        let pending: Vec<&str> = migrations.iter().filter(|m| !m.applied).map(|m| m.name.as_str()).collect();
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!("migrations pending: {}; run `guildhall migrate up`", pending.join(", ")))
        }
    }
}
