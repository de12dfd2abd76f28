//! `cargo xtask bench`: performance figures, reported here and in `docs/benchmarks.md`,
//! never asserted in tests.
//!
//! * `bench store`: member-list page latency of a large organisation on SQLite and
//!   PostgreSQL (issue 4's acceptance figures). Builds
//!   `crates/guildhall-store/examples/member_pages.rs` in release mode, runs it once per
//!   database on a quiet machine, prints one table and writes every figure as JSON to
//!   `<target dir>/bench/store-<UTC timestamp>.json`.
//! * `bench mail` ([`mail`]): the outbox dispatcher's delivery throughput to aiosmtpd on
//!   loopback, by `crates/guildhall-mail/examples/throughput.rs`.
//!
//! # The quiet-machine gate
//!
//! Before each run the 1-minute load average (`/proc/loadavg`) must show at most
//! [`MAX_OTHER_LOAD`] runnable tasks besides this task's own work. The load average is a
//! moving average, so the release build and the previous run still show in it for minutes;
//! their share is estimated from the CPU time they used (`/proc/self/stat`, children's
//! `cutime + cstime`) over their wall time, decayed as the kernel decays the average
//! (`exp(-t / 60 s)`). When the rest stays above the limit for [`QUIET_WAIT`], the task
//! stops without reporting: figures from a busy machine are not figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::workspace::{Workspace, display_command};

mod http;
mod mail;
mod micro;

/// Runnable tasks other than ours that still count as a quiet machine.
const MAX_OTHER_LOAD: f64 = 0.5;
/// How long to wait for a quiet machine before giving up.
const QUIET_WAIT: Duration = Duration::from_secs(30);
/// How often to look again while waiting (the kernel updates the average every 5 s).
const QUIET_POLL: Duration = Duration::from_secs(5);
/// `USER_HZ`, the unit of the times in `/proc/<pid>/stat` (100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// A benchmark program: an example, built in release mode.
#[derive(Debug, Clone, Copy)]
struct Example {
    package: &'static str,
    name: &'static str,
    features: &'static [&'static str],
}

impl Example {
    fn build_args(&self) -> Vec<&'static str> {
        let mut args = vec!["build", "--release", "--package", self.package, "--example", self.name];
        for feature in self.features {
            args.extend(["--features", feature]);
        }
        args.push("--message-format=json-render-diagnostics");
        args
    }
}

const MEMBER_PAGES: Example = Example { package: "guildhall-store", name: "member_pages", features: &[] };
const POSTGRES_URL_VARS: [&str; 2] = ["GUILDHALL_BENCH_POSTGRES_URL", "GUILDHALL_TEST_POSTGRES_URL"];

/// `cargo xtask bench <benchmark> [options]`.
#[derive(Debug)]
pub enum Benchmark {
    Http(http::Options),
    Store(Options),
    Mail(mail::Options),
    Micro,
}

impl Benchmark {
    /// `[--postgres] [--peer] [options]`, `store [options]` or `mail [options]`.
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        match args {
            ["store", rest @ ..] => Options::parse(rest).map(Self::Store),
            ["mail", rest @ ..] => mail::Options::parse(rest).map(Self::Mail),
            ["micro"] => Ok(Self::Micro),
            rest if rest.first().is_none_or(|a| a.starts_with("--")) => http::Options::parse(rest).map(Self::Http),
            _ => Err("`bench` runs the service benchmark (`cargo xtask bench [--postgres] [--peer]`), `bench store` \
                      or `bench mail`"
                .to_owned()),
        }
    }

    pub fn run(&self, workspace: &Workspace) -> Result<(), String> {
        match self {
            Self::Http(options) => http::run(workspace, options),
            Self::Store(options) => store(workspace, options),
            Self::Mail(options) => mail::run(workspace, options),
            Self::Micro => micro::run(workspace).map(|_| ()),
        }
    }
}

/// `bench store`'s options.
#[derive(Debug)]
pub struct Options {
    databases: Vec<&'static str>,
    /// Passed to every run of the program (`--members 200000`, ...).
    program_args: Vec<String>,
}

