//! Delivery throughput of the outbox dispatcher: how many messages a second
//! [`Dispatcher::run`] gets from the outbox to a real SMTP server (aiosmtpd on a loopback
//! port, [`SmtpSink`]), at several concurrency settings.
//!
//! Each measured run queues `--messages` notifications (a mix of invitations, join-request
//! notices, address verifications, password resets and approvals, the links carrying
//! tokens) in a fresh [`TestKit`]'s in-memory outbox, starts a fresh sink, and times
//! `Dispatcher::run` with [`SmtpTransport`] from its start until every message is marked
//! sent and the sink holds all of them ([`SmtpSink::wait_for`]); then the stop signal ends
//! the dispatcher. A shorter, untimed warm-up run comes first. Rendering and composing
//! alone (no network, one thread) is timed too, so the delivery figures can be read
//! against the CPU a message costs before it reaches the wire, and [`FileTransport`] runs
//! (`.eml` files in a temporary directory) show the dispatcher without a server.
//!
//! Beside the times, each run reports the CPU used by this process and by the sink, and
//! how many TCP connections the transport opened (both read from `/proc`, so Linux only).
//!
//! Normally run through `cargo xtask bench mail`, which builds it in release mode, waits
//! for a quiet machine and writes the figures to `<target dir>/bench/mail.json`. By hand:
//!
//! ```text
//! cargo run --release -p guildhall-mail --features testing --example throughput -- --concurrency 1,4,8
//! ```
//!
//! aiosmtpd must be importable by `python3` (`python3 -m pip install aiosmtpd`). The
//! figures are reported, never asserted: performance targets are not tests.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use guildhall_domain::error::StoreError;
use guildhall_domain::ids::{InvitationId, JoinRequestId, MessageId};
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::org::Organisation;
use guildhall_domain::ports::{
    ChangeSet, ClaimedEmail, Clock, DeliveryFailure, IdGenerator, Outbox, TokenGenerator, UnitOfWork,
};
use guildhall_domain::testing::{MemoryStore, TestKit};
use guildhall_domain::token::Token;
use guildhall_domain::values::{EmailAddress, Note};
use guildhall_mail::testing::SmtpSink;
use guildhall_mail::{
    Composer, DispatchPorts, DispatchReport, DispatchSettings, Dispatcher, FileTransport, Links, Renderer,
    SmtpSettings, SmtpTransport, Transport,
};
use tokio::sync::watch;

const USAGE: &str = "\
Usage: throughput [options]

  --messages N        messages per run (default 2000)
  --concurrency LIST  the dispatcher's concurrency settings to measure, comma-separated
                      (default 1,4,8)
  --batch N           messages claimed per batch (default 32)
  --connections N     SMTP connections the transport keeps in its pool (default: the
                      SmtpSettings default, 4)
  --transports LIST   smtp, file or both (default smtp,file)
  --json PATH         also write every figure as JSON to PATH

Needs aiosmtpd for python3 (python3 -m pip install aiosmtpd).
";

const BASE_URL: &str = "https://members.example.org";
const FROM: &str = "Guildhall <no-reply@guildhall.example>";
/// How long the sink may take to hold every message once all are marked sent.
const SINK_WAIT: StdDuration = StdDuration::from_secs(10);
/// A run fails when no message was marked sent for this long: a server that stopped
/// answering, or messages that failed and wait for a retry.
const STALL_LIMIT: StdDuration = StdDuration::from_secs(30);

/// An error that prints as its message, also when `main` returns it.
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(error.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Smtp,
    File,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Self::Smtp => "smtp",
            Self::File => "file",
        }
    }
}

