//! Guildhall under test: the release binary on its embedded default (SQLite) or on a
//! fresh PostgreSQL database, seeded over HTTP and, for the bulk, through the store.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use guildhall_domain::ids::{OrgId, SessionId, UserId};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::ports::{Change, ChangeSet, IdGenerator, TokenGenerator, UnitOfWork};
use guildhall_domain::role::builtin;
use guildhall_domain::token::{Session, Token};
use guildhall_domain::user::{PasswordHash, PasswordState, User, UserStatus};
use guildhall_domain::values::{EmailAddress, PersonName};
use guildhall_http::system::{OsTokens, UuidV7Ids};
use guildhall_store::Store;
use guildhall_store::testing::TestDatabase;
use hyper::header::AUTHORIZATION;
use serde_json::json;

use crate::load::{self, Req, Resp};
use crate::machine::Server;
use crate::{Cred, Flavour, Invitee, ListOrg, Target, fail, progress};

pub const PASSWORD: &str = "Bench-Passphrase-4-Guildhall";

/// A running Guildhall process and what it needs cleaned up.
pub struct Running {
    child: Child,
    pub target: Target,
    pub data_dir: PathBuf,
    database: Option<TestDatabase>,
    database_url: String,
    pub idle_rss_after_start_kib: u64,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("pid", &self.child.id()).field("data_dir", &self.data_dir).finish()
    }
}

/// Starts the binary on a free loopback port with its data under `work`.
pub async fn start(binary: &Path, work: &Path, postgres: Option<&str>, label: &str) -> Result<Running, String> {
    let data_dir = work.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let (database, database_url) = match postgres {
        Some(server) => {
            let database = TestDatabase::create(server).await.map_err(|e| format!("create database: {e}"))?;
            let url = database.url.clone();
            (Some(database), url)
        }
        None => (None, format!("sqlite://{}", data_dir.join("guildhall.db").display())),
    };
    let port = crate::free_port()?;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GUILDHALL_") {
            command.env_remove(name);
        }
    }
    let log = std::fs::File::create(work.join("guildhall.log")).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    command
        .current_dir(work)
        .env("GUILDHALL_LISTEN", address.to_string())
        .env("GUILDHALL_PUBLIC_URL", format!("http://{address}"))
        .env("GUILDHALL_DATA_DIR", &data_dir)
        .env("GUILDHALL_DATABASE_URL", &database_url)
        .env("GUILDHALL_MAIL__OUTBOX_DIR", data_dir.join("outbox"))
        // The peer's rate limiter is off too; see docs/benchmarks.md.
        .env("GUILDHALL_THROTTLE__ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    let child = command.spawn().map_err(|e| format!("start {}: {e}", binary.display()))?;
    let server = Server { pid: child.id(), with_postgres: postgres.is_some() };
    let mut running = Running {
        child,
        target: Target {
            label: label.to_owned(),
            flavour: Flavour::Guildhall,
            address,
            server,
            admin: Cred::Bearer(String::new()),
            bench_org: String::new(),
            list_orgs: Vec::new(),
            invitees: Vec::new(),
            invitation_tokens: HashMap::new(),
            outbox: Some(data_dir.join("outbox")),
        },
        data_dir,
        database,
        database_url,
        idle_rss_after_start_kib: 0,
    };
    running.wait_healthy().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.idle_rss_after_start_kib = running.target.server.rss_kib();
    Ok(running)
}

