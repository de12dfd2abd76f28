//! `spawn_app()`: the API on a random loopback port over a fresh database, and a typed
//! client for it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::notification::Notification;
use guildhall_domain::ports::{Clock, Outbox, PasswordHasher};
use guildhall_domain::testing::ManualClock;
use guildhall_domain::usecases::{Guildhall, Ports, Settings};
use guildhall_domain::values::EmailAddress;
use guildhall_http::system::{Argon2Hasher, Argon2Settings, OsTokens, UuidV7Ids};
use guildhall_http::{AlwaysReady, ApiState, HttpSettings};
use guildhall_store::Store;
use poem::listener::{Acceptor, Listener, TcpListener};
use reqwest::Method;
use serde_json::{Value, json};

/// Where the app's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file of its own.
    Sqlite,
    /// A fresh PostgreSQL database (needs `GUILDHALL_TEST_POSTGRES_URL`).
    Postgres,
}

/// Origin the tests' "own pages" use.
pub const ORIGIN: &str = "https://guildhall.test";

/// A running app.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub store: Arc<Store>,
    pub clock: Arc<ManualClock>,
    /// The app's use cases, to arrange what the API under test does not create itself.
    pub guildhall: Guildhall,
    sent: Mutex<Vec<(EmailAddress, Notification)>>,
    cleanup: Option<guildhall_store::testing::TestDatabase>,
    sqlite_file: Option<std::path::PathBuf>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The problem's slug (`invalid-input` for `urn:guildhall:problem:invalid-input`).
    pub fn problem(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default().trim_start_matches("urn:guildhall:problem:")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "expected success, got {}: {}", self.status, self.body);
        self.body
    }

    #[track_caller]
    pub fn expect(self, status: u16, problem: &str) -> Value {
        assert_eq!((self.status, self.problem()), (status, problem), "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        self.body
    }
}

/// Argon2 as cheap as it goes: the tests are about the API, not the hash cost.
pub fn cheap_argon2() -> Argon2Settings {
    Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1, concurrency: 2 }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, HttpSettings::default()).await
}

/// The app over a fresh PostgreSQL database; `None` (skip) only outside CI when
/// `GUILDHALL_TEST_POSTGRES_URL` is not set.
pub async fn spawn_postgres_app() -> Option<TestApp> {
    guildhall_store::testing::postgres_url()?;
    Some(spawn_app_with(Backend::Postgres, HttpSettings::default()).await)
}

pub async fn spawn_app_with(backend: Backend, settings: HttpSettings) -> TestApp {
    spawn_app_with_catalogue(backend, settings, Catalogue::builtin()).await
}

/// The app with `catalogue` in place of the built-in one (to declare capabilities).
pub async fn spawn_app_with_catalogue(backend: Backend, settings: HttpSettings, catalogue: Catalogue) -> TestApp {
    spawn_app_configured(backend, settings, catalogue, Settings::default()).await
}

/// The app with `catalogue` and the domain's `domain` settings (who may create
/// organisations, lifetimes).
pub async fn spawn_app_configured(
    backend: Backend,
    mut settings: HttpSettings,
    catalogue: Catalogue,
    domain: Settings,
) -> TestApp {
    let (store, cleanup, sqlite_file) = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("guildhall-http-{}.db", uuid::Uuid::now_v7().simple()));
            let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            (store, None, Some(path))
        }
        Backend::Postgres => {
            let server = guildhall_store::testing::postgres_url()
                .expect("GUILDHALL_TEST_POSTGRES_URL is not set: this test needs PostgreSQL");
            let database = guildhall_store::testing::TestDatabase::create(&server).await.unwrap();
            let store = Store::connect(&database.url).await.unwrap();
            (store, Some(database), None)
        }
    };
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::default());
    let hasher: Arc<dyn PasswordHasher> = Arc::new(Argon2Hasher::new(cheap_argon2()).unwrap());
    let ports = Ports::from_store(store.clone(), hasher, clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
    let guildhall = Guildhall::new(ports, Arc::new(catalogue), domain);
    settings.allowed_origins = vec![ORIGIN.to_owned()];
    let state = ApiState::new(guildhall.clone(), settings, clock.clone(), Arc::new(AlwaysReady));
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(guildhall_http::routes(state)));
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        clock,
        guildhall,
        sent: Mutex::new(Vec::new()),
        cleanup,
        sqlite_file,
    }
}

