//! Member-list page latency of a large organisation (issue 4's store benchmark).
//!
//! Seeds one organisation with `--members` members through [`Store`] and
//! [`UnitOfWork::commit`], then times [`MembershipRepository::search_members`] (no filter,
//! `--page-size` per page) for page 1 and a deep page reached by cursor (`--deep-page`,
//! or the last page when the organisation has fewer pages), plus one text-filtered
//! first page for information. Every figure is a wall-clock latency of the whole port
//! call, as a use case sees it: the query, the facilities of the page's members, and the
//! conversion into domain types.
//!
//! Normally run through `cargo xtask bench store`, which builds it in release mode, waits
//! for a quiet machine and writes the figures as JSON. By hand:
//!
//! ```text
//! cargo run --release -p guildhall-store --example member_pages -- --database sqlite
//! GUILDHALL_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run --release -p guildhall-store --example member_pages -- --database postgres --members 200000
//! ```
//!
//! SQLite runs in a fresh file in the temp directory; PostgreSQL in a fresh database
//! `guildhall_bench_<uuid>` on the server named by `GUILDHALL_BENCH_POSTGRES_URL` (or
//! `GUILDHALL_TEST_POSTGRES_URL`). Both are removed at the end, also after a failure.
//!
//! The figures are reported, never asserted: performance targets are not tests.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use guildhall_domain::ids::{FacilityId, OrgId, UserId};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::org::{Facility, OrgSettings, Organisation};
use guildhall_domain::ports::{Change, ChangeSet, Clock, IdGenerator, MembershipRepository, UnitOfWork};
use guildhall_domain::query::{MemberCursor, MemberPage, MemberQuery};
use guildhall_domain::role::builtin;
use guildhall_domain::testing::{ManualClock, SequentialIds};
use guildhall_domain::user::{PasswordHash, PasswordState, User, UserStatus};
use guildhall_domain::values::{EmailAddress, FacilityName, OrgName, OrgSlug, PersonName, RoleKey};
use guildhall_store::{Backend, Store};
use sea_orm::{ConnectionTrait, Database, Statement};