impl Running {
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return fail(format!(
                    "Guildhall exited at start ({status}); see its log under {}",
                    self.data_dir.display()
                ));
            }
            if let Ok(resp) = load::once(self.target.address, Req::get("/readyz")).await
                && resp.status == 200
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return fail("Guildhall did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process by its PID (SIGTERM, as an operator would) and removes the database.
    pub async fn stop(mut self) -> Result<(), String> {
        crate::terminate(&mut self.child, "Guildhall")?;
        if let Some(database) = self.database.take() {
            database.drop().await.map_err(|e| format!("drop database: {e}"))?;
        }
        Ok(())
    }

    /// The admin (signed up, verified from the email, signed in), the organisations, the
    /// members of the large ones and the invitees with their sessions.
    pub async fn seed(&mut self, sizes: &[usize], invitees: usize, tag: &str) -> Result<(), String> {
        let address = self.target.address;
        let admin_email = format!("admin-{tag}@bench.example");
        let signed_up = load::once(address, sign_up_request(&admin_email)).await?;
        expect(&signed_up, 200, "admin sign-up")?;
        let token = self.wait_for_token(&admin_email, "confirm").await?;
        expect(
            &load::once(address, Req::post("/api/v1/auth/verify-email", json!({"token": token}))).await?,
            200,
            "verify",
        )?;
        let session = load::once(address, sign_in_request(&admin_email)).await?;
        expect(&session, 200, "admin sign-in")?;
        let session = session.json();
        let admin = Cred::Bearer(session["token"].as_str().unwrap_or_default().to_owned());
        let admin_id = parse_uuid(&session["user_id"])?;
        self.target.admin = admin.clone();

        let create = |slug: String| {
            let admin = admin.clone();
            async move {
                let resp =
                    load::once(address, admin.apply(Req::post("/api/v1/orgs", json!({"slug": slug, "name": slug}))))
                        .await?;
                expect(&resp, 201, "create organisation")?;
                Ok::<_, String>(resp.json()["id"].as_str().unwrap_or_default().to_owned())
            }
        };
        self.target.bench_org = create(format!("bench-{tag}")).await?;
        let store = Store::connect(&self.database_url).await.map_err(|e| format!("connect: {e}"))?;
        for &size in sizes {
            let org = create(format!("list{size}-{tag}")).await?;
            let started = Instant::now();
            seed_members(&store, OrgId::from_uuid(parse_uuid(&json!(org))?), UserId::from_uuid(admin_id), size, tag)
                .await?;
            progress(format!(
                "  {}: {size} members seeded in {:.1} s",
                self.target.label,
                started.elapsed().as_secs_f64()
            ));
            self.target.list_orgs.push(ListOrg { size, id: org, deep_cursor: None });
        }
        let started = Instant::now();
        self.target.invitees = seed_invitees(&store, invitees, tag).await?;
        progress(format!(
            "  {}: {invitees} invitees with sessions in {:.1} s",
            self.target.label,
            started.elapsed().as_secs_f64()
        ));
        store.close().await.map_err(|e| format!("close: {e}"))?;
        Ok(())
    }

    async fn wait_for_token(&self, to: &str, subject: &str) -> Result<String, String> {
        let outbox = self.data_dir.join("outbox");
        for _ in 0..600 {
            if let Some(token) = read_outbox(&outbox)?.into_iter().find_map(|mail| {
                (mail.to.contains(to) && mail.subject.to_lowercase().contains(subject)).then_some(mail.token).flatten()
            }) {
                return Ok(token);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fail(format!("no email to {to} about {subject} within 30 s"))
    }
}

fn expect(resp: &Resp, status: u16, what: &str) -> Result<(), String> {
    if resp.status == status {
        Ok(())
    } else {
        fail(format!("{what}: HTTP {} {}", resp.status, String::from_utf8_lossy(&resp.body)))
    }
}

fn parse_uuid(value: &serde_json::Value) -> Result<uuid::Uuid, String> {
    value.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()).ok_or_else(|| format!("not an id: {value}"))
}

pub fn sign_up_request(email: &str) -> Req {
    Req::post(
        "/api/v1/auth/signup",
        json!({"email": email, "password": PASSWORD, "first_name": "Bench", "last_name": "User"}),
    )
}

pub fn sign_in_request(email: &str) -> Req {
    Req::post("/api/v1/auth/login", json!({"email": email, "password": PASSWORD}))
}

pub fn bearer(req: Req, token: &str) -> Req {
    req.header(AUTHORIZATION, format!("Bearer {token}"))
}

fn person(email: &str, first: &str, last: &str) -> Result<User, String> {
    let now = Utc::now();
    Ok(User {
        id: UserId::from_uuid(UuidV7Ids.generate()),
        email: EmailAddress::parse(email).map_err(|e| format!("{email}: {e:?}"))?,
        name: PersonName::parse(first, last).map_err(|e| format!("{first} {last}: {e:?}"))?,
        phone: None,
        email_verified_at: Some(now),
        status: UserStatus::Active,
        // These accounts never sign in: no password can match this.
        password: PasswordState {
            hash: Some(PasswordHash::new("$bench$seeded-account-without-a-password")),
            temporary: None,
            must_change: false,
            changed_at: Some(now),
        },
        created_at: now,
        version: 0,
    })
}

const FIRST: &[&str] = &["Ada", "Ben", "Carla", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jon", "Kemi", "Lars"];
const LAST: &[&str] = &[
    "Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jones", "Khan", "Lopez", "Moreau",
];

async fn seed_members(store: &Store, org: OrgId, founder: UserId, size: usize, tag: &str) -> Result<(), String> {
    let mut n = 1;
    while n < size {
        let end = (n + 5000).min(size);
        let mut changes = Vec::with_capacity(2 * (end - n));
        for i in n..end {
            let user = person(
                &format!("member-{size}-{i}-{tag}@bench.example"),
                FIRST[i % FIRST.len()],
                LAST[(i / FIRST.len()) % LAST.len()],
            )?;
            let membership =
                Membership::new(org, user.id, builtin::USER, MembershipOrigin::Invitation, Some(founder), Utc::now());
            changes.push(Change::InsertUser(user));
            changes.push(Change::InsertMembership(Membership { facilities: BTreeSet::new(), ..membership }));
        }
        store.commit(ChangeSet { changes, ..ChangeSet::new() }).await.map_err(|e| format!("seed members: {e}"))?;
        n = end;
    }
    Ok(())
}

async fn seed_invitees(store: &Store, count: usize, tag: &str) -> Result<Vec<Invitee>, String> {
    let mut invitees = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut changes = Vec::new();
        for &i in chunk {
            let email = format!("invitee-{i}-{tag}@bench.example");
            let user = person(&email, "Invited", LAST[i % LAST.len()])?;
            let token = Token::from_secret(&OsTokens.generate());
            let now = Utc::now();
            changes.push(Change::InsertSession(Session {
                id: SessionId::from_uuid(UuidV7Ids.generate()),
                user: user.id,
                token_hash: token.hash(),
                created_at: now,
                last_seen_at: now,
                expires_at: now + chrono::Duration::days(14),
                password_change_required: false,
                revoked_at: None,
            }));
            changes.insert(changes.len() - 1, Change::InsertUser(user));
            invitees.push(Invitee { email, cred: Cred::Bearer(token.expose().to_owned()) });
        }
        store.commit(ChangeSet { changes, ..ChangeSet::new() }).await.map_err(|e| format!("seed invitees: {e}"))?;
    }
    Ok(invitees)
}

/// An email the file transport wrote.
#[derive(Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub token: Option<String>,
}

/// Every `.eml` file in `dir`, with the 64-hex-digit token of its link if it has one.
pub fn read_outbox(dir: &Path) -> Result<Vec<Mail>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut mails = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let Ok(mail) = mailparse::parse_mail(&bytes) else { continue };
        use mailparse::MailHeaderMap;
        let text = std::iter::once(&mail)
            .chain(mail.subparts.iter())
            .chain(mail.subparts.iter().flat_map(|p| p.subparts.iter()))
            .find(|part| part.ctype.mimetype == "text/plain")
            .and_then(|part| part.get_body().ok())
            .unwrap_or_default();
        let token = text.find("token=").map(|start| {
            text[start + "token=".len()..].chars().take_while(char::is_ascii_hexdigit).collect::<String>()
        });
        mails.push(Mail {
            to: mail.headers.get_first_value("To").unwrap_or_default(),
            subject: mail.headers.get_first_value("Subject").unwrap_or_default(),
            token: token.filter(|t| t.len() == 64),
        });
    }
    Ok(mails)
}
