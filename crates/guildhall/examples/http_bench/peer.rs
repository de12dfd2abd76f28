//! The peer under test: better-auth with its organization plugin on SQLite
//! (`../shared/peers/better-auth`), copied into the bench's work directory, its npm
//! packages installed there by `npm ci`, migrated, started with `node server.mjs` and
//! seeded by its own `seed.mjs` (admin and organisations over HTTP, members and invitees
//! by direct SQLite inserts, as its README describes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait, Value};

use crate::load::{self, Req};
use crate::machine::Server;
use crate::{Cred, Flavour, Invitee, ListOrg, Target, fail, progress};

/// The largest organisation the peer's own `seed.mjs` can seed (see [`Running::seed`]).
const SEED_SCRIPT_LIMIT: usize = 10_000;

/// The files of the peer's harness that the bench uses.
const FILES: &[&str] =
    &["auth.mjs", "lib.mjs", "migrate.mjs", "seed.mjs", "server.mjs", "package.json", "package-lock.json"];

pub struct Running {
    child: Child,
    pub target: Target,
    pub dir: PathBuf,
    pub idle_rss_after_start_kib: u64,
    pub versions: serde_json::Value,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("pid", &self.child.id()).field("dir", &self.dir).finish()
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() { Ok(()) } else { fail(format!("{what} failed ({status})")) }
}

/// Copies the peer into `work`, installs its packages (once per package-lock), migrates a
/// fresh database and starts the server.
pub async fn start(source: &Path, work: &Path) -> Result<Running, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let lock_changed =
        std::fs::read(source.join("package-lock.json")).ok() != std::fs::read(work.join("package-lock.json")).ok();
    for file in FILES {
        std::fs::copy(source.join(file), work.join(file)).map_err(|e| format!("copy the peer's {file}: {e}"))?;
    }
    if lock_changed || !work.join("node_modules/better-auth").is_dir() {
        progress(format!("  peer: npm ci in {}", work.display()));
        run(
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(work),
            "npm ci (the peer's packages)",
        )?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(work.join(format!("bench.db{suffix}")));
    }
    let _ = std::fs::remove_file(work.join("state.json"));
    let port = crate::free_port()?;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let envs = [("PORT", port.to_string()), ("DB_PATH", "./bench.db".to_owned())];
    run(
        Command::new("node").arg("migrate.mjs").envs(envs.clone()).current_dir(work).stdout(Stdio::null()),
        "the peer's migrate.mjs",
    )?;
    let log = std::fs::File::create(work.join("server.log")).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new("node")
        .arg("server.mjs")
        .envs(envs)
        .env("NODE_ENV", "production")
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .map_err(|e| format!("start the peer: {e}"))?;
    let server = Server { pid: child.id(), with_postgres: false };
    let mut running = Running {
        child,
        target: Target {
            label: "better-auth".to_owned(),
            flavour: Flavour::Peer,
            address,
            server,
            admin: Cred::Cookie(String::new()),
            bench_org: String::new(),
            list_orgs: Vec::new(),
            invitees: Vec::new(),
            invitation_tokens: HashMap::new(),
            outbox: None,
        },
        dir: work.to_owned(),
        idle_rss_after_start_kib: 0,
        versions: versions(work),
    };
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            return fail(format!("the peer exited at start ({status}); see {}/server.log", work.display()));
        }
        if load::once(address, Req::get("/debug/health")).await.is_ok_and(|r| r.status == 200) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return fail("the peer did not answer /debug/health within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.idle_rss_after_start_kib = running.target.server.rss_kib();
    Ok(running)
}

fn versions(work: &Path) -> serde_json::Value {
    let version = |package: &str| {
        std::fs::read_to_string(work.join(format!("node_modules/{package}/package.json")))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|json| json["version"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "better-auth": version("better-auth"),
        "better-sqlite3": version("better-sqlite3"),
        "kysely": version("kysely"),
        "node": node,
    })
}

