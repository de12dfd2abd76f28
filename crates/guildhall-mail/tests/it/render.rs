//! The templates: one sample message per notification, compared with golden files, and
//! the behaviour that must hold whatever the wording (links, secrets, escaping, headers).
//!
//! Run `UPDATE_GOLDEN=1 cargo test -p guildhall-mail --test it render` to rewrite the
//! golden files after changing a template on purpose, then review the diff.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use guildhall_domain::ids::{InvitationId, JoinRequestId, MessageId, OrgId};
use guildhall_domain::notification::{Notification, OutboundEmail, SetPasswordLink};
use guildhall_domain::password::Password;
use guildhall_domain::token::Token;
use guildhall_domain::values::{EmailAddress, Note, Topic};
use guildhall_mail::render::{Links, RenderedEmail, Renderer};

pub(crate) const TOKEN: &str = "5f0c6a3e9b1d47c2a8e4f6b0d2c4e6a81b3d5f7092a4c6e8f0a2b4c6d8e0f1a3";
pub(crate) const TEMPORARY_PASSWORD: &str = "Tidy-Otter-42-Lantern";
const ORG: u128 = 0x0192_f4c6_7d3a_7b8e_9c1d_2e3f_4a5b_6c7d;
const JOIN_REQUEST: u128 = 0x0192_f4c6_7d3a_7b8e_9c1d_0000_0000_0042;

/// Every template name, as `Notification::template` spells it.
const ALL_TEMPLATES: [&str; 13] = [
    "invitation",
    "account_created",
    "sign_up_attempt_with_existing_account",
    "email_change_requested",
    "email_changed",
    "verify_email",
    "password_reset",
    "password_changed",
    "join_request_received",
    "join_request_approved",
    "join_request_rejected",
    "delivery_failed",
    "administrator_appointed",
];

// ---------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------

/// An id from a number, as `Uuid::from_u128` would make it (this crate does not depend on
/// `uuid`; the ids parse the 32-digit simple form).
fn uuid_text(n: u128) -> String {
    format!("{n:032x}")
}

fn org_id() -> OrgId {
    OrgId::parse(&uuid_text(ORG)).unwrap()
}

fn join_request_id() -> JoinRequestId {
    JoinRequestId::parse(&uuid_text(JOIN_REQUEST)).unwrap()
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap().and_hms_opt(hour, minute, 0).unwrap().and_utc()
}