/// Two instances of the app (two servers, two connection pools, two throttles) over one
/// SQLite file, both counting failed sign-ins in the database, as instances behind a load
/// balancer do. They read the same clock.
pub async fn spawn_two_instances() -> (TestApp, TestApp) {
    let path = std::env::temp_dir().join(format!("guildhall-http-{}.db", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}", path.display());
    let clock = Arc::new(ManualClock::default());
    let mut instances = Vec::new();
    for owner in [true, false] {
        let store = Arc::new(Store::connect(&url).await.unwrap());
        store.migrate().await.unwrap();
        let (address, guildhall) = serve_instance(store.clone(), clock.clone()).await;
        instances.push(TestApp {
            address,
            client: reqwest::Client::new(),
            store,
            clock: clock.clone(),
            guildhall,
            sent: Mutex::new(Vec::new()),
            cleanup: None,
            // The first instance removes the file.
            sqlite_file: owner.then(|| path.clone()),
        });
    }
    let second = instances.pop().unwrap();
    (instances.pop().unwrap(), second)
}

/// One instance of the app over `store` on a random loopback port, counting failed
/// sign-ins in `store` (as `spawn_app_with_catalogue` wires it otherwise).
async fn serve_instance(store: Arc<Store>, clock: Arc<ManualClock>) -> (SocketAddr, Guildhall) {
    let hasher: Arc<dyn PasswordHasher> = Arc::new(Argon2Hasher::new(cheap_argon2()).unwrap());
    let ports = Ports::from_store(store.clone(), hasher, clock.clone(), Arc::new(OsTokens), Arc::new(UuidV7Ids));
    let guildhall = Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default());
    let settings = HttpSettings { allowed_origins: vec![ORIGIN.to_owned()], ..HttpSettings::default() };
    let state = ApiState::new(guildhall.clone(), settings, clock, Arc::new(AlwaysReady)).with_sign_in_attempts(store);
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(guildhall_http::routes(state)));
    (address, guildhall)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Sends a request to `/api/v1{path}` with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(&format!("/api/v1{path}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::read(request.send().await.unwrap()).await
    }

    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn anonymous(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, None, body).await
    }

    /// Every email queued so far to `to`, oldest first (drains the outbox).
    pub async fn emails_to(&self, to: &str) -> Vec<Notification> {
        let far = self.clock.now() + Duration::days(3650);
        loop {
            let claimed = self.store.claim(100, far, Duration::minutes(5)).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            let mut sent = self.sent.lock().unwrap();
            for email in claimed {
                sent.push((email.email.to.clone(), email.email.notification.clone()));
                drop(self.store.mark_sent(email.email.id, far));
            }
        }
        let to = EmailAddress::parse(to).unwrap();
        self.sent.lock().unwrap().iter().filter(|(address, _)| *address == to).map(|(_, n)| n.clone()).collect()
    }

    /// The token of the latest link (invitation, verification, reset) emailed to `to`.
    pub async fn last_token_to(&self, to: &str) -> String {
        self.emails_to(to)
            .await
            .into_iter()
            .rev()
            .find_map(|n| match n {
                Notification::Invitation { token, .. }
                | Notification::VerifyEmail { token, .. }
                | Notification::PasswordReset { token, .. } => Some(token.expose().to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no link was emailed to {to}"))
    }

    /// The temporary password in the latest welcome email to `to`.
    pub async fn temporary_password_to(&self, to: &str) -> String {
        self.emails_to(to)
            .await
            .into_iter()
            .rev()
            .find_map(|n| match n {
                Notification::AccountCreated { temporary_password, .. } => Some(temporary_password.expose().to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no welcome email was sent to {to}"))
    }

    /// Signs up `email` with a strong password, verifies it and signs in; the session token.
    pub async fn signed_in(&self, email: &str) -> String {
        self.anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({"email": email, "password": PASSWORD, "first_name": "Test", "last_name": name_of(email)})),
        )
        .await
        .ok();
        let token = self.last_token_to(email).await;
        self.anonymous(Method::POST, "/auth/verify-email", Some(json!({"token": token}))).await.ok();
        self.login(email, PASSWORD).await.ok()["token"].as_str().unwrap().to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.anonymous(Method::POST, "/auth/login", Some(json!({"email": email, "password": password}))).await
    }

    /// Creates an organisation as `token`'s account (its first administrator); its id.
    pub async fn create_org(&self, token: &str, slug: &str) -> String {
        let org = self.post("/orgs", token, json!({"slug": slug, "name": format!("Org {slug}")})).await.ok();
        org["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some(database) = self.cleanup.take() {
            // Best effort: a leftover test database is harmless and named as such.
            std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = runtime.block_on(database.drop());
                }
            });
        }
    }
}

/// A password every default policy accepts.
pub const PASSWORD: &str = "Correct-horse-battery-42!";

fn name_of(email: &str) -> String {
    let local = email.split('@').next().unwrap_or("Member");
    let mut chars = local.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}