impl Options {
    /// `[--database sqlite|postgres] [program options]`, after `store`.
    fn parse(args: &[&str]) -> Result<Self, String> {
        let mut databases = Vec::new();
        let mut program_args = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if *arg == "--database" {
                match rest.next().copied() {
                    Some("sqlite") => databases.push("sqlite"),
                    Some("postgres") => databases.push("postgres"),
                    other => return Err(format!("--database is `sqlite` or `postgres`, not {other:?}")),
                }
            } else if *arg == "--format" {
                return Err("`bench store` chooses the program's --format itself".to_owned());
            } else {
                program_args.push((*arg).to_owned());
            }
        }
        Ok(Self { databases, program_args })
    }
}

/// What this task has run so far, for the gate's estimate of its own share of the load.
#[derive(Debug, Default)]
struct OwnWork {
    spans: Vec<Span>,
}

#[derive(Debug)]
struct Span {
    started: Instant,
    ended: Instant,
    cpu_seconds: f64,
}

impl OwnWork {
    /// Runs `work`, recording its wall time and the CPU time of the children it waited for.
    fn measure<T>(&mut self, work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let cpu_before = children_cpu_seconds()?;
        let started = Instant::now();
        let result = work();
        let ended = Instant::now();
        let cpu_seconds = (children_cpu_seconds()? - cpu_before).max(0.0);
        self.spans.push(Span { started, ended, cpu_seconds });
        result
    }

    /// Our share of the 1-minute load average now: each span as a constant load of
    /// `cpu / wall` tasks, through the kernel's exponential average.
    fn share_of_load(&self, now: Instant) -> f64 {
        self.spans
            .iter()
            .map(|span| {
                let wall = span.ended.duration_since(span.started).as_secs_f64();
                if wall <= 0.0 {
                    return 0.0;
                }
                let since = now.saturating_duration_since(span.ended).as_secs_f64();
                span.cpu_seconds / wall * (1.0 - (-wall / 60.0).exp()) * (-since / 60.0).exp()
            })
            .sum()
    }
}

/// What the gate saw before a run.
#[derive(Debug, Clone, Copy)]
struct Gate {
    load: f64,
    own: f64,
    waited: Duration,
}

impl Gate {
    fn other(self) -> f64 {
        (self.load - self.own).max(0.0)
    }

    /// `load 0.62 (own work ~0.31, other 0.31)`.
    fn describe(self) -> String {
        format!("load {:.2} (own work ~{:.2}, other {:.2})", self.load, self.own, self.other())
    }
}

/// Waits until the machine is quiet enough for the `run` to report figures.
fn wait_for_quiet(own: &OwnWork, run: &str) -> Result<Gate, String> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let now = Instant::now();
        let gate = Gate { load: load_average()?, own: own.share_of_load(now), waited: now - started };
        if gate.other() <= MAX_OTHER_LOAD {
            return Ok(gate);
        }
        if gate.waited >= QUIET_WAIT {
            return Err(format!(
                "the machine is busy: the 1-minute load average is {:.2}, of which about {:.2} is this \
                 benchmark's own build and runs, leaving {:.2} runnable tasks of other work (at most \
                 {MAX_OTHER_LOAD} allowed). Waited {} s before the {run} run; no figures are reported \
                 from a busy machine. Run it again when the machine is idle.",
                gate.load,
                gate.own,
                gate.other(),
                gate.waited.as_secs()
            ));
        }
        if !said {
            eprintln!(
                "==> waiting up to {} s for a quiet machine (load {:.2}, own work ~{:.2}, other {:.2} > {MAX_OTHER_LOAD})",
                QUIET_WAIT.as_secs(),
                gate.load,
                gate.own,
                gate.other()
            );
            said = true;
        }
        std::thread::sleep(QUIET_POLL);
    }
}

fn load_average() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .map_err(|error| format!("cannot read /proc/loadavg (the quiet-machine check needs Linux): {error}"))?;
    text.split_whitespace()
        .next()
        .and_then(|first| first.parse().ok())
        .ok_or_else(|| format!("cannot read the 1-minute load from /proc/loadavg: {text:?}"))
}

