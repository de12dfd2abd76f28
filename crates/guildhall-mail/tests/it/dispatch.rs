//! The dispatcher's own behaviour: backoff, shutdown, the file transport, and several
//! dispatchers on one SQL outbox.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::Duration;
use guildhall_domain::ids::MessageId;
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::ports::{ChangeSet, Clock, IdGenerator, Outbox, UnitOfWork};
use guildhall_domain::testing::{ManualClock, SequentialIds};
use guildhall_domain::values::EmailAddress;
use guildhall_mail::testing::SmtpSink;
use guildhall_mail::{
    DispatchPorts, DispatchReport, DispatchSettings, Dispatcher, FileTransport, SendError, SmtpTransport, Transport,
};
use lettre::Message;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::support::{Mail, Practice, composer, dispatcher, settings};

fn message(clock: &dyn Clock, n: u128) -> OutboundEmail {
    OutboundEmail {
        id: MessageId::from_uuid(uuid::Uuid::from_u128(0xbeef_0000 + n)),
        org: None,
        topic: None,
        to: EmailAddress::parse(&format!("member{n}@example.com")).unwrap(),
        notification: Notification::PasswordChanged { at: clock.now() },
        queued_at: clock.now(),
    }
}

#[test]
fn the_backoff_doubles_from_the_first_retry_up_to_the_cap() {
    let settings = DispatchSettings {
        first_retry: Duration::seconds(30),
        max_retry: Duration::minutes(10),
        ..DispatchSettings::default()
    };
    let delays: Vec<i64> = (1..=7).map(|attempts| settings.backoff(attempts).num_seconds()).collect();
    assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600]);
    assert_eq!(settings.backoff(32), Duration::minutes(10), "no overflow into a negative delay");
    assert_eq!(settings.backoff(u32::MAX), Duration::minutes(10), "no overflow");
}

#[test]
fn settings_that_cannot_work_are_refused_with_the_setting_named() {
    let refused = |settings: DispatchSettings| settings.validate().unwrap_err().setting;
    let base = DispatchSettings::default;
    assert_eq!(base().validate(), Ok(()));
    assert_eq!(refused(DispatchSettings { batch_size: 0, ..base() }), "batch_size");
    assert_eq!(refused(DispatchSettings { concurrency: 0, ..base() }), "concurrency");
    assert_eq!(refused(DispatchSettings { max_attempts: 0, ..base() }), "max_attempts");
    assert_eq!(refused(DispatchSettings { lease: Duration::seconds(5), ..base() }), "lease");
    assert_eq!(refused(DispatchSettings { first_retry: Duration::zero(), ..base() }), "first_retry");
    assert_eq!(refused(DispatchSettings { max_retry: Duration::seconds(1), ..base() }), "max_retry");
    assert_eq!(refused(DispatchSettings { idle_poll: StdDuration::ZERO, ..base() }), "idle_poll");
}

#[tokio::test]
async fn a_batch_whose_lease_is_nearly_over_starts_nothing_more_and_releases_the_rest() {
    let p = Practice::new().await;
    p.queue((0..4).map(|n| message(p.kit.clock.as_ref(), n)).collect()).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gate = Arc::new(Gate { started: started_tx, permits: Semaphore::new(0) });
    let dispatch = dispatcher(&p.kit, gate.clone(), DispatchSettings { concurrency: 1, ..settings() });

    let batch = tokio::spawn({
        let dispatch = dispatch.clone();
        async move { dispatch.dispatch_once().await }
    });
    started.recv().await.unwrap();
    // The first send takes until nine tenths of the lease have passed.
    p.kit.clock.advance(dispatch.settings().lease * 9 / 10);
    gate.permits.add_permits(1);
    let report = batch.await.unwrap().unwrap();

    assert_eq!(report, DispatchReport { claimed: 4, sent: 1, released: 3, ..DispatchReport::default() });
    assert!(started.try_recv().is_err());
}

/// Holds each send until the test lets it through, and says when one has started.
#[derive(Debug)]
struct Gate {
    started: mpsc::UnboundedSender<String>,
    permits: Semaphore,
}

#[async_trait]
impl Transport for Gate {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let id = message.headers().get_raw("Message-ID").unwrap_or_default().to_owned();
        self.started.send(id).map_err(|error| SendError::Transient(error.to_string()))?;
        let permit = self.permits.acquire().await.map_err(|error| SendError::Transient(error.to_string()))?;
        permit.forget();
        Ok(())
    }
}

#[tokio::test]
async fn on_shutdown_the_message_being_sent_finishes_and_the_rest_of_the_claim_is_released_at_once() {
    let p = Practice::new().await;
    let messages: Vec<OutboundEmail> = (0..6).map(|n| message(p.kit.clock.as_ref(), n)).collect();
    p.queue(messages.clone()).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gate = Arc::new(Gate { started: started_tx, permits: Semaphore::new(0) });
    let dispatch = dispatcher(&p.kit, gate.clone(), DispatchSettings { concurrency: 2, ..settings() });
    let (stop_tx, stop) = watch::channel(false);

    let running = tokio::spawn({
        let dispatch = dispatch.clone();
        async move { dispatch.run(stop).await }
    });
    let first = started.recv().await.unwrap();
    let second = started.recv().await.unwrap();
    stop_tx.send(true).unwrap();
    gate.permits.add_permits(2);
    let total = tokio::time::timeout(StdDuration::from_secs(10), running).await.unwrap().unwrap();

    assert_eq!(total, DispatchReport { claimed: 6, sent: 2, released: 4, ..DispatchReport::default() });
    assert!(started.try_recv().is_err(), "nothing else was started");
    let sent: BTreeSet<String> = p.kit.store.sent().iter().map(|m| format!("<{}@guildhall.example>", m.id)).collect();
    assert_eq!(sent, BTreeSet::from([first, second]));
    // Released, not leased: another instance can claim them now, not in ten minutes.
    let again = p.kit.store.claim(10, p.kit.clock.now(), Duration::minutes(10)).await.unwrap();
    assert_eq!(again.len(), 4);
    assert!(again.iter().all(|claimed| claimed.attempts == 0), "a release is not a failed attempt");
}