#[derive(Debug)]
struct Options {
    messages: usize,
    concurrency: Vec<usize>,
    batch: u32,
    connections: Option<u32>,
    transports: Vec<Via>,
    json: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, Failure> {
        let mut options = Self {
            messages: 2_000,
            concurrency: vec![1, 4, 8],
            batch: 32,
            connections: None,
            transports: vec![Via::Smtp, Via::File],
            json: None,
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            if flag == "-h" || flag == "--help" {
                return fail(USAGE);
            }
            let Some(value) = rest.next() else { return fail(format!("{flag} needs a value\n\n{USAGE}")) };
            match flag.as_str() {
                "--messages" => options.messages = number(flag, value)?,
                "--concurrency" => {
                    options.concurrency =
                        value.split(',').map(|item| number(flag, item.trim())).collect::<Result<_, _>>()?;
                }
                "--batch" => options.batch = number(flag, value)?,
                "--connections" => options.connections = Some(number(flag, value)?),
                "--transports" => {
                    options.transports = value
                        .split(',')
                        .map(|item| match item.trim() {
                            "smtp" => Ok(Via::Smtp),
                            "file" => Ok(Via::File),
                            other => fail(format!("--transports lists `smtp` and `file`, not `{other}`")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--json" => options.json = Some(PathBuf::from(value)),
                other => return fail(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        if options.messages == 0 || options.batch == 0 || options.connections == Some(0) {
            return fail("--messages, --batch and --connections must be at least 1");
        }
        if options.concurrency.is_empty() || options.concurrency.contains(&0) {
            return fail("--concurrency lists settings of at least 1");
        }
        if options.transports.is_empty() {
            return fail("--transports needs `smtp`, `file` or both");
        }
        Ok(options)
    }

    /// The SMTP transport's pool size: `--connections`, else what [`SmtpSettings`] has.
    fn pool_size(&self) -> u32 {
        self.connections.unwrap_or_else(|| SmtpSettings::new("127.0.0.1").max_connections)
    }

    fn warmup_messages(&self) -> usize {
        (self.messages / 10).max(usize::try_from(self.batch).unwrap_or(usize::MAX)).min(self.messages)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, Failure> {
    value.replace('_', "").parse().or_else(|_| fail(format!("{flag} takes a number, not `{value}`")))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = Options::parse(&args)?;
    let started_at = DateTime::<Utc>::from(std::time::SystemTime::now());
    let load_before = load_average();
    let composer = Composer::new(Renderer::new(Links::new(BASE_URL)?, "Guildhall"), FROM)?;

    progress(format!("rendering and composing {} messages, no network", options.messages));
    let (compose, mix) = time_composing(&composer, options.messages).await?;

    let mut runs = Vec::new();
    for via in options.transports.iter().copied() {
        // A tenth of a run (at least a batch) at the highest setting: enough for the code,
        // the allocator and the first connections, short next to the measured runs.
        let (warmup, warmup_concurrency) =
            (options.warmup_messages(), options.concurrency.iter().copied().max().unwrap_or(1));
        progress(format!("{}: warm-up, {warmup} messages, concurrency {warmup_concurrency}", via.name()));
        deliver(&composer, &options, via, warmup_concurrency, warmup).await?;
        for &concurrency in &options.concurrency {
            progress(format!("{}: {} messages, concurrency {concurrency}", via.name(), options.messages));
            runs.push(deliver(&composer, &options, via, concurrency, options.messages).await?);
        }
    }

    let report = Report { started_at, load_before, options: &options, mix, compose, runs };
    print!("{}", report.table());
    if let Some(path) = &options.json {
        std::fs::write(path, report.json()).map_err(|error| Failure(format!("writing {}: {error}", path.display())))?;
        progress(format!("figures written to {}", path.display()));
    }
    Ok(())
}

/// Progress goes to stderr, so that stdout holds only the report.
fn progress(message: String) {
    eprintln!("throughput: {message}");
}

// ---- the messages ----------------------------------------------------------------------

/// A kit with an organisation and its administrator, as the mail tests' `Practice` has.
async fn practice() -> Result<(TestKit, Organisation), Failure> {
    let kit = TestKit::new();
    let admin = kit.seed_user("ann.admin@acme.example", true).await?;
    let org = kit.seed_org("acme-physio", admin.id).await?;
    Ok((kit, org))
}

/// `count` messages, with ids, tokens and times from the kit's ports. Out of every 20, what
/// an organisation's busy day sends: 8 invitations, 5 join-request notices to managers, 3
/// address verifications, 2 password resets and 2 approvals.
fn messages(kit: &TestKit, org: &Organisation, count: usize) -> Result<Vec<OutboundEmail>, Failure> {
    let now = kit.clock.now();
    let expires_at = now + Duration::days(7);
    let token = || Token::from_secret(&kit.tokens.generate());
    let org_name = org.name.as_str().to_owned();
    let mut emails = Vec::with_capacity(count);
    for n in 0..count {
        let member = EmailAddress::parse(&format!("member.{n}@members.example"))?;
        let (to, notification) = match n % 20 {
            0..8 => (
                member,
                Notification::Invitation {
                    invitation: InvitationId::from_uuid(kit.ids.generate()),
                    org_name: org_name.clone(),
                    invited_by: "Ann Admin".to_owned(),
                    role_name: "Physiotherapist".to_owned(),
                    token: token(),
                    expires_at,
                },
            ),
            8..13 => (
                EmailAddress::parse(&format!("manager.{}@acme.example", n % 3))?,
                Notification::JoinRequestReceived {
                    request: JoinRequestId::from_uuid(kit.ids.generate()),
                    org_name: org_name.clone(),
                    requester_name: format!("Member {n}"),
                    requester_email: member,
                    message: (n % 2 == 0)
                        .then(|| {
                            Note::parse(
                                "Hello! I started at the North Clinic on Monday and my manager asked me \
                                 to request access to the booking system.",
                            )
                        })
                        .transpose()?,
                },
            ),
            13..16 => (member, Notification::VerifyEmail { token: token(), expires_at }),
            16..18 => (member, Notification::PasswordReset { token: token(), expires_at }),
            _ => {
                (member, Notification::JoinRequestApproved { org_name: org_name.clone(), role_name: "User".to_owned() })
            }
        };
        emails.push(OutboundEmail {
            id: MessageId::from_uuid(kit.ids.generate()),
            org: Some(org.id),
            topic: None,
            to,
            notification,
            queued_at: now,
        });
    }
    Ok(emails)
}

/// Templates and how many messages of a run use each.
type Mix = Vec<(&'static str, usize)>;

/// How many of `emails` each template has, most used first.
fn mix(emails: &[OutboundEmail]) -> Mix {
    let mut counts = Mix::new();
    for email in emails {
        let template = email.notification.template();
        match counts.iter_mut().find(|(name, _)| *name == template) {
            Some((_, count)) => *count += 1,
            None => counts.push((template, 1)),
        }
    }
    counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counts
}

// ---- rendering and composing alone -------------------------------------------------------

/// Time per message, one thread: the median of [`PASSES`] passes over every message.
#[derive(Debug, Clone, Copy)]
struct ComposeFigures {
    render: StdDuration,
    compose: StdDuration,
    /// The composed message to the bytes a transport writes.
    format: StdDuration,
    mean_bytes: usize,
}

/// The time to render and compose the messages a run sends, and their mix of templates.
async fn time_composing(composer: &Composer, count: usize) -> Result<(ComposeFigures, Mix), Failure> {
    let (kit, org) = practice().await?;
    let emails = messages(&kit, &org, count)?;
    let now = kit.clock.now();
    let composed = emails.iter().map(|email| composer.compose(email, now)).collect::<Result<Vec<_>, _>>()?;
    let render = median_pass(count, || {
        for email in &emails {
            std::hint::black_box(composer.renderer().render(email)?);
        }
        Ok(())
    })?;
    let compose = median_pass(count, || {
        for email in &emails {
            std::hint::black_box(composer.compose(email, now)?);
        }
        Ok(())
    })?;
    let mut bytes = 0;
    let format = median_pass(count, || {
        bytes = composed.iter().map(|message| std::hint::black_box(message.formatted()).len()).sum();
        Ok(())
    })?;
    Ok((ComposeFigures { render, compose, format, mean_bytes: bytes / count }, mix(&emails)))
}

/// Timed passes over the messages, after an untimed one.
const PASSES: usize = 5;

/// The median of [`PASSES`] timed runs of `pass`, per message: one pass over a few
/// thousand messages takes tens of milliseconds, short enough for other work on the
/// machine to show.
fn median_pass(count: usize, mut pass: impl FnMut() -> Result<(), Failure>) -> Result<StdDuration, Failure> {
    pass()?;
    let mut times = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let started = Instant::now();
        pass()?;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times.get(PASSES / 2).copied().unwrap_or_default();
    Ok(median / u32::try_from(count).unwrap_or(u32::MAX))
}

// ---- delivery ----------------------------------------------------------------------------

/// The kit's outbox, counting the messages marked sent, so that the clock stops at the last
/// one without the benchmark polling (and locking) the store while the dispatcher works.
struct CountingOutbox {
    store: Arc<MemoryStore>,
    sent: watch::Sender<usize>,
}

#[async_trait]
impl Outbox for CountingOutbox {
    async fn claim(&self, limit: u32, now: DateTime<Utc>, lease: Duration) -> Result<Vec<ClaimedEmail>, StoreError> {
        self.store.claim(limit, now, lease).await
    }

    async fn mark_sent(&self, id: MessageId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.store.mark_sent(id, at).await?;
        self.sent.send_modify(|sent| *sent += 1);
        Ok(())
    }

    async fn mark_failed(&self, id: MessageId, failure: DeliveryFailure) -> Result<(), StoreError> {
        self.store.mark_failed(id, failure).await
    }

    async fn release(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        self.store.release(ids).await
    }
}

/// Where a run's messages go, and what it takes to check that they all arrived.
enum Destination {
    Smtp { sink: SmtpSink },
    File { dir: ScratchDir },
}

impl Destination {
    async fn start(via: Via) -> Result<Self, Failure> {
        match via {
            Via::Smtp => Ok(Self::Smtp { sink: SmtpSink::start().await? }),
            Via::File => Ok(Self::File { dir: ScratchDir::create()? }),
        }
    }

    fn transport(&self, options: &Options) -> Result<Arc<dyn Transport>, Failure> {
        match self {
            Self::Smtp { sink } => {
                let settings = SmtpSettings { max_connections: options.pool_size(), ..sink.settings() };
                Ok(Arc::new(SmtpTransport::new(&settings)?))
            }
            Self::File { dir } => Ok(Arc::new(FileTransport::new(&dir.0)?)),
        }
    }

    /// Returns once `count` messages arrived.
    async fn wait_for(&self, count: usize) -> Result<(), Failure> {
        match self {
            Self::Smtp { sink } => {
                sink.wait_for(count, SINK_WAIT).await?;
                Ok(())
            }
            // Each file is renamed into place before the dispatcher marks its message sent.
            Self::File { dir } => match dir.messages()? {
                found if found >= count => Ok(()),
                found => fail(format!("{found} of {count} messages were written to {}", dir.0.display())),
            },
        }
    }

    /// How many messages arrived, once the run is over (duplicates included).
    fn arrived(&self) -> Result<usize, Failure> {
        match self {
            Self::Smtp { sink } => Ok(sink.received()?.len()),
            Self::File { dir } => dir.messages(),
        }
    }

    /// Client connections made to the sink so far (Linux only).
    fn connections(&self) -> Option<usize> {
        match self {
            Self::Smtp { sink } => connections_to(sink.port()),
            Self::File { .. } => None,
        }
    }

    fn server_cpu_seconds(&self) -> Option<f64> {
        match self {
            Self::Smtp { sink } => sink_pid(sink.port()).and_then(|pid| cpu_seconds(&pid)),
            Self::File { .. } => None,
        }
    }
}

/// A private directory that is removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<Self, Failure> {
        static DIRS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "guildhall-bench-mail-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn messages(&self) -> Result<usize, Failure> {
        let mut count = 0;
        for entry in std::fs::read_dir(&self.0)? {
            if entry?.path().extension().is_some_and(|ext| ext == "eml") {
                count += 1;
            }
        }
        Ok(count)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    via: Via,
    concurrency: usize,
    messages: usize,
    /// From the dispatcher's start until the last message was marked sent.
    all_sent: StdDuration,
    /// From the dispatcher's start until the last message was marked sent and the
    /// destination was seen to hold every message.
    delivered: StdDuration,
    /// From the stop signal until `run` returned.
    stop: StdDuration,
    report: DispatchReport,
    connections: Option<usize>,
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.delivered.as_secs_f64()
    }
}

async fn deliver(
    composer: &Composer,
    options: &Options,
    via: Via,
    concurrency: usize,
    count: usize,
) -> Result<Run, Failure> {
    let (kit, org) = practice().await?;
    let emails = messages(&kit, &org, count)?;
    kit.store.commit(ChangeSet { emails, ..ChangeSet::new() }).await?;
    let destination = Destination::start(via).await?;
    let (sent, mut sent_so_far) = watch::channel(0);
    let ports = DispatchPorts {
        outbox: Arc::new(CountingOutbox { store: kit.store.clone(), sent }),
        organisations: kit.store.clone(),
        transport: destination.transport(options)?,
        clock: kit.clock.clone(),
        ids: kit.ids.clone(),
    };
    let settings = DispatchSettings { batch_size: options.batch, concurrency, ..DispatchSettings::default() };
    let dispatcher = Dispatcher::new(ports, composer.clone(), settings)?;
    let (stop, stopped) = watch::channel(false);

    let client_cpu_before = cpu_seconds("self");
    let server_cpu_before = destination.server_cpu_seconds();
    let started = Instant::now();
    let running = tokio::spawn(async move { dispatcher.run(stopped).await });
    let waited = all_marked_sent(&mut sent_so_far, count).await;
    let all_sent = started.elapsed();
    // CPU up to the last message sent, before the check of what arrived reads every file.
    let client_cpu = cpu_seconds("self").zip(client_cpu_before).map(|(after, before)| after - before);
    let server_cpu = destination.server_cpu_seconds().zip(server_cpu_before).map(|(after, before)| after - before);
    let delivered = match waited {
        Ok(()) => destination.wait_for(count).await.map(|()| started.elapsed()),
        Err(error) => Err(error),
    };
    let stopping = Instant::now();
    // Stop the dispatcher whether or not the run succeeded.
    let _ = stop.send(true);
    let report = running.await?;
    let stop_time = stopping.elapsed();
    let delivered = delivered?;
    let connections = destination.connections();

    let arrived = destination.arrived()?;
    if report.sent != count || report.claimed != count || arrived != count {
        return fail(format!(
            "{} run at concurrency {concurrency}: {count} messages queued, {arrived} arrived, dispatcher report {report:?}",
            via.name()
        ));
    }
    Ok(Run {
        via,
        concurrency,
        messages: count,
        all_sent,
        delivered,
        stop: stop_time,
        report,
        connections,
        client_cpu,
        server_cpu,
    })
}

/// Returns once `count` messages are marked sent; fails when none was for [`STALL_LIMIT`].
async fn all_marked_sent(sent: &mut watch::Receiver<usize>, count: usize) -> Result<(), Failure> {
    loop {
        let so_far = *sent.borrow_and_update();
        if so_far >= count {
            return Ok(());
        }
        match tokio::time::timeout(STALL_LIMIT, sent.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return fail("the dispatcher dropped its outbox before every message was sent"),
            Err(_) => {
                return fail(format!(
                    "no message was marked sent for {} s ({so_far} of {count} were)",
                    STALL_LIMIT.as_secs()
                ));
            }
        }
    }
}

// ---- what /proc tells (Linux; None elsewhere) ------------------------------------------

/// `USER_HZ`, the unit of the times in `/proc/<pid>/stat` (100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of process `pid` (`self` for this one).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, may hold spaces) the state is field 3,
    // `utime` field 14 and `stime` field 15 (proc(5)).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / USER_HZ)
}

/// The sink's python process: this process's child whose last argument is the port.
fn sink_pid(port: u16) -> Option<String> {
    let port = port.to_string();
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| children.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline.split(|b| *b == 0).rev().find(|arg| !arg.is_empty()) == Some(port.as_bytes())
            })
        })
}

/// Distinct TCP connections with `port` at one end, open or recently closed (a closed
/// connection stays in `TIME_WAIT` for a minute, longer than a run): how many connections
/// the transport opened to the sink.
fn connections_to(port: u16) -> Option<usize> {
    let mut peers = std::collections::BTreeSet::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        readable = true;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) = (fields.get(1), fields.get(2), fields.get(3)) else {
                continue;
            };
            let port_of =
                |address: &str| address.rsplit_once(':').and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            // 0A is LISTEN: the server's socket, not a connection.
            if *state == "0A" {
                continue;
            }
            match (port_of(local), port_of(remote)) {
                (Some(local), Some(remote)) if local == port => peers.insert(remote),
                (Some(local), Some(remote)) if remote == port => peers.insert(local),
                _ => false,
            };
        }
    }
    readable.then_some(peers.len())
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

// ---- the report --------------------------------------------------------------------------

struct Report<'a> {
    started_at: DateTime<Utc>,
    load_before: Option<f64>,
    options: &'a Options,
    mix: Mix,
    compose: ComposeFigures,
    runs: Vec<Run>,
}