/// CPU seconds of this process's children that have been waited for (their own children
/// included, once those were waited for).
fn children_cpu_seconds() -> Result<f64, String> {
    let text =
        std::fs::read_to_string("/proc/self/stat").map_err(|error| format!("cannot read /proc/self/stat: {error}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // state is field 3, `cutime` field 16 and `cstime` field 17 (proc(5)).
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3).and_then(|value| value.parse::<f64>().ok());
    match (ticks(16), ticks(17)) {
        (Some(user), Some(system)) => Ok((user + system) / USER_HZ),
        _ => Err(format!("cannot read cutime and cstime from /proc/self/stat: {text:?}")),
    }
}

// ---- running -------------------------------------------------------------------------------

fn store(workspace: &Workspace, options: &Options) -> Result<(), String> {
    let started_at = SystemTime::now();
    let postgres_url = POSTGRES_URL_VARS.iter().find(|key| std::env::var(key).is_ok_and(|url| !url.is_empty()));
    let databases = if options.databases.is_empty() {
        if postgres_url.is_none() {
            eprintln!(
                "==> PostgreSQL skipped: set GUILDHALL_BENCH_POSTGRES_URL or GUILDHALL_TEST_POSTGRES_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            );
            vec!["sqlite"]
        } else {
            vec!["sqlite", "postgres"]
        }
    } else {
        options.databases.clone()
    };

    let mut own = OwnWork::default();
    let program = own.measure(|| build(workspace, MEMBER_PAGES))?;

    let mut runs = Vec::new();
    for database in databases {
        let gate = wait_for_quiet(&own, database)?;
        eprintln!(
            "==> {database}: {}; {} {}",
            gate.describe(),
            program.display(),
            run_args(database, options).join(" ")
        );
        let records = own.measure(|| run_program(&program, database, options))?;
        runs.push(Run { database, gate, records });
    }

    print!("{}", table(&runs));
    let path = write_json(&report_dir(workspace, &program)?, started_at, options, &runs)?;
    println!("figures written to {}", path.display());
    Ok(())
}

/// Builds the program and returns its path, read from cargo's JSON messages (which follow
/// any `--target-dir` or `CARGO_TARGET_DIR`).
fn build(workspace: &Workspace, example: Example) -> Result<PathBuf, String> {
    let args = example.build_args();
    let shown = display_command(&args);
    eprintln!("==> building the benchmark: {shown}");
    let messages = workspace.clean_cargo_stdout(&args)?;
    messages
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
        .find(|path| path.file_stem().is_some_and(|stem| stem == example.name))
        .ok_or_else(|| format!("`{shown}` did not report where it put the {} executable", example.name))
}

/// The string value of `"key":"..."` in one line of cargo's JSON output.
pub(crate) fn json_string_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// `<target>/release/examples/member_pages` → `<target>/bench`, created when missing.
fn report_dir(workspace: &Workspace, program: &Path) -> Result<PathBuf, String> {
    let target = program
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| workspace.root().join("target"), Path::to_path_buf);
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    Ok(dir)
}

fn run_args(database: &str, options: &Options) -> Vec<String> {
    let mut args = vec!["--database".to_owned(), database.to_owned(), "--format".to_owned(), "records".to_owned()];
    args.extend(options.program_args.iter().cloned());
    args
}

fn run_program(program: &Path, database: &str, options: &Options) -> Result<Vec<Record>, String> {
    let output = Command::new(program)
        .args(run_args(database, options))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("could not start {}: {error}", program.display()))?;
    if !output.status.success() {
        return Err(format!("the {database} run failed ({})", output.status));
    }
    let records: Vec<Record> = String::from_utf8_lossy(&output.stdout).lines().filter_map(Record::parse).collect();
    if records.is_empty() {
        return Err(format!("the {database} run printed no figures"));
    }
    Ok(records)
}

#[derive(Debug)]
struct Run {
    database: &'static str,
    gate: Gate,
    records: Vec<Record>,
}

/// One `record\tkey=value\t...` line of the program's output, in order.
#[derive(Debug)]
struct Record {
    fields: Vec<(String, String)>,
}

impl Record {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("record\t")?;
        let fields = rest
            .split('\t')
            .filter_map(|field| field.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Some(Self { fields })
    }

    fn get(&self, key: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.get(key).parse().ok()
    }
}