const USAGE: &str = "\
Usage: member_pages --database sqlite|postgres [options]

  --members N       members of the organisation, its founder included (default 100000)
  --page-size N     members per page, 1..=200 (default 100)
  --samples N       timed calls per measured page, after the warm-up (default 200)
  --warmup N        untimed calls per measured page first (default 20)
  --deep-page N     the deep page to time; the last page if there are fewer (default 2000)
  --batch N         members per seeding commit (default 5000)
  --text TEXT       the text filter of the informational filtered query (default \"son\")
  --format F        `table` for people (default), `records` for `cargo xtask bench store`

PostgreSQL: GUILDHALL_BENCH_POSTGRES_URL, else GUILDHALL_TEST_POSTGRES_URL.
";

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
enum Format {
    Table,
    Records,
}

#[derive(Debug)]
struct Options {
    backend: Backend,
    members: u64,
    page_size: u32,
    samples: usize,
    warmup: usize,
    deep_page: u64,
    batch: usize,
    text: String,
    format: Format,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, Failure> {
        let mut options = Self {
            backend: Backend::Sqlite,
            members: 100_000,
            page_size: 100,
            samples: 200,
            warmup: 20,
            deep_page: 2_000,
            batch: 5_000,
            text: "son".to_owned(),
            format: Format::Table,
        };
        let mut database = None;
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            if flag == "-h" || flag == "--help" {
                return fail(USAGE);
            }
            let Some(value) = rest.next() else { return fail(format!("{flag} needs a value\n\n{USAGE}")) };
            match flag.as_str() {
                "--database" => database = Some(value.clone()),
                "--members" => options.members = number(flag, value)?,
                "--page-size" => options.page_size = number(flag, value)?,
                "--samples" => options.samples = number(flag, value)?,
                "--warmup" => options.warmup = number(flag, value)?,
                "--deep-page" => options.deep_page = number(flag, value)?,
                "--batch" => options.batch = number(flag, value)?,
                "--text" => options.text.clone_from(value),
                "--format" => {
                    options.format = match value.as_str() {
                        "table" => Format::Table,
                        "records" => Format::Records,
                        other => return fail(format!("--format is `table` or `records`, not `{other}`")),
                    }
                }
                other => return fail(format!("unknown option `{other}`\n\n{USAGE}")),
            }
        }
        options.backend = match database.as_deref() {
            Some("sqlite") => Backend::Sqlite,
            Some("postgres") => Backend::Postgres,
            Some(other) => return fail(format!("--database is `sqlite` or `postgres`, not `{other}`")),
            None => return fail(format!("--database is required\n\n{USAGE}")),
        };
        if options.members < 2 || options.samples == 0 || options.batch == 0 || options.deep_page < 2 {
            return fail("--members and --deep-page must be at least 2, --samples and --batch at least 1");
        }
        if !(1..=MemberQuery::MAX_LIMIT).contains(&options.page_size) {
            return fail(format!("--page-size must be 1..={}", MemberQuery::MAX_LIMIT));
        }
        Ok(options)
    }

    fn pages(&self) -> u64 {
        self.members.div_ceil(u64::from(self.page_size))
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, Failure> {
    value.replace('_', "").parse().or_else(|_| fail(format!("{flag} takes a number, not `{value}`")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = Options::parse(&args)?;
    let scratch = Scratch::create(options.backend).await?;
    let outcome = run(&scratch.url, &options).await;
    // Remove the database whether or not the run succeeded.
    let removed = scratch.remove().await;
    let report = outcome?;
    removed?;
    match options.format {
        Format::Table => report.print_table(),
        Format::Records => report.print_records(),
    }
    Ok(())
}

// ---- the scratch database -----------------------------------------------------------------

/// A database that exists only for one run.
struct Scratch {
    url: String,
    place: Place,
}

enum Place {
    SqliteFile(std::path::PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl Scratch {
    async fn create(backend: Backend) -> Result<Self, Failure> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("guildhall-bench-{tag}.db"));
                Ok(Self { url: format!("sqlite://{}", path.display()), place: Place::SqliteFile(path) })
            }
            Backend::Postgres => {
                let server = ["GUILDHALL_BENCH_POSTGRES_URL", "GUILDHALL_TEST_POSTGRES_URL"]
                    .iter()
                    .find_map(|key| std::env::var(key).ok().filter(|url| !url.is_empty()));
                let Some(server) = server else {
                    return fail(
                        "--database postgres needs GUILDHALL_BENCH_POSTGRES_URL or GUILDHALL_TEST_POSTGRES_URL \
                         (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
                    );
                };
                let admin_url = with_database(&server, "postgres");
                let name = format!("guildhall_bench_{tag}");
                let admin = Database::connect(admin_url.as_str()).await?;
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
                admin.close().await?;
                Ok(Self { url: with_database(&admin_url, &name), place: Place::PostgresDatabase { admin_url, name } })
            }
        }
    }

    async fn remove(self) -> Result<(), Failure> {
        match self.place {
            Place::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let file = format!("{}{suffix}", path.display());
                    match std::fs::remove_file(&file) {
                        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                            return fail(format!("could not remove {file}: {error}"));
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Place::PostgresDatabase { admin_url, name } => {
                let admin = Database::connect(admin_url.as_str()).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                admin.close().await?;
                Ok(())
            }
        }
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

// ---- the run ------------------------------------------------------------------------------

async fn run(url: &str, options: &Options) -> Result<Report, Failure> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let version = server_version(&store).await?;
    progress(format!("seeding {} members ({version})", options.members));
    let started = Instant::now();
    let seeded = seed(&store, options).await?;
    let seed_time = started.elapsed();
    // What a live database has: planner statistics (PostgreSQL's autovacuum gathers them
    // within a minute of a bulk load; on SQLite, `PRAGMA optimize` does).
    store.connection().execute_unprepared("ANALYZE").await?;

    let pages = options.pages();
    let deep = options.deep_page.min(pages);
    progress(format!("walking pages 1..{deep} by cursor"));
    let walk = walk_to(&store, &seeded, options, deep).await?;

    progress(format!("timing page 1 and page {deep}, {} samples each", options.samples));
    let first_query = seeded.query(options, None, None);
    let deep_query = seeded.query(options, walk.cursor.clone(), None);
    for _ in 0..options.warmup {
        timed(&store, &first_query).await?;
        timed(&store, &deep_query).await?;
    }
    let mut first = Vec::with_capacity(options.samples);
    let mut deepest = Vec::with_capacity(options.samples);
    // Interleaved, so that drift (a checkpoint, another process) hits both alike.
    for _ in 0..options.samples {
        first.push(timed(&store, &first_query).await?.1);
        deepest.push(timed(&store, &deep_query).await?.1);
    }

    let filtered_query = seeded.query(options, None, Some(options.text.clone()));
    for _ in 0..options.warmup {
        timed(&store, &filtered_query).await?;
    }
    let mut filtered = Vec::with_capacity(options.samples);
    let mut filtered_rows = 0;
    for _ in 0..options.samples {
        let (page, took) = timed(&store, &filtered_query).await?;
        filtered_rows = page.items.len();
        filtered.push(took);
    }
    store.close().await?;

    Ok(Report {
        database: match options.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        version,
        members: options.members,
        page_size: options.page_size,
        pages,
        seed_time,
        warmup: options.warmup,
        first: Figures::of(1, "first", &first),
        deep: Figures::of(deep, if deep == pages { "deep (last)" } else { "deep" }, &deepest),
        // The walk's `page` is the last page it read.
        walk: Figures::of(deep - 1, "walk", &walk.times),
        filtered: Figures::of(1, "filtered", &filtered),
        text: options.text.clone(),
        filtered_rows,
    })
}

/// Progress goes to stderr, so that stdout holds only the report.
fn progress(message: String) {
    eprintln!("member_pages: {message}");
}

async fn server_version(store: &Store) -> Result<String, Failure> {
    let (sql, name) = match store.backend() {
        Backend::Sqlite => ("SELECT sqlite_version() AS v", "SQLite"),
        Backend::Postgres => ("SELECT current_setting('server_version') AS v", "PostgreSQL"),
    };
    let db = store.connection();
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    let version = row.map(|row| row.try_get::<String>("", "v")).transpose()?.unwrap_or_default();
    Ok(format!("{name} {version}"))
}

async fn timed(store: &Store, query: &MemberQuery) -> Result<(MemberPage, Duration), Failure> {
    let started = Instant::now();
    let page = store.search_members(query).await?;
    Ok((page, started.elapsed()))
}

struct Walk {
    /// The cursor that starts the target page.
    cursor: Option<MemberCursor>,
    /// Each page's latency on the way (the target page excluded).
    times: Vec<Duration>,
}

/// Reads pages 1..`target` by cursor, as a client paging through would, and returns the
/// cursor of page `target`. Checks that the pages hold every member once, in order.
async fn walk_to(store: &Store, seeded: &Seeded, options: &Options, target: u64) -> Result<Walk, Failure> {
    let mut cursor: Option<MemberCursor> = None;
    let mut times = Vec::new();
    let mut seen: u64 = 0;
    for page in 1..target {
        let (result, took) = timed(store, &seeded.query(options, cursor.clone(), None)).await?;
        times.push(took);
        seen += result.items.len() as u64;
        let starts_after = match (&cursor, result.items.first()) {
            (Some(before), Some(first)) => {
                (first.name.sort_key(), first.membership.user) > (before.sort_key.clone(), before.user)
            }
            _ => true,
        };
        if !starts_after {
            return fail(format!("page {page} does not start after the previous page's cursor"));
        }
        match result.next {
            Some(next) => cursor = Some(next),
            None => return fail(format!("page {page} is the last page; expected {target} pages")),
        }
    }
    let (last, _) = timed(store, &seeded.query(options, cursor.clone(), None)).await?;
    seen += last.items.len() as u64;
    if target == options.pages() && (seen != options.members || last.next.is_some()) {
        return fail(format!("walking every page found {seen} members, not {}", options.members));
    }
    Ok(Walk { cursor, times })
}

// ---- seeding ------------------------------------------------------------------------------

struct Seeded {
    org: OrgId,
    as_of: DateTime<Utc>,
}

impl Seeded {
    fn query(&self, options: &Options, after: Option<MemberCursor>, text: Option<String>) -> MemberQuery {
        MemberQuery {
            org: self.org,
            text,
            role: None,
            facility: None,
            state: None,
            as_of: self.as_of,
            limit: options.page_size,
            after,
        }
    }
}

/// One organisation with five facilities, its founder (an administrator) and
/// `members - 1` more members, each attributed to one facility, committed
/// `--batch` users and memberships at a time.
async fn seed(store: &Store, options: &Options) -> Result<Seeded, Failure> {
    let ids = SequentialIds::new();
    let clock = ManualClock::default();
    let mut names = Names::new();
    let founder = person(&ids, &clock, &mut names, 0)?;
    let org = Organisation {
        id: OrgId::from_uuid(ids.generate()),
        slug: OrgSlug::parse("acme-physio")?,
        name: OrgName::parse("Acme Physio")?,
        settings: OrgSettings::default(),
        created_by: founder.id,
        created_at: clock.now(),
        version: 0,
    };
    let mut facilities = Vec::new();
    for name in ["North Clinic", "South Clinic", "City Centre", "Riverside", "Hospital Outreach"] {
        facilities.push(Facility {
            id: FacilityId::from_uuid(ids.generate()),
            org: org.id,
            name: FacilityName::parse(name)?,
            created_at: clock.now(),
        });
    }
    let facility_ids: Vec<FacilityId> = facilities.iter().map(|f| f.id).collect();
    let mut setup = vec![
        Change::InsertUser(founder.clone()),
        Change::InsertOrganisation(org.clone()),
        Change::InsertMembership(Membership::new(
            org.id,
            founder.id,
            builtin::ADMINISTRATOR,
            MembershipOrigin::Founder,
            None,
            clock.now(),
        )),
    ];
    setup.extend(facilities.into_iter().map(Change::InsertFacility));
    store.commit(ChangeSet { changes: setup, ..ChangeSet::new() }).await?;

    let mut n: u64 = 1;
    while n < options.members {
        let end = (n + options.batch as u64).min(options.members);
        let mut changes = Vec::with_capacity(2 * options.batch);
        for i in n..end {
            clock.advance(chrono::Duration::seconds(37));
            let user = person(&ids, &clock, &mut names, i)?;
            let roll = names.next() % 100;
            let mut membership = Membership::new(
                org.id,
                user.id,
                role_for(roll),
                MembershipOrigin::Invitation,
                Some(founder.id),
                clock.now(),
            );
            membership.facilities = BTreeSet::from([facility_ids[(names.next() % 5) as usize]]);
            changes.push(Change::InsertUser(user));
            changes.push(Change::InsertMembership(membership));
        }
        store.commit(ChangeSet { changes, ..ChangeSet::new() }).await?;
        if end / 50_000 > n / 50_000 {
            progress(format!("  {end} members"));
        }
        n = end;
    }
    Ok(Seeded { org: org.id, as_of: clock.now() })
}

fn role_for(roll: u64) -> RoleKey {
    match roll {
        0..80 => builtin::USER,
        80..92 => builtin::USER_PLUS,
        92..98 => builtin::MANAGER,
        _ => builtin::ADMINISTRATOR,
    }
}

fn person(ids: &SequentialIds, clock: &ManualClock, names: &mut Names, n: u64) -> Result<User, Failure> {
    let (first, last) = names.pick();
    let name = PersonName::parse(first, last)
        .or_else(|problems| fail(format!("{first} {last} is not a valid name: {problems:?}")))?;
    let email = EmailAddress::parse(&format!("{}.{}.{n}@members.example", ascii(first), ascii(last)))?;
    Ok(User {
        id: UserId::from_uuid(ids.generate()),
        email,
        name,
        phone: None,
        email_verified_at: Some(clock.now()),
        status: UserStatus::Active,
        password: PasswordState {
            hash: Some(PasswordHash::new("$bench$not-a-real-hash")),
            temporary: None,
            must_change: false,
            changed_at: Some(clock.now()),
        },
        created_at: clock.now(),
        version: 0,
    })
}

fn ascii(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Names drawn from small lists by a fixed-seed SplitMix64, so that every run seeds the
/// same people and sort keys spread over the alphabet (up to 7,560 distinct keys, with
/// ties broken by id as in real organisations).
struct Names {
    state: u64,
}

const FIRST: &[&str] = &[
    "Aaliyah", "Adam", "Aisha", "Alex", "Alice", "Amelia", "Amir", "Ana", "Anna", "Arjun", "Ben", "Bo", "Carla",
    "Chen", "Chloe", "Chris", "Daniel", "David", "Elena", "Eli", "Emily", "Emma", "Fatima", "Finn", "Freya", "George",
    "Grace", "Hannah", "Harry", "Isla", "Ivan", "Jack", "James", "Jana", "Jia", "John", "José", "Kai", "Karen",
    "Laura", "Leo", "Liam", "Lily", "Lucas", "Maria", "Mark", "Maya", "Mei", "Mia", "Mohammed", "Nadia", "Noah",
    "Nora", "Oliver", "Olivia", "Omar", "Paul", "Priya", "Rachel", "Ravi", "Rosa", "Ruth", "Sam", "Sara", "Siân",
    "Sofia", "Sophie", "Tom", "Yusuf", "Zara", "Zoë", "Åsa",
];

const LAST: &[&str] = &[
    "Abbott",
    "Adeyemi",
    "Ahmed",
    "Ali",
    "Anderson",
    "Bailey",
    "Baker",
    "Bauer",
    "Bell",
    "Brown",
    "Campbell",
    "Chen",
    "Clarke",
    "Cohen",
    "Cooper",
    "Costa",
    "Davies",
    "Dubois",
    "Edwards",
    "Evans",
    "Fischer",
    "Fraser",
    "García",
    "Gonzalez",
    "Gray",
    "Green",
    "Hall",
    "Harris",
    "Hughes",
    "Hussain",
    "Jackson",
    "James",
    "Jensen",
    "Johnson",
    "Jones",
    "Kaur",
    "Kelly",
    "Khan",
    "Kim",
    "King",
    "Kowalski",
    "Lee",
    "Lewis",
    "Li",
    "López",
    "MacDonald",
    "Martin",
    "Mendes",
    "Miller",
    "Mitchell",
    "Moore",
    "Morgan",
    "Müller",
    "Murphy",
    "Nguyen",
    "Nielsen",
    "Novak",
    "Núñez",
    "O'Brien",
    "O'Connor",
    "Okafor",
    "Owen",
    "Park",
    "Patel",
    "Perez",
    "Phillips",
    "Price",
    "Quinn",
    "Rahman",
    "Reid",
    "Roberts",
    "Robinson",
    "Rossi",
    "Russo",
    "Ryan",
    "Santos",
    "Schmidt",
    "Scott",
    "Shah",
    "Silva",
    "Singh",
    "Smith",
    "Sørensen",
    "Stewart",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thomas",
    "Thompson",
    "Turner",
    "Walker",
    "Wang",
    "Ward",
    "Watson",
    "White",
    "Williams",
    "Wilson",
    "Wood",
    "Wright",
    "Yamamoto",
    "Young",
    "Zhang",
    "de Vries",
    "van Dijk",
    "Ó Súilleabháin",
];

impl Names {
    fn new() -> Self {
        Self { state: 0x5eed_f00d_1d4a_1100 }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick(&mut self) -> (&'static str, &'static str) {
        let first = FIRST[(self.next() % FIRST.len() as u64) as usize];
        let last = LAST[(self.next() % LAST.len() as u64) as usize];
        (first, last)
    }
}

// ---- the report ---------------------------------------------------------------------------

struct Figures {
    page: u64,
    label: &'static str,
    samples: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

impl Figures {
    /// Milliseconds; nearest-rank percentiles.
    fn of(page: u64, label: &'static str, times: &[Duration]) -> Self {
        let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1_000.0).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |q: f64| -> f64 {
            if ms.is_empty() {
                return f64::NAN;
            }
            let index = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
            ms[index]
        };
        let mean = if ms.is_empty() { f64::NAN } else { ms.iter().sum::<f64>() / ms.len() as f64 };
        Self {
            page,
            label,
            samples: ms.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            mean,
            max: ms.last().copied().unwrap_or(f64::NAN),
        }
    }
}

struct Report {
    database: &'static str,
    version: String,
    members: u64,
    page_size: u32,
    pages: u64,
    seed_time: Duration,
    warmup: usize,
    first: Figures,
    deep: Figures,
    walk: Figures,
    filtered: Figures,
    text: String,
    filtered_rows: usize,
}

impl Report {
    fn seed_rate(&self) -> f64 {
        self.members as f64 / self.seed_time.as_secs_f64()
    }

    /// Deep page over first page, by median and by mean.
    fn ratios(&self) -> (f64, f64) {
        (self.deep.p50 / self.first.p50, self.deep.mean / self.first.mean)
    }

    /// Issue 4's target: the deep page within 1.5x of the first, each under 5 ms (by p50).
    fn target_met(&self) -> bool {
        self.deep.p50 <= 1.5 * self.first.p50 && self.first.p50 < 5.0 && self.deep.p50 < 5.0
    }

    fn print_table(&self) {
        println!(
            "{} ({}): {} members, {} per page, {} pages; seeded in {:.1} s ({:.0} members/s)",
            self.database,
            self.version,
            self.members,
            self.page_size,
            self.pages,
            self.seed_time.as_secs_f64(),
            self.seed_rate()
        );
        println!(
            "{:<28} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "page", "samples", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms"
        );
        for (name, f) in self.rows() {
            println!(
                "{name:<28} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                f.samples, f.p50, f.p95, f.p99, f.mean, f.max
            );
        }
        let (p50, mean) = self.ratios();
        println!(
            "page {} / page 1: {p50:.2}x (p50), {mean:.2}x (mean); target (within 1.5x, each under 5 ms): {}",
            self.deep.page,
            if self.target_met() { "met" } else { "NOT met" }
        );
    }

    fn rows(&self) -> [(String, &Figures); 4] {
        [
            ("1".to_owned(), &self.first),
            (format!("{}{}", self.deep.page, if self.deep.page == self.pages { " (last)" } else { "" }), &self.deep),
            (format!("walk 1..{} (once each)", self.walk.page), &self.walk),
            (format!("1, text \"{}\" ({} rows)", self.text, self.filtered_rows), &self.filtered),
        ]
    }

    /// Tab-separated `key=value` records, one per line, for `cargo xtask bench store`.
    fn print_records(&self) {
        let clean = |text: &str| text.replace(['\t', '\n', '='], " ");
        println!(
            "record\tkind=run\tdatabase={}\tversion={}\tmembers={}\tpage_size={}\tpages={}\tseed_s={:.2}\tseed_members_per_s={:.0}\twarmup={}",
            self.database,
            clean(&self.version),
            self.members,
            self.page_size,
            self.pages,
            self.seed_time.as_secs_f64(),
            self.seed_rate(),
            self.warmup
        );
        for f in [&self.first, &self.deep, &self.walk, &self.filtered] {
            let text = if std::ptr::eq(f, &self.filtered) {
                format!("\ttext={}\trows={}", clean(&self.text), self.filtered_rows)
            } else {
                String::new()
            };
            println!(
                "record\tkind=page\tdatabase={}\tlabel={}\tpage={}\tsamples={}\tp50_ms={:.3}\tp95_ms={:.3}\tp99_ms={:.3}\tmean_ms={:.3}\tmax_ms={:.3}{text}",
                self.database, f.label, f.page, f.samples, f.p50, f.p95, f.p99, f.mean, f.max
            );
        }
        let (p50, mean) = self.ratios();
        println!(
            "record\tkind=ratio\tdatabase={}\tdeep_page={}\tdeep_over_first_p50={p50:.3}\tdeep_over_first_mean={mean:.3}\ttarget_met={}",
            self.database,
            self.deep.page,
            self.target_met()
        );
    }
}