impl Running {
    /// Runs the peer's `seed.mjs` and reads its `state.json`. Organisations larger than
    /// [`SEED_SCRIPT_LIMIT`] are created over HTTP and filled here, with the same direct
    /// SQLite inserts `seed.mjs` makes: its own check reads every member in one request,
    /// which the peer answers with a 500 at 100,000 members.
    pub async fn seed(&mut self, sizes: &[usize], invitees: usize) -> Result<(), String> {
        let (small, large): (Vec<usize>, Vec<usize>) = sizes.iter().partition(|&&n| n <= SEED_SCRIPT_LIMIT);
        let sizes_text: Vec<String> = small.iter().map(ToString::to_string).collect();
        run(
            Command::new("node")
                .arg("seed.mjs")
                .env("PORT", self.target.address.port().to_string())
                .env("DB_PATH", "./bench.db")
                .env("LIST_SIZES", sizes_text.join(","))
                .env("ACCEPT_USERS", invitees.to_string())
                .current_dir(&self.dir),
            "the peer's seed.mjs",
        )?;
        let text = std::fs::read_to_string(self.dir.join("state.json")).map_err(|e| format!("state.json: {e}"))?;
        let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("state.json: {e}"))?;
        let text_of = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        self.target.admin = Cred::Cookie(text_of(&state["admin"]["cookie"]));
        self.target.bench_org = text_of(&state["orgs"]["bench"]["id"]);
        for &size in &small {
            self.target.list_orgs.push(ListOrg {
                size,
                id: text_of(&state["orgs"][format!("list{size}")]["id"]),
                deep_cursor: None,
            });
        }
        let tag = text_of(&state["tag"]);
        for size in large {
            let id = self.seed_large(size, &tag).await?;
            self.target.list_orgs.push(ListOrg { size, id, deep_cursor: None });
        }
        self.target.list_orgs.sort_by_key(|o| o.size);
        self.target.invitees = state["acceptUsers"]
            .as_array()
            .map(|users| {
                users
                    .iter()
                    .map(|u| Invitee { email: text_of(&u["email"]), cred: Cred::Cookie(text_of(&u["cookie"])) })
                    .collect()
            })
            .unwrap_or_default();
        if self.target.invitees.len() != invitees || self.target.bench_org.is_empty() {
            return fail("the peer's state.json lacks the seeded invitees or organisations");
        }
        Ok(())
    }

    async fn seed_large(&self, size: usize, tag: &str) -> Result<String, String> {
        let started = Instant::now();
        let slug = format!("list{size}-{tag}");
        let req = self
            .target
            .admin
            .apply(Req::post("/api/auth/organization/create", serde_json::json!({"name": slug, "slug": slug})))
            .header(hyper::header::ORIGIN, format!("http://{}", self.target.address));
        let resp = load::once(self.target.address, req).await?;
        let org = resp.json()["id"].as_str().map(str::to_owned).ok_or_else(|| {
            format!(
                "the peer refused to create an organisation: HTTP {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            )
        })?;
        let url = format!("sqlite://{}", self.dir.join("bench.db").display());
        let db = Database::connect(url.as_str()).await.map_err(|e| format!("open the peer's database: {e}"))?;
        let tx = db.begin().await.map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // The organisation's creator is member number 1, as in seed.mjs.
        for chunk in (1..size).collect::<Vec<_>>().chunks(500) {
            let mut users = Vec::new();
            let mut members = Vec::new();
            for &i in chunk {
                let user = uuid::Uuid::new_v4().simple().to_string();
                users.extend::<[Value; 7]>([
                    user.clone().into(),
                    format!("Seed User {i}").into(),
                    format!("seed-{size}-{i}-{tag}@bench.local").into(),
                    0.into(),
                    Value::String(None),
                    now.clone().into(),
                    now.clone().into(),
                ]);
                members.extend::<[Value; 5]>([
                    uuid::Uuid::new_v4().simple().to_string().into(),
                    org.clone().into(),
                    user.into(),
                    "member".into(),
                    now.clone().into(),
                ]);
            }
            let rows = |n: usize| vec![format!("({})", vec!["?"; n].join(",")); chunk.len()].join(",");
            for (sql, values) in [
                (
                    format!(
                        r#"insert into "user" (id,name,email,emailVerified,image,createdAt,updatedAt) values {}"#,
                        rows(7)
                    ),
                    users,
                ),
                (
                    format!(r#"insert into "member" (id,organizationId,userId,role,createdAt) values {}"#, rows(5)),
                    members,
                ),
            ] {
                tx.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
                    .await
                    .map_err(|e| format!("seed the peer's organisation of {size}: {e}"))?;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        db.close().await.map_err(|e| e.to_string())?;
        // The peer sees them: its total counts every member.
        let check = self
            .target
            .admin
            .apply(Req::get(format!("/api/auth/organization/list-members?organizationId={org}&limit=100")));
        let resp = load::once(self.target.address, check).await?;
        if resp.json()["total"].as_u64() != Some(size as u64) {
            return fail(format!("the peer counts {} members of {size}", resp.json()["total"]));
        }
        progress(format!("  better-auth: {size} members seeded in {:.1} s", started.elapsed().as_secs_f64()));
        Ok(org)
    }

    pub fn stop(mut self) -> Result<(), String> {
        crate::terminate(&mut self.child, "the peer")
    }
}
