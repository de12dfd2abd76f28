//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::time::{Duration, Instant};

use crate::workspace::{Workspace, display_command};
use crate::{clock_rng, openapi, purity};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// For callers that have just run `cargo test --workspace --all-features` themselves.
    skip_tests: bool,
}

impl Options {
    pub fn parse(flags: &[&str]) -> Result<Self, String> {
        let mut options = Self::default();
        for flag in flags {
            match *flag {
                "--skip-tests" => options.skip_tests = true,
                other => return Err(format!("unknown option for `ci`: `{other}`")),
            }
        }
        Ok(options)
    }
}

const DOC_ARGS: &[&str] = &["doc", "--workspace", "--all-features", "--no-deps"];

#[derive(Debug, Clone, Copy)]
enum Action {
    Cargo(&'static [&'static str]),
    /// `cargo doc` with warnings (broken intra-doc links, missing docs) as errors.
    Docs,
    Purity,
    ClockRng,
    OpenApi,
}

#[derive(Debug)]
struct Step {
    name: &'static str,
    action: Action,
    is_test: bool,
}

const STEPS: &[Step] = &[
    Step { name: "fmt", action: Action::Cargo(&["fmt", "--all", "--check"]), is_test: false },
    Step {
        name: "clippy",
        action: Action::Cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]),
        is_test: false,
    },
    Step { name: "test", action: Action::Cargo(&["test", "--workspace", "--all-features"]), is_test: true },
    Step { name: "docs", action: Action::Docs, is_test: false },
    Step { name: "purity", action: Action::Purity, is_test: false },
    Step { name: "clock-rng", action: Action::ClockRng, is_test: false },
    Step { name: "openapi", action: Action::OpenApi, is_test: false },
];

#[derive(Debug)]
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped,
    NotRun,
}

impl Action {
    fn describe(self) -> String {
        match self {
            Self::Cargo(args) => display_command(args),
            Self::Docs => format!("RUSTDOCFLAGS=\"-D warnings\" {}", display_command(DOC_ARGS)),
            Self::Purity => "no I/O or RNG crates in guildhall-domain's dependencies".to_owned(),
            Self::ClockRng => "no direct clock or RNG use in guildhall-domain's source".to_owned(),
            Self::OpenApi => "docs/openapi.json matches the code".to_owned(),
        }
    }

    fn run(self, workspace: &Workspace) -> Result<(), String> {
        match self {
            Self::Cargo(args) => workspace.run_cargo(args),
            Self::Docs => workspace.run_cargo_with_env(DOC_ARGS, "RUSTDOCFLAGS", "-D warnings"),
            Self::Purity => purity::check(workspace),
            Self::ClockRng => clock_rng::check(workspace),
            Self::OpenApi => openapi::run(workspace, true),
        }
    }
}

pub fn run(workspace: &Workspace, options: Options) -> Result<(), String> {
    let started = Instant::now();
    let mut outcomes: Vec<(&Step, Outcome)> = Vec::new();
    let mut failure: Option<(&'static str, String)> = None;

    for (index, step) in STEPS.iter().enumerate() {
        let position = format!("[{}/{}]", index + 1, STEPS.len());
        if failure.is_some() {
            outcomes.push((step, Outcome::NotRun));
            continue;
        }
        if step.is_test && options.skip_tests {
            println!("==> {position} {}: skipped (--skip-tests)", step.name);
            outcomes.push((step, Outcome::Skipped));
            continue;
        }
        println!("==> {position} {}: {}", step.name, step.action.describe());
        let step_started = Instant::now();
        let result = step.action.run(workspace);
        let elapsed = step_started.elapsed();
        match result {
            Ok(()) => outcomes.push((step, Outcome::Passed(elapsed))),
            Err(message) => {
                outcomes.push((step, Outcome::Failed(elapsed)));
                failure = Some((step.name, message));
            }
        }
    }

    println!("==> summary");
    for (step, outcome) in &outcomes {
        let (status, time) = match outcome {
            Outcome::Passed(elapsed) => ("ok", seconds(*elapsed)),
            Outcome::Failed(elapsed) => ("FAILED", seconds(*elapsed)),
            Outcome::Skipped => ("skipped", "-".to_owned()),
            Outcome::NotRun => ("not run", "-".to_owned()),
        };
        println!("    {:<10} {status:<8} {time:>8}", step.name);
    }
    println!("    {:<10} {:<8} {:>8}", "total", "", seconds(started.elapsed()));

    match failure {
        None => {
            println!("==> ci passed");
            Ok(())
        }
        Some((name, message)) => Err(format!("ci step `{name}` failed: {message}")),
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}