fn email(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

fn token() -> Token {
    Token::parse(TOKEN).unwrap()
}

fn renderer() -> Renderer {
    Renderer::new(Links::new("https://members.example.org/app/").unwrap(), "Guildhall")
}

/// A message for `notification` to Jo Bloggs, concerning Acme Physio.
fn outbound(n: u128, notification: Notification) -> OutboundEmail {
    OutboundEmail {
        id: MessageId::parse(&uuid_text(0x1000 + n)).unwrap(),
        org: Some(org_id()),
        topic: None,
        to: email("jo.bloggs@example.com"),
        notification,
        queued_at: at(23, 9, 0),
    }
}

/// One sample per notification, with fixed values.
pub(crate) fn samples() -> Vec<OutboundEmail> {
    let expires_at = at(30, 9, 0);
    let notifications = vec![
        Notification::Invitation {
            invitation: InvitationId::parse(&uuid_text(0x2000)).unwrap(),
            org_name: "Acme Physio, Leeds".into(),
            invited_by: "Priya Shah".into(),
            role_name: "Front desk".into(),
            token: token(),
            expires_at,
        },
        Notification::AccountCreated {
            org_name: "Acme Physio, Leeds".into(),
            created_by: "Priya Shah".into(),
            temporary_password: Password::new(TEMPORARY_PASSWORD),
            expires_at,
        },
        Notification::SignUpAttemptWithExistingAccount,
        Notification::EmailChangeRequested { new_email: email("jo@bloggs.example") },
        Notification::EmailChanged { new_email: email("jo@bloggs.example") },
        Notification::VerifyEmail { token: token(), expires_at },
        Notification::PasswordReset { token: token(), expires_at },
        Notification::PasswordChanged { at: at(23, 14, 5) },
        Notification::JoinRequestReceived {
            request: join_request_id(),
            org_name: "Acme Physio, Leeds".into(),
            requester_name: "Sam O'Neill".into(),
            requester_email: email("sam.oneill@example.net"),
            message: Some(
                Note::parse(
                    "Hello! I started at the North Clinic on Monday as a physiotherapist and my manager, \
                     Dr Okafor, asked me to request access to the booking system.",
                )
                .unwrap(),
            ),
        },
        Notification::JoinRequestApproved {
            org_name: "Acme Physio, Leeds".into(),
            role_name: "Physiotherapist".into(),
        },
        Notification::JoinRequestRejected {
            org_name: "Acme Physio, Leeds".into(),
            reason: Some(Note::parse("We only accept staff of our own clinics.").unwrap()),
        },
        Notification::DeliveryFailed {
            original_recipient: email("sam.oneill@example.net"),
            what: "invitation".into(),
            error: "550 5.1.1 <sam.oneill@example.net>: Recipient address rejected: User unknown".into(),
        },
        Notification::AdministratorAppointed {
            org_name: "Acme Physio, Leeds".into(),
            set_password: Some(SetPasswordLink { token: token(), expires_at: at(26, 9, 0) }),
        },
    ];
    notifications
        .into_iter()
        .zip(1..)
        .map(|(notification, n)| {
            let mut message = outbound(n, notification);
            if matches!(message.notification, Notification::DeliveryFailed { .. }) {
                message.topic = Some(Topic::parse("failed_messaging").unwrap());
                message.to = email("it-support@acme-physio.example");
            }
            message
        })
        .collect()
}

/// The template a sample covers. The `match` has no wildcard arm, so a new variant does not
/// compile until it has a sample (and `samples_cover_every_notification` then needs it).
fn covered_template(notification: &Notification) -> &'static str {
    match notification {
        Notification::Invitation { .. } => "invitation",
        Notification::AccountCreated { .. } => "account_created",
        Notification::AdministratorAppointed { .. } => "administrator_appointed",
        Notification::SignUpAttemptWithExistingAccount => "sign_up_attempt_with_existing_account",
        Notification::EmailChangeRequested { .. } => "email_change_requested",
        Notification::EmailChanged { .. } => "email_changed",
        Notification::VerifyEmail { .. } => "verify_email",
        Notification::PasswordReset { .. } => "password_reset",
        Notification::PasswordChanged { .. } => "password_changed",
        Notification::JoinRequestReceived { .. } => "join_request_received",
        Notification::JoinRequestApproved { .. } => "join_request_approved",
        Notification::JoinRequestRejected { .. } => "join_request_rejected",
        Notification::DeliveryFailed { .. } => "delivery_failed",
    }
}

fn sample(template: &str) -> OutboundEmail {
    samples().into_iter().find(|message| message.notification.template() == template).unwrap()
}

/// `text` with every run of whitespace (a line break from wrapping) as one space.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn render(message: &OutboundEmail) -> RenderedEmail {
    renderer().render(message).unwrap()
}

/// `message` with its notification changed by `edit`.
fn edited(template: &str, edit: impl FnOnce(&mut Notification)) -> OutboundEmail {
    let mut message = sample(template);
    edit(&mut message.notification);
    message
}

#[test]
fn samples_cover_every_notification_once() {
    let samples = samples();
    let names: Vec<&str> = samples.iter().map(|message| covered_template(&message.notification)).collect();
    for (message, name) in samples.iter().zip(&names) {
        assert_eq!(message.notification.template(), *name);
    }
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "two samples for one notification: {names:?}");
    assert_eq!(unique, ALL_TEMPLATES.into_iter().collect::<BTreeSet<_>>());
}

// ---------------------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// Where `actual` first differs from `expected`, for a failure message.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut expected_lines, mut actual_lines) = (expected.lines(), actual.lines());
    for number in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => break,
            (left, right) if left == right => {}
            (left, right) => {
                return format!(
                    "line {number}:\n    expected: {}\n    actual:   {}",
                    left.unwrap_or("<end of file>"),
                    right.unwrap_or("<end of file>")
                );
            }
        }
    }
    "only in line endings or the final line break".to_owned()
}