fn table(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nStore: member list pages (search_members, no filter unless noted)");
    let _ = writeln!(
        out,
        "{:<10} {:<26} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "database", "page", "samples", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms", "p50 vs 1"
    );
    for run in runs {
        let first_p50 = run
            .records
            .iter()
            .find(|r| r.get("kind") == "page" && r.get("label") == "first")
            .and_then(|r| r.number("p50_ms"));
        for record in run.records.iter().filter(|r| r.get("kind") == "page") {
            let page = match record.get("label") {
                "walk" => format!("walk 1..{} (once each)", record.get("page")),
                "filtered" => format!("1, text \"{}\" ({} rows)", record.get("text"), record.get("rows")),
                "deep (last)" => format!("{} (last)", record.get("page")),
                _ => record.get("page").to_owned(),
            };
            let ratio = match (record.number("p50_ms"), first_p50) {
                (Some(p50), Some(first)) if first > 0.0 => format!("{:.2}x", p50 / first),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<10} {page:<26} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {ratio:>9}",
                run.database,
                record.get("samples"),
                record.get("p50_ms"),
                record.get("p95_ms"),
                record.get("p99_ms"),
                record.get("mean_ms"),
                record.get("max_ms"),
            );
        }
    }
    for run in runs {
        for record in &run.records {
            match record.get("kind") {
                "run" => {
                    let _ = writeln!(
                        out,
                        "{}: {}, {} members, {} per page ({} pages), seeded in {} s ({} members/s); load before {:.2} (other {:.2})",
                        run.database,
                        record.get("version"),
                        record.get("members"),
                        record.get("page_size"),
                        record.get("pages"),
                        record.get("seed_s"),
                        record.get("seed_members_per_s"),
                        run.gate.load,
                        run.gate.other(),
                    );
                }
                "ratio" => {
                    let _ = writeln!(
                        out,
                        "{}: page {} / page 1 = {}x (p50), {}x (mean); target (within 1.5x, each under 5 ms, by p50): {}",
                        run.database,
                        record.get("deep_page"),
                        record.get("deep_over_first_p50"),
                        record.get("deep_over_first_mean"),
                        if record.get("target_met") == "true" { "met" } else { "NOT met" },
                    );
                }
                _ => {}
            }
        }
    }
    out
}

// ---- the JSON report -----------------------------------------------------------------------

fn write_json(dir: &Path, started_at: SystemTime, options: &Options, runs: &[Run]) -> Result<PathBuf, String> {
    let seconds = started_at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let (date, time) = utc(seconds);
    let path = dir.join(format!("store-{}T{}Z.json", date.replace('-', ""), time.replace(':', "")));

    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\n  \"benchmark\": \"store member pages\",\n  \"started_at\": \"{date}T{time}Z\",\n  \"cores\": {cores},\n  \"arguments\": [{}],\n  \"runs\": [",
        options.program_args.iter().map(|arg| json_string(arg)).collect::<Vec<_>>().join(", ")
    );
    for (index, run) in runs.iter().enumerate() {
        let _ = write!(
            json,
            "{}\n    {{\n      \"database\": {},\n      \"load_before\": {{ \"one_minute\": {:.2}, \"own_work_estimate\": {:.2}, \"other\": {:.2}, \"waited_s\": {} }},\n      \"records\": [",
            if index == 0 { "" } else { "," },
            json_string(run.database),
            run.gate.load,
            run.gate.own,
            run.gate.other(),
            run.gate.waited.as_secs()
        );
        for (index, record) in run.records.iter().enumerate() {
            let fields: Vec<String> = record
                .fields
                .iter()
                .map(|(key, value)| format!("{}: {}", json_string(key), json_value(value)))
                .collect();
            let _ = write!(json, "{}\n        {{ {} }}", if index == 0 { "" } else { "," }, fields.join(", "));
        }
        json.push_str("\n      ]\n    }");
    }
    json.push_str("\n  ]\n}\n");
    std::fs::write(&path, json).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(path)
}

