//! Guildhall's HTTP benchmark, side by side with a peer (issue 8).
//!
//! Starts the release `guildhall` binary on a loopback port on its embedded default
//! (SQLite) and, with `--postgres`, on a fresh PostgreSQL database; with `--peer DIR`,
//! also the peer (better-auth with its organization plugin on SQLite). Seeds each,
//! drives each with the same closed-loop keep-alive load generator ([`load`]) through the
//! same scenarios, stops each by its PID, and writes every figure as JSON and one
//! Markdown report. Before every scenario it waits until other processes use at most
//! `--quiet-cores` cores and gives up (reporting nothing) when the machine stays busy.
//!
//! Normally run by `cargo xtask bench`, which builds this and the binary in release mode
//! and puts the report into `docs/benchmarks.md`. By hand:
//!
//! ```text
//! cargo build --release -p guildhall --bin guildhall --example http_bench
//! target/release/examples/http_bench --binary target/release/guildhall --peer ../shared/peers/better-auth
//! ```
//!
//! Figures are reported, never asserted: performance targets are not tests.

#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod guildhall;
mod load;
mod machine;
mod peer;
mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::json;

use crate::load::{Load, Req, Resp, Run};
use crate::machine::Server;

const USAGE: &str = "\
Usage: http_bench --binary PATH [options]

  --binary PATH        the release guildhall binary
  --postgres           also run Guildhall on a fresh PostgreSQL database
                       (GUILDHALL_BENCH_POSTGRES_URL, else GUILDHALL_TEST_POSTGRES_URL)
  --peer DIR           also run the peer found in DIR (../shared/peers/better-auth)
  --work DIR           where servers keep their data (default: target/bench/work)
  --duration S         seconds per time-boxed scenario (default 20)
  --warmup S           unmeasured seconds before each scenario but (f) (default 3)
  --concurrency N      workers of the closed loop (default 8)
  --sizes LIST         members of the list organisations (default 1000,10000,100000)
  --deep-page N        the deep member page (default 1000, or the last page)
  --invitees N         accounts that each accept one invitation in (f) (default 2000)
  --quiet-cores X      other processes may use at most X cores before a scenario (default 0.25)
  --quiet-wait S       how long to wait for that before giving up (default 300)
  --json PATH          write every figure here (default: target/bench/http.json)
  --markdown PATH      write the report here (default: target/bench/http.md)
";

#[derive(Debug, Clone)]
pub struct Options {
    binary: PathBuf,
    postgres: Option<String>,
    peer: Option<PathBuf>,
    work: PathBuf,
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    sizes: Vec<usize>,
    deep_page: usize,
    invitees: usize,
    quiet_cores: f64,
    quiet_wait: Duration,
    json: PathBuf,
    markdown: PathBuf,
}

pub fn fail<T>(message: impl Into<String>) -> Result<T, String> {
    Err(message.into())
}

