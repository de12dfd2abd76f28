//! Delivery to a real SMTP server (aiosmtpd on a loopback port): every template, links
//! the domain accepts, and the faults a server can throw at the dispatcher.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::ports::Clock;
use guildhall_domain::query::PageRequest;
use guildhall_domain::role::builtin;
use guildhall_domain::usecases::SignUp;
use guildhall_domain::values::EmailAddress;
use guildhall_mail::testing::{SmtpSink, free_port, smtp_settings};
use guildhall_mail::{DispatchReport, DispatchSettings, SmtpSettings, SmtpTransport};

use crate::support::{Mail, Practice, dispatcher, settings};

const WAIT: StdDuration = StdDuration::from_secs(10);

fn smtp(port: u16) -> Arc<SmtpTransport> {
    Arc::new(SmtpTransport::new(&smtp_settings(port)).unwrap())
}

fn message(p: &Practice, n: u128, to: &str) -> OutboundEmail {
    OutboundEmail {
        id: guildhall_domain::ids::MessageId::from_uuid(uuid::Uuid::from_u128(0xfeed_0000 + n)),
        org: Some(p.org.id),
        topic: None,
        to: EmailAddress::parse(to).unwrap(),
        notification: Notification::JoinRequestApproved { org_name: "Acme Physio".into(), role_name: "User".into() },
        queued_at: p.kit.clock.now(),
    }
}

#[tokio::test]
async fn every_template_arrives_with_its_headers_and_both_parts() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let p = Practice::new().await;
    let samples = crate::render::samples();
    p.queue(samples.clone()).await;

    let report = dispatcher(&p.kit, smtp(sink.port()), settings()).dispatch_once().await.unwrap();

    assert_eq!(report, DispatchReport { claimed: samples.len(), sent: samples.len(), ..DispatchReport::default() });
    let received = sink.wait_for(samples.len(), WAIT).await.unwrap();
    assert_eq!(received.len(), samples.len());
    let mut templates = BTreeSet::new();
    for arrived in &received {
        let mail = Mail::parse(&arrived.raw);
        let sample = samples.iter().find(|s| s.notification.template() == mail.template).unwrap();
        assert_eq!(arrived.recipients, [sample.to.as_str()]);
        assert_eq!(mail.to, sample.to.as_str());
        assert_eq!(mail.content_type, "multipart/alternative");
        assert_eq!(mail.from, "Guildhall <no-reply@guildhall.example>");
        assert_eq!(mail.auto_submitted, "auto-generated");
        assert_eq!(mail.message_id, format!("<{}@guildhall.example>", sample.id));
        let rendered = crate::support::composer().renderer().render(sample).unwrap();
        assert_eq!(mail.subject, rendered.subject);
        assert_eq!(mail.text.replace("\r\n", "\n").trim_end(), rendered.text.trim_end());
        assert_eq!(mail.html.replace("\r\n", "\n").trim_end(), rendered.html.trim_end());
        templates.insert(mail.template);
    }
    assert_eq!(templates.len(), samples.len(), "one of each template");
    assert_eq!(p.kit.store.sent().len(), samples.len(), "each recorded as sent");
}

#[tokio::test]
async fn the_links_in_delivered_emails_carry_tokens_the_domain_accepts() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let p = Practice::new().await;
    let guildhall = &p.kit.guildhall;
    let dispatch = dispatcher(&p.kit, smtp(sink.port()), settings());

    // An invitation, accepted by the invitee's account with the link's token.
    let bo = p.kit.seed_user("bo.therapist@example.com", true).await.unwrap();
    guildhall.invitations().invite(p.admin.id, p.org.id, "bo.therapist@example.com", &builtin::USER).await.unwrap();
    // A sign-up, verified with the link's token.
    let signup = SignUp {
        email: "cy.newcomer@example.com".into(),
        password: "Correct-Horse-Battery-42!".into(),
        first_name: "Cy".into(),
        last_name: "Newcomer".into(),
        phone: None,
        invitation_token: None,
    };
    guildhall.accounts().sign_up(signup).await.unwrap();
    // A password reset, confirmed with the link's token.
    guildhall.accounts().request_password_reset("ann.admin@acme.example").await.unwrap();

    dispatch.dispatch_once().await.unwrap();
    let received = sink.wait_for(3, WAIT).await.unwrap();
    let mail_to = |to: &str| {
        let arrived = received.iter().find(|r| r.recipients == [to]).unwrap_or_else(|| panic!("nothing for {to}"));
        Mail::parse(&arrived.raw)
    };

    let token = mail_to("bo.therapist@example.com").token_for("/invitations/accept");
    let membership = guildhall.invitations().accept(bo.id, &token).await.unwrap();
    assert_eq!((membership.org, membership.user), (p.org.id, bo.id));

    let token = mail_to("cy.newcomer@example.com").token_for("/verify-email");
    let verified = guildhall.accounts().verify_email(&token).await.unwrap();
    let cy = p.kit.store.users().into_iter().find(|u| u.email.as_str() == "cy.newcomer@example.com").unwrap();
    assert_eq!(cy.id, verified);
    assert!(cy.email_verified_at.is_some());

    let token = mail_to("ann.admin@acme.example").token_for("/reset-password");
    guildhall.accounts().confirm_password_reset(&token, "A-Brand-New-Passphrase-2026!").await.unwrap();
    assert!(guildhall.accounts().confirm_password_reset(&token, "And-Again-Passphrase-2026!").await.is_err(), "once");
}

