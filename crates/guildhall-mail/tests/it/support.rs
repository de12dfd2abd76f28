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

/// A fresh PostgreSQL database on the server `GUILDHALL_TEST_POSTGRES_URL` names; `None`
/// (the test skips, with a message) without the variable, except under `CI=true`.
pub struct FreshPostgres {
    pub url: String,
    admin_url: String,
    name: String,
}

impl FreshPostgres {
    pub async fn create() -> Option<Self> {
        use sea_orm::ConnectionTrait;
        let url = match std::env::var("GUILDHALL_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("GUILDHALL_TEST_POSTGRES_URL is not set: under CI=true the PostgreSQL tests must run, not skip")
            }
            _ => {
                eprintln!("skipping a PostgreSQL test: set GUILDHALL_TEST_POSTGRES_URL");
                return None;
            }
        };
        let admin_url = with_database(&url, "postgres");
        let name = format!("guildhall_mail_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url.as_str()).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        admin.close().await.unwrap();
        Some(Self { url: with_database(&admin_url, &name), admin_url, name })
    }

    pub async fn drop(self) {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(self.admin_url.as_str()).await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await.unwrap();
        admin.close().await.unwrap();
    }
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..].find('/').map_or(base.len(), |i| authority_end + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