/// A number or boolean as itself, anything else as a string.
fn json_value(value: &str) -> String {
    if value == "true" || value == "false" || value.parse::<f64>().is_ok_and(f64::is_finite) {
        value.to_owned()
    } else {
        json_string(value)
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `("YYYY-MM-DD", "HH:MM:SS")` in UTC for seconds since the Unix epoch (Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn utc(seconds: u64) -> (String, String) {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), format!("{:02}:{:02}:{:02}", rest / 3_600, rest % 3_600 / 60, rest % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_names_its_benchmark_first() {
        let Ok(Benchmark::Store(store)) = Benchmark::parse(&["store", "--database", "sqlite", "--members", "200000"])
        else {
            panic!("`bench store` was not parsed as the store benchmark");
        };
        assert_eq!(store.databases, ["sqlite"]);
        assert_eq!(store.program_args, ["--members", "200000"]);
        assert!(matches!(Benchmark::parse(&["mail", "--messages", "500"]), Ok(Benchmark::Mail(_))));
        assert!(matches!(Benchmark::parse(&["micro"]), Ok(Benchmark::Micro)));
        // No benchmark named, or options first: the service benchmark.
        assert!(matches!(Benchmark::parse(&[]), Ok(Benchmark::Http(_))));
        assert!(matches!(Benchmark::parse(&["--peer", "--duration", "5"]), Ok(Benchmark::Http(_))));
        for unknown in [&["disk"][..], &["micro", "--fast"]] {
            let error = Benchmark::parse(unknown).unwrap_err();
            assert!(error.contains("`bench store`"), "{unknown:?}: {error}");
        }
        // Options the service benchmark does not know, or sets itself, are refused.
        for refused in [&["--members", "10", "store"][..], &["--binary", "x"], &["--duration"]] {
            assert!(Benchmark::parse(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn bench_store_refuses_an_unknown_database_and_its_own_format_option() {
        assert!(Benchmark::parse(&["store", "--database", "mysql"]).is_err());
        assert!(Benchmark::parse(&["store", "--format", "table"]).is_err());
    }

    #[test]
    fn examples_build_in_release_with_their_features() {
        assert_eq!(
            MEMBER_PAGES.build_args().join(" "),
            "build --release --package guildhall-store --example member_pages --message-format=json-render-diagnostics"
        );
        assert_eq!(
            mail::THROUGHPUT.build_args().join(" "),
            "build --release --package guildhall-mail --example throughput --features testing \
             --message-format=json-render-diagnostics"
        );
    }

    #[test]
    fn utc_dates_follow_the_civil_calendar() {
        assert_eq!(utc(0), ("1970-01-01".to_owned(), "00:00:00".to_owned()));
        assert_eq!(utc(951_782_400), ("2000-02-29".to_owned(), "00:00:00".to_owned()));
        assert_eq!(utc(1_795_450_245), ("2026-11-23".to_owned(), "16:10:45".to_owned()));
    }

    #[test]
    fn cargo_messages_yield_the_executable_path() {
        let line = r#"{"reason":"compiler-artifact","executable":"/t/release/examples/member_pages","fresh":true}"#;
        assert_eq!(json_string_field(line, "executable").as_deref(), Some("/t/release/examples/member_pages"));
        assert_eq!(json_string_field(r#"{"executable":null}"#, "executable"), None);
    }

    #[test]
    fn records_keep_numbers_as_numbers_and_text_as_strings() {
        let record = Record::parse("record\tkind=page\tp50_ms=0.812\tversion=SQLite 3.46.0\ttarget_met=true").unwrap();
        assert_eq!(record.number("p50_ms"), Some(0.812));
        assert_eq!(json_value(record.get("version")), "\"SQLite 3.46.0\"");
        assert_eq!(json_value(record.get("target_met")), "true");
        assert_eq!(json_value("NaN"), "\"NaN\"");
    }

    #[test]
    fn a_finished_build_weighs_on_the_load_average_less_as_time_passes() {
        let start = Instant::now();
        let own = OwnWork {
            spans: vec![Span { started: start, ended: start + Duration::from_secs(120), cpu_seconds: 240.0 }],
        };
        let right_after = own.share_of_load(start + Duration::from_secs(120));
        let a_minute_later = own.share_of_load(start + Duration::from_secs(180));
        assert!((right_after - 2.0 * (1.0 - (-2.0_f64).exp())).abs() < 1e-9);
        assert!((a_minute_later - right_after * (-1.0_f64).exp()).abs() < 1e-9);
    }
}
