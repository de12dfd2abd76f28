//! Wiring a dispatcher to the domain's in-memory adapters, and reading what arrived.

use std::sync::Arc;

use guildhall_domain::catalogue::topics;
use guildhall_domain::org::Organisation;
use guildhall_domain::ports::{ChangeSet, UnitOfWork};
use guildhall_domain::testing::TestKit;
use guildhall_domain::usecases::OrganisationUpdate;
use guildhall_domain::user::User;
use guildhall_mail::{Composer, DispatchPorts, DispatchSettings, Dispatcher, Links, Renderer, Transport};
use mailparse::{MailHeaderMap, ParsedMail};

pub const BASE_URL: &str = "https://members.example.org";
pub const FROM: &str = "Guildhall <no-reply@guildhall.example>";

pub fn composer() -> Composer {
    Composer::new(Renderer::new(Links::new(BASE_URL).unwrap(), "Guildhall"), FROM).unwrap()
}

/// Fast settings: no waiting between batches in tests that call `dispatch_once`.
pub fn settings() -> DispatchSettings {
    DispatchSettings { idle_poll: std::time::Duration::from_millis(10), ..DispatchSettings::default() }
}

pub fn dispatcher(kit: &TestKit, transport: Arc<dyn Transport>, settings: DispatchSettings) -> Dispatcher {
    let ports = DispatchPorts {
        outbox: kit.store.clone(),
        organisations: kit.store.clone(),
        transport,
        clock: kit.clock.clone(),
        ids: kit.ids.clone(),
    };
    Dispatcher::new(ports, composer(), settings).unwrap()
}

/// A practice with an administrator, whose failed-messaging reports go to
/// `ops@acme.example`.
pub struct Practice {
    pub kit: TestKit,
    pub admin: User,
    pub org: Organisation,
}

impl Practice {
    pub async fn new() -> Self {
        let kit = TestKit::new();
        let admin = kit.seed_user("ann.admin@acme.example", true).await.unwrap();
        let org = kit.seed_org("acme-physio", admin.id).await.unwrap();
        let routing = vec![(topics::FAILED_MESSAGING.to_string(), vec!["ops@acme.example".to_owned()])];
        let update = OrganisationUpdate { routing: Some(routing), ..OrganisationUpdate::default() };
        let org = kit.guildhall.organisations().update(admin.id, org.id, update).await.unwrap();
        Self { kit, admin, org }
    }

    pub async fn queue(&self, emails: Vec<guildhall_domain::notification::OutboundEmail>) {
        self.kit.store.commit(ChangeSet { emails, ..ChangeSet::new() }).await.unwrap();
    }
}

/// The parts of a received message the tests look at.
#[derive(Debug)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub template: String,
    pub auto_submitted: String,
    pub content_type: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Self {
        let parsed = mailparse::parse_mail(raw).unwrap();
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        let part = |mime: &str| {
            let found: Vec<&ParsedMail> = parsed.subparts.iter().filter(|p| p.ctype.mimetype == mime).collect();
            assert_eq!(found.len(), 1, "one {mime} part");
            assert_eq!(found[0].ctype.charset.to_ascii_lowercase(), "utf-8");
            found[0].get_body().unwrap()
        };
        Self {
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            message_id: header("Message-ID"),
            template: header("X-Guildhall-Template"),
            auto_submitted: header("Auto-Submitted"),
            content_type: parsed.ctype.mimetype.clone(),
            text: part("text/plain"),
            html: part("text/html"),
        }
    }

    /// The value of `token=` in the first link to `path` in the text part.
    pub fn token_for(&self, path: &str) -> String {
        let prefix = format!("{BASE_URL}{path}?token=");
        let start =
            self.text.find(&prefix).unwrap_or_else(|| panic!("no {prefix} link in:\n{}", self.text)) + prefix.len();
        let token: String = self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(self.html.contains(&format!("{prefix}{token}")), "the HTML part has the same link");
        token
    }
}
