//! `cargo xtask bench micro`: the domain's criterion microbenchmarks
//! (`crates/guildhall-domain/benches/domain.rs`), with issue 8's targets.
//!
//! Runs `cargo bench -p guildhall-domain --bench domain` once the machine is quiet, reads
//! criterion's summary lines (`name  time: [low estimate high]`), prints a table, writes
//! `<target dir>/bench/micro.json` and puts the table into `docs/benchmarks.md` between
//! its markers.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::workspace::{Workspace, display_command};

const BEGIN: &str = "<!-- cargo xtask bench micro: begin -->";
const END: &str = "<!-- cargo xtask bench micro: end -->";
/// Cores other processes may use before the run.
const QUIET_CORES: f64 = 0.25;

/// One benchmark's figures, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub low_ns: f64,
    pub estimate_ns: f64,
    pub high_ns: f64,
}

impl Row {
    /// The target for this benchmark, in nanoseconds, with its text.
    fn target(&self) -> Option<(f64, &'static str)> {
        if self.name.starts_with("authorize/") {
            Some((1_000.0, "< 1 µs"))
        } else if self.name.starts_with("preview_role_change/10k/") {
            Some((10_000_000.0, "< 10 ms"))
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct MicroReport {
    pub date: String,
    pub other_cores: f64,
    pub rows: Vec<Row>,
}

fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

impl MicroReport {
    pub fn markdown_table(&self) -> String {
        let mut out = format!(
            "Run of {} UTC (`cargo xtask bench micro`; other processes used {:.2} cores before it). \
             Criterion's estimate of the mean time per call, with its 95 % confidence interval.\n\n",
            self.date, self.other_cores
        );
        out.push_str("| benchmark | time | 95 % interval | target | met |\n|---|--:|--:|---|---|\n");
        for row in &self.rows {
            let (target, met) = match row.target() {
                Some((limit, text)) => (text, if row.high_ns < limit { "yes" } else { "**no**" }),
                None => ("–", "–"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} – {} | {target} | {met} |",
                row.name,
                human(row.estimate_ns),
                human(row.low_ns),
                human(row.high_ns)
            );
        }
        out
    }

    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "    {{\"name\": {:?}, \"low_ns\": {}, \"estimate_ns\": {}, \"high_ns\": {}, \"target_ns\": {}}}",
                    r.name,
                    r.low_ns,
                    r.estimate_ns,
                    r.high_ns,
                    r.target().map_or("null".to_owned(), |(t, _)| t.to_string())
                )
            })
            .collect();
        format!(
            "{{\n  \"date\": {:?},\n  \"other_cores_before\": {},\n  \"rows\": [\n{}\n  ]\n}}\n",
            self.date,
            self.other_cores,
            rows.join(",\n")
        )
    }
}

/// Busy cores of the whole machine over `window` (this task only sleeps meanwhile).
fn busy_cores(window: Duration) -> Result<f64, String> {
    let read = || -> Result<f64, String> {
        let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let ticks: Vec<f64> =
            stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
        let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
        Ok((ticks.iter().sum::<f64>() - idle) / super::USER_HZ)
    };
    let before = read()?;
    std::thread::sleep(window);
    Ok((read()? - before) / window.as_secs_f64())
}

fn wait_until_quiet() -> Result<f64, String> {
    let started = Instant::now();
    loop {
        let busy = busy_cores(Duration::from_secs(2))?;
        if busy <= QUIET_CORES {
            return Ok(busy);
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "the machine stayed busy ({busy:.2} cores used by other processes, at most {QUIET_CORES}); \
                 no microbenchmark figures are reported from a busy machine"
            ));
        }
        eprintln!("==> other processes use {busy:.2} cores; waiting for a quiet machine");
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Parses criterion's summary: a line `name  time: [a u b u c u]`, or the name alone on
/// the line before when it is long.
fn parse(output: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut last_name = String::new();
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(at) = trimmed.find("time:") {
            let name = trimmed[..at].trim();
            let name = if name.is_empty() { last_name.clone() } else { name.to_owned() };
            let inside = trimmed[at + 5..].trim().trim_start_matches('[').trim_end_matches(']');
            let parts: Vec<&str> = inside.split_whitespace().collect();
            let value = |i: usize| -> Option<f64> {
                let number: f64 = parts.get(2 * i)?.parse().ok()?;
                let scale = match *parts.get(2 * i + 1)? {
                    "ps" => 0.001,
                    "ns" => 1.0,
                    "µs" | "us" => 1_000.0,
                    "ms" => 1_000_000.0,
                    "s" => 1_000_000_000.0,
                    _ => return None,
                };
                Some(number * scale)
            };
            if let (Some(low_ns), Some(estimate_ns), Some(high_ns)) = (value(0), value(1), value(2)) {
                rows.push(Row { name, low_ns, estimate_ns, high_ns });
            }
        } else if !trimmed.is_empty()
            && !trimmed.starts_with("change:")
            && !trimmed.starts_with("thrpt:")
            && !trimmed.starts_with("Found")
            && !trimmed.starts_with("Benchmarking")
            && !line.starts_with(' ')
        {
            last_name = trimmed.to_owned();
        }
    }
    rows
}

pub fn run(workspace: &Workspace) -> Result<MicroReport, String> {
    let args = ["bench", "--package", "guildhall-domain", "--bench", "domain", "--", "--noplot"];
    let shown = display_command(&args);
    // Build first, so that the quiet gate does not see the compiler.
    let build = ["bench", "--package", "guildhall-domain", "--bench", "domain", "--no-run"];
    let status = workspace
        .clean_cargo_command(&build)
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", display_command(&build)))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", display_command(&build)));
    }
    let other_cores = wait_until_quiet()?;
    eprintln!("==> {shown} (other processes: {other_cores:.2} cores)");
    let stdout = workspace.clean_cargo_stdout(&args)?;
    print!("{stdout}");
    let rows = parse(&stdout);
    if rows.is_empty() {
        return Err(format!("`{shown}` printed no criterion summary to read"));
    }
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (day, time) = super::utc(seconds);
    let date = format!("{day} {}", &time[..5]);
    let report = MicroReport { date, other_cores, rows };
    let dir = workspace.root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("micro.json"), report.json()).map_err(|e| format!("micro.json: {e}"))?;
    println!("\n{}", report.markdown_table());
    super::http::splice_docs(workspace, BEGIN, END, "## Domain microbenchmarks", &report.markdown_table())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_summaries_on_one_line_and_on_two() {
        let output = "\
authorize/administrator, organisation
                        time:   [101.20 ns 102.50 ns 103.90 ns]
password_policy/NIST, weak
                        time:   [1.2000 µs 1.2500 µs 1.3000 µs]
                        change: [-1.0% +0.2% +1.1%] (p = 0.70 > 0.05)
short                   time:   [2.0000 ms 2.1000 ms 2.2000 ms]
";
        let rows = parse(output);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["authorize/administrator, organisation", "password_policy/NIST, weak", "short"]);
        assert!((rows[0].estimate_ns - 102.5).abs() < 1e-9);
        assert!((rows[1].high_ns - 1_300.0).abs() < 1e-6);
        assert!((rows[2].low_ns - 2_000_000.0).abs() < 1e-3);
    }
}