#[test]
fn rendered_messages_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1");
    let dir = golden_dir();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut failures = String::new();
    let mut expected_files = BTreeSet::new();
    for message in samples() {
        let name = message.notification.template();
        let rendered = render(&message);
        let parts = [("txt", format!("Subject: {}\n\n{}", rendered.subject, rendered.text)), ("html", rendered.html)];
        for (extension, actual) in parts {
            let file = format!("{name}.{extension}");
            let path = dir.join(&file);
            expected_files.insert(file.clone());
            if update {
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => {
                    writeln!(failures, "{file} differs at {}", first_difference(&expected, &actual)).unwrap();
                }
                Err(error) => writeln!(failures, "{file} cannot be read: {error}").unwrap(),
            }
        }
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for stale in present.difference(&expected_files) {
        writeln!(failures, "{stale} belongs to no sample; delete it").unwrap();
    }
    assert!(
        failures.is_empty(),
        "the rendered messages differ from tests/golden:\n{failures}\n\
         If the change is intended, run `UPDATE_GOLDEN=1 cargo test -p guildhall-mail --test it render` \
         and review the diff of tests/golden."
    );
}

// ---------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------

#[test]
fn links_are_built_from_the_base_url_with_their_values_percent_encoded() {
    let links = Links::new("https://members.example.org/app/").unwrap();
    let org = org_id();
    let base = "https://members.example.org/app";
    assert_eq!(links.base(), base);
    assert_eq!(links.accept_invitation(&token()), format!("{base}/invitations/accept?token={TOKEN}"));
    assert_eq!(links.verify_email(&token()), format!("{base}/verify-email?token={TOKEN}"));
    assert_eq!(links.reset_password(&token()), format!("{base}/reset-password?token={TOKEN}"));
    assert_eq!(links.forgot_password(), format!("{base}/reset-password"));
    assert_eq!(
        links.sign_in(&email("Jo+Team/1&x=2@Example.org")),
        format!("{base}/login?email=Jo%2BTeam%2F1%26x%3D2%40Example.org")
    );
    assert_eq!(
        links.join_request(org, join_request_id()),
        format!("{base}/orgs/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d/join-requests/0192f4c6-7d3a-7b8e-9c1d-000000000042")
    );
    assert_eq!(links.organisation(org), format!("{base}/orgs/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d"));
    assert_eq!(links.undelivered(org), format!("{base}/orgs/0192f4c6-7d3a-7b8e-9c1d-2e3f4a5b6c7d/undelivered"));
    assert_eq!(links.account(), format!("{base}/me"));
}

#[test]
fn every_token_link_appears_in_both_the_text_and_the_html() {
    let links = renderer().links().clone();
    let cases = [
        ("invitation", links.accept_invitation(&token())),
        ("verify_email", links.verify_email(&token())),
        ("password_reset", links.reset_password(&token())),
        ("administrator_appointed", links.reset_password(&token())),
    ];
    for (template, link) in cases {
        assert!(link.ends_with(&format!("?token={TOKEN}")), "{link}");
        let rendered = render(&sample(template));
        assert!(
            rendered.text.lines().any(|line| line == link),
            "{template}: no line with {link} in\n{}",
            rendered.text
        );
        assert!(rendered.html.contains(&format!("href=\"{link}\"")), "{template}: no link to {link}");
        assert!(
            rendered.html.contains(&format!(">{link}</a>")),
            "{template}: {link} is not printed beneath the button"
        );
    }
}

#[test]
fn the_sign_in_link_carries_the_recipients_address_percent_encoded() {
    let mut message = sample("account_created");
    message.to = email("jo+physio@example.com");
    let rendered = render(&message);
    let link = "https://members.example.org/app/login?email=jo%2Bphysio%40example.com";
    assert!(rendered.text.contains(link), "{}", rendered.text);
    assert!(rendered.html.contains(&format!("href=\"{link}\"")));
}

#[test]
fn an_account_created_message_tells_the_temporary_password_and_when_it_stops_working() {
    let rendered = render(&sample("account_created"));
    for part in [flat(&rendered.text), flat(&rendered.html)] {
        assert!(part.contains(TEMPORARY_PASSWORD));
        assert!(part.contains("Monday 30 November 2026, 09:00 UTC"));
        assert!(part.contains("Acme Physio, Leeds"));
        assert!(part.contains("Priya Shah"));
    }
    assert!(rendered.text.contains(&format!("\n    {TEMPORARY_PASSWORD}\n")), "the password stands on its own line");
}

