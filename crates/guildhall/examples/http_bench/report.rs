//! The figures as JSON and as the Markdown report that `docs/benchmarks.md` carries.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::load::Run;
use crate::{Options, TargetReport, thousands};

/// Argon2id as Guildhall hashes by default (`argon2.*` in docs/operations.md).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// What the hash alone allows on this machine: one hashing thread per core, as the
/// server's hashing slots default to.
#[derive(Debug, Clone, Serialize)]
pub struct HashRate {
    pub threads: usize,
    pub hashes: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub ms_each: f64,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

pub fn hash_only_rate(duration: Duration) -> HashRate {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let Ok(params) = argon2::Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(32)) else { return 0 };
                let mut blocks = vec![argon2::Block::default(); params.block_count()];
                let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
                let mut out = [0_u8; 32];
                let mut n: u64 = 0;
                while started.elapsed() < duration {
                    let salt = [t as u8 ^ (n as u8); 16];
                    // Into one block buffer reused across hashes: the best case, with no
                    // allocation or page faults, so the sign-in ratio is against the most the
                    // hash could allow.
                    if argon
                        .hash_password_into_with_memory(b"Bench-Passphrase-4-Guildhall", &salt, &mut out, &mut blocks)
                        .is_ok()
                    {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let hashes: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let seconds = started.elapsed().as_secs_f64();
    HashRate {
        threads,
        hashes,
        seconds,
        per_second: hashes as f64 / seconds,
        ms_each: seconds * 1000.0 * threads as f64 / hashes.max(1) as f64,
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        parallelism: PARALLELISM,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu,
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub concurrency: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub sizes: Vec<usize>,
    pub deep_page: usize,
    pub invitees: usize,
    pub quiet_cores: f64,
    pub guildhall: &'static str,
    pub peer: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub machine: Machine,
    pub settings: Settings,
    pub hash_only: HashRate,
    pub targets: Vec<TargetReport>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn rate(r: f64) -> String {
    if r >= 100.0 { format!("{r:.0}") } else { format!("{r:.1}") }
}

fn ms(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn cells(run: Option<&Run>) -> String {
    match run {
        None => "– | – | – | – | –".to_owned(),
        Some(r) => format!(
            "{} | {} / {} / {} | {} | {} | {}",
            rate(r.rps),
            ms(r.latency_ms.p50),
            ms(r.latency_ms.p95),
            ms(r.latency_ms.p99),
            r.errors,
            r.server_cpu_ms_per_request.map_or("–".to_owned(), |v| format!("{v:.2}")),
            mib(r.server_rss_max_kib)
        ),
    }
}

fn ratio(ours: Option<&Run>, theirs: Option<&Run>) -> Option<f64> {
    Some(ours?.rps / theirs?.rps.max(1e-9))
}

struct Check {
    what: String,
    measured: String,
    met: bool,
}

impl Report {
    pub fn new(options: &Options, started: DateTime<Utc>, hash_only: HashRate, targets: Vec<TargetReport>) -> Self {
        Self {
            started,
            finished: Utc::now(),
            machine: Machine::read(),
            settings: Settings {
                concurrency: options.concurrency,
                duration_s: options.duration.as_secs_f64(),
                warmup_s: options.warmup.as_secs_f64(),
                sizes: options.sizes.clone(),
                deep_page: options.deep_page,
                invitees: options.invitees,
                quiet_cores: options.quiet_cores,
                guildhall: "release build, default configuration (Argon2id m=19 MiB t=2 p=1, one hashing slot per core, \
                            emails written as files by the outbox dispatcher, info logs to a file) with \
                            throttle.enabled = false",
                peer: "its bench configuration (auth.mjs): rate limiting off, membership and invitation limits raised, \
                       NODE_ENV=production",
            },
            hash_only,
            targets,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn peer(&self) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.flavour == "Peer")
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Run of {} UTC ({} minutes), {} cores ({}), {} GiB, Linux {}. `cargo xtask bench{}{}`: \
             concurrency {}, {} s per scenario after {} s of unmeasured warm-up (none before (f), which \
             accepts each invitation once). Quiet gate: other processes under {} cores before every scenario.",
            self.started.format("%Y-%m-%d %H:%M"),
            (self.finished - self.started).num_minutes(),
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            if self.targets.iter().any(|t| t.label.contains("PostgreSQL")) { " --postgres" } else { "" },
            if self.peer().is_some() { " --peer" } else { "" },
            self.settings.concurrency,
            self.settings.duration_s,
            self.settings.warmup_s,
            self.settings.quiet_cores
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "- Guildhall: {}.", self.settings.guildhall);
        if let Some(peer) = self.peer() {
            let _ = writeln!(out, "- better-auth: {} ({}).", self.settings.peer, peer.versions);
        }
        let _ = writeln!(
            out,
            "- Hash alone: {:.1} Argon2id hashes/s on {} threads ({:.1} ms each).",
            self.hash_only.per_second, self.hash_only.threads, self.hash_only.ms_each
        );
        let _ = writeln!(out);
        let peer = self.peer();
        for ours in self.targets.iter().filter(|t| t.flavour == "Guildhall") {
            let _ =
                writeln!(out, "#### {}{}", ours.label, peer.map_or(String::new(), |_| " and better-auth".to_owned()));
            let _ = writeln!(out);
            let _ = write!(
                out,
                "| scenario | {0} req/s | p50 / p95 / p99 ms | errors | CPU ms/req | RSS max MiB ",
                ours.label
            );
            if peer.is_some() {
                let _ = write!(
                    out,
                    "| better-auth req/s | p50 / p95 / p99 ms | errors | CPU ms/req | RSS max MiB | ratio "
                );
            }
            let _ = writeln!(out, "|");
            let columns = if peer.is_some() { 12 } else { 6 };
            let _ = writeln!(out, "|---{}|", "|--:".repeat(columns - 1));
            for run in &ours.runs {
                let theirs = peer.and_then(|p| p.run(&run.name));
                let _ = write!(out, "| {} | {} ", run.name, cells(Some(run)));
                if peer.is_some() {
                    let _ = write!(
                        out,
                        "| {} | {} ",
                        cells(theirs),
                        ratio(Some(run), theirs).map_or("–".to_owned(), |r| format!("{r:.1}×"))
                    );
                }
                let _ = writeln!(out, "|");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "Server memory (RSS, MiB):");
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| server | idle after start | idle after seeding | 5 s after the bench | peak (VmHWM) | seeding s |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.1} |",
                t.label,
                mib(t.idle_rss_after_start_kib),
                mib(t.idle_rss_after_seed_kib),
                mib(t.idle_rss_after_bench_kib),
                mib(t.rss_peak_kib),
                t.seed_seconds
            );
        }
        let _ = writeln!(out);
        for ours in self.targets.iter().filter(|t| t.flavour == "Guildhall") {
            let _ = writeln!(out, "Targets, {}:", ours.label);
            let _ = writeln!(out);
            let _ = writeln!(out, "| target | measured | met |");
            let _ = writeln!(out, "|---|---|---|");
            for check in self.checks(ours, peer) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    check.what,
                    check.measured,
                    if check.met { "yes" } else { "**no**" }
                );
            }
            let _ = writeln!(out);
        }
        out
    }