#[tokio::test]
async fn a_server_that_is_down_at_first_gets_every_message_exactly_once_when_it_comes_up() {
    let port = free_port().unwrap();
    let p = Practice::new().await;
    let messages: Vec<OutboundEmail> = (0..5).map(|n| message(&p, n, &format!("member{n}@example.com"))).collect();
    p.queue(messages.clone()).await;
    let dispatch = dispatcher(&p.kit, smtp(port), settings());

    let down = dispatch.dispatch_once().await.unwrap();
    assert_eq!(down, DispatchReport { claimed: 5, retried: 5, ..DispatchReport::default() });
    assert_eq!(dispatch.dispatch_once().await.unwrap().claimed, 0, "not due again before the backoff");

    let Some(sink) = SmtpSink::start_on_or_skip(port).await else { return };
    p.kit.clock.advance(Duration::minutes(1));
    let up = dispatch.dispatch_once().await.unwrap();
    assert_eq!(up, DispatchReport { claimed: 5, sent: 5, ..DispatchReport::default() });
    p.kit.clock.advance(Duration::hours(12));
    assert_eq!(dispatch.dispatch_once().await.unwrap().claimed, 0, "nothing left");

    let received = sink.wait_for(5, WAIT).await.unwrap();
    let ids: BTreeSet<String> = received.iter().map(|r| Mail::parse(&r.raw).message_id).collect();
    assert_eq!(received.len(), 5);
    assert_eq!(ids.len(), 5, "none twice");
}

#[tokio::test]
async fn a_451_is_retried_after_a_jittered_backoff_and_then_delivered() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let p = Practice::new().await;
    p.queue(vec![message(&p, 1, "greylist.me@example.com")]).await;
    let dispatch = dispatcher(&p.kit, smtp(sink.port()), settings());
    let start = p.kit.clock.now();

    assert_eq!(dispatch.dispatch_once().await.unwrap().retried, 1);
    let record = p.kit.store.outbox().into_iter().find(|m| m.to.as_str() == "greylist.me@example.com").unwrap();
    assert_eq!(record.attempts, 1);
    assert!(record.last_error.as_deref().unwrap().contains("451"), "{:?}", record.last_error);
    let next = record.next_attempt_at.unwrap();
    assert!(next >= start + Duration::seconds(15) && next <= start + Duration::seconds(30), "{next} after {start}");

    p.kit.clock.set(next);
    assert_eq!(dispatch.dispatch_once().await.unwrap().sent, 1);
    assert_eq!(sink.wait_for(1, WAIT).await.unwrap()[0].recipients, ["greylist.me@example.com"]);
}

#[tokio::test]
async fn a_550_becomes_a_dead_letter_the_administrators_see_and_the_failed_messaging_address_is_told() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let p = Practice::new().await;
    let bounced = message(&p, 1, "reject.me@example.com");
    p.queue(vec![bounced.clone()]).await;
    let dispatch = dispatcher(&p.kit, smtp(sink.port()), settings());

    assert_eq!(
        dispatch.dispatch_once().await.unwrap(),
        DispatchReport { claimed: 1, dead: 1, ..DispatchReport::default() }
    );
    let undelivered =
        p.kit.guildhall.organisations().undelivered(p.admin.id, p.org.id, PageRequest::first(10)).await.unwrap();
    assert_eq!(undelivered.items.len(), 1);
    let dead = &undelivered.items[0];
    assert_eq!(
        (dead.id, dead.to.as_str(), dead.template.as_str()),
        (bounced.id, "reject.me@example.com", "join_request_approved")
    );
    assert!(dead.last_error.as_deref().unwrap().contains("550"), "{dead:?}");

    // The report was queued with the dead letter; the next round delivers it.
    assert_eq!(dispatch.dispatch_once().await.unwrap().sent, 1);
    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1, "the bounced message never arrived, the report did");
    assert_eq!(received[0].recipients, ["ops@acme.example"]);
    let report = Mail::parse(&received[0].raw);
    assert_eq!(report.template, "delivery_failed");
    assert!(report.text.contains("reject.me@example.com"), "{}", report.text);
    assert!(report.text.contains("550"), "{}", report.text);
}