#[test]
fn a_new_administrator_is_sent_a_link_to_choose_a_password_that_works_until_it_expires() {
    let rendered = render(&sample("administrator_appointed"));
    assert_eq!(rendered.subject, "You are the administrator of Acme Physio, Leeds on Guildhall");
    let link = format!("https://members.example.org/app/reset-password?token={TOKEN}");
    for part in [flat(&rendered.text), flat(&rendered.html)] {
        assert!(part.contains("Choose your password") || part.contains("choose your password"), "{part}");
        assert!(part.contains(&link), "{part}");
        assert!(part.contains("This link works once, until Thursday 26 November 2026, 09:00 UTC."), "{part}");
        assert!(!part.contains("/login"), "no sign-in link before there is a password: {part}");
    }
}

#[test]
fn an_existing_account_made_administrator_is_sent_a_sign_in_link_and_no_token() {
    let message = edited("administrator_appointed", |notification| {
        if let Notification::AdministratorAppointed { set_password, .. } = notification {
            *set_password = None;
        }
    });
    let rendered = render(&message);
    assert_eq!(rendered.subject, "You are the administrator of Acme Physio, Leeds on Guildhall");
    let sign_in = "https://members.example.org/app/login?email=jo.bloggs%40example.com";
    assert!(rendered.text.lines().any(|line| line == sign_in), "{}", rendered.text);
    assert!(rendered.html.contains(&format!("href=\"{sign_in}\"")), "{}", rendered.html);
    for part in [flat(&rendered.text), flat(&rendered.html)] {
        assert!(part.contains("your usual password"), "{part}");
        assert!(!part.contains("token=") && !part.contains("This link works"), "{part}");
    }
    assert!(rendered.text.lines().all(|line| line.chars().count() <= 78 || line == sign_in), "{}", rendered.text);
}

#[test]
fn an_invitation_states_when_its_link_stops_working() {
    let rendered = render(&sample("invitation"));
    assert!(rendered.text.contains("This link works until Monday 30 November 2026, 09:00 UTC."), "{}", rendered.text);
    assert!(rendered.html.contains("This link works until Monday 30 November 2026, 09:00 UTC."));
}