fn micros(duration: StdDuration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

impl Report<'_> {
    /// The share of a run's messages that `count` is.
    fn share(&self, count: usize) -> f64 {
        count as f64 / self.mix.iter().map(|(_, n)| n).sum::<usize>().max(1) as f64
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.compose;
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let _ = writeln!(
            out,
            "\nMail delivery: {} messages a run ({}), batch {}, {cores} cores",
            self.options.messages,
            self.mix
                .iter()
                .map(|(template, count)| format!("{:.0}% {template}", self.share(*count) * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            self.options.batch
        );
        let _ = writeln!(out, "\nRender and compose, no network (one thread, per message, median of {PASSES} passes):");
        let _ = writeln!(out, "  render (subject, text, HTML)      {:>8.1} µs", micros(c.render));
        let _ = writeln!(out, "  compose (render + MIME message)   {:>8.1} µs", micros(c.compose));
        let _ = writeln!(
            out,
            "  format (MIME message to bytes)    {:>8.1} µs   ({} bytes)",
            micros(c.format),
            c.mean_bytes
        );
        let _ = writeln!(
            out,
            "  compose + format                  {:>8.1} µs   ({:.0} messages/s on one core)",
            micros(c.compose + c.format),
            1.0 / (c.compose + c.format).as_secs_f64()
        );
        let _ = writeln!(out, "\nDelivery by Dispatcher::run (after a warm-up run per transport):");
        let _ = writeln!(
            out,
            "{:<9} {:>11} {:>10} {:>10} {:>12} {:>11} {:>11} {:>10} {:>10}",
            "transport",
            "concurrency",
            "messages/s",
            "seconds",
            "all sent s",
            "µs/message",
            "connections",
            "client cpu",
            "server cpu"
        );
        for run in &self.runs {
            let seconds = run.delivered.as_secs_f64();
            let _ = writeln!(
                out,
                "{:<9} {:>11} {:>10.0} {:>10.3} {:>12.3} {:>11.0} {:>11} {:>10} {:>10}",
                run.via.name(),
                run.concurrency,
                run.per_second(),
                seconds,
                run.all_sent.as_secs_f64(),
                seconds * 1e6 / run.messages as f64,
                or_dash(run.connections.map(|n| n.to_string())),
                or_dash(run.client_cpu.map(|s| format!("{s:.2} s"))),
                or_dash(run.server_cpu.map(|s| format!("{s:.2} s"))),
            );
        }
        let _ = writeln!(
            out,
            "\nseconds: the dispatcher's start until every message is marked sent and the sink (or directory) \
             holds all of them;\nall sent s: until the last is marked sent; connections: TCP connections \
             opened to the sink; cpu: this process (client)\nand the aiosmtpd process (server) until the last \
             message was marked sent.\nLoad before: {}; SMTP pool: {} connections.",
            or_dash(self.load_before.map(|load| format!("{load:.2}"))),
            self.options.pool_size(),
        );
        out
    }

    fn json(&self) -> String {
        let c = &self.compose;
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let number = |value: Option<f64>| value.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"));
        let mut json = String::new();
        let _ = write!(
            json,
            "{{\n  \"benchmark\": \"mail delivery\",\n  \"started_at\": \"{}\",\n  \"cores\": {cores},\n  \
             \"load_before\": {},\n  \"messages\": {},\n  \"batch\": {},\n  \"smtp_pool\": {},\n  \"mix\": {{ {} }},\n  \
             \"compose\": {{ \"render_us\": {:.2}, \"compose_us\": {:.2}, \"format_us\": {:.2}, \"mean_bytes\": {} }},\n  \
             \"runs\": [",
            self.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            number(self.load_before),
            self.options.messages,
            self.options.batch,
            self.options.pool_size(),
            self.mix
                .iter()
                .map(|(template, count)| format!("\"{template}\": {:.3}", self.share(*count)))
                .collect::<Vec<_>>()
                .join(", "),
            micros(c.render),
            micros(c.compose),
            micros(c.format),
            c.mean_bytes,
        );
        for (index, run) in self.runs.iter().enumerate() {
            let _ = write!(
                json,
                "{}\n    {{ \"transport\": \"{}\", \"concurrency\": {}, \"messages\": {}, \"messages_per_s\": {:.1}, \
                 \"seconds\": {:.4}, \"all_sent_s\": {:.4}, \"stop_ms\": {:.1}, \"connections\": {}, \
                 \"client_cpu_s\": {}, \"server_cpu_s\": {}, \"claimed\": {}, \"sent\": {}, \"retried\": {}, \"dead\": {} }}",
                if index == 0 { "" } else { "," },
                run.via.name(),
                run.concurrency,
                run.messages,
                run.per_second(),
                run.delivered.as_secs_f64(),
                run.all_sent.as_secs_f64(),
                run.stop.as_secs_f64() * 1e3,
                run.connections.map_or_else(|| "null".to_owned(), |n| n.to_string()),
                number(run.client_cpu),
                number(run.server_cpu),
                run.report.claimed,
                run.report.sent,
                run.report.retried,
                run.report.dead,
            );
        }
        json.push_str("\n  ]\n}\n");
        json
    }
}
