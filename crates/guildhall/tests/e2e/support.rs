//! The service as its users meet it: `spawn_app()` runs the binary's own wiring
//! (`guildhall::app::App`) on a random loopback port with a fresh database and a file
//! outbox of its own; `spawn_process()` runs the real binary. Both are driven over HTTP,
//! and emails are read back from the `.eml` files the dispatcher writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use guildhall::app::{App, StartError};
use guildhall::config::{Config, Sources};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the app keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the app's data directory (the embedded default).
    Sqlite,
    /// A fresh PostgreSQL database (needs `GUILDHALL_TEST_POSTGRES_URL`).
    Postgres,
}

/// The public URL emailed links start with.
pub const PUBLIC_URL: &str = "https://guildhall.test";

/// A password every default policy accepts.
pub const PASSWORD: &str = "Correct-horse-battery-42!";

/// A fresh database for `backend`: its URL (`None` for the embedded default) and the
/// PostgreSQL database to drop afterwards.
pub async fn fresh_database(backend: Backend) -> (Option<String>, Option<guildhall_store::testing::TestDatabase>) {
    match backend {
        Backend::Sqlite => (None, None),
        Backend::Postgres => {
            let server = guildhall_store::testing::postgres_url()
                .expect("GUILDHALL_TEST_POSTGRES_URL is not set: this test needs PostgreSQL");
            let database = guildhall_store::testing::TestDatabase::create(&server).await.unwrap();
            (Some(database.url.clone()), Some(database))
        }
    }
}

/// Whether PostgreSQL tests can run here: `false` (skip, with a message) only outside CI
/// when `GUILDHALL_TEST_POSTGRES_URL` is not set; under `CI=true` a missing URL panics.
pub fn postgres_available() -> bool {
    guildhall_store::testing::postgres_url().is_some()
}

/// A fresh temporary directory.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guildhall-e2e-{label}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The environment a test instance runs with: loopback port 0, its own data directory,
/// cheap Argon2 (the tests are about behaviour, not the hash's cost), a fast outbox poll.
pub fn test_env(data_dir: &Path, database_url: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        ("GUILDHALL_LISTEN", "127.0.0.1:0".to_owned()),
        ("GUILDHALL_DATA_DIR", data_dir.display().to_string()),
        ("GUILDHALL_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("GUILDHALL_ARGON2__MEMORY_KIB", "256".to_owned()),
        ("GUILDHALL_ARGON2__ITERATIONS", "1".to_owned()),
        ("GUILDHALL_MAIL__DISPATCH__POLL_INTERVAL", "50ms".to_owned()),
        ("GUILDHALL_LOG__FILTER", "warn".to_owned()),
    ];
    if let Some(url) = database_url {
        env.push(("GUILDHALL_DATABASE_URL", url.to_owned()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A running app (in this process).
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartError>>>,
    database: Option<guildhall_store::testing::TestDatabase>,
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

    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "expected success, got {}: {}", self.status, self.body);
        self.body
    }

    #[track_caller]
    pub fn expect(self, status: u16, problem: &str) -> Value {
        assert_eq!((self.status, self.problem()), (status, problem), "{}", self.body);
        self.body
    }
}

/// An email as the file outbox holds it.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub message_id: String,
}

impl Email {
    /// The `token` query value of the first link in the text.
    #[track_caller]
    pub fn token(&self) -> String {
        let start = self.text.find("token=").unwrap_or_else(|| panic!("no token in {}", self.text)) + "token=".len();
        self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect()
    }

    /// The indented line after "temporary password is:".
    #[track_caller]
    pub fn temporary_password(&self) -> String {
        let start = self.text.find("password is:").unwrap_or_else(|| panic!("no password in {}", self.text));
        self.text[start..].lines().nth(2).unwrap().trim().to_owned()
    }
}