#[test]
fn names_people_typed_are_escaped_in_html_and_printed_as_typed_in_text() {
    let hostile = "<script>alert('x')</script> & \"Co\"";
    let message = edited("join_request_received", |notification| {
        if let Notification::JoinRequestReceived { requester_name, org_name, .. } = notification {
            *requester_name = hostile.into();
            *org_name = format!("<b>Acme</b> {hostile}");
        }
    });
    let rendered = render(&message);
    assert!(!rendered.html.contains("<script"), "{}", rendered.html);
    assert!(!rendered.html.contains("<b>Acme"), "{}", rendered.html);
    assert!(rendered.html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;Co&#34;"));
    assert!(rendered.text.contains(hostile), "{}", rendered.text);
    assert_eq!(rendered.subject, format!("{hostile} asks to join <b>Acme</b> {hostile}"));
}

#[test]
fn a_hostile_join_request_message_and_rejection_reason_are_escaped_in_html() {
    let note = Note::parse("<img src=x onerror=alert(1)>").unwrap();
    let received = edited("join_request_received", |notification| {
        if let Notification::JoinRequestReceived { message, .. } = notification {
            *message = Some(note.clone());
        }
    });
    let rejected = edited("join_request_rejected", |notification| {
        if let Notification::JoinRequestRejected { reason, .. } = notification {
            *reason = Some(note.clone());
        }
    });
    for message in [received, rejected] {
        let rendered = render(&message);
        assert!(!rendered.html.contains("<img"), "{}", rendered.html);
        assert!(rendered.html.contains("&#60;img src=x onerror=alert(1)&#62;"));
        assert!(rendered.text.contains("<img src=x onerror=alert(1)>"));
    }
}

#[test]
fn subjects_stay_on_one_line_whatever_the_names_contain() {
    let injected = "Acme\r\nBcc: x@y";
    for message in samples() {
        let mut message = message;
        match &mut message.notification {
            Notification::Invitation { org_name, invited_by, role_name, .. } => {
                *org_name = injected.into();
                *invited_by = "Priya\nShah".into();
                *role_name = "Admin\r\nX-Evil: 1".into();
            }
            Notification::AccountCreated { org_name, created_by, .. } => {
                *org_name = injected.into();
                *created_by = "Priya\rShah".into();
            }
            Notification::JoinRequestReceived { org_name, requester_name, .. } => {
                *org_name = injected.into();
                *requester_name = "Sam\r\n\tO'Neill\u{0}".into();
            }
            Notification::JoinRequestApproved { org_name, .. }
            | Notification::JoinRequestRejected { org_name, .. }
            | Notification::AdministratorAppointed { org_name, .. } => {
                *org_name = injected.into();
            }
            Notification::DeliveryFailed { what, error, .. } => {
                *what = "invitation\r\nBcc: x@y".into();
                *error = "421 try again\r\nlater".into();
            }
            Notification::SignUpAttemptWithExistingAccount
            | Notification::EmailChangeRequested { .. }
            | Notification::EmailChanged { .. }
            | Notification::VerifyEmail { .. }
            | Notification::PasswordReset { .. }
            | Notification::PasswordChanged { .. } => {}
        }
        let rendered = render(&message);
        let subject = &rendered.subject;
        assert!(!subject.chars().any(char::is_control), "{}: {subject:?}", message.notification.template());
        let has_org_name = !matches!(
            message.notification,
            Notification::SignUpAttemptWithExistingAccount
                | Notification::EmailChangeRequested { .. }
                | Notification::EmailChanged { .. }
                | Notification::VerifyEmail { .. }
                | Notification::PasswordReset { .. }
                | Notification::PasswordChanged { .. }
                | Notification::DeliveryFailed { .. }
        );
        if has_org_name {
            assert!(subject.contains("Acme Bcc: x@y"), "{subject:?}");
        }
    }
}

#[test]
fn a_product_name_with_a_line_break_cannot_break_the_subject() {
    let renderer = Renderer::new(Links::new("https://example.org").unwrap(), "Guild\r\nhall");
    let rendered = renderer.render(&sample("password_reset")).unwrap();
    assert_eq!(rendered.subject, "Reset your Guild hall password");
}

#[test]
fn the_time_of_a_password_change_is_stated_with_a_link_to_choose_a_new_one() {
    let rendered = render(&sample("password_changed"));
    for part in [&rendered.text, &rendered.html] {
        assert!(part.contains("Monday 23 November 2026, 14:05 UTC"), "{part}");
        assert!(part.contains("https://members.example.org/app/reset-password"));
    }
}

#[test]
fn messages_about_an_organisation_link_to_its_pages() {
    let cases = [
        ("join_request_received", format!("/orgs/{}/join-requests/{}", org_id(), join_request_id())),
        ("join_request_approved", format!("/orgs/{}", org_id())),
        ("delivery_failed", format!("/orgs/{}/undelivered", org_id())),
    ];
    for (template, path) in cases {
        let link = format!("https://members.example.org/app{path}");
        let rendered = render(&sample(template));
        assert!(rendered.text.lines().any(|line| line == link), "{template}:\n{}", rendered.text);
        assert!(rendered.html.contains(&format!("href=\"{link}\"")), "{template}");
    }
}

#[test]
fn messages_without_an_organisation_link_to_the_account_page_instead() {
    for template in ["join_request_received", "join_request_approved", "delivery_failed"] {
        let mut message = sample(template);
        message.org = None;
        let rendered = renderer().render(&message).unwrap();
        let account = "https://members.example.org/app/me";
        assert!(rendered.text.lines().any(|line| line == account), "{template}:\n{}", rendered.text);
        assert!(rendered.text.contains("Sign in to Guildhall"), "{template}:\n{}", rendered.text);
        assert!(rendered.html.contains(&format!("href=\"{account}\"")), "{template}");
        assert!(!rendered.text.contains("/orgs/"), "{template}");
    }
}

#[test]
fn a_join_request_without_a_message_says_so() {
    let message = edited("join_request_received", |notification| {
        if let Notification::JoinRequestReceived { message, .. } = notification {
            *message = None;
        }
    });
    let rendered = render(&message);
    assert!(rendered.text.contains("They did not leave a message."));
    assert!(rendered.html.contains("They did not leave a message."));
    assert!(!rendered.text.contains("They wrote"));
}

#[test]
fn a_rejection_states_its_reason_or_that_none_was_given() {
    let with_reason = render(&sample("join_request_rejected"));
    assert!(with_reason.text.contains("We only accept staff of our own clinics."));
    assert!(with_reason.html.contains("We only accept staff of our own clinics."));
    let without = edited("join_request_rejected", |notification| {
        if let Notification::JoinRequestRejected { reason, .. } = notification {
            *reason = None;
        }
    });
    let rendered = render(&without);
    assert!(rendered.text.contains("No reason was given."));
    assert!(rendered.html.contains("No reason was given."));
}

#[test]
fn a_delivery_failure_says_to_whom_what_and_why() {
    let rendered = render(&sample("delivery_failed"));
    for part in [flat(&rendered.text), rendered.html] {
        assert!(part.contains("sam.oneill@example.net"));
        assert!(part.contains("an invitation to join the organisation"));
        assert!(part.contains("Recipient address rejected: User unknown"));
    }
}

#[test]
fn text_lines_are_at_most_78_characters_unless_they_hold_a_link() {
    for message in samples() {
        let rendered = render(&message);
        for line in rendered.text.lines() {
            assert!(
                line.chars().count() <= 78 || !line.contains(' ') && line.starts_with("https://"),
                "{}: {line:?}",
                message.notification.template()
            );
        }
        assert!(rendered.text.ends_with(".\n") && !rendered.text.ends_with("\n\n"));
    }
}

#[test]
fn html_parts_are_english_documents_with_the_subject_as_title() {
    for message in samples() {
        let rendered = render(&message);
        assert!(rendered.html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(rendered.html.contains(&format!("<title>{}</title>", rendered.subject.replace('\'', "&#39;"))));
        assert!(rendered.html.contains("This email was sent to"));
    }
}

#[test]
fn the_debug_output_of_a_rendered_email_hides_the_bodies() {
    for template in ["invitation", "account_created", "verify_email", "password_reset", "administrator_appointed"] {
        let rendered = render(&sample(template));
        assert!(rendered.text.contains(TOKEN) || rendered.text.contains(TEMPORARY_PASSWORD));
        let shown = format!("{rendered:?} {rendered:#?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(!shown.contains(TEMPORARY_PASSWORD), "{shown}");
        assert!(shown.contains(&rendered.subject));
        assert!(shown.contains(&format!("text_len: {}", rendered.text.len())), "{shown}");
    }
}

#[test]
fn base_urls_of_the_form_scheme_host_port_path_are_accepted() {
    let cases = [
        ("https://example.org/app/", "https://example.org/app"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://example.org", "https://example.org"),
        ("https://example.org/", "https://example.org"),
        ("HTTPS://Members.Example.org/a/b//", "https://Members.Example.org/a/b"),
        ("http://[::1]:3000/guildhall", "http://[::1]:3000/guildhall"),
        ("https://example.org/caf%C3%A9", "https://example.org/caf%C3%A9"),
    ];
    for (input, base) in cases {
        assert_eq!(Links::new(input).map(|links| links.base().to_owned()), Ok(base.to_owned()), "{input}");
    }
}

#[test]
fn anything_else_is_refused_as_a_base_url_with_a_reason() {
    let cases = [
        ("ftp://x", "must start with http:// or https://"),
        ("example.org", "must start with http:// or https://"),
        ("", "must start with http:// or https://"),
        ("https://x/?a=1", "must not contain a query"),
        ("https://x#top", "must not contain a fragment"),
        ("https://user@x", "must not contain a user name or password"),
        ("https://user:secret@x/", "must not contain a user name or password"),
        ("https://", "must name a host"),
        ("https:///path", "must name a host"),
        ("https://:8080", "must name a host"),
        ("https://x:0", "port must be a number from 1 to 65535"),
        ("https://x:70000", "port must be a number from 1 to 65535"),
        ("https://x:", "port must be a number from 1 to 65535"),
        ("https://x:+80", "port must be a number from 1 to 65535"),
        ("https://exa mple.org", "must not contain spaces"),
        (" https://example.org", "must not contain spaces"),
        ("https://example.org\n", "must not contain spaces"),
        ("https://example.org/a\u{0}b", "must not contain spaces"),
        ("https://exämple.org", "host may contain only"),
        ("https://x\\y", "host may contain only"),
        ("https://[::1", "IPv6 address must be closed"),
        ("https://[]", "IPv6 address is not valid"),
        ("https://x/<script>", "path may contain only"),
        ("https://x/a%2", "path may contain only"),
    ];
    for (input, reason) in cases {
        match Links::new(input) {
            Ok(links) => panic!("{input:?} was accepted as {}", links.base()),
            Err(error) => {
                let message = error.to_string();
                assert!(message.starts_with("the public URL"), "{input:?}: {message}");
                assert!(message.contains(reason), "{input:?}: {message}");
                assert!(!message.contains("secret"), "{input:?}: the message repeats the value");
            }
        }
    }
}