#[tokio::test]
async fn the_file_transport_writes_one_private_valid_mime_file_per_message() {
    let dir = std::env::temp_dir().join(format!("guildhall-outbox-test-{}", uuid::Uuid::new_v4().simple()));
    let p = Practice::new().await;
    let samples = crate::render::samples();
    p.queue(samples.clone()).await;
    let files = Arc::new(FileTransport::new(&dir).unwrap());

    let report = dispatcher(&p.kit, files.clone(), settings()).dispatch_once().await.unwrap();
    assert_eq!(report.sent, samples.len());
    // Delivering a message again (a crash before it was recorded) rewrites its file.
    let again = composer().compose(&samples[0], p.kit.clock.now()).unwrap();
    files.send(&again).await.unwrap();

    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    assert_eq!(names.len(), samples.len(), "one file per message, no temporary files left: {names:?}");
    for path in &names {
        assert_eq!(path.extension().unwrap(), "eml");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600, "{path:?}");
        }
        let mail = Mail::parse(&std::fs::read(path).unwrap());
        assert_eq!(mail.content_type, "multipart/alternative");
        let sample = samples.iter().find(|s| s.notification.template() == mail.template).unwrap();
        assert_eq!(path.file_stem().unwrap().to_str().unwrap(), format!("{}@guildhall.example", sample.id));
        assert!(!mail.subject.is_empty() && !mail.text.is_empty() && mail.html.contains("<html"));
        assert_eq!(python_mime_defects(path), "", "{path:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What Python's standard mail parser (the one many tools build on) finds wrong with the
/// file: its defects, and parts that are not what a mail client expects.
fn python_mime_defects(path: &std::path::Path) -> String {
    const CHECK: &str = r#"
import sys
from email import message_from_binary_file, policy
with open(sys.argv[1], "rb") as f:
    message = message_from_binary_file(f, policy=policy.default)
problems = [repr(d) for part in message.walk() for d in part.defects]
kinds = [part.get_content_type() for part in message.walk()]
if kinds != ["multipart/alternative", "text/plain", "text/html"]:
    problems.append("parts: %r" % kinds)
for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
    if message[header] is None:
        problems.append("no " + header)
message.get_body(("html",)).get_content()
message.get_body(("plain",)).get_content()
print("; ".join(problems), end="")
"#;
    let output = std::process::Command::new("python3").arg("-c").arg(CHECK).arg(path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Three dispatchers, each with its own connection pool, drain one SQL outbox into one
/// SMTP server: every message arrives exactly once.
async fn several_dispatchers_send_every_message_once(url: String) {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let store = Arc::new(guildhall_store::Store::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::default());
    let ids = Arc::new(SequentialIds::new());
    let total = 90_u128;
    let emails: Vec<OutboundEmail> = (0..total).map(|n| message(clock.as_ref(), n)).collect();
    store.commit(ChangeSet { emails, ..ChangeSet::new() }).await.unwrap();

    let mut running = Vec::new();
    for _ in 0..3 {
        let instance = Arc::new(guildhall_store::Store::connect(&url).await.unwrap());
        let ports = DispatchPorts {
            outbox: instance.clone(),
            organisations: instance,
            transport: Arc::new(SmtpTransport::new(&sink.settings()).unwrap()),
            clock: clock.clone(),
            ids: ids.clone() as Arc<dyn IdGenerator>,
        };
        let dispatch =
            Dispatcher::new(ports, composer(), DispatchSettings { batch_size: 7, concurrency: 2, ..settings() })
                .unwrap();
        running.push(tokio::spawn(async move {
            let mut mine = DispatchReport::default();
            loop {
                let report = dispatch.dispatch_once().await.unwrap();
                if report.claimed == 0 {
                    return mine;
                }
                mine += report;
            }
        }));
    }
    let mut sent = 0;
    for instance in running {
        let report = instance.await.unwrap();
        assert_eq!((report.retried, report.dead, report.unrecorded), (0, 0, 0), "{report:?}");
        sent += report.sent;
    }

    assert_eq!(sent, usize::try_from(total).unwrap());
    let received = sink.wait_for(sent, StdDuration::from_secs(20)).await.unwrap();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for arrived in &received {
        *per_id.entry(Mail::parse(&arrived.raw).message_id).or_default() += 1;
    }
    assert_eq!(per_id.len(), sent, "every message arrived");
    assert!(per_id.values().all(|n| *n == 1), "none twice: {per_id:?}");
    assert!(store.claim(100, clock.now() + Duration::days(1), Duration::minutes(1)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_dispatchers_on_one_sqlite_outbox_send_every_message_once() {
    let path = std::env::temp_dir().join(format!("guildhall-mail-{}.db", uuid::Uuid::new_v4().simple()));
    several_dispatchers_send_every_message_once(format!("sqlite://{}", path.display())).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_dispatchers_on_one_postgres_outbox_send_every_message_once() {
    let Some(server) = guildhall_store::testing::postgres_url() else { return };
    let database = guildhall_store::testing::TestDatabase::create(&server).await.unwrap();
    several_dispatchers_send_every_message_once(database.url.clone()).await;
    database.drop().await.unwrap();
}