/// The app with the embedded default's wiring over `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// The app with extra configuration variables.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let data_dir = temp_dir("app");
    let (url, database) = fresh_database(backend).await;
    let mut env = test_env(&data_dir, url.as_deref());
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let resolved = Config::load(&Sources { file: None, env }).unwrap().resolve().unwrap();
    let server = App::build(resolved).await.unwrap().bind().await.unwrap();
    let base = format!("http://{}", server.address());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    TestApp { base, client: reqwest::Client::new(), data_dir, stop: Some(stop), task: Some(task), database }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// Stops the app the way a signal does, and waits until it has.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Sends a request to `/api/v1{path}` with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        call(&self.client, &self.base, method, path, token, body).await
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

    /// Waits (up to 15 s) until the outbox holds `count` emails to `to` whose subject
    /// contains `subject`, and returns them.
    pub async fn wait_for_emails(&self, to: &str, subject: &str, count: usize) -> Vec<Email> {
        wait_for_emails(&[self.outbox()], to, subject, count).await
    }

    /// The one email to `to` whose subject contains `subject`.
    pub async fn email(&self, to: &str, subject: &str) -> Email {
        self.wait_for_emails(to, subject, 1).await.remove(0)
    }

    /// Signs up, verifies the address from the emailed link, signs in: the session token.
    pub async fn signed_up(&self, email: &str, first: &str, last: &str) -> String {
        self.anonymous(
            Method::POST,
            "/auth/signup",
            Some(json!({"email": email, "password": PASSWORD, "first_name": first, "last_name": last})),
        )
        .await
        .ok();
        let token = self.email(email, "onfirm").await.token();
        self.anonymous(Method::POST, "/auth/verify-email", Some(json!({"token": token}))).await.ok();
        self.login(email, PASSWORD).await.ok()["token"].as_str().unwrap().to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.anonymous(Method::POST, "/auth/login", Some(json!({"email": email, "password": password}))).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        drop_database(self.database.take());
    }
}

/// Drops a test database in the background (best effort: a leftover is harmless and
/// named as such).
pub fn drop_database(database: Option<guildhall_store::testing::TestDatabase>) {
    if let Some(database) = database {
        std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                let _ = runtime.block_on(database.drop());
            }
        });
    }
}

pub async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = client.request(method, format!("{base}/api/v1{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Reply { status, headers, body }
}

/// Every email in these outbox directories, by file name.
pub fn read_outboxes(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Email> {
    let mut emails = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "eml") {
                let bytes = std::fs::read(&path).unwrap();
                emails.insert(path, parse_email(&bytes));
            }
        }
    }
    emails
}

fn parse_email(bytes: &[u8]) -> Email {
    let mail = mailparse::parse_mail(bytes).unwrap();
    let header = |name: &str| {
        use mailparse::MailHeaderMap;
        mail.headers.get_first_value(name).unwrap_or_default()
    };
    let text = std::iter::once(&mail)
        .chain(mail.subparts.iter())
        .chain(mail.subparts.iter().flat_map(|p| p.subparts.iter()))
        .find(|part| part.ctype.mimetype == "text/plain")
        .map(|part| part.get_body().unwrap())
        .unwrap_or_default();
    Email { to: header("To"), subject: header("Subject"), text, message_id: header("Message-ID") }
}

/// Waits (up to 15 s) until the directories hold `count` emails to `to` whose subject
/// contains `subject`.
pub async fn wait_for_emails(dirs: &[PathBuf], to: &str, subject: &str, count: usize) -> Vec<Email> {
    let matching = || -> Vec<Email> {
        read_outboxes(dirs).into_values().filter(|e| e.to.contains(to) && e.subject.contains(subject)).collect()
    };
    for _ in 0..300 {
        let found = matching();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: Vec<String> = read_outboxes(dirs).into_values().map(|e| format!("{} / {}", e.to, e.subject)).collect();
    panic!("expected {count} email(s) to {to} about {subject:?}; the outbox holds {all:#?}");
}

/// The real `guildhall` binary, running.
pub struct Process {
    pub child: tokio::process::Child,
    pub base: String,
    pub data_dir: PathBuf,
}

impl Process {
    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end (at most 60 s) and returns its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.unwrap().unwrap().code()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The `guildhall` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_guildhall")
}

/// `guildhall` with none of the caller's own `GUILDHALL_*` configuration (only the
/// test-suite variables), run from an empty directory, so that a developer's or CI's
/// settings or a stray `guildhall.toml` cannot change what is tested.
fn command(args: &[&str], env: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary());
    for (name, _) in std::env::vars_os() {
        let inherited = name.to_str().is_some_and(|n| n.starts_with("GUILDHALL_") && !n.starts_with("GUILDHALL_TEST_"));
        if inherited {
            command.env_remove(&name);
        }
    }
    command.args(args).envs(env.iter().cloned()).current_dir(temp_dir("cwd")).kill_on_drop(true);
    command
}

/// Runs `guildhall <args>` to completion with `env`: (exit code, stdout, stderr).
pub async fn run_command(args: &[&str], env: &[(String, String)]) -> (Option<i32>, String, String) {
    let output = command(args, env).output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .unwrap_or_else(|_| panic!("`guildhall {}` did not finish within 2 minutes", args.join(" ")))
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `guildhall serve` with `env` and waits until it says where it listens.
pub async fn spawn_process(data_dir: PathBuf, env: &[(String, String)]) -> Process {
    let mut child = command(&["serve"], env).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(base) = line.strip_prefix("Guildhall is listening on ") {
                return base.trim().to_owned();
            }
        }
        panic!("guildhall exited before listening");
    })
    .await
    .unwrap();
    // Keep reading stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process { child, base, data_dir }
}