pub fn progress(message: impl AsRef<str>) {
    eprintln!("{}", message.as_ref());
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value.parse().map_err(|_| format!("{flag}: `{value}` is not a valid number"))
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut binary = None;
        let mut postgres = false;
        let mut options = Self {
            binary: PathBuf::new(),
            postgres: None,
            peer: None,
            work: PathBuf::from("target/bench/work"),
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(3),
            concurrency: 8,
            sizes: vec![1_000, 10_000, 100_000],
            deep_page: 1_000,
            invitees: 2_000,
            quiet_cores: 0.25,
            quiet_wait: Duration::from_secs(300),
            json: PathBuf::from("target/bench/http.json"),
            markdown: PathBuf::from("target/bench/http.md"),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--binary" => binary = args.next().map(PathBuf::from),
                "--postgres" => postgres = true,
                "--peer" => options.peer = args.next().map(PathBuf::from),
                "--work" => options.work = args.next().map(PathBuf::from).unwrap_or(options.work),
                "--duration" => options.duration = Duration::from_secs_f64(number(flag, args.next())?),
                "--warmup" => options.warmup = Duration::from_secs_f64(number(flag, args.next())?),
                "--concurrency" => options.concurrency = number(flag, args.next())?,
                "--sizes" => {
                    let list = args.next().ok_or("--sizes needs a list")?;
                    options.sizes = list
                        .split(',')
                        .map(|n| n.trim().parse().map_err(|_| format!("--sizes: `{n}` is not a number")))
                        .collect::<Result<_, _>>()?;
                }
                "--deep-page" => options.deep_page = number(flag, args.next())?,
                "--invitees" => options.invitees = number(flag, args.next())?,
                "--quiet-cores" => options.quiet_cores = number(flag, args.next())?,
                "--quiet-wait" => options.quiet_wait = Duration::from_secs(number(flag, args.next())?),
                "--json" => options.json = args.next().map(PathBuf::from).unwrap_or(options.json),
                "--markdown" => options.markdown = args.next().map(PathBuf::from).unwrap_or(options.markdown),
                "-h" | "--help" => return fail(USAGE),
                other => return fail(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        let binary = binary.ok_or_else(|| format!("--binary is required\n\n{USAGE}"))?;
        options.binary = binary.canonicalize().map_err(|e| format!("--binary {}: {e}", binary.display()))?;
        std::fs::create_dir_all(&options.work).map_err(|e| format!("--work {}: {e}", options.work.display()))?;
        options.work = options.work.canonicalize().map_err(|e| format!("--work {}: {e}", options.work.display()))?;
        if postgres {
            let url = ["GUILDHALL_BENCH_POSTGRES_URL", "GUILDHALL_TEST_POSTGRES_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
                .ok_or("--postgres needs GUILDHALL_BENCH_POSTGRES_URL or GUILDHALL_TEST_POSTGRES_URL")?;
            options.postgres = Some(url);
        }
        if options.concurrency < 2 || options.sizes.contains(&0) || options.deep_page == 0 {
            return fail("--concurrency must be at least 2, sizes and --deep-page positive");
        }
        Ok(options)
    }
}

/// Which server a target is: the two speak different APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Guildhall,
    Peer,
}

/// A signed-in session as the client presents it.
#[derive(Debug, Clone)]
pub enum Cred {
    Bearer(String),
    Cookie(String),
}

impl Cred {
    pub fn apply(&self, req: Req) -> Req {
        match self {
            Self::Bearer(token) => guildhall::bearer(req, token),
            Self::Cookie(cookie) => req.header(COOKIE, cookie.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invitee {
    pub email: String,
    pub cred: Cred,
}

#[derive(Debug, Clone)]
pub struct ListOrg {
    pub size: usize,
    pub id: String,
    pub deep_cursor: Option<String>,
}

/// A server under test and its seeded data.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub flavour: Flavour,
    pub address: SocketAddr,
    pub server: Server,
    pub admin: Cred,
    pub bench_org: String,
    pub list_orgs: Vec<ListOrg>,
    pub invitees: Vec<Invitee>,
    /// Invitee email → what (f) presents: Guildhall's emailed token, the peer's invitation id.
    pub invitation_tokens: HashMap<String, String>,
    pub outbox: Option<PathBuf>,
}

impl Target {
    fn origin(&self, req: Req) -> Req {
        // The peer checks Origin on cookie-authenticated writes, as a browser sends it.
        match self.flavour {
            Flavour::Peer => req.header(ORIGIN, format!("http://{}", self.address)),
            Flavour::Guildhall => req,
        }
    }

    fn sign_up(&self, email: &str) -> Req {
        match self.flavour {
            Flavour::Guildhall => guildhall::sign_up_request(email),
            Flavour::Peer => self.origin(Req::post(
                "/api/auth/sign-up/email",
                json!({"email": email, "password": guildhall::PASSWORD, "name": "Bench User"}),
            )),
        }
    }

    fn sign_up_ok(flavour: Flavour, resp: &Resp) -> bool {
        resp.status == 200
            && match flavour {
                Flavour::Guildhall => resp.json()["outcome"].is_string(),
                Flavour::Peer => resp.json()["token"].is_string(),
            }
    }

    fn sign_in(&self, email: &str) -> Req {
        match self.flavour {
            Flavour::Guildhall => guildhall::sign_in_request(email),
            Flavour::Peer => self
                .origin(Req::post("/api/auth/sign-in/email", json!({"email": email, "password": guildhall::PASSWORD}))),
        }
    }

    /// The session a successful sign-in opened.
    fn session_of(flavour: Flavour, resp: &Resp) -> Option<Cred> {
        if resp.status != 200 {
            return None;
        }
        match flavour {
            Flavour::Guildhall => resp.json()["token"].as_str().map(|t| Cred::Bearer(t.to_owned())),
            Flavour::Peer => resp
                .headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.contains("session_token="))
                .and_then(|v| v.split(';').next())
                .map(|c| Cred::Cookie(c.to_owned())),
        }
    }

    fn read(&self, cred: &Cred) -> Req {
        match self.flavour {
            Flavour::Guildhall => cred.apply(Req::get("/api/v1/me")),
            Flavour::Peer => cred.apply(Req::get("/api/auth/get-session")),
        }
    }

    fn read_ok(flavour: Flavour, resp: &Resp) -> bool {
        resp.status == 200
            && match flavour {
                Flavour::Guildhall => resp.json()["user"]["email"].is_string(),
                Flavour::Peer => resp.json()["session"].is_object(),
            }
    }

    fn invite(&self, email: &str) -> Req {
        match self.flavour {
            Flavour::Guildhall => self.admin.apply(Req::post(
                format!("/api/v1/orgs/{}/invitations", self.bench_org),
                json!({"email": email, "role": "user"}),
            )),
            Flavour::Peer => self.origin(self.admin.apply(Req::post(
                "/api/auth/organization/invite-member",
                json!({"email": email, "role": "member", "organizationId": self.bench_org}),
            ))),
        }
    }

    fn invite_ok(flavour: Flavour, resp: &Resp) -> Option<String> {
        let json = resp.json();
        match flavour {
            Flavour::Guildhall if resp.status == 201 => json["id"].as_str().map(str::to_owned),
            Flavour::Peer if resp.status == 200 => json["id"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// Page `page` (from 1) of 100 members: by cursor for Guildhall, by offset for the
    /// peer (its API has no cursor).
    fn list(&self, org: &ListOrg, page: usize, cursor: Option<&str>) -> Req {
        match self.flavour {
            Flavour::Guildhall => {
                let mut path = format!("/api/v1/orgs/{}/members?limit=100", org.id);
                if let Some(cursor) = cursor {
                    path.push_str(&format!("&cursor={cursor}"));
                }
                self.admin.apply(Req::get(path))
            }
            Flavour::Peer => self.admin.apply(Req::get(format!(
                "/api/auth/organization/list-members?organizationId={}&limit=100&offset={}",
                org.id,
                (page - 1) * 100
            ))),
        }
    }

    fn list_ok(flavour: Flavour, resp: &Resp, size: usize, expected: usize) -> bool {
        if resp.status != 200 {
            return false;
        }
        let json = resp.json();
        match flavour {
            Flavour::Guildhall => json["items"].as_array().is_some_and(|items| items.len() == expected),
            Flavour::Peer => {
                json["members"].as_array().is_some_and(|m| m.len() == expected)
                    && json["total"].as_u64() == Some(size as u64)
            }
        }
    }

    fn accept(&self, invitee: &Invitee, token: &str) -> Req {
        match self.flavour {
            Flavour::Guildhall => invitee.cred.apply(Req::post("/api/v1/invitations/accept", json!({"token": token}))),
            Flavour::Peer => self.origin(
                invitee
                    .cred
                    .apply(Req::post("/api/auth/organization/accept-invitation", json!({"invitationId": token}))),
            ),
        }
    }

    fn accept_ok(flavour: Flavour, resp: &Resp) -> bool {
        resp.status == 200
            && match flavour {
                Flavour::Guildhall => resp.json()["role"].is_string(),
                Flavour::Peer => resp.json()["member"].is_object(),
            }
    }
}

pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Stops a server by its PID with SIGTERM and waits for it (SIGKILL after 20 s).
pub fn terminate(child: &mut Child, what: &str) -> Result<(), String> {
    if child.try_wait().map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    fail(format!("{what} did not stop within 20 s of SIGTERM and was killed"))
}

/// Everything measured on one target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetReport {
    pub label: String,
    pub flavour: String,
    pub seed_seconds: f64,
    pub idle_rss_after_start_kib: u64,
    pub idle_rss_after_seed_kib: u64,
    pub idle_rss_after_bench_kib: u64,
    pub rss_peak_kib: u64,
    pub runs: Vec<Run>,
    pub checks: serde_json::Value,
    pub versions: serde_json::Value,
}

impl TargetReport {
    pub fn run(&self, name: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.name == name)
    }
}

struct Bench<'a> {
    options: &'a Options,
    target: Target,
    runs: Vec<Run>,
    tag: String,
}

impl Bench<'_> {
    async fn quiet(&self) -> Result<f64, String> {
        machine::wait_until_quiet(Some(&self.target.server), self.options.quiet_cores, self.options.quiet_wait).await
    }

    /// Waits until the server has nothing left to do from the last scenario (Guildhall:
    /// its outbox is delivered), then until the machine is quiet.
    async fn settle(&self) -> Result<f64, String> {
        if self.target.flavour == Flavour::Guildhall {
            let started = Instant::now();
            while outbox_backlog(self.target.address).await? > 0 {
                if started.elapsed() > Duration::from_secs(300) {
                    return fail("Guildhall's outbox did not drain within 300 s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.quiet().await
    }

    /// Settles, warms up with `warm` (unmeasured), then runs `load`.
    async fn measure(&mut self, load: Load, warm: Option<Load>) -> Result<Run, String> {
        let before = self.settle().await?;
        if let Some(warm) = warm.filter(|_| !self.options.warmup.is_zero()) {
            load::run(self.target.address, &warm.warm_up(self.options.warmup), &self.target.server).await;
        }
        let mut run = load::run(self.target.address, &load, &self.target.server).await;
        run.other_cores_before = before;
        print_run(&self.target.label, &run);
        self.runs.push(run.clone());
        Ok(run)
    }

    async fn all(&mut self) -> Result<serde_json::Value, String> {
        let c = self.options.concurrency;
        let d = self.options.duration;
        let flavour = self.target.flavour;
        let tag = self.tag.clone();

        // (a) sign-up. Guildhall answers a sign-up with an outcome only (it never says
        // whether an address is taken), so the client records whom it signed up.
        let signed_up = Arc::new(Mutex::new(Vec::<String>::new()));
        let (target, emails, prefix) = (self.target.clone(), signed_up.clone(), format!("su-{tag}"));
        let address_of = move |i: usize| format!("{prefix}-{i}@bench.example");
        let address = address_of.clone();
        let sign_up = Load::timed(
            "(a) sign-up",
            c,
            d,
            move |i| target.sign_up(&address(i)),
            move |i, resp| {
                let ok = Target::sign_up_ok(flavour, resp);
                if ok && let Ok(mut list) = emails.lock() {
                    list.push(address_of(i));
                }
                ok
            },
        );
        // The warm-up signs up other addresses.
        let (target, prefix) = (self.target.clone(), format!("warm-{tag}"));
        let warm = Load::timed(
            "(a) sign-up",
            c,
            d,
            move |i| target.sign_up(&format!("{prefix}-{i}@bench.example")),
            move |_, resp| Target::sign_up_ok(flavour, resp),
        );
        let run = self.measure(sign_up, Some(warm)).await?;
        let users: Vec<String> = signed_up.lock().map(|l| l.clone()).unwrap_or_default();
        if users.len() < 8 {
            return fail(format!("only {} sign-ups succeeded ({:?})", users.len(), run.error_kinds));
        }

        // (b) sign-in, round robin over the accounts (a) made
        let target = self.target.clone();
        let accounts = Arc::new(users.clone());
        let list = accounts.clone();
        let sign_in = Load::timed(
            "(b) sign-in",
            c,
            d,
            move |i| target.sign_in(&list[i % list.len()]),
            move |_, resp| Target::session_of(flavour, resp).is_some(),
        );
        self.measure(sign_in.clone(), Some(sign_in)).await?;

        // Sessions for the reads: eight of those accounts, signed in once each.
        let mut sessions = Vec::new();
        for email in users.iter().take(8) {
            let resp = load::once(self.target.address, self.target.sign_in(email)).await?;
            sessions.push(Target::session_of(flavour, &resp).ok_or_else(|| format!("sign-in of {email} failed"))?);
        }
        let sessions = Arc::new(sessions);

        // (c) session-checked read
        let reader = self.target.clone();
        let read = |name: &str, concurrency: usize, duration: Duration| {
            let target = reader.clone();
            let sessions = sessions.clone();
            Load::timed(
                name,
                concurrency,
                duration,
                move |i| target.read(&sessions[i % sessions.len()]),
                move |_, resp| Target::read_ok(flavour, resp),
            )
        };
        let reads = read("(c) session-checked read", c, d);
        self.measure(reads.clone(), Some(reads)).await?;

        // (d) create invitation: the seeded invitees first (for (f)), then new addresses
        let invited = Arc::new(Mutex::new(HashMap::<usize, String>::new()));
        let target = self.target.clone();
        let invitees: Arc<Vec<String>> = Arc::new(self.target.invitees.iter().map(|i| i.email.clone()).collect());
        let record = invited.clone();
        let known = invitees.clone();
        let prefix = format!("inv-{tag}");
        let invite = Load::timed(
            "(d) create invitation",
            c,
            d,
            move |i| match known.get(i) {
                Some(email) => target.invite(email),
                None => target.invite(&format!("{prefix}-{i}@bench.example")),
            },
            move |i, resp| match Target::invite_ok(flavour, resp) {
                Some(id) => {
                    if let Ok(mut map) = record.lock() {
                        map.insert(i, id);
                    }
                    true
                }
                None => false,
            },
        );
        let target = self.target.clone();
        let warm_prefix = format!("warm-inv-{tag}");
        let warm = Load::timed(
            "(d) create invitation",
            c,
            d,
            move |i| target.invite(&format!("{warm_prefix}-{i}@bench.example")),
            move |_, resp| Target::invite_ok(flavour, resp).is_some(),
        );
        self.measure(invite, Some(warm)).await?;
        let invited: HashMap<usize, String> = invited.lock().map(|m| m.clone()).unwrap_or_default();
        match flavour {
            Flavour::Peer => {
                for (i, id) in &invited {
                    if let Some(email) = invitees.get(*i) {
                        self.target.invitation_tokens.insert(email.clone(), id.clone());
                    }
                }
            }
            Flavour::Guildhall => {
                self.settle().await?;
                let outbox = self.target.outbox.clone().unwrap_or_default();
                for mail in guildhall::read_outbox(&outbox)? {
                    if mail.subject.contains("invited you") {
                        if let (Some(token), Some(email)) =
                            (mail.token, invitees.iter().find(|e| mail.to.contains(e.as_str())))
                        {
                            self.target.invitation_tokens.insert(email.clone(), token);
                        }
                    }
                }
            }
        }

        // (e) list members: first page and a deep page, by organisation size
        for org in self.target.list_orgs.clone() {
            let pages = org.size.div_ceil(100);
            let deep = self.options.deep_page.min(pages);
            let (cursor, walked) = self.walk_to(&org, deep).await?;
            let expected_deep = org.size - (deep - 1) * 100;
            for (page, cursor) in [(1, None), (deep, cursor)] {
                if page == 1 && deep == 1 && cursor.is_some() {
                    continue;
                }
                let target = self.target.clone();
                let list_org = org.clone();
                let expected = if page == 1 { org.size.min(100) } else { expected_deep.min(100) };
                let size = org.size;
                let label = if page == 1 { "page 1".to_owned() } else { format!("page {page}") };
                let list = Load::timed(
                    format!("(e) list members, {} members, {label}", thousands(org.size)),
                    c,
                    d,
                    move |_| target.list(&list_org, page, cursor.as_deref()),
                    move |_, resp| Target::list_ok(flavour, resp, size, expected),
                );
                self.measure(list.clone(), Some(list)).await?;
                if deep == 1 {
                    break;
                }
            }
            progress(format!("  {}: walked {walked} pages of {}", self.target.label, thousands(org.size)));
        }

        // (f) accept invitation: each invitee its own, once
        let pairs: Vec<(Invitee, String)> = self
            .target
            .invitees
            .iter()
            .filter_map(|i| self.target.invitation_tokens.get(&i.email).map(|t| (i.clone(), t.clone())))
            .collect();
        if pairs.is_empty() {
            return fail("(d) made no invitation for the seeded invitees");
        }
        let count = pairs.len();
        let pairs = Arc::new(pairs);
        let target = self.target.clone();
        let accepts = pairs.clone();
        self.measure(
            Load::timed(
                "(f) accept invitation",
                c,
                d,
                move |i| target.accept(&accepts[i].0, &accepts[i].1),
                move |_, resp| Target::accept_ok(flavour, resp),
            )
            .counted(count),
            None,
        )
        .await?;

        // (g) reads during a sign-up flood and during a sign-in flood
        let half = (c / 2).max(1);
        let g = d / 2;
        let reads = read(&format!("(g) reads alone, c={half}"), half, g);
        let alone = self.measure(reads.clone(), Some(reads)).await?;
        let floods: [(&str, load::MakeRequest); 2] = [
            ("sign-up", {
                let target = self.target.clone();
                let prefix = format!("flood-{tag}");
                Arc::new(move |i| target.sign_up(&format!("{prefix}-{i}@bench.example")))
            }),
            ("sign-in", {
                let target = self.target.clone();
                let accounts = accounts.clone();
                Arc::new(move |i| target.sign_in(&accounts[i % accounts.len()]))
            }),
        ];
        let mut kept = serde_json::Map::new();
        for (what, make) in floods {
            let before = self.settle().await?;
            let flood = Load {
                name: format!("(g) {what} flood, c={half}"),
                concurrency: half,
                duration: Some(g),
                count: None,
                make,
                check: Arc::new(move |_, resp| {
                    if what == "sign-up" {
                        Target::sign_up_ok(flavour, resp)
                    } else {
                        Target::session_of(flavour, resp).is_some()
                    }
                }),
            };
            let reads = read(&format!("(g) reads during {what} flood, c={half}"), half, g);
            let mut runs = load::run_many(self.target.address, &[flood, reads], &self.target.server).await;
            for run in &mut runs {
                run.other_cores_before = before;
                print_run(&self.target.label, run);
            }
            kept.insert(what.to_owned(), json!(runs[1].rps / alone.rps.max(1e-9)));
            self.runs.extend(runs);
        }
        Ok(json!({
            "signed_up": users.len(),
            "invitations_for_invitees": count,
            "reads_kept_during_flood": kept,
        }))
    }

    /// Walks the member list page by page to `page`: the cursor of that page (Guildhall)
    /// and the number of pages read. Also checks the organisation's size.
    async fn walk_to(&self, org: &ListOrg, page: usize) -> Result<(Option<String>, usize), String> {
        if self.target.flavour == Flavour::Peer || page == 1 {
            return Ok((None, 0));
        }
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        for n in 1..page {
            let resp = load::once(self.target.address, self.target.list(org, n, cursor.as_deref())).await?;
            let json = resp.json();
            seen += json["items"].as_array().map_or(0, Vec::len);
            cursor = json["next_cursor"].as_str().map(str::to_owned);
            if resp.status != 200 || cursor.is_none() {
                return fail(format!("member list of {} ended at page {n} (HTTP {})", org.size, resp.status));
            }
        }
        if seen != (page - 1) * 100 {
            return fail(format!("walking {} members saw {seen} before page {page}", org.size));
        }
        Ok((cursor, page - 1))
    }
}

async fn outbox_backlog(address: SocketAddr) -> Result<u64, String> {
    let metrics = load::once(address, Req::get("/metrics")).await?;
    let text = String::from_utf8_lossy(&metrics.body);
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("guildhall_outbox_messages{")
                && (l.contains("state=\"pending\"") || l.contains("state=\"leased\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_run(label: &str, run: &Run) {
    progress(format!(
        "  {label:<22} {:<48} {:>7} req {:>9.1} req/s  p50 {:>8.2}  p99 {:>8.2} ms  errors {}{}  cpu {} ms/req  rss {} MiB  other {:.2}/{:.2}",
        run.name,
        run.requests,
        run.rps,
        run.latency_ms.p50,
        run.latency_ms.p99,
        run.errors,
        if run.errors > 0 { format!(" {:?}", run.error_kinds) } else { String::new() },
        run.server_cpu_ms_per_request.map_or("-".to_owned(), |v| format!("{v:.2}")),
        run.server_rss_max_kib / 1024,
        run.other_cores_before,
        run.other_cores_during,
    ));
}

async fn bench_target(
    options: &Options,
    target: Target,
    tag: &str,
    seed_seconds: f64,
    idle_start: u64,
    versions: serde_json::Value,
) -> Result<TargetReport, String> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_seed = target.server.rss_kib();
    let mut bench = Bench { options, target, runs: Vec::new(), tag: tag.to_owned() };
    let checks = bench.all().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server = bench.target.server.clone();
    Ok(TargetReport {
        label: bench.target.label.clone(),
        flavour: format!("{:?}", bench.target.flavour),
        seed_seconds,
        idle_rss_after_start_kib: idle_start,
        idle_rss_after_seed_kib: idle_seed,
        idle_rss_after_bench_kib: server.rss_kib(),
        rss_peak_kib: server.hwm_kib(),
        runs: bench.runs,
        checks,
        versions,
    })
}

async fn run_guildhall(options: &Options, postgres: Option<&str>, tag: &str) -> Result<TargetReport, String> {
    let label = if postgres.is_some() { "Guildhall PostgreSQL" } else { "Guildhall SQLite" };
    let work = options.work.join(if postgres.is_some() { "guildhall-postgres" } else { "guildhall-sqlite" });
    let _ = std::fs::remove_dir_all(&work);
    progress(format!("{label}: starting {}", options.binary.display()));
    let mut running = guildhall::start(&options.binary, &work, postgres, label).await?;
    let outcome = async {
        let started = Instant::now();
        running.seed(&options.sizes, options.invitees, tag).await?;
        let seeded = started.elapsed().as_secs_f64();
        let version = std::process::Command::new(&options.binary)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        bench_target(
            options,
            running.target.clone(),
            tag,
            seeded,
            running.idle_rss_after_start_kib,
            json!({ "guildhall": version, "database": if postgres.is_some() { "PostgreSQL" } else { "SQLite (bundled)" } }),
        )
        .await
    }
    .await;
    let stopped = running.stop().await;
    let report = outcome?;
    stopped?;
    Ok(report)
}

async fn run_peer(options: &Options, source: &Path, tag: &str) -> Result<TargetReport, String> {
    progress(format!("better-auth: starting from {}", source.display()));
    let mut running = peer::start(source, &options.work.join("peer")).await?;
    let outcome = async {
        let started = Instant::now();
        running.seed(&options.sizes, options.invitees).await?;
        let seeded = started.elapsed().as_secs_f64();
        bench_target(
            options,
            running.target.clone(),
            tag,
            seeded,
            running.idle_rss_after_start_kib,
            running.versions.clone(),
        )
        .await
    }
    .await;
    let stopped = running.stop();
    let report = outcome?;
    stopped?;
    Ok(report)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match bench(&options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(options: &Options) -> Result<(), String> {
    let started = chrono::Utc::now();
    let tag = format!("{:x}", started.timestamp_millis());
    progress("hash-only rate (Argon2id as the server is configured by default)");
    machine::wait_until_quiet(None, options.quiet_cores, options.quiet_wait).await?;
    let hash = report::hash_only_rate(Duration::from_secs(5));
    progress(format!("  {:.1} hashes/s on {} threads ({:.1} ms each)", hash.per_second, hash.threads, hash.ms_each));
    let mut targets = vec![run_guildhall(options, None, &tag).await?];
    if let Some(url) = &options.postgres {
        targets.push(run_guildhall(options, Some(url), &tag).await?);
    }
    if let Some(peer) = &options.peer {
        targets.push(run_peer(options, peer, &tag).await?);
    }
    let report = report::Report::new(options, started, hash, targets);
    for path in [&options.json, &options.markdown] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
    }
    std::fs::write(&options.json, report.json()).map_err(|e| format!("{}: {e}", options.json.display()))?;
    let markdown = report.markdown();
    std::fs::write(&options.markdown, &markdown).map_err(|e| format!("{}: {e}", options.markdown.display()))?;
    println!("{markdown}");
    Ok(())
}