    fn checks(&self, ours: &TargetReport, peer: Option<&TargetReport>) -> Vec<Check> {
        let mut checks = Vec::new();
        let find = |t: &TargetReport, prefix: &str| t.runs.iter().find(|r| r.name.starts_with(prefix)).cloned();
        if let Some(sign_in) = find(ours, "(b)") {
            checks.push(Check {
                what: "sign-in ≥ 70 req/s".into(),
                measured: format!("{:.1} req/s", sign_in.rps),
                met: sign_in.rps >= 70.0,
            });
            let share = sign_in.rps / self.hash_only.per_second.max(1e-9);
            checks.push(Check {
                what: "sign-in ≥ 85 % of the hash-only rate".into(),
                measured: format!("{:.0} % ({:.1} of {:.1}/s)", share * 100.0, sign_in.rps, self.hash_only.per_second),
                met: share >= 0.85,
            });
        }
        if let Some(read) = find(ours, "(c)") {
            if let Some(theirs) = peer.and_then(|p| find(p, "(c)")) {
                let r = read.rps / theirs.rps.max(1e-9);
                checks.push(Check {
                    what: "session-checked read ≥ 20× the peer".into(),
                    measured: format!("{r:.1}× ({:.0} vs {:.0} req/s)", read.rps, theirs.rps),
                    met: r >= 20.0,
                });
            }
            checks.push(Check {
                what: "session-checked read p99 < 10 ms".into(),
                measured: format!("{:.2} ms", read.latency_ms.p99),
                met: read.latency_ms.p99 < 10.0,
            });
        }
        let lists: Vec<&Run> = ours.runs.iter().filter(|r| r.name.starts_with("(e)")).collect();
        if let Some(size) = self.settings.sizes.iter().max() {
            let prefix = format!("(e) list members, {} members, page ", thousands(*size));
            let first = lists.iter().find(|r| r.name == format!("{prefix}1"));
            let deep = lists.iter().find(|r| r.name.starts_with(&prefix) && !r.name.ends_with("page 1"));
            if let (Some(first), Some(deep)) = (first, deep) {
                let r = deep.latency_ms.p50 / first.latency_ms.p50.max(1e-9);
                checks.push(Check {
                    what: format!("list members: deep page within 1.5× of page 1 at {} members", thousands(*size)),
                    measured: format!(
                        "{r:.2}× by p50 ({} vs {} ms; {} vs {} req/s)",
                        ms(deep.latency_ms.p50),
                        ms(first.latency_ms.p50),
                        rate(deep.rps),
                        rate(first.rps)
                    ),
                    met: r <= 1.5,
                });
            }
        }
        if let Some(peer) = peer {
            let ratios: Vec<(String, f64)> =
                lists.iter().filter_map(|r| Some((r.name.clone(), r.rps / peer.run(&r.name)?.rps.max(1e-9)))).collect();
            if let Some((name, worst)) = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                checks.push(Check {
                    what: "list members ≥ 10× the peer (every size and page)".into(),
                    measured: format!("lowest {worst:.1}× ({name})"),
                    met: *worst >= 10.0,
                });
            }
            for (prefix, what) in [("(d)", "create invitation"), ("(f)", "accept invitation")] {
                if let (Some(a), Some(b)) = (find(ours, prefix), find(peer, prefix)) {
                    let r = a.rps / b.rps.max(1e-9);
                    checks.push(Check {
                        what: format!("{what} ≥ 10× the peer"),
                        measured: format!("{r:.1}× ({:.0} vs {:.0} req/s)", a.rps, b.rps),
                        met: r >= 10.0,
                    });
                }
            }
        }
        if let Some(alone) = find(ours, "(g) reads alone") {
            for flood in ["sign-up", "sign-in"] {
                if let Some(during) =
                    ours.runs.iter().find(|r| r.name.starts_with(&format!("(g) reads during {flood}")))
                {
                    let kept = during.rps / alone.rps.max(1e-9);
                    checks.push(Check {
                        what: format!("reads during a {flood} flood keep ≥ 50 %"),
                        measured: format!("{:.0} % ({:.0} of {:.0} req/s)", kept * 100.0, during.rps, alone.rps),
                        met: kept >= 0.5,
                    });
                }
            }
        }
        let idle = ours.idle_rss_after_start_kib.max(ours.idle_rss_after_seed_kib);
        checks.push(Check {
            what: "idle RSS ≤ 25 MiB".into(),
            measured: format!(
                "{} MiB after start, {} MiB after seeding",
                mib(ours.idle_rss_after_start_kib),
                mib(ours.idle_rss_after_seed_kib)
            ),
            met: idle <= 25 * 1024,
        });
        let loaded = ours.runs.iter().map(|r| r.server_rss_max_kib).max().unwrap_or(0).max(ours.rss_peak_kib);
        checks.push(Check {
            what: "RSS under load ≤ 100 MiB".into(),
            measured: format!("{} MiB peak", mib(loaded)),
            met: loaded <= 100 * 1024,
        });
        checks
    }
}