#[tokio::test]
async fn a_message_that_keeps_failing_for_now_is_given_up_after_the_last_attempt() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let p = Practice::new().await;
    p.queue(vec![message(&p, 1, "tempfail.always@example.com")]).await;
    let dispatch = dispatcher(&p.kit, smtp(sink.port()), DispatchSettings { max_attempts: 3, ..settings() });

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(dispatch.dispatch_once().await.unwrap());
        p.kit.clock.advance(Duration::hours(5));
    }

    let fates: Vec<(usize, usize)> = outcomes.iter().map(|r| (r.retried, r.dead)).collect();
    assert_eq!(fates, [(1, 0), (1, 0), (0, 1), (0, 0)]);
    let dead = p.kit.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.as_deref().unwrap().contains("gave up after 3 attempts"), "{:?}", dead[0].last_error);
}

#[tokio::test]
async fn rejected_credentials_are_retried_not_given_up_and_the_right_ones_deliver() {
    let Some(sink) = SmtpSink::start_requiring_auth_or_skip("guildhall", "s3cret-relay").await else { return };
    let p = Practice::new().await;
    p.queue(vec![message(&p, 1, "member@example.com")]).await;
    let wrong = SmtpSettings { credentials: Some(("guildhall".into(), "wrong".into())), ..sink.settings() };
    let right = SmtpSettings { credentials: Some(("guildhall".into(), "s3cret-relay".into())), ..sink.settings() };

    let refused = dispatcher(&p.kit, Arc::new(SmtpTransport::new(&wrong).unwrap()), settings()).dispatch_once().await;
    assert_eq!(refused.unwrap(), DispatchReport { claimed: 1, retried: 1, ..DispatchReport::default() });
    let record = p.kit.store.outbox().pop().unwrap();
    assert!(record.last_error.as_deref().unwrap().contains("535"), "{:?}", record.last_error);
    assert!(!format!("{wrong:?}").contains("wrong"), "settings never print the password");

    p.kit.clock.advance(Duration::minutes(1));
    let sent = dispatcher(&p.kit, Arc::new(SmtpTransport::new(&right).unwrap()), settings()).dispatch_once().await;
    assert_eq!(sent.unwrap().sent, 1);
    assert_eq!(sink.wait_for(1, WAIT).await.unwrap()[0].recipients, ["member@example.com"]);
}

#[tokio::test]
async fn a_server_that_accepts_and_then_says_nothing_costs_one_timeout_not_a_stuck_dispatcher() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let p = Practice::new().await;
    p.queue(vec![message(&p, 1, "member@example.com")]).await;
    let stalled = SmtpSettings { timeout: StdDuration::from_millis(500), ..smtp_settings(port) };
    let dispatch = dispatcher(&p.kit, Arc::new(SmtpTransport::new(&stalled).unwrap()), settings());

    let report = tokio::time::timeout(StdDuration::from_secs(10), dispatch.dispatch_once()).await.unwrap().unwrap();

    assert_eq!(report, DispatchReport { claimed: 1, retried: 1, ..DispatchReport::default() });
    let record = p.kit.store.outbox().pop().unwrap();
    assert!(record.last_error.as_deref().unwrap().contains("did not answer within"), "{:?}", record.last_error);
    silent.abort();
}

/// Collects everything logged, at every level, while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_temporary_password_reaches_the_logs_whether_delivery_succeeds_or_fails() {
    let Some(sink) = SmtpSink::start_or_skip().await else { return };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let p = Practice::new().await;
    let samples = crate::render::samples();
    // Each sample twice: once to a good address, once to one the server refuses (550).
    let refused: Vec<OutboundEmail> = samples
        .iter()
        .map(|sample| OutboundEmail {
            id: guildhall_domain::ids::MessageId::from_uuid(uuid::Uuid::from_u128(
                sample.id.as_uuid().as_u128() + 0x100,
            )),
            to: EmailAddress::parse("reject.me@example.com").unwrap(),
            ..sample.clone()
        })
        .collect();
    p.queue(samples.iter().cloned().chain(refused).collect()).await;

    let report = dispatcher(&p.kit, smtp(sink.port()), settings()).dispatch_once().await.unwrap();

    assert_eq!((report.sent, report.dead), (samples.len(), samples.len()));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The give-ups are logged on the dispatcher's own task; a success may be logged where
    // the thread-local test subscriber does not see it, so only the give-ups are required.
    assert!(logs.contains("given up"), "the dispatcher logged its work:\n{logs}");
    assert!(!logs.contains(crate::render::TOKEN), "a token was logged:\n{logs}");
    assert!(!logs.contains(crate::render::TEMPORARY_PASSWORD), "a temporary password was logged:\n{logs}");
}
